/* Training forward of the decoder-only transformer (pre-norm blocks). */
#include "models/gpt_internal.h"
#include "nn/norm.h"
#include "ops/ops.h"

#include <math.h>
#include <string.h>

static moe_status check_ids(const moe_model *m, const int32_t *tokens, const int32_t *targets,
                            long N) {
    int V = m->cfg.vocab_size;
    for (long i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return moe_error(MOE_ERR_INVALID,
                             "token %d at position %ld is outside the vocabulary [0, %d)",
                             tokens[i], i, V);
        if (targets && (targets[i] < -1 || targets[i] >= V))
            return moe_error(MOE_ERR_INVALID,
                             "target %d at position %ld is outside [0, %d) (use -1 to ignore)",
                             targets[i], i, V);
    }
    return MOE_OK;
}

/* Embeddings: token rows plus learned position rows. */
static void embed(moe_model *m, moe_real *x, const int32_t *tokens, int B, int T, int pos0) {
    int D = m->cfg.d_model;
    embedding_forward(x, tokens, m->w.wte, B * T, D);
    if (m->w.wpe) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                moe_real *row = x + ((size_t)b * T + t) * D;
                const moe_real *p = m->w.wpe + (size_t)(pos0 + t) * D;
                for (int i = 0; i < D; i++) row[i] += p[i];
            }
    }
}

/* tmp [N, D]: scratch shared by all blocks (not saved for backward). */
static moe_status block_forward(moe_model *m, int l, moe_real *x_out, moe_real *x_in, moe_real *tmp,
                                moe_arena *arena) {
    const moe_model_config *c = &m->cfg;
    const gpt_block_w *w = &m->w.blocks[l];
    gpt_block_acts *a = &m->acts[l];
    int B = m->B, T = m->T, N = B * T, D = c->d_model, H = c->n_head, KVH = c->n_kv_head;
    int hd = gpt_head_dim(c), Q = m->qkv_dim;
    int drop = m->training && c->dropout > 0;
    a->x_in = x_in;
    ALLOC(a->ln1, (size_t)N * D);
    ALLOC(a->ln1_mean, N);
    ALLOC(a->ln1_rstd, N);
    ALLOC(a->qkv, (size_t)N * Q);
    ALLOC(a->att, (size_t)B * H * T * T);
    ALLOC(a->attn, (size_t)N * D);
    ALLOC(a->x_mid, (size_t)N * D);
    ALLOC(a->ln2, (size_t)N * D);
    ALLOC(a->ln2_mean, N);
    ALLOC(a->ln2_rstd, N);

    norm_forward(c->norm, a->ln1, a->ln1_mean, a->ln1_rstd, x_in, w->ln1_w, w->ln1_b, N, D,
                 c->norm_eps);
    matmul_forward(a->qkv, a->ln1, w->qkv_w, w->qkv_b, N, D, Q);
    if (c->pos == MOE_POS_ROPE) {
        rope_forward(a->qkv, a->qkv, B, T, H, hd, Q, 0, c->rope_theta);
        rope_forward(a->qkv + H * hd, a->qkv + H * hd, B, T, KVH, hd, Q, 0, c->rope_theta);
    }
    attention_forward(a->attn, a->att, a->qkv, a->qkv + H * hd, a->qkv + (H + KVH) * hd, NULL, B, T,
                      H, KVH, hd, Q, Q, 1);
    matmul_forward(tmp, a->attn, w->o_w, w->o_b, N, D, D);
    a->drop1 = NULL;
    if (drop) {
        ALLOC(a->drop1, (size_t)N * D);
        dropout_forward(tmp, a->drop1, tmp, c->dropout, (long)N * D, m->rng);
    }
    residual_forward(a->x_mid, x_in, tmp, (long)N * D);

    norm_forward(c->norm, a->ln2, a->ln2_mean, a->ln2_rstd, a->x_mid, w->ln2_w, w->ln2_b, N, D,
                 c->norm_eps);
    moe_status st;
    if (m->block_is_moe[l]) {
        st = moe_layer_forward(&c->moe, &w->moe, tmp, a->ln2, N, m->training, m->rng, arena,
                               &a->moe, &a->stats);
    } else {
        st = mlp_forward(tmp, &a->mlp, a->ln2, w->w1, w->w3, w->w2, c->ffn_act, N, D, c->d_ff,
                         arena);
        a->stats = NULL;
    }
    if (st != MOE_OK) return st;
    a->drop2 = NULL;
    if (drop) {
        ALLOC(a->drop2, (size_t)N * D);
        dropout_forward(tmp, a->drop2, tmp, c->dropout, (long)N * D, m->rng);
    }
    residual_forward(x_out, a->x_mid, tmp, (long)N * D);
    return MOE_OK;
}

moe_status moe_model_forward(moe_model *m, const int32_t *tokens, const int32_t *targets, int B,
                             int T, int training, moe_rng *rng, moe_arena *arena, double *ce_loss,
                             double *aux_loss) {
    const moe_model_config *c = &m->cfg;
    if (B < 1 || T < 1 || T > c->max_seq_len)
        return moe_error(MOE_ERR_INVALID,
                         "model forward: batch %d x %d tokens; need B >= 1 and 1 <= T <= "
                         "model.max_seq_len = %d",
                         B, T, c->max_seq_len);
    int N = B * T, D = c->d_model, V = c->vocab_size;
    moe_status st = check_ids(m, tokens, targets, N);
    if (st != MOE_OK) return st;
    m->B = B;
    m->T = T;
    m->training = training;
    m->tokens = tokens;
    m->targets = targets;
    m->rng = rng;
    m->acts = moe_arena_calloc(arena, (size_t)c->n_layer * sizeof *m->acts);
    if (!m->acts) return MOE_ERR_NOMEM;

    moe_real *x, *tmp;
    ALLOC(x, (size_t)N * D);
    ALLOC(tmp, (size_t)N * D);
    embed(m, x, tokens, B, T, 0);
    for (int l = 0; l < c->n_layer; l++) {
        moe_real *next;
        ALLOC(next, (size_t)N * D);
        st = block_forward(m, l, next, x, tmp, arena);
        if (st != MOE_OK) return st;
        x = next;
    }
    m->x_final = x;
    ALLOC(m->lnf, (size_t)N * D);
    ALLOC(m->lnf_mean, N);
    ALLOC(m->lnf_rstd, N);
    ALLOC(m->logits, (size_t)N * V);
    norm_forward(c->norm, m->lnf, m->lnf_mean, m->lnf_rstd, x, m->w.lnf_w, m->w.lnf_b, N, D,
                 c->norm_eps);
    matmul_forward(m->logits, m->lnf, m->w.lm_head, NULL, N, D, V);

    double aux = 0;
    for (int i = 0; i < m->n_moe; i++) aux += m->acts[m->moe_block[i]].stats->aux_total;
    if (aux_loss) *aux_loss = aux;
    m->probs = NULL;
    if (targets) {
        ALLOC(m->probs, (size_t)N * V);
        double ce = crossentropy_forward(m->probs, m->logits, targets, N, V, -1, &m->n_counted);
        if (ce_loss) *ce_loss = ce;
        if (!isfinite(ce) || !isfinite(aux))
            return moe_error(MOE_ERR_NUMERIC, "model forward: loss is %g (aux %g)", ce, aux);
    }
    return MOE_OK;
}
