/* Experts: each expert is a feed-forward net run as ONE GEMM per projection
 * over its contiguous block of rows (a grouped GEMM done expert by expert);
 * weights are used in place, never copied. OpenBLAS threads inside each
 * GEMM. The shared expert is the same net over all T rows. */
#include "moe_internal.h"
#include "ops/ops.h"

/* x [n, C] += bias [C] on every row */
static void add_bias(moe_real *x, const moe_real *bias, int n, int C) {
    if (!bias) return;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++)
        for (int i = 0; i < C; i++) x[(size_t)r * C + i] += bias[i];
}

/* dbias [C] += column sums of d [n, C] */
static void bias_grad(moe_real *dbias, const moe_real *d, int n, int C) {
    if (!dbias) return;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < C; i++) {
        double s = 0;
        for (int r = 0; r < n; r++) s += d[(size_t)r * C + i];
        dbias[i] += (moe_real)s;
    }
}

void moe_ffn_forward(moe_real *y, moe_real *h, moe_real *a, moe_real *b, const moe_real *x,
                     const moe_real *w1, const moe_real *b1, const moe_real *w3, const moe_real *b3,
                     const moe_real *w2, const moe_real *b2, moe_activation act, int n, int D,
                     int F) {
    if (n == 0) return;
    gemm(0, 1, n, F, D, 1, x, D, w1, D, 0, a, F); /* a = x W1^T */
    add_bias(a, b1, n, F);
    const long nf = (long)n * F;
    switch (act) {
    case MOE_ACT_RELU:
        relu_forward(h, a, nf);
        break;
    case MOE_ACT_GELU:
        gelu_forward(h, a, nf);
        break;
    case MOE_ACT_SILU:
        silu_forward(h, a, nf);
        break;
    case MOE_ACT_SWIGLU:
        gemm(0, 1, n, F, D, 1, x, D, w3, D, 0, b, F); /* b = x W3^T */
        add_bias(b, b3, n, F);
        swiglu_forward(h, a, b, nf);
        break;
    }
    gemm(0, 1, n, D, F, 1, h, F, w2, F, 0, y, D); /* y = h W2^T */
    add_bias(y, b2, n, D);
}

void moe_ffn_backward(moe_real *dx, moe_real *dw1, moe_real *db1, moe_real *dw3, moe_real *db3,
                      moe_real *dw2, moe_real *db2, moe_real *dh, moe_real *da, moe_real *db,
                      const moe_real *dy, const moe_real *h, const moe_real *a, const moe_real *b,
                      const moe_real *x, const moe_real *w1, const moe_real *w3, const moe_real *w2,
                      moe_activation act, int n, int D, int F) {
    if (n == 0) return;
    const long nf = (long)n * F;
    bias_grad(db2, dy, n, D);
    gemm(1, 0, D, F, n, 1, dy, D, h, F, 1, dw2, F); /* dW2 [D, F] += dy^T h */
    gemm(0, 0, n, F, D, 1, dy, D, w2, F, 0, dh, F); /* dh = dy W2 */
    switch (act) {
    case MOE_ACT_RELU:
        relu_backward(da, dh, a, nf);
        break;
    case MOE_ACT_GELU:
        gelu_backward(da, dh, a, nf);
        break;
    case MOE_ACT_SILU:
        silu_backward(da, dh, a, nf);
        break;
    case MOE_ACT_SWIGLU:
        swiglu_backward(da, db, dh, a, b, nf);
        break;
    }
    bias_grad(db1, da, n, F);
    gemm(1, 0, F, D, n, 1, da, F, x, D, 1, dw1, D); /* dW1 [F, D] += da^T x */
    gemm(0, 0, n, D, F, 1, da, F, w1, D, 0, dx, D); /* dx = da W1 */
    if (act == MOE_ACT_SWIGLU) {
        bias_grad(db3, db, n, F);
        gemm(1, 0, F, D, n, 1, db, F, x, D, 1, dw3, D);
        gemm(0, 0, n, D, F, 1, db, F, w3, D, 1, dx, D);
    }
}

/* pointer to expert e's slice of a stacked tensor, or NULL */
static moe_real *slice(moe_real *base, int e, size_t per) {
    return base ? base + (size_t)e * per : NULL;
}

void moe_experts_forward(moe_layer_cache *c, const moe_layer_config *cfg,
                         const moe_layer_params *p) {
    const int E = cfg->n_experts, D = cfg->d_model, F = cfg->d_ff;
    const size_t FD = (size_t)F * D;
    const int glu = cfg->act == MOE_ACT_SWIGLU, bias = cfg->expert_bias;
    for (int e = 0; e < E; e++) {
        int r0 = c->offsets[e], n = c->offsets[e + 1] - r0;
        moe_ffn_forward(c->y + (size_t)r0 * D, c->h + (size_t)r0 * F, c->ha + (size_t)r0 * F,
                        glu ? c->hb + (size_t)r0 * F : NULL, c->xp + (size_t)r0 * D,
                        slice(p->w1, e, FD), bias ? slice(p->b1, e, F) : NULL,
                        glu ? slice(p->w3, e, FD) : NULL, glu && bias ? slice(p->b3, e, F) : NULL,
                        slice(p->w2, e, FD), bias ? slice(p->b2, e, D) : NULL, cfg->act, n, D, F);
    }
}

void moe_experts_backward(moe_real *dxp, moe_layer_params *g, const moe_real *dy,
                          const moe_layer_cache *c, const moe_layer_config *cfg,
                          const moe_layer_params *p, moe_real *dh, moe_real *da, moe_real *db) {
    const int E = cfg->n_experts, D = cfg->d_model, F = cfg->d_ff;
    const size_t FD = (size_t)F * D;
    const int glu = cfg->act == MOE_ACT_SWIGLU, bias = cfg->expert_bias;
    for (int e = 0; e < E; e++) {
        size_t r0 = (size_t)c->offsets[e];
        int n = c->offsets[e + 1] - c->offsets[e];
        moe_ffn_backward(dxp + r0 * D, slice(g->w1, e, FD), bias ? slice(g->b1, e, F) : NULL,
                         glu ? slice(g->w3, e, FD) : NULL, glu && bias ? slice(g->b3, e, F) : NULL,
                         slice(g->w2, e, FD), bias ? slice(g->b2, e, D) : NULL, dh + r0 * F,
                         da + r0 * F, glu ? db + r0 * F : NULL, dy + r0 * D, c->h + r0 * F,
                         c->ha + r0 * F, glu ? c->hb + r0 * F : NULL, c->xp + r0 * D,
                         slice(p->w1, e, FD), glu ? slice(p->w3, e, FD) : NULL, slice(p->w2, e, FD),
                         cfg->act, n, D, F);
    }
}
