/* LayerNorm over the last dim, statistics accumulated in double. */
#include "ops/ops.h"

#include <math.h>

/* Column block owned by one task when summing parameter gradients over rows. */
#define LN_COL_BLOCK 32

void layernorm_forward(moe_real *out, moe_real *mean, moe_real *rstd, const moe_real *inp,
                       const moe_real *weight, const moe_real *bias, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const moe_real *x = inp + (long)n * C;
        moe_real *o = out + (long)n * C;
        double m = 0, v = 0;
#pragma omp simd reduction(+ : m)
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
#pragma omp simd reduction(+ : v)
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        double s = 1.0 / sqrt(v / C + eps);
        for (int i = 0; i < C; i++) {
            double y = (x[i] - m) * s * weight[i];
            o[i] = (moe_real)(bias ? y + bias[i] : y);
        }
        mean[n] = (moe_real)m;
        rstd[n] = (moe_real)s;
    }
}

void layernorm_backward(moe_real *dinp, moe_real *dweight, moe_real *dbias, const moe_real *dout,
                        const moe_real *inp, const moe_real *weight, const moe_real *mean,
                        const moe_real *rstd, int N, int C) {
    /* dinp = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = w * dout */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const moe_real *x = inp + (long)n * C, *g = dout + (long)n * C;
        moe_real *dx = dinp + (long)n * C;
        double m = mean[n], s = rstd[n], a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
        for (int i = 0; i < C; i++) {
            double dn = (double)weight[i] * g[i];
            a += dn;
            b += dn * (x[i] - m) * s;
        }
        a /= C;
        b /= C;
        for (int i = 0; i < C; i++) {
            double norm = (x[i] - m) * s;
            dx[i] = (moe_real)(((double)weight[i] * g[i] - a - norm * b) * s);
        }
    }
    if (!dweight && !dbias) return;
    /* Parameter gradients: each task owns a block of columns (no races). */
    int nblocks = (C + LN_COL_BLOCK - 1) / LN_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * LN_COL_BLOCK, c1 = c0 + LN_COL_BLOCK < C ? c0 + LN_COL_BLOCK : C;
        double dw[LN_COL_BLOCK] = {0}, db[LN_COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const moe_real *x = inp + (long)n * C, *g = dout + (long)n * C;
            double m = mean[n], s = rstd[n];
            for (int i = c0; i < c1; i++) {
                dw[i - c0] += g[i] * (x[i] - m) * s;
                db[i - c0] += g[i];
            }
        }
        for (int i = c0; i < c1; i++) {
            if (dweight) dweight[i] += (moe_real)dw[i - c0];
            if (dbias) dbias[i] += (moe_real)db[i - c0];
        }
    }
}
