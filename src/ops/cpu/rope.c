/* Rotary position embedding, rotate-half convention (HF Llama/Mixtral):
 * pair (i, i + hd/2) of each head turns by (pos0 + t) * theta^(-2i/hd). */
#include "ops/ops.h"

#include <math.h>

/* Rotates every head of every token by sign * angle; sign -1 is the inverse
 * (the backward of a rotation is its transpose). Only the first H*hd elements
 * of each row are read and written. */
static void rope_rotate(moe_real *out, const moe_real *inp, int B, int T, int H, int hd,
                        int row_stride, int pos0, float theta, double sign) {
    int half = hd / 2;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            long row = ((long)b * T + t) * row_stride;
            double pos = (double)pos0 + t;
            for (int i = 0; i < half; i++) {
                double ang = pos * pow((double)theta, -2.0 * i / hd);
                moe_real c = (moe_real)cos(ang), s = (moe_real)(sign * sin(ang));
                for (int h = 0; h < H; h++) {
                    const moe_real *x = inp + row + (long)h * hd;
                    moe_real *y = out + row + (long)h * hd;
                    moe_real x1 = x[i], x2 = x[i + half];
                    y[i] = x1 * c - x2 * s;
                    y[i + half] = x2 * c + x1 * s;
                }
            }
        }
    }
}

void rope_forward(moe_real *out, const moe_real *inp, int B, int T, int H, int hd, int row_stride,
                  int pos0, float theta) {
    rope_rotate(out, inp, B, T, H, hd, row_stride, pos0, theta, 1.0);
}

void rope_backward(moe_real *dinp, const moe_real *dout, int B, int T, int H, int hd,
                   int row_stride, int pos0, float theta) {
    rope_rotate(dinp, dout, B, T, H, hd, row_stride, pos0, theta, -1.0);
}
