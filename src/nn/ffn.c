/* The feed-forward net of dense blocks and experts (see ffn.h): one GEMM per
 * projection over all n rows, weights used in place. OpenBLAS threads inside
 * each GEMM. */
#include "nn/ffn.h"

#include "ops/ops.h"

void activation_forward(moe_activation act, moe_real *out, const moe_real *inp, long n) {
    switch (act) {
    case MOE_ACT_RELU:
        relu_forward(out, inp, n);
        break;
    case MOE_ACT_GELU:
        gelu_forward(out, inp, n);
        break;
    case MOE_ACT_SILU:
    case MOE_ACT_SWIGLU:
        silu_forward(out, inp, n);
        break;
    }
}

void activation_backward(moe_activation act, moe_real *dinp, const moe_real *dout,
                         const moe_real *inp, long n) {
    switch (act) {
    case MOE_ACT_RELU:
        relu_backward(dinp, dout, inp, n);
        break;
    case MOE_ACT_GELU:
        gelu_backward(dinp, dout, inp, n);
        break;
    case MOE_ACT_SILU:
    case MOE_ACT_SWIGLU:
        silu_backward(dinp, dout, inp, n);
        break;
    }
}

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

void ffn_forward(moe_real *y, moe_real *h, moe_real *a, moe_real *b, const moe_real *x,
                 const moe_real *w1, const moe_real *b1, const moe_real *w3, const moe_real *b3,
                 const moe_real *w2, const moe_real *b2, moe_activation act, int n, int D, int F) {
    if (n == 0) return;
    gemm(0, 1, n, F, D, 1, x, D, w1, D, 0, a, F); /* a = x W1^T */
    add_bias(a, b1, n, F);
    const long nf = (long)n * F;
    if (act == MOE_ACT_SWIGLU) {
        gemm(0, 1, n, F, D, 1, x, D, w3, D, 0, b, F); /* b = x W3^T */
        add_bias(b, b3, n, F);
        swiglu_forward(h, a, b, nf);
    } else {
        activation_forward(act, h, a, nf);
    }
    gemm(0, 1, n, D, F, 1, h, F, w2, F, 0, y, D); /* y = h W2^T */
    add_bias(y, b2, n, D);
}

void ffn_backward(moe_real *dx, moe_real *dw1, moe_real *db1, moe_real *dw3, moe_real *db3,
                  moe_real *dw2, moe_real *db2, moe_real *dh, moe_real *da, moe_real *db,
                  const moe_real *dy, const moe_real *h, const moe_real *a, const moe_real *b,
                  const moe_real *x, const moe_real *w1, const moe_real *w3, const moe_real *w2,
                  moe_activation act, int n, int D, int F) {
    if (n == 0) return;
    const long nf = (long)n * F;
    if (!h) { /* not saved: recompute into da, which is free until the act backward */
        if (act == MOE_ACT_SWIGLU)
            swiglu_forward(da, a, b, nf);
        else
            activation_forward(act, da, a, nf);
        h = da;
    }
    bias_grad(db2, dy, n, D);
    gemm(1, 0, D, F, n, 1, dy, D, h, F, 1, dw2, F); /* dW2 [D, F] += dy^T h */
    gemm(0, 0, n, F, D, 1, dy, D, w2, F, 0, dh, F); /* dh = dy W2 */
    if (act == MOE_ACT_SWIGLU)
        swiglu_backward(da, db, dh, a, b, nf);
    else
        activation_backward(act, da, dh, a, nf);
    bias_grad(db1, da, n, F);
    gemm(1, 0, F, D, n, 1, da, F, x, D, 1, dw1, D); /* dW1 [F, D] += da^T x */
    gemm(0, 0, n, D, F, 1, da, F, w1, D, 0, dx, D); /* dx = da W1 */
    if (act == MOE_ACT_SWIGLU) {
        bias_grad(db3, db, n, F);
        gemm(1, 0, F, D, n, 1, db, F, x, D, 1, dw3, D);
        gemm(0, 0, n, D, F, 1, db, F, w3, D, 1, dx, D);
    }
}
