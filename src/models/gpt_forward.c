/* Training forward of the transformer: decoder or encoder, pre- or
 * post-norm blocks, LM and classifier heads. */
#include "models/gpt_internal.h"
#include "nn/norm.h"
#include "ops/ops.h"

#include <math.h>
#include <string.h>

static moe_status check_ids(const gpt_model *m, const int32_t *tokens, const int32_t *targets,
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

/* Embeddings: token rows plus learned or fixed (sinusoidal) position rows. */
static void embed(gpt_model *m, moe_real *x, const int32_t *tokens, int B, int T, int pos0) {
    int D = m->cfg.d_model;
    embedding_forward(x, tokens, m->w.wte, B * T, D);
    const moe_real *pos = m->w.wpe ? m->w.wpe : m->sinusoid;
    if (pos) {
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                moe_real *row = x + ((size_t)b * T + t) * D;
                const moe_real *p = pos + (size_t)(pos0 + t) * D;
                for (int i = 0; i < D; i++) row[i] += p[i];
            }
    }
}

/* The FFN of block l on ffn_in [N, D] into out [N, D]. A padded batch runs
 * its MoE layer on the real tokens only (gathered, then scattered back with
 * zeros at padding), so padding never enters routing or auxiliary losses. */
static moe_status block_ffn_forward(gpt_model *m, int l, moe_real *out, const moe_real *ffn_in,
                                    moe_arena *arena) {
    const moe_model_config *c = &m->cfg;
    const gpt_block_w *w = &m->w.blocks[l];
    gpt_block_acts *a = &m->acts[l];
    int N = m->B * m->T, D = c->d_model;
    if (!m->block_is_moe[l]) {
        a->stats = NULL;
        return mlp_forward(out, &a->mlp, ffn_in, w->w1, w->w3, w->w2, c->ffn_act, N, D, c->d_ff,
                           arena);
    }
    if (!m->pad_mask)
        return moe_layer_forward(&c->moe, &w->moe, out, ffn_in, N, m->training, m->rng, arena,
                                 &a->moe, &a->stats);
    int n = m->n_valid;
    moe_real *xin, *xout;
    ALLOC(xin, (size_t)(n ? n : 1) * D);
    ALLOC(xout, (size_t)(n ? n : 1) * D);
    rows_gather(xin, ffn_in, m->valid, n, D);
    moe_status st = moe_layer_forward(&c->moe, &w->moe, xout, xin, n, m->training, m->rng, arena,
                                      &a->moe, &a->stats);
    if (st != MOE_OK) return st;
    rows_scatter(out, xout, m->valid, n, N, D);
    return MOE_OK;
}

/* tmp [N, D]: scratch shared by all blocks (not saved for backward). */
static moe_status block_forward(gpt_model *m, int l, moe_real *x_out, moe_real *x_in, moe_real *tmp,
                                moe_arena *arena) {
    const moe_model_config *c = &m->cfg;
    const gpt_block_w *w = &m->w.blocks[l];
    gpt_block_acts *a = &m->acts[l];
    int B = m->B, T = m->T, N = B * T, D = c->d_model, H = c->n_head, KVH = c->n_kv_head;
    int hd = gpt_head_dim(c), Q = m->qkv_dim, post = c->post_ln;
    int drop = m->training && c->dropout > 0;
    long ND = (long)N * D;
    a->x_in = x_in;
    ALLOC(a->ln1_mean, N);
    ALLOC(a->ln1_rstd, N);
    ALLOC(a->qkv, (size_t)N * Q);
    ALLOC(a->att, (size_t)B * H * T * T);
    ALLOC(a->attn, ND);
    ALLOC(a->x_mid, ND);
    ALLOC(a->ln2_mean, N);
    ALLOC(a->ln2_rstd, N);
    a->ln1 = a->ln2 = a->h1 = a->h2 = NULL;
    if (post) {
        ALLOC(a->h1, ND);
        ALLOC(a->h2, ND);
        a->attn_in = x_in;
    } else {
        ALLOC(a->ln1, ND);
        ALLOC(a->ln2, ND);
        norm_forward(c->norm, a->ln1, a->ln1_mean, a->ln1_rstd, x_in, w->ln1_w, w->ln1_b, N, D,
                     c->norm_eps);
        a->attn_in = a->ln1;
    }
    matmul_forward(a->qkv, a->attn_in, w->qkv_w, w->qkv_b, N, D, Q);
    if (c->pos == MOE_POS_ROPE) {
        rope_forward(a->qkv, a->qkv, B, T, H, hd, Q, 0, c->rope_theta);
        rope_forward(a->qkv + H * hd, a->qkv + H * hd, B, T, KVH, hd, Q, 0, c->rope_theta);
    }
    attention_forward(a->attn, a->att, a->qkv, a->qkv + H * hd, a->qkv + (H + KVH) * hd,
                      m->pad_mask, B, T, H, KVH, hd, Q, Q, !c->bidirectional);
    matmul_forward(tmp, a->attn, w->o_w, w->o_b, N, D, D);
    a->drop1 = NULL;
    if (drop) {
        ALLOC(a->drop1, ND);
        dropout_forward(tmp, a->drop1, tmp, c->dropout, ND, m->rng);
    }
    if (post) {
        residual_forward(a->h1, x_in, tmp, ND);
        norm_forward(c->norm, a->x_mid, a->ln1_mean, a->ln1_rstd, a->h1, w->ln1_w, w->ln1_b, N, D,
                     c->norm_eps);
        a->ffn_in = a->x_mid;
    } else {
        residual_forward(a->x_mid, x_in, tmp, ND);
        norm_forward(c->norm, a->ln2, a->ln2_mean, a->ln2_rstd, a->x_mid, w->ln2_w, w->ln2_b, N, D,
                     c->norm_eps);
        a->ffn_in = a->ln2;
    }
    moe_status st = block_ffn_forward(m, l, tmp, a->ffn_in, arena);
    if (st != MOE_OK) return st;
    a->drop2 = NULL;
    if (drop) {
        ALLOC(a->drop2, ND);
        dropout_forward(tmp, a->drop2, tmp, c->dropout, ND, m->rng);
    }
    if (post) {
        residual_forward(a->h2, a->x_mid, tmp, ND);
        norm_forward(c->norm, x_out, a->ln2_mean, a->ln2_rstd, a->h2, w->ln2_w, w->ln2_b, N, D,
                     c->norm_eps);
    } else {
        residual_forward(x_out, a->x_mid, tmp, ND);
    }
    return MOE_OK;
}

static moe_status check_batch(const gpt_model *m, const moe_batch *b) {
    const moe_model_config *c = &m->cfg;
    if (b->B < 1 || b->T < 1 || b->T > c->max_seq_len)
        return moe_error(MOE_ERR_INVALID,
                         "model forward: batch %d x %d tokens; need B >= 1 and 1 <= T <= "
                         "model.max_seq_len = %d",
                         b->B, b->T, c->max_seq_len);
    if (b->labels) {
        if (c->n_classes < 1)
            return moe_error(MOE_ERR_INVALID, "model forward: labels given but the model has no "
                                              "classifier (model.n_classes = 0)");
        for (int i = 0; i < b->B; i++)
            if (b->labels[i] >= c->n_classes)
                return moe_error(MOE_ERR_INVALID,
                                 "label %d of sequence %d is outside [0, %d) (use -1 to ignore)",
                                 b->labels[i], i, c->n_classes);
    }
    if (b->pad_mask && !c->bidirectional)
        return moe_error(MOE_ERR_INVALID, "model forward: a padding mask needs an encoder "
                                          "(model.bidirectional = true); decoders see no padding");
    return check_ids(m, b->tokens, b->targets, (long)b->B * b->T);
}

/* Rows of real tokens, for the MoE layers of a padded batch. */
static moe_status find_valid(gpt_model *m, moe_arena *arena) {
    int N = m->B * m->T;
    m->n_valid = 0;
    if (!m->pad_mask) return MOE_OK;
    ALLOC(m->valid, N);
    for (int i = 0; i < N; i++)
        if (m->pad_mask[i]) m->valid[m->n_valid++] = i;
    return MOE_OK;
}

/* The classifier over the pooled final states; loss when labels are given. */
static moe_status classify_forward(gpt_model *m, moe_arena *arena, double *loss) {
    const moe_model_config *c = &m->cfg;
    int B = m->B, D = c->d_model, C = c->n_classes;
    ALLOC(m->pooled, (size_t)B * D);
    ALLOC(m->cls_logits, (size_t)B * C);
    pool_forward(m->pooled, m->lnf, m->pad_mask, B, m->T, D, c->pool == MOE_POOL_MEAN);
    matmul_forward(m->cls_logits, m->pooled, m->w.cls_w, m->w.cls_b, B, D, C);
    m->cls_probs = NULL;
    if (!m->labels) return MOE_OK;
    ALLOC(m->cls_probs, (size_t)B * C);
    *loss = crossentropy_forward(m->cls_probs, m->cls_logits, m->labels, B, C, -1, &m->n_labels);
    return MOE_OK;
}

moe_status gpt_forward_batch(gpt_model *m, const moe_batch *batch, int training, moe_rng *rng,
                             moe_arena *arena, double *task_loss, double *aux_loss) {
    const moe_model_config *c = &m->cfg;
    moe_status st = check_batch(m, batch);
    if (st != MOE_OK) return st;
    int B = batch->B, T = batch->T, N = B * T, D = c->d_model, V = c->vocab_size;
    m->B = B;
    m->T = T;
    m->training = training;
    m->tokens = batch->tokens;
    m->targets = batch->targets;
    m->labels = batch->labels;
    m->pad_mask = batch->pad_mask;
    m->rng = rng;
    m->acts = moe_arena_calloc(arena, (size_t)c->n_layer * sizeof *m->acts);
    if (!m->acts) return MOE_ERR_NOMEM;
    if ((st = find_valid(m, arena)) != MOE_OK) return st;

    moe_real *x, *tmp;
    ALLOC(x, (size_t)N * D);
    ALLOC(tmp, (size_t)N * D);
    embed(m, x, batch->tokens, B, T, 0);
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
    norm_forward(c->norm, m->lnf, m->lnf_mean, m->lnf_rstd, x, m->w.lnf_w, m->w.lnf_b, N, D,
                 c->norm_eps);
    double aux = 0, loss = 0;
    for (int i = 0; i < m->n_moe; i++) aux += m->acts[m->moe_block[i]].stats->aux_total;
    if (aux_loss) *aux_loss = aux;
    m->logits = m->probs = NULL;
    m->cls_logits = m->cls_probs = NULL;
    /* the LM head runs unless only the classifier is wanted */
    if (batch->targets || c->n_classes == 0) {
        ALLOC(m->logits, (size_t)N * V);
        matmul_forward(m->logits, m->lnf, m->w.lm_head, NULL, N, D, V);
    }
    if (batch->targets) {
        ALLOC(m->probs, (size_t)N * V);
        loss += crossentropy_forward(m->probs, m->logits, batch->targets, N, V, -1, &m->n_counted);
    }
    if (c->n_classes > 0) {
        double cls = 0;
        if ((st = classify_forward(m, arena, &cls)) != MOE_OK) return st;
        loss += cls;
    }
    if (task_loss) *task_loss = loss;
    if ((batch->targets || batch->labels) && (!isfinite(loss) || !isfinite(aux)))
        return moe_error(MOE_ERR_NUMERIC, "model forward: loss is %g (aux %g)", loss, aux);
    return MOE_OK;
}

const moe_real *gpt_class_logits(const gpt_model *m) {
    return m->cls_logits;
}
