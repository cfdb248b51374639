/* Combine: each token sums its kept experts' outputs weighted by the gate.
 * Backward scatters dout back to the rows and gives the gate-weight
 * gradient dw[t, j] = dout[t] . y[row(t, j)]; dropped pairs get nothing. */
#include "moe_internal.h"

void moe_combine_forward(moe_real *out, const moe_real *y, const moe_real *weights,
                         const int *row_of, int T, int k, int D) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        moe_real *o = out + (size_t)t * D;
        for (int j = 0; j < k; j++) {
            int r = row_of[(size_t)t * k + j];
            if (r < 0) continue;
            const moe_real w = weights[(size_t)t * k + j];
            const moe_real *yr = y + (size_t)r * D;
            for (int i = 0; i < D; i++) o[i] += w * yr[i];
        }
    }
}

void moe_combine_backward(moe_real *dy, moe_real *dw, const moe_real *dout, const moe_real *y,
                          const moe_real *weights, const int *row_of, int T, int k, int D) {
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        const moe_real *g = dout + (size_t)t * D;
        for (int j = 0; j < k; j++) {
            size_t pr = (size_t)t * k + j;
            int r = row_of[pr];
            if (r < 0) {
                dw[pr] = 0;
                continue;
            }
            const moe_real w = weights[pr];
            const moe_real *yr = y + (size_t)r * D;
            moe_real *d = dy + (size_t)r * D;
            double s = 0;
            for (int i = 0; i < D; i++) {
                s += (double)g[i] * yr[i];
                d[i] = w * g[i];
            }
            dw[pr] = (moe_real)s;
        }
    }
}
