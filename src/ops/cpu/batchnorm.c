/* Batch normalisation over [N,C,S], per channel, statistics in double.
 * A channel's values are N runs of S contiguous numbers; each task owns a
 * block of channels, so no two threads write the same statistic or
 * parameter gradient. With short runs (S = 1 is BatchNorm1d on [N,C]) a
 * block spans several channels so that the inner loops read contiguous
 * memory instead of one number per row. */
#include "ops/ops.h"

#include <math.h>

#define BN_BLOCK 32 /* channels per task when S is short */

static int channel_block(int S) {
    return S >= 8 ? 1 : BN_BLOCK;
}

void batchnorm_forward(moe_real *out, moe_real *mean, moe_real *rstd, moe_real *running_mean,
                       moe_real *running_var, const moe_real *inp, const moe_real *weight,
                       const moe_real *bias, int N, int C, int S, int training, float momentum,
                       float eps) {
    int cb = channel_block(S), nblocks = (C + cb - 1) / cb;
    double M = (double)N * S;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * cb, c1 = c0 + cb < C ? c0 + cb : C;
        if (training) {
            double sum[BN_BLOCK] = {0}, sq[BN_BLOCK] = {0};
            for (int n = 0; n < N; n++)
                for (int c = c0; c < c1; c++) {
                    const moe_real *x = inp + ((long)n * C + c) * S;
                    double s = 0;
#pragma omp simd reduction(+ : s)
                    for (int i = 0; i < S; i++) s += x[i];
                    sum[c - c0] += s;
                }
            /* two passes: the variance from deviations, not E[x^2] - m^2 */
            for (int n = 0; n < N; n++)
                for (int c = c0; c < c1; c++) {
                    const moe_real *x = inp + ((long)n * C + c) * S;
                    double m = sum[c - c0] / M, s = 0;
#pragma omp simd reduction(+ : s)
                    for (int i = 0; i < S; i++) s += (x[i] - m) * (x[i] - m);
                    sq[c - c0] += s;
                }
            for (int c = c0; c < c1; c++) {
                double m = sum[c - c0] / M, var = sq[c - c0] / M;
                mean[c] = (moe_real)m;
                rstd[c] = (moe_real)(1.0 / sqrt(var + eps));
                if (running_mean)
                    running_mean[c] = (moe_real)((1.0 - momentum) * running_mean[c] + momentum * m);
                if (running_var) {
                    double unbiased = M > 1 ? var * M / (M - 1) : var;
                    running_var[c] =
                        (moe_real)((1.0 - momentum) * running_var[c] + momentum * unbiased);
                }
            }
        } else {
            for (int c = c0; c < c1; c++) {
                mean[c] = running_mean[c];
                rstd[c] = (moe_real)(1.0 / sqrt((double)running_var[c] + eps));
            }
        }
        for (int n = 0; n < N; n++)
            for (int c = c0; c < c1; c++) {
                const moe_real *x = inp + ((long)n * C + c) * S;
                moe_real *o = out + ((long)n * C + c) * S;
                moe_real m = mean[c], scale = rstd[c] * (weight ? weight[c] : 1);
                moe_real shift = bias ? bias[c] : 0;
#pragma omp simd
                for (int i = 0; i < S; i++) o[i] = (x[i] - m) * scale + shift;
            }
    }
}

void batchnorm_backward(moe_real *dinp, moe_real *dweight, moe_real *dbias, const moe_real *dout,
                        const moe_real *inp, const moe_real *weight, const moe_real *mean,
                        const moe_real *rstd, int N, int C, int S, int training) {
    /* xhat = (x - mean) rstd, y = w xhat + b. With batch statistics,
     * dinp = w rstd (dout - mean(dout) - xhat mean(dout xhat)); with fixed
     * ones, dinp = w rstd dout. The two sums are also dbias and dweight. */
    int cb = channel_block(S), nblocks = (C + cb - 1) / cb;
    double M = (double)N * S;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * cb, c1 = c0 + cb < C ? c0 + cb : C;
        double sg[BN_BLOCK] = {0}, sgx[BN_BLOCK] = {0}; /* sum dout, sum dout * xhat */
        if (dweight || dbias || (training && dinp))
            for (int n = 0; n < N; n++)
                for (int c = c0; c < c1; c++) {
                    const moe_real *x = inp + ((long)n * C + c) * S;
                    const moe_real *g = dout + ((long)n * C + c) * S;
                    double m = mean[c], a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
                    for (int i = 0; i < S; i++) {
                        a += g[i];
                        b += g[i] * (x[i] - m);
                    }
                    sg[c - c0] += a;
                    sgx[c - c0] += b * rstd[c];
                }
        for (int c = c0; c < c1; c++) {
            if (dweight) dweight[c] += (moe_real)sgx[c - c0];
            if (dbias) dbias[c] += (moe_real)sg[c - c0];
        }
        if (!dinp) continue;
        for (int n = 0; n < N; n++)
            for (int c = c0; c < c1; c++) {
                const moe_real *x = inp + ((long)n * C + c) * S;
                const moe_real *g = dout + ((long)n * C + c) * S;
                moe_real *dx = dinp + ((long)n * C + c) * S;
                moe_real s = rstd[c], k = s * (weight ? weight[c] : 1), m = mean[c];
                if (training) {
                    moe_real mg = (moe_real)(sg[c - c0] / M), mgx = (moe_real)(sgx[c - c0] / M);
#pragma omp simd
                    for (int i = 0; i < S; i++) dx[i] = k * (g[i] - mg - (x[i] - m) * s * mgx);
                } else {
#pragma omp simd
                    for (int i = 0; i < S; i++) dx[i] = k * g[i];
                }
            }
    }
}
