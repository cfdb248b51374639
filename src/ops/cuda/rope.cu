/* Rotary position embedding, rotate-half convention (rope.c on the GPU):
 * pair (i, i + hd/2) of each head turns by (pos0 + t) * theta^(-2i/hd). The
 * angle, its cosine and sine are computed in double and rounded to fp32, as
 * rope.c does, so both sides rotate by the same fp32 factors. */
#include "ops/cuda/cuda_common.cuh"

#define ROPE_THREADS 256
#define ROPE_MAX_BLOCKS (65535u * 8)

/* out = rotation of inp by sign * angle (sign -1: the inverse, backward).
 * One thread per (b, t, i) with i < hd/2 (grid-stride): it computes the
 * angle once and turns pair i of every head of that token. Only the first
 * H*hd elements of each row are touched; each pair is read before it is
 * written by the same thread, so out may alias inp. */
template <typename T>
__global__ void rope_kernel(T *out, const T *inp, int B, int T_, int H, int hd, int row_stride,
                            int pos0, float theta, double sign) {
    int half = hd / 2;
    long n = (long)B * T_ * half;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < n;
         idx += (long)gridDim.x * blockDim.x) {
        int i = (int)(idx % half);
        long bt = idx / half; /* b * T + t */
        int t = (int)(bt % T_);
        long row = bt * row_stride;
        double ang = ((double)pos0 + t) * pow((double)theta, -2.0 * i / hd);
        float c = (float)cos(ang), s = (float)(sign * sin(ang));
        for (int h = 0; h < H; h++) {
            long base = row + (long)h * hd;
            float x1 = ld(inp, base + i), x2 = ld(inp, base + i + half);
            st(out, base + i, x1 * c - x2 * s);
            st(out, base + i + half, x2 * c + x1 * s);
        }
    }
}

static moe_status rope(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp, int B, int T, int H,
                       int hd, int row_stride, int pos0, float theta, double sign, const char *fn) {
    MOE_CUDA_REQUIRE(B >= 0 && T >= 0 && H >= 0, fn);
    MOE_CUDA_REQUIRE(hd >= 2 && hd % 2 == 0, fn);
    MOE_CUDA_REQUIRE((long)row_stride >= (long)H * hd, fn);
    long n = (long)B * T * (hd / 2);
    if (n == 0 || H == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(out && inp, fn);
    unsigned blocks = moe_cuda_blocks(n, ROPE_THREADS);
    if (blocks > ROPE_MAX_BLOCKS) blocks = ROPE_MAX_BLOCKS;
    MOE_DISPATCH_DT(dt, X,
                    MOE_LAUNCH(rope_kernel<X>, blocks, ROPE_THREADS, 0, ctx->stream, (X *)out,
                               (const X *)inp, B, T, H, hd, row_stride, pos0, theta, sign););
    MOE_CUDA_LAUNCHED("rope_kernel");
    return MOE_OK;
}

moe_status moe_cuda_rope_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp, int B,
                                 int T, int H, int hd, int row_stride, int pos0, float theta) {
    return rope(ctx, dt, out, inp, B, T, H, hd, row_stride, pos0, theta, 1.0,
                "moe_cuda_rope_forward");
}

moe_status moe_cuda_rope_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, const void *dout, int B,
                                  int T, int H, int hd, int row_stride, int pos0, float theta) {
    return rope(ctx, dt, dinp, dout, B, T, H, hd, row_stride, pos0, theta, -1.0,
                "moe_cuda_rope_backward");
}
