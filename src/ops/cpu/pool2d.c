/* 2-D max and average pooling over the [H,W] planes of NCHW tensors, and
 * global average pooling. Every plane is independent, so planes run in
 * parallel and each backward writes only its own plane of dinp. Windows
 * are clipped to the image: padding never wins a max and adds zeros to an
 * average (which still divides by K*K, PyTorch's count_include_pad). */
#include "ops/ops.h"

#include <math.h>
#include <string.h>

void maxpool2d_forward(moe_real *out, int32_t *argmax, const moe_real *inp, int N, int C, int H,
                       int W, int K, int stride, int pad) {
    int OH = conv2d_out_size(H, K, stride, pad), OW = conv2d_out_size(W, K, stride, pad);
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const moe_real *x = inp + nc * H * W;
        moe_real *o = out + nc * OH * OW;
        int32_t *am = argmax + nc * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int h0 = oh * stride - pad, h1 = h0 + K;
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            for (int ow = 0; ow < OW; ow++) {
                int w0 = ow * stride - pad, w1 = w0 + K;
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                int best = h0 * W + w0;
                moe_real m = x[best];
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) {
                        moe_real v = x[h * W + w];
                        /* strictly greater keeps the first maximum; NaN propagates */
                        if (v > m || (isnan(v) && !isnan(m))) {
                            m = v;
                            best = h * W + w;
                        }
                    }
                o[oh * OW + ow] = m;
                am[oh * OW + ow] = best;
            }
        }
    }
}

void maxpool2d_backward(moe_real *dinp, const moe_real *dout, const int32_t *argmax, int N, int C,
                        int H, int W, int K, int stride, int pad) {
    int OH = conv2d_out_size(H, K, stride, pad), OW = conv2d_out_size(W, K, stride, pad);
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        moe_real *dx = dinp + nc * H * W;
        const moe_real *g = dout + nc * OH * OW;
        const int32_t *am = argmax + nc * OH * OW;
        memset(dx, 0, (size_t)H * W * sizeof *dx);
        /* overlapping windows can share a maximum: add */
        for (int p = 0; p < OH * OW; p++) dx[am[p]] += g[p];
    }
}

void avgpool2d_forward(moe_real *out, const moe_real *inp, int N, int C, int H, int W, int K,
                       int stride, int pad) {
    int OH = conv2d_out_size(H, K, stride, pad), OW = conv2d_out_size(W, K, stride, pad);
    moe_real inv = (moe_real)1 / (moe_real)(K * K);
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const moe_real *x = inp + nc * H * W;
        moe_real *o = out + nc * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int h0 = oh * stride - pad, h1 = h0 + K;
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            for (int ow = 0; ow < OW; ow++) {
                int w0 = ow * stride - pad, w1 = w0 + K;
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                moe_real s = 0;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) s += x[h * W + w];
                o[oh * OW + ow] = s * inv;
            }
        }
    }
}

void avgpool2d_backward(moe_real *dinp, const moe_real *dout, int N, int C, int H, int W, int K,
                        int stride, int pad) {
    int OH = conv2d_out_size(H, K, stride, pad), OW = conv2d_out_size(W, K, stride, pad);
    moe_real inv = (moe_real)1 / (moe_real)(K * K);
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        moe_real *dx = dinp + nc * H * W;
        const moe_real *g = dout + nc * OH * OW;
        memset(dx, 0, (size_t)H * W * sizeof *dx);
        for (int oh = 0; oh < OH; oh++) {
            int h0 = oh * stride - pad, h1 = h0 + K;
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            for (int ow = 0; ow < OW; ow++) {
                int w0 = ow * stride - pad, w1 = w0 + K;
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                moe_real gv = g[oh * OW + ow] * inv;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) dx[h * W + w] += gv;
            }
        }
    }
}

void global_avgpool_forward(moe_real *out, const moe_real *inp, int N, int C, int S) {
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        const moe_real *x = inp + nc * S;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < S; i++) s += x[i];
        out[nc] = (moe_real)(s / S);
    }
}

void global_avgpool_backward(moe_real *dinp, const moe_real *dout, int N, int C, int S) {
#pragma omp parallel for schedule(static)
    for (long nc = 0; nc < (long)N * C; nc++) {
        moe_real g = dout[nc] / (moe_real)S;
        moe_real *dx = dinp + nc * S;
        for (int i = 0; i < S; i++) dx[i] = g;
    }
}
