/* Training backward of the decoder-only transformer: the forward path in
 * reverse, with the activations the forward saved in the arena. */
#include "models/gpt_internal.h"
#include "nn/norm.h"
#include "ops/ops.h"

#include <string.h>

/* Backward of block l's FFN: dffn [N, D] -> dffn_in [N, D] (written). A
 * padded batch's MoE layer saw only the real rows (block_ffn_forward). */
static moe_status block_ffn_backward(gpt_model *m, int l, moe_real *dffn_in, const moe_real *dffn,
                                     float scale, moe_arena *arena) {
    const moe_model_config *c = &m->cfg;
    const gpt_block_w *w = &m->w.blocks[l];
    gpt_block_w *g = &m->g.blocks[l];
    const gpt_block_acts *a = &m->acts[l];
    int N = m->B * m->T, D = c->d_model;
    if (!m->block_is_moe[l])
        return mlp_backward(dffn_in, g->w1, g->w3, g->w2, dffn, &a->mlp, a->ffn_in, w->w1, w->w3,
                            w->w2, c->ffn_act, N, D, c->d_ff, arena);
    if (!m->pad_mask)
        return moe_layer_backward(&c->moe, &w->moe, &g->moe, dffn_in, dffn, a->moe, scale, arena);
    int n = m->n_valid;
    moe_real *dout, *din;
    ALLOC(dout, (size_t)(n ? n : 1) * D);
    ALLOC(din, (size_t)(n ? n : 1) * D);
    rows_gather(dout, dffn, m->valid, n, D);
    moe_status st = moe_layer_backward(&c->moe, &w->moe, &g->moe, din, dout, a->moe, scale, arena);
    if (st != MOE_OK) return st;
    rows_scatter(dffn_in, din, m->valid, n, N, D);
    return MOE_OK;
}

/* dx [N, D]: gradient w.r.t. the block output on entry, w.r.t. its input on
 * return (in place). The path of block_forward in reverse, for pre- and
 * post-norm blocks. */
static moe_status block_backward(gpt_model *m, int l, moe_real *dx, float scale, moe_arena *arena) {
    const moe_model_config *c = &m->cfg;
    const gpt_block_w *w = &m->w.blocks[l];
    gpt_block_w *g = &m->g.blocks[l];
    const gpt_block_acts *a = &m->acts[l];
    int B = m->B, T = m->T, N = B * T, D = c->d_model, H = c->n_head, KVH = c->n_kv_head;
    int hd = gpt_head_dim(c), Q = m->qkv_dim, post = c->post_ln;
    long ND = (long)N * D;
    /* Everything allocated here is scratch: the caller releases it after the
     * block, so all blocks share one block's worth of memory. */
    moe_real *dtmp, *dln, *dnorm;
    ALLOC(dtmp, ND);
    ALLOC(dln, ND);
    ALLOC(dnorm, ND);

    if (post) { /* out = ln2(h2): dx becomes d h2 */
        norm_backward(c->norm, dnorm, g->ln2_w, g->ln2_b, dx, a->h2, w->ln2_w, a->ln2_mean,
                      a->ln2_rstd, N, D);
        memcpy(dx, dnorm, (size_t)ND * sizeof *dx);
    }
    /* h2 (or out) = x_mid + drop(ffn(ffn_in)) */
    const moe_real *dffn = dx;
    if (a->drop2) {
        dropout_backward(dtmp, dx, a->drop2, ND);
        dffn = dtmp;
    }
    size_t ffn_mark = moe_arena_mark(arena); /* FFN scratch ends before attention's */
    moe_status st = block_ffn_backward(m, l, dln, dffn, scale, arena);
    if (st != MOE_OK) return st;
    moe_arena_release(arena, ffn_mark);
    if (post) { /* ffn_in is x_mid itself */
        residual_forward(dx, dx, dln, ND);
    } else {
        norm_backward(c->norm, dnorm, g->ln2_w, g->ln2_b, dln, a->x_mid, w->ln2_w, a->ln2_mean,
                      a->ln2_rstd, N, D);
        residual_forward(dx, dx, dnorm, ND);
    }
    /* dx is now d x_mid */
    if (post) { /* x_mid = ln1(h1): dx becomes d h1 */
        norm_backward(c->norm, dnorm, g->ln1_w, g->ln1_b, dx, a->h1, w->ln1_w, a->ln1_mean,
                      a->ln1_rstd, N, D);
        memcpy(dx, dnorm, (size_t)ND * sizeof *dx);
    }

    /* h1 (or x_mid) = x_in + drop(o_proj(attention(qkv(attn_in)))) */
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
                       a->qkv + H * hd, a->qkv + (H + KVH) * hd, a->att, B, T, H, KVH, hd, Q, Q,
                       !c->bidirectional);
    if (c->pos == MOE_POS_ROPE) {
        rope_backward(dqkv, dqkv, B, T, H, hd, Q, 0, c->rope_theta);
        rope_backward(dqkv + H * hd, dqkv + H * hd, B, T, KVH, hd, Q, 0, c->rope_theta);
    }
    matmul_backward(dln, g->qkv_w, g->qkv_b, dqkv, a->attn_in, w->qkv_w, N, D, Q);
    if (post) { /* attention read x_in itself */
        residual_forward(dx, dx, dln, ND);
    } else {
        norm_backward(c->norm, dnorm, g->ln1_w, g->ln1_b, dln, a->x_in, w->ln1_w, a->ln1_mean,
                      a->ln1_rstd, N, D);
        residual_forward(dx, dx, dnorm, ND);
    }
    return MOE_OK; /* dx is now d x_in */
}

/* d(loss)/d(final norm output) [N, D] from the LM and classifier heads. */
static moe_status heads_backward(gpt_model *m, moe_real *dlnf, float scale, moe_arena *arena) {
    const moe_model_config *c = &m->cfg;
    int N = m->B * m->T, D = c->d_model, V = c->vocab_size;
    memset(dlnf, 0, (size_t)N * D * sizeof *dlnf);
    if (m->targets) {
        moe_real *dlogits;
        ALLOC(dlogits, (size_t)N * V);
        crossentropy_backward(dlogits, m->probs, m->targets, N, V, -1, m->n_counted, scale);
        matmul_backward(dlnf, m->g.lm_head, NULL, dlogits, m->lnf, m->w.lm_head, N, D, V);
    }
    if (m->labels) {
        int B = m->B, C = c->n_classes;
        moe_real *dcls, *dpooled, *dpool_in;
        ALLOC(dcls, (size_t)B * C);
        ALLOC(dpooled, (size_t)B * D);
        ALLOC(dpool_in, (size_t)N * D);
        memset(dpooled, 0, (size_t)B * D * sizeof *dpooled);
        crossentropy_backward(dcls, m->cls_probs, m->labels, B, C, -1, m->n_labels, scale);
        matmul_backward(dpooled, m->g.cls_w, m->g.cls_b, dcls, m->pooled, m->w.cls_w, B, D, C);
        pool_backward(dpool_in, dpooled, m->pad_mask, B, m->T, D, c->pool == MOE_POOL_MEAN);
        residual_forward(dlnf, dlnf, dpool_in, (long)N * D);
    }
    return MOE_OK;
}

moe_status gpt_backward(gpt_model *m, moe_arena *arena, float scale) {
    const moe_model_config *c = &m->cfg;
    if (!m->acts || (!m->probs && !m->cls_probs))
        return moe_error(MOE_ERR_INVALID,
                         "model backward: needs a forward with targets or labels first");
    int N = m->B * m->T, D = c->d_model;
    moe_real *dlnf, *dx;
    ALLOC(dx, (size_t)N * D);
    size_t mark = moe_arena_mark(arena); /* the rest is scratch, reused block by block */
    ALLOC(dlnf, (size_t)N * D);
    moe_status st = heads_backward(m, dlnf, scale, arena);
    if (st != MOE_OK) return st;
    norm_backward(c->norm, dx, m->g.lnf_w, m->g.lnf_b, dlnf, m->x_final, m->w.lnf_w, m->lnf_mean,
                  m->lnf_rstd, N, D);
    moe_arena_release(arena, mark);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        st = block_backward(m, l, dx, scale, arena);
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
