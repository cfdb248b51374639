/* 2-D convolution, NCHW. The general case lowers each image to columns
 * (im2col: one row per (channel, kh, kw), one column per output pixel) so
 * that the product with the weight is one gemm() per group; images run in
 * parallel, each thread with its own slice of the caller's scratch (and
 * gemm then runs single-threaded inside the parallel region, which is what
 * the OpenMP OpenBLAS does). With fewer images than threads the images go
 * one by one and OpenBLAS threads each gemm instead. A 1x1 stride-1
 * unpadded conv needs no columns: the image already is them. Depthwise
 * convs go to their direct loop (conv2d_depthwise.c). */
#include "ops/ops.h"

#include <omp.h>
#include <string.h>

int conv2d_out_size(int in, int k, int stride, int pad) {
    return (in + 2 * pad - k) / stride + 1;
}

/* The outputs o in [*lo, *hi) whose input o * stride - pad + k lies in
 * [0, n_in): the part of an output row that tap k sees without padding. */
static void tap_range(int n_out, int k, int stride, int pad, int n_in, int *lo, int *hi) {
    int a = pad - k; /* o * stride >= a */
    *lo = a > 0 ? (a + stride - 1) / stride : 0;
    int b = n_in - 1 + pad - k; /* o * stride <= b */
    *hi = b < 0 ? 0 : b / stride + 1;
    if (*hi > n_out) *hi = n_out;
    if (*lo > *hi) *lo = *hi;
}

typedef struct conv_dims {
    int C, H, W, OC, KH, KW, stride, pad, groups;
    int OH, OW;
    long P;          /* OH * OW output pixels */
    long K;          /* C * KH * KW rows of the columns */
    long Kg;         /* rows per group: the weight's row length */
    int OCg;         /* output channels per group */
    int direct_cols; /* 1x1, stride 1, no padding: the image is its own columns */
    int depthwise;
} conv_dims;

static conv_dims dims_of(int C, int H, int W, int OC, int KH, int KW, int stride, int pad,
                         int groups) {
    conv_dims d = {C, H, W, OC, KH, KW, stride, pad, groups, 0, 0, 0, 0, 0, 0, 0, 0};
    d.OH = conv2d_out_size(H, KH, stride, pad);
    d.OW = conv2d_out_size(W, KW, stride, pad);
    d.P = (long)d.OH * d.OW;
    d.K = (long)C * KH * KW;
    d.Kg = d.K / groups;
    d.OCg = OC / groups;
    d.direct_cols = KH == 1 && KW == 1 && stride == 1 && pad == 0;
    d.depthwise = groups == C && OC == C;
    return d;
}

/* Per thread: the columns (unless direct) and, for backward, a private
 * dweight [OC, Kg] summed into the caller's after the parallel loop. */
static long slot_elems(const conv_dims *d) {
    return (d->direct_cols ? 0 : d->K * d->P) + (long)d->OC * d->Kg;
}

size_t conv2d_scratch_elems(int C, int H, int W, int OC, int KH, int KW, int stride, int pad,
                            int groups) {
    conv_dims d = dims_of(C, H, W, OC, KH, KW, stride, pad, groups);
    if (d.depthwise) return conv2d_depthwise_scratch_elems(H, W, KH, KW, stride, pad);
    return (size_t)omp_get_max_threads() * (size_t)slot_elems(&d);
}

/* x [C,H,W] -> cols [K,P]. */
static void im2col(moe_real *cols, const moe_real *x, const conv_dims *d) {
    for (int c = 0; c < d->C; c++)
        for (int kh = 0; kh < d->KH; kh++) {
            int hlo, hhi;
            tap_range(d->OH, kh, d->stride, d->pad, d->H, &hlo, &hhi);
            for (int kw = 0; kw < d->KW; kw++) {
                int wlo, whi;
                tap_range(d->OW, kw, d->stride, d->pad, d->W, &wlo, &whi);
                moe_real *dst = cols + (((long)c * d->KH + kh) * d->KW + kw) * d->P;
                for (int oh = 0; oh < d->OH; oh++) {
                    moe_real *o = dst + (long)oh * d->OW;
                    if (oh < hlo || oh >= hhi) {
                        memset(o, 0, (size_t)d->OW * sizeof *o);
                        continue;
                    }
                    const moe_real *src =
                        x + ((long)c * d->H + oh * d->stride - d->pad + kh) * d->W - d->pad + kw;
                    for (int ow = 0; ow < wlo; ow++) o[ow] = 0;
                    if (d->stride == 1)
                        memcpy(o + wlo, src + wlo, (size_t)(whi - wlo) * sizeof *o);
                    else
                        for (int ow = wlo; ow < whi; ow++) o[ow] = src[(long)ow * d->stride];
                    for (int ow = whi; ow < d->OW; ow++) o[ow] = 0;
                }
            }
        }
}

/* dx [C,H,W] = the adjoint of im2col applied to dcols [K,P]. */
static void col2im(moe_real *dx, const moe_real *dcols, const conv_dims *d) {
    memset(dx, 0, (size_t)d->C * d->H * d->W * sizeof *dx);
    for (int c = 0; c < d->C; c++)
        for (int kh = 0; kh < d->KH; kh++) {
            int hlo, hhi;
            tap_range(d->OH, kh, d->stride, d->pad, d->H, &hlo, &hhi);
            for (int kw = 0; kw < d->KW; kw++) {
                int wlo, whi;
                tap_range(d->OW, kw, d->stride, d->pad, d->W, &wlo, &whi);
                const moe_real *src = dcols + (((long)c * d->KH + kh) * d->KW + kw) * d->P;
                for (int oh = hlo; oh < hhi; oh++) {
                    const moe_real *g = src + (long)oh * d->OW;
                    moe_real *o =
                        dx + ((long)c * d->H + oh * d->stride - d->pad + kh) * d->W - d->pad + kw;
                    for (int ow = wlo; ow < whi; ow++) o[(long)ow * d->stride] += g[ow];
                }
            }
        }
}

/* One image of the general forward: out [OC,P] = weight * cols (+ bias). */
static void forward_image(moe_real *out, moe_real *cols, const moe_real *x, const moe_real *weight,
                          const moe_real *bias, const conv_dims *d) {
    const moe_real *b = x;
    if (!d->direct_cols) {
        im2col(cols, x, d);
        b = cols;
    }
    if (bias)
        for (int o = 0; o < d->OC; o++)
            for (long p = 0; p < d->P; p++) out[o * d->P + p] = bias[o];
    for (int g = 0; g < d->groups; g++)
        gemm(0, 0, d->OCg, (int)d->P, (int)d->Kg, 1, weight + g * d->OCg * d->Kg, (int)d->Kg,
             b + g * d->Kg * d->P, (int)d->P, bias ? 1 : 0, out + g * d->OCg * d->P, (int)d->P);
}

/* One image of the general backward: dweight [OC,Kg] += dout * cols^T;
 * dx = col2im(weight^T * dout). */
static void backward_image(moe_real *dx, moe_real *dweight, moe_real *cols, const moe_real *g_out,
                           const moe_real *x, const moe_real *weight, const conv_dims *d) {
    const moe_real *b = x;
    if (!d->direct_cols && dweight) {
        im2col(cols, x, d);
        b = cols;
    }
    for (int g = 0; g < d->groups; g++) {
        const moe_real *gg = g_out + g * d->OCg * d->P;
        if (dweight)
            gemm(0, 1, d->OCg, (int)d->Kg, (int)d->P, 1, gg, (int)d->P, b + g * d->Kg * d->P,
                 (int)d->P, 1, dweight + g * d->OCg * d->Kg, (int)d->Kg);
        if (dx) /* the columns are no longer needed: their gradient overwrites them */
            gemm(1, 0, (int)d->Kg, (int)d->P, d->OCg, 1, weight + g * d->OCg * d->Kg, (int)d->Kg,
                 gg, (int)d->P, 0, (d->direct_cols ? dx : cols) + g * d->Kg * d->P, (int)d->P);
    }
    if (dx && !d->direct_cols) col2im(dx, cols, d);
}

void conv2d_forward(moe_real *out, moe_real *scratch, const moe_real *inp, const moe_real *weight,
                    const moe_real *bias, int N, int C, int H, int W, int OC, int KH, int KW,
                    int stride, int pad, int groups) {
    conv_dims d = dims_of(C, H, W, OC, KH, KW, stride, pad, groups);
    long in_img = (long)C * H * W, out_img = (long)OC * d.P;
    if (d.depthwise) {
        conv2d_depthwise_forward(out, scratch, inp, weight, bias, N, C, H, W, KH, KW, stride, pad);
        return;
    }
    long slot = slot_elems(&d);
    int threads = omp_get_max_threads();
    if (N < threads) { /* one image at a time, OpenBLAS threads the gemm */
        for (int n = 0; n < N; n++)
            forward_image(out + n * out_img, scratch, inp + n * in_img, weight, bias, &d);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        moe_real *cols = scratch ? scratch + (long)omp_get_thread_num() * slot : NULL;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++)
            forward_image(out + n * out_img, cols, inp + n * in_img, weight, bias, &d);
    }
}

void conv2d_backward(moe_real *dinp, moe_real *dweight, moe_real *dbias, moe_real *scratch,
                     const moe_real *dout, const moe_real *inp, const moe_real *weight, int N,
                     int C, int H, int W, int OC, int KH, int KW, int stride, int pad, int groups) {
    conv_dims d = dims_of(C, H, W, OC, KH, KW, stride, pad, groups);
    long in_img = (long)C * H * W, out_img = (long)OC * d.P;
    if (dbias) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int n = 0; n < N; n++) {
                const moe_real *g = dout + n * out_img + o * d.P;
                for (long p = 0; p < d.P; p++) s += g[p];
            }
            dbias[o] += (moe_real)s;
        }
    }
    if (!dinp && !dweight) return;
    if (d.depthwise) {
        conv2d_depthwise_backward(dinp, dweight, scratch, dout, inp, weight, N, C, H, W, KH, KW,
                                  stride, pad);
        return;
    }
    long slot = slot_elems(&d), cols_elems = d.direct_cols ? 0 : d.K * d.P;
    long wsize = (long)OC * d.Kg;
    int threads = omp_get_max_threads();
    if (N < threads) {
        for (int n = 0; n < N; n++)
            backward_image(dinp ? dinp + n * in_img : NULL, dweight, scratch, dout + n * out_img,
                           inp + n * in_img, weight, &d);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        moe_real *cols = scratch ? scratch + (long)omp_get_thread_num() * slot : NULL;
        moe_real *dw = dweight ? cols + cols_elems : NULL;
        int team = omp_get_num_threads(); /* the slots in use: those threads zeroed theirs */
        if (dw) memset(dw, 0, (size_t)wsize * sizeof *dw);
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++)
            backward_image(dinp ? dinp + n * in_img : NULL, dw, cols, dout + n * out_img,
                           inp + n * in_img, weight, &d);
        if (dweight) {
            /* sum the threads' partial dweights, each thread a range of entries */
#pragma omp for schedule(static)
            for (long i = 0; i < wsize; i++) {
                moe_real s = 0;
                for (int t = 0; t < team; t++) s += scratch[t * slot + cols_elems + i];
                dweight[i] += s;
            }
        }
    }
}
