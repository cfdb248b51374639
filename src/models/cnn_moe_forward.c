/* cnn_moe forward: shared stages, experts, gate, mixture, loss. Every
 * activation backward needs is saved in the arena (cnn_moe_internal.h
 * lists them); the heavy parts run in the conv and GEMM kernels of
 * src/ops, which parallelise over images or rows themselves. */
#include "models/cnn_moe_internal.h"

#include "ops/ops.h"

#include <math.h>
#include <string.h>

static size_t max_sz(size_t a, size_t b) {
    return a > b ? a : b;
}

/* One conv2d scratch for every conv of the network (they run one at a
 * time), sized now because it depends on the thread count. */
static size_t scratch_elems(const cnn_moe *m) {
    size_t n = 1;
    int cin = m->Cin;
    for (int s = 0; s < m->n_stages; s++) {
        n = max_sz(n, conv2d_scratch_elems(cin, m->sh[s], m->sw[s], m->ch[s], 3, 3, 1, 1, 1));
        cin = m->ch[s];
    }
    n = max_sz(n, conv2d_scratch_elems(m->Cf, m->fh, m->fw, m->Cf, 3, 3, 1, 1, m->Cf));
    n = max_sz(n, conv2d_scratch_elems(m->Cf, m->fh, m->fw, m->X, 1, 1, 1, 0, 1));
    return n;
}

/* conv3x3 pad 1 -> BN2d -> ReLU -> maxpool 2x2 stride 2. */
static moe_status stage_forward(cnn_moe *m, int s, const moe_real *in, int cin, moe_arena *arena) {
    int B = m->B, C = m->ch[s], H = m->sh[s], W = m->sw[s];
    long n = (long)B * C * H * W, np = (long)B * C * (H / 2) * (W / 2);
    const cnn_stage_w *w = &m->w.stage[s];
    cnn_stage_acts *a = &m->st[s];
    a->in = in;
    CNN_ALLOC(a->conv, n);
    CNN_ALLOC(a->act, n);
    CNN_ALLOC(a->mean, C);
    CNN_ALLOC(a->rstd, C);
    CNN_ALLOC(a->pool, np);
    CNN_ALLOC(a->argmax, np);
    conv2d_forward(a->conv, m->scratch, in, w->conv_w, w->conv_b, B, cin, H, W, C, 3, 3, 1, 1, 1);
    batchnorm_forward(a->act, a->mean, a->rstd, w->bn.rm, w->bn.rv, a->conv, w->bn.w, w->bn.b, B, C,
                      H * W, m->training, CNN_MOE_BN_MOMENTUM, CNN_MOE_BN_EPS);
    relu_forward(a->act, a->act, n);
    maxpool2d_forward(a->pool, a->argmax, a->act, B, C, H, W, 2, 2, 0);
    return MOE_OK;
}

/* dw3x3 -> pw1x1 -> BN2d -> ReLU -> dropout -> GAP -> fc, into out [B,NC]. */
static moe_status expert_forward(cnn_moe *m, int e, const moe_real *F, moe_real *out, moe_rng *rng,
                                 moe_arena *arena) {
    int B = m->B, C = m->Cf, X = m->X, S = m->fh * m->fw;
    long nf = (long)B * C * S, nx = (long)B * X * S;
    const cnn_expert_w *w = &m->w.expert[e];
    cnn_expert_acts *a = &m->ex[e];
    CNN_ALLOC(a->dw, nf);
    CNN_ALLOC(a->pw, nx);
    CNN_ALLOC(a->act, nx);
    CNN_ALLOC(a->mean, X);
    CNN_ALLOC(a->rstd, X);
    CNN_ALLOC(a->pooled, (long)B * X);
    conv2d_forward(a->dw, m->scratch, F, w->dw_w, w->dw_b, B, C, m->fh, m->fw, C, 3, 3, 1, 1, C);
    conv2d_forward(a->pw, m->scratch, a->dw, w->pw_w, w->pw_b, B, C, m->fh, m->fw, X, 1, 1, 1, 0,
                   1);
    batchnorm_forward(a->act, a->mean, a->rstd, w->bn.rm, w->bn.rv, a->pw, w->bn.w, w->bn.b, B, X,
                      S, m->training, CNN_MOE_BN_MOMENTUM, CNN_MOE_BN_EPS);
    relu_forward(a->act, a->act, nx);
    a->mask = NULL;
    float p = m->cfg.cnn.expert_dropout;
    if (m->training && p > 0) {
        /* only the mask is needed later: the dropped map lives until pooled */
        CNN_ALLOC(a->mask, nx);
        size_t mark = moe_arena_mark(arena);
        moe_real *dropped;
        CNN_ALLOC(dropped, nx);
        dropout_forward(dropped, a->mask, a->act, p, nx, rng);
        global_avgpool_forward(a->pooled, dropped, B, X, S);
        moe_arena_release(arena, mark);
    } else {
        global_avgpool_forward(a->pooled, a->act, B, X, S);
    }
    matmul_forward(out, a->pooled, w->fc_w, w->fc_b, B, X, m->NC);
    return MOE_OK;
}

/* GAP(F) -> fc1 -> BN1d -> ReLU -> dropout -> fc2 -> / T (+ noise) -> softmax. */
static moe_status gate_forward(cnn_moe *m, const moe_real *F, moe_rng *rng, moe_arena *arena) {
    int B = m->B, C = m->Cf, Hd = m->Hd, E = m->E;
    const cnn_gate_w *w = &m->w.gate;
    cnn_gate_acts *a = &m->gate;
    CNN_ALLOC(a->in, (long)B * C);
    CNN_ALLOC(a->h, (long)B * Hd);
    CNN_ALLOC(a->act, (long)B * Hd);
    CNN_ALLOC(a->mean, Hd);
    CNN_ALLOC(a->rstd, Hd);
    CNN_ALLOC(a->g, (long)B * E);
    global_avgpool_forward(a->in, F, B, C, m->fh * m->fw);
    matmul_forward(a->h, a->in, w->fc1_w, w->fc1_b, B, C, Hd);
    batchnorm_forward(a->act, a->mean, a->rstd, w->bn.rm, w->bn.rv, a->h, w->bn.w, w->bn.b, B, Hd,
                      1, m->training, CNN_MOE_BN_MOMENTUM, CNN_MOE_BN_EPS);
    relu_forward(a->act, a->act, (long)B * Hd);
    a->mask = NULL;
    a->drop = a->act;
    float p = m->cfg.cnn.gate_dropout;
    if (m->training && p > 0) {
        CNN_ALLOC(a->mask, (long)B * Hd);
        CNN_ALLOC(a->drop, (long)B * Hd);
        dropout_forward(a->drop, a->mask, a->act, p, (long)B * Hd, rng);
    }
    matmul_forward(a->g, a->drop, w->fc2_w, w->fc2_b, B, Hd, E);
    /* logits / T, then N(0, gate_noise) in training (not scaled by T, as
     * in the original), then softmax per row */
    m->fwd_temperature = m->temperature;
    moe_real inv_t = (moe_real)(1.0 / m->temperature);
    float noise = m->training ? m->cfg.cnn.gate_noise : 0;
    for (long i = 0; i < (long)B * E; i++) {
        a->g[i] *= inv_t;
        if (noise > 0) a->g[i] += (moe_real)(noise * moe_rng_normal(rng));
    }
    softmax_rows(a->g, B, E);
    return MOE_OK;
}

/* logits [B,NC] = sum_e G[:,e] * L_e. */
static void mix(moe_real *logits, const moe_real *G, const moe_real *L, int B, int E, int NC) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        moe_real *o = logits + (long)i * NC;
        for (int c = 0; c < NC; c++) o[c] = 0;
        for (int e = 0; e < E; e++) {
            moe_real g = G[(long)i * E + e];
            const moe_real *l = L + ((long)e * B + i) * NC;
            for (int c = 0; c < NC; c++) o[c] += g * l[c];
        }
    }
}

/* Cross-entropy of the mixture: soft targets, or hard labels (< 0
 * ignored), each with optional row weights (a weighted mean). Weighted
 * hard labels go through the soft form with one-hot rows. */
static moe_status task_loss(cnn_moe *m, const moe_batch *b, moe_arena *arena, double *loss) {
    int B = m->B, NC = m->NC;
    m->ce_soft = NULL;
    m->ce_w = NULL;
    m->ce_count = -1;
    m->labels = NULL;
    *loss = 0;
    if (b->soft) {
        m->ce_soft = b->soft;
        m->ce_w = b->weights;
        *loss = crossentropy_soft_forward(m->probs, m->logits, b->soft, b->weights, B, NC);
        return MOE_OK;
    }
    if (!b->labels) return MOE_OK;
    for (int i = 0; i < B; i++)
        if (b->labels[i] < -1 || b->labels[i] >= NC)
            return moe_error(MOE_ERR_INVALID,
                             "cnn_moe: label %d of example %d is outside [0, %d) (model.n_classes)",
                             b->labels[i], i, NC);
    if (b->weights) {
        moe_real *t, *w;
        CNN_ALLOC(t, (long)B * NC);
        CNN_ALLOC(w, B);
        memset(t, 0, (size_t)B * NC * sizeof *t);
        for (int i = 0; i < B; i++) {
            int y = b->labels[i];
            w[i] = y >= 0 ? b->weights[i] : 0;
            if (y >= 0) t[(long)i * NC + y] = 1;
        }
        m->ce_soft = t;
        m->ce_w = w;
        *loss = crossentropy_soft_forward(m->probs, m->logits, t, w, B, NC);
        return MOE_OK;
    }
    m->labels = b->labels;
    *loss = crossentropy_forward(m->probs, m->logits, b->labels, B, NC, -1, &m->ce_count);
    return MOE_OK;
}

moe_status cnn_moe_forward(void *impl, const moe_batch *b, int training, moe_rng *rng,
                           moe_arena *arena, double *task, double *aux) {
    cnn_moe *m = impl;
    const moe_cnn_config *k = &m->cfg.cnn;
    m->have_forward = 0;
    if (!b || !b->x || b->B < 1)
        return moe_error(MOE_ERR_INVALID, "cnn_moe: the batch needs images x and B >= 1");
    if (training && b->B < 2)
        return moe_error(MOE_ERR_INVALID,
                         "cnn_moe: training needs at least 2 examples per batch (batch norm "
                         "statistics over one example are undefined); raise train.batch_size");
    if (training && !rng && (k->expert_dropout > 0 || k->gate_dropout > 0 || k->gate_noise > 0))
        return moe_error(MOE_ERR_INVALID,
                         "cnn_moe: training with dropout or gate noise needs an rng");
    m->B = b->B;
    m->training = training;
    int B = m->B, NC = m->NC, E = m->E;
    CNN_ALLOC(m->scratch, scratch_elems(m));
    const moe_real *in = b->x;
    int cin = m->Cin;
    for (int s = 0; s < m->n_stages; s++) {
        moe_status st = stage_forward(m, s, in, cin, arena);
        if (st != MOE_OK) return st;
        in = m->st[s].pool;
        cin = m->ch[s];
    }
    const moe_real *F = in;
    CNN_ALLOC(m->expert_logits, (long)E * B * NC);
    for (int e = 0; e < E; e++) {
        moe_status st = expert_forward(m, e, F, m->expert_logits + (long)e * B * NC, rng, arena);
        if (st != MOE_OK) return st;
    }
    moe_status st = gate_forward(m, F, rng, arena);
    if (st != MOE_OK) return st;
    CNN_ALLOC(m->logits, (long)B * NC);
    CNN_ALLOC(m->probs, (long)B * NC);
    mix(m->logits, m->gate.g, m->expert_logits, B, E, NC);
    double ce = 0;
    st = task_loss(m, b, arena, &ce);
    if (st != MOE_OK) return st;
    CNN_ALLOC(m->aux_work, 2L * E);
    double aux_total = cnn_moe_aux_forward(k, m->parts, m->aux_work, m->gate.g, B, E);
    st = cnn_moe_fill_stats(m, arena, aux_total);
    if (st != MOE_OK) return st;
    m->have_forward = 1;
    if (task) *task = ce;
    if (aux) *aux = aux_total;
    return MOE_OK;
}
