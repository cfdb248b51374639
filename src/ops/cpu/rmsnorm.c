/* RMSNorm (Llama/Mixtral): out = inp * rstd * weight; no mean, no bias. */
#include "ops/ops.h"

#include <math.h>

/* Column block owned by one task when summing dweight over rows. */
#define RMS_COL_BLOCK 32

void rmsnorm_forward(moe_real *out, moe_real *rstd, const moe_real *inp, const moe_real *weight,
                     int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const moe_real *x = inp + (long)n * C;
        moe_real *o = out + (long)n * C;
        double ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        double s = 1.0 / sqrt(ss / C + eps);
        for (int i = 0; i < C; i++) o[i] = (moe_real)(x[i] * s * weight[i]);
        rstd[n] = (moe_real)s;
    }
}

void rmsnorm_backward(moe_real *dinp, moe_real *dweight, const moe_real *dout, const moe_real *inp,
                      const moe_real *weight, const moe_real *rstd, int N, int C) {
    /* dinp_i = s * w_i g_i - x_i * s^3 / C * sum_j w_j g_j x_j */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const moe_real *x = inp + (long)n * C, *g = dout + (long)n * C;
        moe_real *dx = dinp + (long)n * C;
        double s = rstd[n], a = 0;
#pragma omp simd reduction(+ : a)
        for (int i = 0; i < C; i++) a += (double)weight[i] * g[i] * x[i];
        double k = a * s * s * s / C;
        for (int i = 0; i < C; i++) dx[i] = (moe_real)(s * weight[i] * g[i] - x[i] * k);
    }
    if (!dweight) return;
    int nblocks = (C + RMS_COL_BLOCK - 1) / RMS_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * RMS_COL_BLOCK, c1 = c0 + RMS_COL_BLOCK < C ? c0 + RMS_COL_BLOCK : C;
        double dw[RMS_COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const moe_real *x = inp + (long)n * C, *g = dout + (long)n * C;
            double s = rstd[n];
            for (int i = c0; i < c1; i++) dw[i - c0] += (double)g[i] * x[i] * s;
        }
        for (int i = c0; i < c1; i++) dweight[i] += (moe_real)dw[i - c0];
    }
}
