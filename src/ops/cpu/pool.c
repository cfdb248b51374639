/* Sequence pooling for classifiers: the first token's row ([CLS]) or the
 * mean of the real (unpadded) rows of each sequence. */
#include "ops/ops.h"

#include <math.h>
#include <string.h>

void pool_forward(moe_real *out, const moe_real *inp, const uint8_t *pad_mask, int B, int T, int D,
                  int mean) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const moe_real *x = inp + (size_t)b * T * D;
        moe_real *o = out + (size_t)b * D;
        if (!mean) {
            memcpy(o, x, (size_t)D * sizeof *o);
            continue;
        }
        int n = 0;
        for (int i = 0; i < D; i++) o[i] = 0;
        for (int t = 0; t < T; t++) {
            if (pad_mask && !pad_mask[(size_t)b * T + t]) continue;
            for (int i = 0; i < D; i++) o[i] += x[(size_t)t * D + i];
            n++;
        }
        moe_real inv = n ? (moe_real)1 / (moe_real)n : 0;
        for (int i = 0; i < D; i++) o[i] *= inv;
    }
}

void pool_backward(moe_real *dinp, const moe_real *dout, const uint8_t *pad_mask, int B, int T,
                   int D, int mean) {
    memset(dinp, 0, (size_t)B * T * D * sizeof *dinp);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        moe_real *dx = dinp + (size_t)b * T * D;
        const moe_real *g = dout + (size_t)b * D;
        if (!mean) {
            memcpy(dx, g, (size_t)D * sizeof *dx);
            continue;
        }
        int n = 0;
        for (int t = 0; t < T; t++) n += !pad_mask || pad_mask[(size_t)b * T + t];
        moe_real inv = n ? (moe_real)1 / (moe_real)n : 0;
        for (int t = 0; t < T; t++) {
            if (pad_mask && !pad_mask[(size_t)b * T + t]) continue;
            for (int i = 0; i < D; i++) dx[(size_t)t * D + i] = g[i] * inv;
        }
    }
}

void rows_gather(moe_real *out, const moe_real *inp, const int *rows, int n, int D) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++)
        memcpy(out + (size_t)r * D, inp + (size_t)rows[r] * D, (size_t)D * sizeof *out);
}

void rows_scatter(moe_real *out, const moe_real *inp, const int *rows, int n, int N, int D) {
    memset(out, 0, (size_t)N * D * sizeof *out);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++)
        memcpy(out + (size_t)rows[r] * D, inp + (size_t)r * D, (size_t)D * sizeof *out);
}

void sinusoid_positions(moe_real *table, int S, int D) {
    for (int t = 0; t < S; t++)
        for (int i = 0; i < D; i++) {
            /* pairs (2j, 2j+1) share the frequency 10000^(-2j/D) */
            double freq = pow(10000.0, -(double)(i - i % 2) / D);
            table[(size_t)t * D + i] = (moe_real)(i % 2 ? cos(t * freq) : sin(t * freq));
        }
}
