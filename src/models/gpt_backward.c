/* Training backward of the decoder-only transformer: the forward path in
 * reverse, with the activations the forward saved in the arena. */
#include "models/gpt_internal.h"
#include "nn/norm.h"
#include "ops/ops.h"

#include <string.h>

/* dx [N, D]: gradient w.r.t. the block output on entry, w.r.t. its input on
 * return (in place). */
static moe_status block_backward(moe_model *m, int l, moe_real *dx, float scale, moe_arena *arena) {
    const moe_model_config *c = &m->cfg;
    const gpt_block_w *w = &m->w.blocks[l];
    gpt_block_w *g = &m->g.blocks[l];
    const gpt_block_acts *a = &m->acts[l];
    int B = m->B, T = m->T, N = B * T, D = c->d_model, H = c->n_head, KVH = c->n_kv_head;
    int hd = gpt_head_dim(c), Q = m->qkv_dim;
    long ND = (long)N * D;
    /* Everything allocated here is scratch: the caller releases it after the
     * block, so all blocks share one block's worth of memory. */
    moe_real *dtmp, *dln, *dnorm;
    ALLOC(dtmp, ND);
    ALLOC(dln, ND);
    ALLOC(dnorm, ND);

    /* x_out = x_mid + drop(ffn(ln2(x_mid))) */
    const moe_real *dffn = dx;
    if (a->drop2) {
        dropout_backward(dtmp, dx, a->drop2, ND);
        dffn = dtmp;
    }
    size_t ffn_mark = moe_arena_mark(arena); /* FFN scratch ends before attention's */
    moe_status st;
    if (m->block_is_moe[l])
        st = moe_layer_backward(&c->moe, &w->moe, &g->moe, dln, dffn, a->moe, scale, arena);
    else
        st = mlp_backward(dln, g->w1, g->w3, g->w2, dffn, &a->mlp, a->ln2, w->w1, w->w3, w->w2,
                          c->ffn_act, N, D, c->d_ff, arena);
    if (st != MOE_OK) return st;
    moe_arena_release(arena, ffn_mark);
    norm_backward(c->norm, dnorm, g->ln2_w, g->ln2_b, dln, a->x_mid, w->ln2_w, a->ln2_mean,
                  a->ln2_rstd, N, D);
    residual_forward(dx, dx, dnorm, ND); /* dx is now d x_mid */

    /* x_mid = x_in + drop(o_proj(attention(qkv(ln1(x_in))))) */
    moe_real *dqkv, *datt, *dattn;
    ALLOC(dqkv, (size_t)N * Q);
    ALLOC(datt, (size_t)B * H * T * T);
    ALLOC(dattn, ND);
    const moe_real *dproj = dx;
    if (a->drop1) {
        dropout_backward(dtmp, dx, a->drop1, ND);
        dproj = dtmp;
    }
    matmul_backward(dattn, g->o_w, g->o_b, dproj, a->attn, w->o_w, N, D, D);
    attention_backward(dqkv, dqkv + H * hd, dqkv + (H + KVH) * hd, datt, dattn, a->qkv,
                       a->qkv + H * hd, a->qkv + (H + KVH) * hd, a->att, B, T, H, KVH, hd, Q, Q, 1);
    if (c->pos == MOE_POS_ROPE) {
        rope_backward(dqkv, dqkv, B, T, H, hd, Q, 0, c->rope_theta);
        rope_backward(dqkv + H * hd, dqkv + H * hd, B, T, KVH, hd, Q, 0, c->rope_theta);
    }
    matmul_backward(dln, g->qkv_w, g->qkv_b, dqkv, a->ln1, w->qkv_w, N, D, Q);
    norm_backward(c->norm, dnorm, g->ln1_w, g->ln1_b, dln, a->x_in, w->ln1_w, a->ln1_mean,
                  a->ln1_rstd, N, D);
    residual_forward(dx, dx, dnorm, ND); /* dx is now d x_in */
    return MOE_OK;
}

moe_status moe_model_backward(moe_model *m, moe_arena *arena, float scale) {
    const moe_model_config *c = &m->cfg;
    if (!m->acts || !m->probs || !m->targets)
        return moe_error(MOE_ERR_INVALID, "model backward: needs a forward with targets first");
    int N = m->B * m->T, D = c->d_model, V = c->vocab_size;
    moe_real *dlogits, *dlnf, *dx;
    ALLOC(dx, (size_t)N * D);
    size_t mark = moe_arena_mark(arena); /* the rest is scratch, reused block by block */
    ALLOC(dlogits, (size_t)N * V);
    ALLOC(dlnf, (size_t)N * D);
    crossentropy_backward(dlogits, m->probs, m->targets, N, V, -1, m->n_counted, scale);
    matmul_backward(dlnf, m->g.lm_head, NULL, dlogits, m->lnf, m->w.lm_head, N, D, V);
    norm_backward(c->norm, dx, m->g.lnf_w, m->g.lnf_b, dlnf, m->x_final, m->w.lnf_w, m->lnf_mean,
                  m->lnf_rstd, N, D);
    moe_arena_release(arena, mark);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        moe_status st = block_backward(m, l, dx, scale, arena);
        moe_arena_release(arena, mark);
        if (st != MOE_OK) return st;
    }
    embedding_backward(m->g.wte, dx, m->tokens, N, D);
    if (m->g.wpe) {
        int B = m->B, T = m->T;
        /* position rows: sum over the batch, rows of one t are independent */
#pragma omp parallel for schedule(static)
        for (int t = 0; t < T; t++) {
            moe_real *gp = m->g.wpe + (size_t)t * D;
            for (int b = 0; b < B; b++) {
                const moe_real *r = dx + ((size_t)b * T + t) * D;
                for (int i = 0; i < D; i++) gp[i] += r[i];
            }
        }
    }
    return MOE_OK;
}
