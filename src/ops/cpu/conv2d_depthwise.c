/* Depthwise 2-D convolution (groups == C == OC), the kernel conv2d runs
 * for it. Each plane is a K*K-tap stencil, far too little work per output
 * for im2col + gemm, so it loops directly. Short image rows (28 or 14
 * pixels) would leave the vector units idle at every row end, so each
 * plane is first copied into a zero-padded buffer of width Wp = W + 2 pad:
 * with stride 1 the output row oh, column ow then lives at oh * Wp + ow of
 * a [OH, Wp] buffer and every tap is ONE contiguous multiply-add over the
 * whole plane (the Wp - OW columns past each row's end are computed and
 * dropped). Larger strides read the padded plane with a stride instead.
 * Planes run in parallel; backward gives each thread whole channels so
 * that dweight needs no reduction. */
#include "ops/ops.h"

#include <omp.h>
#include <string.h>

typedef struct dw_dims {
    int H, W, KH, KW, stride, pad, OH, OW, Hp, Wp;
    long xp_elems; /* padded plane plus a tail the last taps over-read */
} dw_dims;

static dw_dims dw_dims_of(int H, int W, int KH, int KW, int stride, int pad) {
    dw_dims d = {H, W, KH, KW, stride, pad, 0, 0, H + 2 * pad, W + 2 * pad, 0};
    d.OH = conv2d_out_size(H, KH, stride, pad);
    d.OW = conv2d_out_size(W, KW, stride, pad);
    d.xp_elems = (long)d.Hp * d.Wp + KW;
    return d;
}

/* Per thread: the padded plane, its gradient and one [OH, Wp] plane. */
static long dw_slot(const dw_dims *d) {
    return 2 * d->xp_elems + (long)d->OH * d->Wp;
}

size_t conv2d_depthwise_scratch_elems(int H, int W, int KH, int KW, int stride, int pad) {
    dw_dims d = dw_dims_of(H, W, KH, KW, stride, pad);
    return (size_t)omp_get_max_threads() * (size_t)dw_slot(&d);
}

/* x [H,W] into the interior of xp, whose border stays zero. */
static void pad_plane(moe_real *xp, const moe_real *x, const dw_dims *d) {
    for (int h = 0; h < d->H; h++)
        memcpy(xp + (long)(h + d->pad) * d->Wp + d->pad, x + (long)h * d->W,
               (size_t)d->W * sizeof *xp);
}

static void forward_plane(moe_real *o, moe_real *full, const moe_real *xp, const moe_real *w,
                          moe_real b, const dw_dims *d) {
    if (d->stride == 1) {
        long L = (long)d->OH * d->Wp;
        for (long i = 0; i < L; i++) full[i] = b;
        for (int kh = 0; kh < d->KH; kh++)
            for (int kw = 0; kw < d->KW; kw++) {
                moe_real wv = w[kh * d->KW + kw];
                const moe_real *src = xp + (long)kh * d->Wp + kw;
#pragma omp simd
                for (long i = 0; i < L; i++) full[i] += wv * src[i];
            }
        for (int oh = 0; oh < d->OH; oh++)
            memcpy(o + (long)oh * d->OW, full + (long)oh * d->Wp, (size_t)d->OW * sizeof *o);
        return;
    }
    for (int oh = 0; oh < d->OH; oh++) {
        moe_real *orow = o + (long)oh * d->OW;
        for (int ow = 0; ow < d->OW; ow++) orow[ow] = b;
        for (int kh = 0; kh < d->KH; kh++)
            for (int kw = 0; kw < d->KW; kw++) {
                moe_real wv = w[kh * d->KW + kw];
                const moe_real *src = xp + (long)(oh * d->stride + kh) * d->Wp + kw;
                for (int ow = 0; ow < d->OW; ow++) orow[ow] += wv * src[(long)ow * d->stride];
            }
    }
}

/* dw [KH*KW] added and dxp written, each skipped if NULL: dxp is the
 * padded plane's gradient. gfull: [OH, Wp] whose columns past OW are zero. */
static void backward_plane(moe_real *dxp, moe_real *dw, moe_real *gfull, const moe_real *g,
                           const moe_real *xp, const moe_real *w, const dw_dims *d) {
    if (dxp) memset(dxp, 0, (size_t)d->xp_elems * sizeof *dxp);
    if (d->stride == 1) {
        long L = (long)d->OH * d->Wp;
        for (int oh = 0; oh < d->OH; oh++)
            memcpy(gfull + (long)oh * d->Wp, g + (long)oh * d->OW, (size_t)d->OW * sizeof *g);
        for (int kh = 0; kh < d->KH; kh++)
            for (int kw = 0; kw < d->KW; kw++) {
                long off = (long)kh * d->Wp + kw;
                const moe_real *src = xp + off;
                moe_real acc = 0, wv = w[kh * d->KW + kw];
                if (dw) {
#pragma omp simd reduction(+ : acc)
                    for (long i = 0; i < L; i++) acc += gfull[i] * src[i];
                    dw[kh * d->KW + kw] += acc;
                }
                if (!dxp) continue;
                moe_real *dst = dxp + off;
#pragma omp simd
                for (long i = 0; i < L; i++) dst[i] += wv * gfull[i];
            }
        return;
    }
    for (int kh = 0; kh < d->KH; kh++)
        for (int kw = 0; kw < d->KW; kw++) {
            moe_real acc = 0, wv = w[kh * d->KW + kw];
            for (int oh = 0; oh < d->OH; oh++) {
                long off = (long)(oh * d->stride + kh) * d->Wp + kw;
                const moe_real *grow = g + (long)oh * d->OW;
                for (int ow = 0; ow < d->OW; ow++) {
                    acc += grow[ow] * xp[off + (long)ow * d->stride];
                    if (dxp) dxp[off + (long)ow * d->stride] += wv * grow[ow];
                }
            }
            if (dw) dw[kh * d->KW + kw] += acc;
        }
}

void conv2d_depthwise_forward(moe_real *out, moe_real *scratch, const moe_real *inp,
                              const moe_real *weight, const moe_real *bias, int N, int C, int H,
                              int W, int KH, int KW, int stride, int pad) {
    dw_dims d = dw_dims_of(H, W, KH, KW, stride, pad);
    long slot = dw_slot(&d), KK = (long)KH * KW, P = (long)d.OH * d.OW;
#pragma omp parallel num_threads(omp_get_max_threads())
    {
        moe_real *xp = scratch + omp_get_thread_num() * slot, *full = xp + 2 * d.xp_elems;
        memset(xp, 0, (size_t)d.xp_elems * sizeof *xp);
#pragma omp for schedule(static)
        for (long nc = 0; nc < (long)N * C; nc++) {
            pad_plane(xp, inp + nc * H * W, &d);
            forward_plane(out + nc * P, full, xp, weight + (nc % C) * KK, bias ? bias[nc % C] : 0,
                          &d);
        }
    }
}

void conv2d_depthwise_backward(moe_real *dinp, moe_real *dweight, moe_real *scratch,
                               const moe_real *dout, const moe_real *inp, const moe_real *weight,
                               int N, int C, int H, int W, int KH, int KW, int stride, int pad) {
    dw_dims d = dw_dims_of(H, W, KH, KW, stride, pad);
    long slot = dw_slot(&d), KK = (long)KH * KW, P = (long)d.OH * d.OW;
#pragma omp parallel num_threads(omp_get_max_threads())
    {
        moe_real *xp = scratch + omp_get_thread_num() * slot, *dxp = xp + d.xp_elems;
        moe_real *gfull = dxp + d.xp_elems;
        memset(xp, 0, (size_t)d.xp_elems * sizeof *xp);
        memset(gfull, 0, (size_t)d.OH * d.Wp * sizeof *gfull);
        /* a channel's weights belong to one thread: no races on dweight */
#pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            moe_real *dw = dweight ? dweight + c * KK : NULL;
            for (int n = 0; n < N; n++) {
                long nc = (long)n * C + c;
                pad_plane(xp, inp + nc * H * W, &d);
                backward_plane(dinp ? dxp : NULL, dw, gfull, dout + nc * P, xp, weight + c * KK,
                               &d);
                if (!dinp) continue;
                for (int h = 0; h < H; h++)
                    memcpy(dinp + nc * H * W + (long)h * W, dxp + (long)(h + pad) * d.Wp + pad,
                           (size_t)W * sizeof *dinp);
            }
        }
    }
}
