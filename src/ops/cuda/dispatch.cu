/* MoE capacity, permutation and combine on the GPU (capacity.c,
 * dispatch.c, combine.c). The permutation is a deterministic counting sort
 * of the (token, slot) pairs p = t*k + j by expert, in pair order: the
 * pairs are cut into chunks of DISPATCH_CHUNK; each chunk's per-expert
 * histogram is scanned over chunks, so every pair learns how many earlier
 * pairs chose its expert (its rank), and it is kept when rank < capacity. */
#include "ops/cuda/cuda_common.cuh"

#include <limits.h>

#define DISPATCH_CHUNK 256

static long dispatch_chunks(int T, int k) {
    return ((long)T * k + DISPATCH_CHUNK - 1) / DISPATCH_CHUNK;
}

/* scratch: hist [nchunks][E] ints (histogram, then its exclusive scan). */
size_t moe_cuda_dispatch_scratch(int T, int k, int E) {
    if (T < 0 || k < 0 || E < 0) return 0;
    size_t n = (size_t)dispatch_chunks(T, k) * (size_t)E * sizeof(int32_t);
    return n > 16 ? n : 16;
}

/* hist[c][e] = pairs of chunk c that chose e. One block of DISPATCH_CHUNK
 * threads per chunk, one thread per pair; shared int atomics (exact). */
__global__ void dispatch_hist_kernel(int32_t *hist, const int32_t *chosen, long P, int E) {
    __shared__ int cnt[256];
    const int tid = threadIdx.x;
    cnt[tid] = 0; /* blockDim == 256 >= E */
    __syncthreads();
    long p = (long)blockIdx.x * DISPATCH_CHUNK + tid;
    if (p < P) atomicAdd(&cnt[chosen[p]], 1);
    __syncthreads();
    if (tid < E) hist[(long)blockIdx.x * E + tid] = cnt[tid];
}

/* One block of 256 threads, thread e < E for expert e: hist[c][e] becomes
 * the exclusive scan over chunks (pairs of e before chunk c); kept[e] =
 * min(total, capacity); offsets = exclusive scan of kept (offsets[E] = R),
 * by thread 0 in expert order. */
__global__ void dispatch_scan_kernel(int32_t *hist, int32_t *kept, int32_t *offsets, long nchunks,
                                     int E, int capacity) {
    __shared__ int s_kept[256];
    const int e = threadIdx.x;
    if (e < E) {
        int run = 0;
        for (long c = 0; c < nchunks; c++) {
            int h = hist[c * E + e];
            hist[c * E + e] = run;
            run += h;
        }
        int kp = run < capacity ? run : capacity;
        kept[e] = kp;
        s_kept[e] = kp;
    }
    __syncthreads();
    if (e == 0) {
        int o = 0;
        for (int i = 0; i < E; i++) {
            offsets[i] = o;
            o += s_kept[i];
        }
        offsets[E] = o;
    }
}

/* One warp per chunk (block of 32 threads): walks the chunk's pairs 32 at
 * a time in order. cnt[e] starts at the pairs of e before the chunk; lanes
 * with the same expert find each other with __match_any_sync, take rank
 * cnt[e] + (matching lanes below them), and the highest of them advances
 * cnt[e]. Writes row_of for every pair and token_of for kept rows. */
__global__ void dispatch_rank_kernel(int32_t *row_of, int32_t *token_of, const int32_t *hist,
                                     const int32_t *offsets, const int32_t *chosen, long P, int E,
                                     int k, int capacity) {
    __shared__ int cnt[256];
    __shared__ int s_off[256];
    const int lane = threadIdx.x;
    const long c = blockIdx.x;
    for (int e = lane; e < E; e += 32) {
        cnt[e] = hist[c * E + e];
        s_off[e] = offsets[e];
    }
    __syncwarp();
    const unsigned lt_mask = (1u << lane) - 1u;
    for (int g = 0; g < DISPATCH_CHUNK; g += 32) {
        long p = c * DISPATCH_CHUNK + g + lane;
        int e = p < P ? chosen[p] : -1;
        unsigned same = __match_any_sync(0xffffffffu, e);
        int base = e >= 0 ? cnt[e] : 0;
        __syncwarp(); /* every read of cnt before any update */
        if (e >= 0) {
            int rank = base + __popc(same & lt_mask);
            int row = -1;
            if (rank < capacity) {
                row = s_off[e] + rank;
                token_of[row] = (int32_t)(p / k);
            }
            row_of[p] = row;
            if ((same >> lane) == 1u) cnt[e] = base + __popc(same); /* highest lane of e */
        }
        __syncwarp();
    }
}

/* xp rows r < R (= offsets[E]) = x [token_of[r]]: one block per row
 * (grid-stride over rows), threads over D; V elements of T per access
 * (V > 1 only when the launcher checked the alignment). */
template <typename V>
__global__ void dispatch_gather_kernel(V *xp, const V *x, const int32_t *token_of,
                                       const int32_t *offsets, int E, long R_max, int Dv) {
    const long R = offsets[E];
    for (long r = blockIdx.x; r < R && r < R_max; r += gridDim.x) {
        const V *src = x + (long)token_of[r] * Dv;
        V *dst = xp + r * Dv;
        for (int i = threadIdx.x; i < Dv; i += blockDim.x) dst[i] = src[i];
    }
}

moe_status moe_cuda_dispatch_forward(moe_cuda *ctx, moe_dtype dt, void *xp, int32_t *kept,
                                     int32_t *offsets, int32_t *row_of, int32_t *token_of,
                                     const void *x, const int32_t *chosen, int T, int D, int E,
                                     int k, int capacity, void *scratch) {
    const char *fn = "moe_cuda_dispatch_forward";
    MOE_CUDA_REQUIRE(T >= 0 && D >= 0, fn);
    MOE_CUDA_REQUIRE(E >= 1 && E <= 256, fn);
    MOE_CUDA_REQUIRE(k >= 1 && k <= 8 && k <= E, fn);
    MOE_CUDA_REQUIRE(capacity >= 0, fn);
    const long P = (long)T * k, nchunks = dispatch_chunks(T, k);
    const long R_max = P < (long)E * capacity ? P : (long)E * capacity;
    MOE_CUDA_REQUIRE(nchunks <= INT_MAX, fn);
    int32_t *hist = (int32_t *)scratch;
    if (nchunks > 0) {
        MOE_LAUNCH(dispatch_hist_kernel, (unsigned)nchunks, DISPATCH_CHUNK, 0, ctx->stream, hist,
                   chosen, P, E);
        MOE_CUDA_LAUNCHED("dispatch_hist_kernel");
    }
    MOE_LAUNCH(dispatch_scan_kernel, 1, 256, 0, ctx->stream, hist, kept, offsets, nchunks, E,
               capacity);
    MOE_CUDA_LAUNCHED("dispatch_scan_kernel");
    if (nchunks == 0) return MOE_OK;
    MOE_LAUNCH(dispatch_rank_kernel, (unsigned)nchunks, 32, 0, ctx->stream, row_of, token_of, hist,
               offsets, chosen, P, E, k, capacity);
    MOE_CUDA_LAUNCHED("dispatch_rank_kernel");
    if (D == 0 || R_max == 0) return MOE_OK;
    unsigned blocks = (unsigned)(R_max < 65535L * 8 ? R_max : 65535L * 8);
    size_t es = moe_dtype_size(dt), rowb = (size_t)D * es;
    if (rowb % 16 == 0 && (uintptr_t)x % 16 == 0 && (uintptr_t)xp % 16 == 0) {
        MOE_LAUNCH(dispatch_gather_kernel<int4>, blocks, 128, 0, ctx->stream, (int4 *)xp,
                   (const int4 *)x, token_of, offsets, E, R_max, (int)(rowb / 16));
    } else if (es == 4) {
        MOE_LAUNCH(dispatch_gather_kernel<float>, blocks, 128, 0, ctx->stream, (float *)xp,
                   (const float *)x, token_of, offsets, E, R_max, D);
    } else {
        MOE_LAUNCH(dispatch_gather_kernel<unsigned short>, blocks, 128, 0, ctx->stream,
                   (unsigned short *)xp, (const unsigned short *)x, token_of, offsets, E, R_max, D);
    }
    MOE_CUDA_LAUNCHED("dispatch_gather_kernel");
    return MOE_OK;
}

/* dx[t] += sum over kept j of dxp[row_of[t*k+j]], summed in slot order in
 * fp32 and stored once. One block per token (grid-stride), threads over D. */
template <typename T>
__global__ void dispatch_backward_kernel(T *dx, const T *dxp, const int32_t *row_of, int Tn, int D,
                                         int k) {
    for (long t = blockIdx.x; t < Tn; t += gridDim.x) {
        int rows[8];
#pragma unroll
        for (int j = 0; j < 8; j++) rows[j] = j < k ? row_of[t * k + j] : -1;
        for (int i = threadIdx.x; i < D; i += blockDim.x) {
            float a = ld(dx, t * D + i);
#pragma unroll
            for (int j = 0; j < 8; j++)
                if (rows[j] >= 0) a += ld(dxp, (long)rows[j] * D + i);
            st(dx, t * D + i, a);
        }
    }
}

moe_status moe_cuda_dispatch_backward(moe_cuda *ctx, moe_dtype dt, void *dx, const void *dxp,
                                      const int32_t *row_of, int T, int D, int k) {
    const char *fn = "moe_cuda_dispatch_backward";
    MOE_CUDA_REQUIRE(T >= 0 && D >= 0 && k >= 1 && k <= 8, fn);
    if (T == 0 || D == 0) return MOE_OK;
    unsigned blocks = (unsigned)(T < 65535 * 8 ? T : 65535 * 8);
    MOE_DISPATCH_DT(dt, S,
                    MOE_LAUNCH(dispatch_backward_kernel<S>, blocks, 128, 0, ctx->stream, (S *)dx,
                               (const S *)dxp, row_of, T, D, k););
    MOE_CUDA_LAUNCHED("dispatch_backward_kernel");
    return MOE_OK;
}

/* out[t] = (accumulate ? out[t] : 0) + sum over kept j of w[t,j] y[row],
 * in slot order. One block per token (grid-stride), threads over D. */
template <typename T>
__global__ void combine_forward_kernel(T *out, const T *y, const float *weights,
                                       const int32_t *row_of, int Tn, int D, int k,
                                       int accumulate) {
    for (long t = blockIdx.x; t < Tn; t += gridDim.x) {
        int rows[8];
        float w[8];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            rows[j] = j < k ? row_of[t * k + j] : -1;
            w[j] = j < k ? weights[t * k + j] : 0.0f;
        }
        for (int i = threadIdx.x; i < D; i += blockDim.x) {
            float a = accumulate ? ld(out, t * D + i) : 0.0f;
#pragma unroll
            for (int j = 0; j < 8; j++)
                if (rows[j] >= 0) a += w[j] * ld(y, (long)rows[j] * D + i);
            st(out, t * D + i, a);
        }
    }
}

moe_status moe_cuda_combine_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *y,
                                    const float *weights, const int32_t *row_of, int T, int D,
                                    int k, int accumulate) {
    const char *fn = "moe_cuda_combine_forward";
    MOE_CUDA_REQUIRE(T >= 0 && D >= 0 && k >= 1 && k <= 8, fn);
    if (T == 0 || D == 0) return MOE_OK;
    unsigned blocks = (unsigned)(T < 65535 * 8 ? T : 65535 * 8);
    MOE_DISPATCH_DT(dt, S,
                    MOE_LAUNCH(combine_forward_kernel<S>, blocks, 128, 0, ctx->stream, (S *)out,
                               (const S *)y, weights, row_of, T, D, k, accumulate););
    MOE_CUDA_LAUNCHED("combine_forward_kernel");
    return MOE_OK;
}

/* One warp per token, 8 tokens per block: for each kept slot j, dy[row] =
 * w[t,j] dout[t] and dw[t,j] = dot(dout[t], y[row]) (lane partials, then a
 * warp_sum: a fixed order); dw = 0 for dropped slots. */
template <typename T>
__global__ void combine_backward_kernel(T *dy, float *dw, const T *dout, const T *y,
                                        const float *weights, const int32_t *row_of, int Tn, int D,
                                        int k) {
    const int lane = threadIdx.x & 31;
    const long t = (long)blockIdx.x * 8 + (threadIdx.x >> 5);
    if (t >= Tn) return;
    for (int j = 0; j < k; j++) {
        const long p = t * k + j;
        const int r = row_of[p];
        if (r < 0) { /* uniform over the warp */
            if (lane == 0) dw[p] = 0;
            continue;
        }
        const float w = weights[p];
        float s = 0;
        for (int i = lane; i < D; i += 32) {
            float g = ld(dout, t * D + i);
            s += g * ld(y, (long)r * D + i);
            st(dy, (long)r * D + i, w * g);
        }
        s = warp_sum(s);
        if (lane == 0) dw[p] = s;
    }
}

moe_status moe_cuda_combine_backward(moe_cuda *ctx, moe_dtype dt, void *dy, float *dw,
                                     const void *dout, const void *y, const float *weights,
                                     const int32_t *row_of, int T, int D, int k) {
    const char *fn = "moe_cuda_combine_backward";
    MOE_CUDA_REQUIRE(T >= 0 && D >= 0 && k >= 1 && k <= 8, fn);
    if (T == 0) return MOE_OK;
    MOE_DISPATCH_DT(dt, S,
                    MOE_LAUNCH(combine_backward_kernel<S>, moe_cuda_blocks(T, 8), 256, 0,
                               ctx->stream, (S *)dy, dw, (const S *)dout, (const S *)y, weights,
                               row_of, T, D, k););
    MOE_CUDA_LAUNCHED("combine_backward_kernel");
    return MOE_OK;
}
