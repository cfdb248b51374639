/* Fused (flash-style) scaled dot-product attention with grouped-query heads:
 * the GPU twin of attention_forward/attention_backward in ops.h, saving the
 * log-sum-exp of each score row instead of the probabilities.
 *
 * Plain fp32 FMA (SIMT) kernels; tiles are staged in shared memory as fp32.
 * Every kernel uses 8 warps of which each owns 8 rows (queries or keys), so a
 * block owns 64 rows. Inside a warp, the score-like products put one lane on
 * each of 32 streamed rows (a key, or in dK/dV a query), and the accumulators
 * put the lanes on the head dimension (lane + 32 c, c < NC = ceil(hd / 32)).
 * Lane-indexed tiles have a row stride of hd + 1 (odd: no bank conflicts);
 * tiles every lane reads the same row of are unpadded and read as float4.
 *
 * The scores are computed by the same FMA chain in all three kernels (d in
 * the same order, fmaf being symmetric in its factors), so the backward's
 * P = exp(S - lse) sees bitwise the scores the forward saw.
 *
 * Backward: a pre-pass D = rowsum(dO * O) into scratch; then one kernel per
 * query tile writes dQ, and one per (key tile, kv head) loops over the query
 * heads of its group and writes dK and dV. No atomics: deterministic. */
#include "ops/cuda/cuda_common.cuh"

#include <math.h>

#define ATT_WARPS 8
#define ATT_THREADS (ATT_WARPS * 32)
#define ATT_R 8                      /* rows per warp */
#define ATT_ROWS (ATT_WARPS * ATT_R) /* rows per block: 64 */
#define ATT_BK 32                    /* streamed rows per tile: one per lane */
#define ATT_FULL 0xffffffffu

/* dst [rows][ldd] (fp32) = rows 0 .. nvalid-1 of src (row r at src + r *
 * stride, hd elements each); rows nvalid .. rows-1 are zero. All threads of
 * the block take part (the caller synchronises). */
template <typename T>
__device__ __forceinline__ void att_tile_load(float *dst, int ldd, const T *src, long stride,
                                              int rows, int nvalid, int hd) {
    for (int i = threadIdx.x; i < rows * hd; i += blockDim.x) {
        int r = i / hd, d = i - r * hd;
        dst[r * ldd + d] = r < nvalid ? ld(src, (long)r * stride + d) : 0.0f;
    }
}

/* s + a . b over 4 elements, in a fixed order (the order every score uses). */
__device__ __forceinline__ float att_dot4(float s, float4 a, const float *b) {
    s = fmaf(a.x, b[0], s);
    s = fmaf(a.y, b[1], s);
    s = fmaf(a.z, b[2], s);
    return fmaf(a.w, b[3], s);
}

/* Forward, one block per (64-query tile, head h, batch b): K/V tiles of 32
 * keys stream through shared memory; online softmax per query row in fp32.
 * Lane = key for the scores; lane = dimension for the output accumulator.
 * Shared: qs [64][hd], ks and vs [32][hd+1]. */
template <typename T, int NC>
__global__ void __launch_bounds__(ATT_THREADS)
    attention_forward_kernel(T *out, float *lse, const T *q, const T *k, const T *v,
                             const uint8_t *pad_mask, int seq, int H, int KVH, int hd, int q_stride,
                             int kv_stride, int causal, float scale) {
    MOE_DYNAMIC_SMEM(float4, att_smem);
    const int kh = hd + 1;
    float *qs = (float *)att_smem;
    float *ks = qs + ATT_ROWS * hd;
    float *vs = ks + ATT_BK * kh;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int q0 = blockIdx.x * ATT_ROWS, h = blockIdx.y, b = blockIdx.z;
    const int g = h / (H / KVH);
    const uint8_t *pad = pad_mask ? pad_mask + (long)b * seq : nullptr;
    const T *kb = k + (long)b * seq * kv_stride + (long)g * hd;
    const T *vb = v + (long)b * seq * kv_stride + (long)g * hd;

    att_tile_load(qs, hd, q + ((long)b * seq + q0) * q_stride + (long)h * hd, q_stride, ATT_ROWS,
                  seq - q0, hd);
    float o[ATT_R][NC], m[ATT_R], l[ATT_R];
#pragma unroll
    for (int r = 0; r < ATT_R; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < NC; c++) o[r][c] = 0.0f;
    }
    /* causal: keys past the tile's last query are masked for all its rows */
    const int kend = causal ? min(seq, q0 + ATT_ROWS) : seq;
    for (int k0 = 0; k0 < kend; k0 += ATT_BK) {
        __syncthreads(); /* every warp is done with the previous tile */
        att_tile_load(ks, kh, kb + (long)k0 * kv_stride, kv_stride, ATT_BK, kend - k0, hd);
        att_tile_load(vs, kh, vb + (long)k0 * kv_stride, kv_stride, ATT_BK, kend - k0, hd);
        __syncthreads();
        const int j = k0 + lane; /* this lane's key */
        const bool kval = j < kend && (!pad || pad[j]);
        float s[ATT_R];
#pragma unroll
        for (int r = 0; r < ATT_R; r++) s[r] = 0.0f;
        const float *kr = ks + lane * kh;
        for (int d = 0; d < hd; d += 4) {
            const float kd[4] = {kr[d], kr[d + 1], kr[d + 2], kr[d + 3]};
#pragma unroll
            for (int r = 0; r < ATT_R; r++)
                s[r] = att_dot4(s[r], *(const float4 *)(qs + (w * ATT_R + r) * hd + d), kd);
        }
        /* online softmax: p = exp(s - running max), rescale what was summed */
        float p[ATT_R];
#pragma unroll
        for (int r = 0; r < ATT_R; r++) {
            const int t = q0 + w * ATT_R + r;
            const bool ok = kval && t < seq && (!causal || j <= t);
            const float sv = ok ? s[r] * scale : -INFINITY;
            const float mnew = fmaxf(m[r], warp_max(sv)); /* the same in every lane */
            float alpha = 1.0f;
            p[r] = 0.0f;
            if (mnew != -INFINITY) { /* some key seen so far: m[r] = -inf gives alpha 0 */
                alpha = expf(m[r] - mnew);
                p[r] = ok ? expf(sv - mnew) : 0.0f;
            }
            l[r] = l[r] * alpha + warp_sum(p[r]);
            m[r] = mnew;
#pragma unroll
            for (int c = 0; c < NC; c++) o[r][c] *= alpha;
        }
        /* o += P V: lane jj's p broadcast by shuffle, V row jj from shared */
        for (int jj = 0; jj < ATT_BK; jj++) {
            float vv[NC];
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const int d = lane + 32 * c;
                vv[c] = d < hd ? vs[jj * kh + d] : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < ATT_R; r++) {
                const float pj = __shfl_sync(ATT_FULL, p[r], jj);
#pragma unroll
                for (int c = 0; c < NC; c++) o[r][c] = fmaf(pj, vv[c], o[r][c]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ATT_R; r++) {
        const int t = q0 + w * ATT_R + r;
        if (t >= seq) continue;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f; /* all keys masked: 0 */
        const long orow = ((long)b * seq + t) * H * hd + (long)h * hd;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int d = lane + 32 * c;
            if (d < hd) st(out, orow + d, o[r][c] * inv);
        }
        if (lane == 0)
            lse[((long)b * H + h) * seq + t] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
    }
}

/* D [B,H,T] = rowsum(dout * out) per (token, head): one warp per row of hd
 * elements (out and dout are [B*T*H, hd] contiguous); 8 rows per block. */
template <typename T>
__global__ void attention_rowdot_kernel(float *Drow, const T *dout, const T *out, long rows,
                                        int seq, int H, int hd) {
    const long n = (long)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5);
    if (n >= rows) return; /* whole warp */
    const int lane = threadIdx.x & 31;
    const long off = n * hd;
    float s = 0.0f;
    for (int d = lane; d < hd; d += 32) s = fmaf(ld(dout, off + d), ld(out, off + d), s);
    s = warp_sum(s);
    if (lane == 0) {
        const long bt = n / H, b = bt / seq;
        const int h = (int)(n - bt * H), t = (int)(bt - b * seq);
        Drow[(b * H + h) * seq + t] = s;
    }
}

/* dQ, one block per (64-query tile, head h, batch b), K/V tiles of 32 keys
 * streamed: P = exp(S - lse), dP = dO V^T, dS = P (dP - D),
 * dQ = scale dS K. Lane = key for S and dP; lane = dimension for dQ.
 * Shared: qs, os (dout) [64][hd]; ks, vs [32][hd+1]. */
template <typename T, int NC>
__global__ void __launch_bounds__(ATT_THREADS)
    attention_dq_kernel(T *dq, const T *dout, const T *q, const T *k, const T *v, const float *lse,
                        const float *Drow, const uint8_t *pad_mask, int seq, int H, int KVH, int hd,
                        int q_stride, int kv_stride, int causal, float scale) {
    MOE_DYNAMIC_SMEM(float4, att_smem);
    const int kh = hd + 1;
    float *qs = (float *)att_smem;
    float *os = qs + ATT_ROWS * hd;
    float *ks = os + ATT_ROWS * hd;
    float *vs = ks + ATT_BK * kh;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int q0 = blockIdx.x * ATT_ROWS, h = blockIdx.y, b = blockIdx.z;
    const int g = h / (H / KVH);
    const uint8_t *pad = pad_mask ? pad_mask + (long)b * seq : nullptr;
    const T *kb = k + (long)b * seq * kv_stride + (long)g * hd;
    const T *vb = v + (long)b * seq * kv_stride + (long)g * hd;

    att_tile_load(qs, hd, q + ((long)b * seq + q0) * q_stride + (long)h * hd, q_stride, ATT_ROWS,
                  seq - q0, hd);
    att_tile_load(os, hd, dout + ((long)b * seq + q0) * H * hd + (long)h * hd, (long)H * hd,
                  ATT_ROWS, seq - q0, hd);
    float acc[ATT_R][NC], lr[ATT_R], Dr[ATT_R];
#pragma unroll
    for (int r = 0; r < ATT_R; r++) {
        const int t = q0 + w * ATT_R + r;
        const long row = ((long)b * H + h) * seq + t;
        lr[r] = t < seq ? lse[row] : -INFINITY; /* -inf: the row has no probabilities */
        Dr[r] = t < seq ? Drow[row] : 0.0f;
#pragma unroll
        for (int c = 0; c < NC; c++) acc[r][c] = 0.0f;
    }
    const int kend = causal ? min(seq, q0 + ATT_ROWS) : seq;
    for (int k0 = 0; k0 < kend; k0 += ATT_BK) {
        __syncthreads();
        att_tile_load(ks, kh, kb + (long)k0 * kv_stride, kv_stride, ATT_BK, kend - k0, hd);
        att_tile_load(vs, kh, vb + (long)k0 * kv_stride, kv_stride, ATT_BK, kend - k0, hd);
        __syncthreads();
        const int j = k0 + lane;
        const bool kval = j < kend && (!pad || pad[j]);
        float s[ATT_R], dp[ATT_R];
#pragma unroll
        for (int r = 0; r < ATT_R; r++) s[r] = 0.0f, dp[r] = 0.0f;
        const float *kr = ks + lane * kh, *vr = vs + lane * kh;
        for (int d = 0; d < hd; d += 4) {
            const float kd[4] = {kr[d], kr[d + 1], kr[d + 2], kr[d + 3]};
            const float vd[4] = {vr[d], vr[d + 1], vr[d + 2], vr[d + 3]};
#pragma unroll
            for (int r = 0; r < ATT_R; r++) {
                const int row = (w * ATT_R + r) * hd + d;
                s[r] = att_dot4(s[r], *(const float4 *)(qs + row), kd);
                dp[r] = att_dot4(dp[r], *(const float4 *)(os + row), vd);
            }
        }
        float ds[ATT_R];
#pragma unroll
        for (int r = 0; r < ATT_R; r++) {
            const int t = q0 + w * ATT_R + r;
            const bool ok = kval && lr[r] != -INFINITY && (!causal || j <= t);
            const float p = ok ? expf(s[r] * scale - lr[r]) : 0.0f;
            ds[r] = p * (dp[r] - Dr[r]);
        }
        /* dQ += dS K: lane jj's dS broadcast by shuffle, K row jj from shared */
        for (int jj = 0; jj < ATT_BK; jj++) {
            float kk[NC];
#pragma unroll
            for (int c = 0; c < NC; c++) {
                const int d = lane + 32 * c;
                kk[c] = d < hd ? ks[jj * kh + d] : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < ATT_R; r++) {
                const float dsj = __shfl_sync(ATT_FULL, ds[r], jj);
#pragma unroll
                for (int c = 0; c < NC; c++) acc[r][c] = fmaf(dsj, kk[c], acc[r][c]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ATT_R; r++) {
        const int t = q0 + w * ATT_R + r;
        if (t >= seq) continue;
        const long qrow = ((long)b * seq + t) * q_stride + (long)h * hd;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int d = lane + 32 * c;
            if (d < hd) st(dq, qrow + d, acc[r][c] * scale);
        }
    }
}

/* dK and dV, one block per (64-key tile, kv head g, batch b); loops over the
 * query heads of the group and streams their queries in tiles of 32:
 * dV = sum P^T dO, dK = scale sum dS^T Q. Lane = query for S and dP; lane =
 * dimension for the accumulators. The block owns its dK/dV rows outright, so
 * it writes them (no reduction across blocks).
 * Shared: ks, vs [64][hd]; qs, os (dout) [32][hd+1]; ls, Ds [32]. */
template <typename T, int NC>
__global__ void __launch_bounds__(ATT_THREADS, 1)
    attention_dkdv_kernel(T *dk, T *dv, const T *dout, const T *q, const T *k, const T *v,
                          const float *lse, const float *Drow, const uint8_t *pad_mask, int seq,
                          int H, int KVH, int hd, int q_stride, int kv_stride, int causal,
                          float scale) {
    MOE_DYNAMIC_SMEM(float4, att_smem);
    const int kh = hd + 1;
    float *ks = (float *)att_smem;
    float *vs = ks + ATT_ROWS * hd;
    float *qs = vs + ATT_ROWS * hd;
    float *os = qs + ATT_BK * kh;
    float *ls = os + ATT_BK * kh;
    float *Ds = ls + ATT_BK;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int k0 = blockIdx.x * ATT_ROWS, g = blockIdx.y, b = blockIdx.z;
    const int group = H / KVH;
    const uint8_t *pad = pad_mask ? pad_mask + (long)b * seq : nullptr;
    const long kvrow0 = ((long)b * seq + k0) * kv_stride + (long)g * hd;

    att_tile_load(ks, hd, k + kvrow0, kv_stride, ATT_ROWS, seq - k0, hd);
    att_tile_load(vs, hd, v + kvrow0, kv_stride, ATT_ROWS, seq - k0, hd);
    float dka[ATT_R][NC], dva[ATT_R][NC];
    unsigned kval = 0; /* bit r: key k0 + w*8 + r exists and is not padding */
#pragma unroll
    for (int r = 0; r < ATT_R; r++) {
        const int j = k0 + w * ATT_R + r;
        if (j < seq && (!pad || pad[j])) kval |= 1u << r;
#pragma unroll
        for (int c = 0; c < NC; c++) dka[r][c] = 0.0f, dva[r][c] = 0.0f;
    }
    /* causal: queries before k0 see none of these keys (k0 is a multiple of 32) */
    const int i_start = causal ? k0 : 0;
    for (int h = g * group; h < (g + 1) * group; h++) {
        const T *qb = q + (long)b * seq * q_stride + (long)h * hd;
        const T *ob = dout + (long)b * seq * H * hd + (long)h * hd;
        const long srow = ((long)b * H + h) * seq; /* lse and D of (b, h, token 0) */
        for (int i0 = i_start; i0 < seq; i0 += ATT_BK) {
            __syncthreads(); /* every warp is done with the previous tile */
            att_tile_load(qs, kh, qb + (long)i0 * q_stride, q_stride, ATT_BK, seq - i0, hd);
            att_tile_load(os, kh, ob + (long)i0 * H * hd, (long)H * hd, ATT_BK, seq - i0, hd);
            if (threadIdx.x < ATT_BK) {
                const int i = i0 + threadIdx.x;
                ls[threadIdx.x] = i < seq ? lse[srow + i] : -INFINITY;
                Ds[threadIdx.x] = i < seq ? Drow[srow + i] : 0.0f;
            }
            __syncthreads();
            const int i = i0 + lane; /* this lane's query */
            const float li = ls[lane], Di = Ds[lane];
            float s[ATT_R], dp[ATT_R];
#pragma unroll
            for (int r = 0; r < ATT_R; r++) s[r] = 0.0f, dp[r] = 0.0f;
            const float *qr = qs + lane * kh, *orow = os + lane * kh;
            for (int d = 0; d < hd; d += 4) {
                const float qd[4] = {qr[d], qr[d + 1], qr[d + 2], qr[d + 3]};
                const float od[4] = {orow[d], orow[d + 1], orow[d + 2], orow[d + 3]};
#pragma unroll
                for (int r = 0; r < ATT_R; r++) {
                    const int row = (w * ATT_R + r) * hd + d;
                    s[r] = att_dot4(s[r], *(const float4 *)(ks + row), qd);
                    dp[r] = att_dot4(dp[r], *(const float4 *)(vs + row), od);
                }
            }
            float p[ATT_R], ds[ATT_R];
#pragma unroll
            for (int r = 0; r < ATT_R; r++) {
                const int j = k0 + w * ATT_R + r;
                const bool ok = ((kval >> r) & 1u) && li != -INFINITY && (!causal || j <= i);
                p[r] = ok ? expf(s[r] * scale - li) : 0.0f;
                ds[r] = p[r] * (dp[r] - Di);
            }
            /* dV += P^T dO, dK += dS^T Q: query ii's p and dS by shuffle */
            for (int ii = 0; ii < ATT_BK; ii++) {
                float qq[NC], oo[NC];
#pragma unroll
                for (int c = 0; c < NC; c++) {
                    const int d = lane + 32 * c;
                    qq[c] = d < hd ? qs[ii * kh + d] : 0.0f;
                    oo[c] = d < hd ? os[ii * kh + d] : 0.0f;
                }
#pragma unroll
                for (int r = 0; r < ATT_R; r++) {
                    const float pj = __shfl_sync(ATT_FULL, p[r], ii);
                    const float dsj = __shfl_sync(ATT_FULL, ds[r], ii);
#pragma unroll
                    for (int c = 0; c < NC; c++) {
                        dva[r][c] = fmaf(pj, oo[c], dva[r][c]);
                        dka[r][c] = fmaf(dsj, qq[c], dka[r][c]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ATT_R; r++) {
        const int j = k0 + w * ATT_R + r;
        if (j >= seq) continue;
        const long row = ((long)b * seq + j) * kv_stride + (long)g * hd;
#pragma unroll
        for (int c = 0; c < NC; c++) {
            const int d = lane + 32 * c;
            if (d < hd) {
                st(dk, row + d, dka[r][c] * scale);
                st(dv, row + d, dva[r][c]);
            }
        }
    }
}

/* Dynamic shared memory per kernel (bytes), for head size hd. */
static size_t att_fwd_smem(int hd) {
    return sizeof(float) * (ATT_ROWS * hd + 2 * ATT_BK * (hd + 1));
}
static size_t att_dq_smem(int hd) {
    return sizeof(float) * (2 * ATT_ROWS * hd + 2 * ATT_BK * (hd + 1));
}
static size_t att_dkdv_smem(int hd) {
    return sizeof(float) * (2 * ATT_ROWS * hd + 2 * ATT_BK * (hd + 1) + 2 * ATT_BK);
}

/* Over 48 KiB of dynamic shared memory needs the kernel's opt-in. */
template <typename K> static moe_status att_allow_smem(K *kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        MOE_CUDA_TRY(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return MOE_OK;
}

static moe_status att_check(const char *fn, int B, int T, int H, int KVH, int hd, int q_stride,
                            int kv_stride) {
    MOE_CUDA_REQUIRE(B >= 0 && T >= 0 && B <= 65535, fn);
    MOE_CUDA_REQUIRE(H >= 1 && KVH >= 1 && H <= 65535 && H % KVH == 0, fn);
    MOE_CUDA_REQUIRE(hd >= 8 && hd <= 128 && hd % 8 == 0, fn);
    MOE_CUDA_REQUIRE(q_stride >= H * hd && kv_stride >= KVH * hd, fn);
    return MOE_OK;
}

template <typename T, int NC>
static moe_status att_forward_launch(moe_cuda *ctx, void *out, float *lse, const void *q,
                                     const void *k, const void *v, const uint8_t *pad_mask, int B,
                                     int T_, int H, int KVH, int hd, int q_stride, int kv_stride,
                                     int causal) {
    const size_t smem = att_fwd_smem(hd);
    moe_status st = att_allow_smem(attention_forward_kernel<T, NC>, smem);
    if (st != MOE_OK) return st;
    dim3 grid(moe_cuda_blocks(T_, ATT_ROWS), H, B);
    MOE_LAUNCH((attention_forward_kernel<T, NC>), grid, ATT_THREADS, smem, ctx->stream, (T *)out,
               lse, (const T *)q, (const T *)k, (const T *)v, pad_mask, T_, H, KVH, hd, q_stride,
               kv_stride, causal, (float)(1.0 / sqrt((double)hd)));
    MOE_CUDA_LAUNCHED("attention_forward_kernel");
    return MOE_OK;
}

template <typename T>
static moe_status att_forward_nc(moe_cuda *ctx, void *out, float *lse, const void *q, const void *k,
                                 const void *v, const uint8_t *pad_mask, int B, int T_, int H,
                                 int KVH, int hd, int q_stride, int kv_stride, int causal) {
    switch ((hd + 31) / 32) {
    case 1:
        return att_forward_launch<T, 1>(ctx, out, lse, q, k, v, pad_mask, B, T_, H, KVH, hd,
                                        q_stride, kv_stride, causal);
    case 2:
        return att_forward_launch<T, 2>(ctx, out, lse, q, k, v, pad_mask, B, T_, H, KVH, hd,
                                        q_stride, kv_stride, causal);
    case 3:
        return att_forward_launch<T, 3>(ctx, out, lse, q, k, v, pad_mask, B, T_, H, KVH, hd,
                                        q_stride, kv_stride, causal);
    default:
        return att_forward_launch<T, 4>(ctx, out, lse, q, k, v, pad_mask, B, T_, H, KVH, hd,
                                        q_stride, kv_stride, causal);
    }
}

moe_status moe_cuda_attention_forward(moe_cuda *ctx, moe_dtype dt, void *out, float *lse,
                                      const void *q, const void *k, const void *v,
                                      const uint8_t *pad_mask, int B, int T, int H, int KVH, int hd,
                                      int q_stride, int kv_stride, int causal) {
    moe_status st = att_check("moe_cuda_attention_forward", B, T, H, KVH, hd, q_stride, kv_stride);
    if (st != MOE_OK || B == 0 || T == 0) return st;
    MOE_DISPATCH_DT(dt, Ty,
                    st = att_forward_nc<Ty>(ctx, out, lse, q, k, v, pad_mask, B, T, H, KVH, hd,
                                            q_stride, kv_stride, causal););
    return st;
}

size_t moe_cuda_attention_scratch(int B, int T, int H, int KVH, int hd) {
    (void)KVH, (void)hd;
    return (size_t)B * T * H * sizeof(float); /* D [B,H,T] */
}

template <typename T, int NC>
static moe_status att_backward_launch(moe_cuda *ctx, void *dq, void *dk, void *dv, const void *dout,
                                      const void *q, const void *k, const void *v, const float *lse,
                                      const float *Drow, const uint8_t *pad_mask, int B, int T_,
                                      int H, int KVH, int hd, int q_stride, int kv_stride,
                                      int causal) {
    const float scale = (float)(1.0 / sqrt((double)hd));
    const size_t dq_smem = att_dq_smem(hd), dkdv_smem = att_dkdv_smem(hd);
    moe_status st = att_allow_smem(attention_dq_kernel<T, NC>, dq_smem);
    if (st == MOE_OK) st = att_allow_smem(attention_dkdv_kernel<T, NC>, dkdv_smem);
    if (st != MOE_OK) return st;
    dim3 qgrid(moe_cuda_blocks(T_, ATT_ROWS), H, B);
    MOE_LAUNCH((attention_dq_kernel<T, NC>), qgrid, ATT_THREADS, dq_smem, ctx->stream, (T *)dq,
               (const T *)dout, (const T *)q, (const T *)k, (const T *)v, lse, Drow, pad_mask, T_,
               H, KVH, hd, q_stride, kv_stride, causal, scale);
    MOE_CUDA_LAUNCHED("attention_dq_kernel");
    dim3 kgrid(moe_cuda_blocks(T_, ATT_ROWS), KVH, B);
    MOE_LAUNCH((attention_dkdv_kernel<T, NC>), kgrid, ATT_THREADS, dkdv_smem, ctx->stream, (T *)dk,
               (T *)dv, (const T *)dout, (const T *)q, (const T *)k, (const T *)v, lse, Drow,
               pad_mask, T_, H, KVH, hd, q_stride, kv_stride, causal, scale);
    MOE_CUDA_LAUNCHED("attention_dkdv_kernel");
    return MOE_OK;
}

template <typename T>
static moe_status att_backward_nc(moe_cuda *ctx, void *dq, void *dk, void *dv, const void *dout,
                                  const void *out, const void *q, const void *k, const void *v,
                                  const float *lse, const uint8_t *pad_mask, int B, int T_, int H,
                                  int KVH, int hd, int q_stride, int kv_stride, int causal,
                                  float *Drow) {
    const long rows = (long)B * T_ * H;
    MOE_LAUNCH(attention_rowdot_kernel<T>, moe_cuda_blocks(rows, ATT_WARPS), ATT_THREADS, 0,
               ctx->stream, Drow, (const T *)dout, (const T *)out, rows, T_, H, hd);
    MOE_CUDA_LAUNCHED("attention_rowdot_kernel");
    switch ((hd + 31) / 32) {
    case 1:
        return att_backward_launch<T, 1>(ctx, dq, dk, dv, dout, q, k, v, lse, Drow, pad_mask, B, T_,
                                         H, KVH, hd, q_stride, kv_stride, causal);
    case 2:
        return att_backward_launch<T, 2>(ctx, dq, dk, dv, dout, q, k, v, lse, Drow, pad_mask, B, T_,
                                         H, KVH, hd, q_stride, kv_stride, causal);
    case 3:
        return att_backward_launch<T, 3>(ctx, dq, dk, dv, dout, q, k, v, lse, Drow, pad_mask, B, T_,
                                         H, KVH, hd, q_stride, kv_stride, causal);
    default:
        return att_backward_launch<T, 4>(ctx, dq, dk, dv, dout, q, k, v, lse, Drow, pad_mask, B, T_,
                                         H, KVH, hd, q_stride, kv_stride, causal);
    }
}

moe_status moe_cuda_attention_backward(moe_cuda *ctx, moe_dtype dt, void *dq, void *dk, void *dv,
                                       const void *dout, const void *out, const void *q,
                                       const void *k, const void *v, const float *lse,
                                       const uint8_t *pad_mask, int B, int T, int H, int KVH,
                                       int hd, int q_stride, int kv_stride, int causal,
                                       void *scratch) {
    moe_status st = att_check("moe_cuda_attention_backward", B, T, H, KVH, hd, q_stride, kv_stride);
    if (st != MOE_OK || B == 0 || T == 0) return st;
    MOE_CUDA_REQUIRE(scratch != NULL, "moe_cuda_attention_backward");
    MOE_DISPATCH_DT(dt, Ty,
                    st = att_backward_nc<Ty>(ctx, dq, dk, dv, dout, out, q, k, v, lse, pad_mask, B,
                                             T, H, KVH, hd, q_stride, kv_stride, causal,
                                             (float *)scratch););
    return st;
}
