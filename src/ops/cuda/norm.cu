/* LayerNorm and RMSNorm, forward and backward (layernorm.c and rmsnorm.c on
 * the GPU). Rows are normalised by one warp each (fp32 statistics, two passes
 * for the variance). The weight and bias gradients are column sums over the
 * rows: each block sums a strip of rows into a partial row of a temporary
 * buffer (cudaMallocAsync on the context's stream: stream-ordered, no host
 * sync), then one thread per column adds the partials in strip order. No
 * atomics: the result is deterministic. */
#include "ops/cuda/cuda_common.cuh"

#define NORM_ROWS_PER_BLOCK 8 /* warps per block in the row kernels */
#define NORM_STRIP_ROWS 64    /* rows per strip in the column sums (at least) */
#define NORM_MAX_STRIPS 512   /* strips at most: bounds the temporary buffer */

/* out [N,C] = (x - mean) * rstd * weight + bias (mean 0 and no bias for
 * RMSNorm, where rstd = 1/sqrt(mean(x^2) + eps)); mean [N] (LayerNorm only)
 * and rstd [N] saved. Block (32, 8): one warp per row, lanes stride the row. */
template <typename T, bool RMS>
__global__ void norm_forward_kernel(T *out, float *mean, float *rstd, const T *inp,
                                    const float *weight, const float *bias, int N, int C,
                                    float eps) {
    int row = blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= N) return; /* the whole warp leaves: row is the same on every lane */
    int lane = threadIdx.x;
    const T *x = inp + (long)row * C;
    T *o = out + (long)row * C;
    float m = 0;
    if (!RMS) {
        float s = 0;
        for (int i = lane; i < C; i += 32) s += ld(x, i);
        m = warp_sum(s) / C;
    }
    float v = 0;
    for (int i = lane; i < C; i += 32) {
        float d = ld(x, i) - m;
        v += d * d;
    }
    float r = 1.0f / sqrtf(warp_sum(v) / C + eps);
    for (int i = lane; i < C; i += 32) {
        float y = (ld(x, i) - m) * r * weight[i];
        st(o, i, bias ? y + bias[i] : y);
    }
    if (lane == 0) {
        if (!RMS) mean[row] = m;
        rstd[row] = r;
    }
}

/* dinp [N,C] written. With dn = weight * dout and norm = (x - mean) * rstd:
 * LayerNorm: dinp = rstd * (dn - mean(dn) - norm * mean(dn * norm));
 * RMSNorm:   dinp = rstd * dn - x * rstd^3 * mean(dn * x).
 * Block (32, 8): one warp per row. */
template <typename T, bool RMS>
__global__ void norm_backward_kernel(T *dinp, const T *dout, const T *inp, const float *weight,
                                     const float *mean, const float *rstd, int N, int C) {
    int row = blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= N) return;
    int lane = threadIdx.x;
    long off = (long)row * C;
    const T *x = inp + off, *g = dout + off;
    T *dx = dinp + off;
    float m = RMS ? 0.0f : mean[row], s = rstd[row];
    float a = 0, b = 0;
    /* dn = w * g rounded (__fmul_rn: no fused multiply-add), the same value
     * in both loops, so dn - mean(dn) is exactly 0 when C = 1 */
    for (int i = lane; i < C; i += 32) {
        float dn = __fmul_rn(weight[i], ld(g, i));
        if (!RMS) a += dn;
        b += dn * (ld(x, i) - m);
    }
    if (RMS) {
        float k = warp_sum(b) * s * s * s / C;
        for (int i = lane; i < C; i += 32) st(dx, i, s * weight[i] * ld(g, i) - ld(x, i) * k);
    } else {
        a = warp_sum(a) / C;
        b = warp_sum(b) * s / C; /* mean(dn * norm) */
        for (int i = lane; i < C; i += 32) {
            float norm = (ld(x, i) - m) * s;
            st(dx, i, (__fmul_rn(weight[i], ld(g, i)) - a - norm * b) * s);
        }
    }
}

/* Partial column sums over one strip of rows: part [2, S, C] gets, for strip
 * blockIdx.y, sum of dout * (x - mean) * rstd (dweight) and of dout (dbias,
 * when has_bias). mean NULL: RMSNorm. Block (32, 8): 32 columns, 8 row lanes
 * that stride the strip; the 8 lanes are added in order in shared memory. */
template <typename T>
__global__ void norm_param_partial_kernel(float *part, const T *dout, const T *inp,
                                          const float *mean, const float *rstd, int N, int C,
                                          int rows_per_strip, int has_bias) {
    __shared__ float sw[8][33], sb[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    long r0 = (long)blockIdx.y * rows_per_strip;
    long r1 = min((long)N, r0 + rows_per_strip);
    float dw = 0, db = 0;
    if (col < C)
        for (long r = r0 + threadIdx.y; r < r1; r += 8) {
            long i = r * C + col;
            float g = ld(dout, i);
            float m = mean ? mean[r] : 0.0f;
            dw += g * (ld(inp, i) - m) * rstd[r];
            db += g;
        }
    sw[threadIdx.y][threadIdx.x] = dw;
    sb[threadIdx.y][threadIdx.x] = db;
    __syncthreads();
    if (threadIdx.y == 0 && col < C) {
        for (int y = 1; y < 8; y++) {
            dw += sw[y][threadIdx.x];
            db += sb[y][threadIdx.x];
        }
        long S = gridDim.y;
        part[(long)blockIdx.y * C + col] = dw;
        if (has_bias) part[(S + blockIdx.y) * C + col] = db;
    }
}

/* dweight [C] and dbias [C] (each skipped if NULL) += the S partials of each column,
 * in strip order. One thread per column. */
__global__ void norm_param_finish_kernel(float *dweight, float *dbias, const float *part, int S,
                                         int C) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= C) return;
    float dw = 0, db = 0;
    for (int s = 0; s < S; s++) dw += part[(long)s * C + col];
    if (dweight) dweight[col] += dw;
    if (dbias) {
        for (int s = 0; s < S; s++) db += part[((long)S + s) * C + col];
        dbias[col] += db;
    }
}

template <bool RMS>
static moe_status norm_forward(moe_cuda *ctx, moe_dtype dt, void *out, float *mean, float *rstd,
                               const void *inp, const float *weight, const float *bias, int N,
                               int C, float eps, const char *fn) {
    MOE_CUDA_REQUIRE(N >= 0 && C >= 1, fn);
    if (N == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(out && rstd && inp && weight && (RMS || mean), fn);
    dim3 threads(32, NORM_ROWS_PER_BLOCK);
    unsigned blocks = moe_cuda_blocks(N, NORM_ROWS_PER_BLOCK);
    MOE_DISPATCH_DT(dt, T,
                    MOE_LAUNCH((norm_forward_kernel<T, RMS>), blocks, threads, 0, ctx->stream,
                               (T *)out, mean, rstd, (const T *)inp, weight, bias, N, C, eps););
    MOE_CUDA_LAUNCHED(RMS ? "rmsnorm_forward_kernel" : "layernorm_forward_kernel");
    return MOE_OK;
}

/* The parameter gradients of either norm (mean NULL: RMSNorm). */
static moe_status norm_param_grads(moe_cuda *ctx, moe_dtype dt, float *dweight, float *dbias,
                                   const void *dout, const void *inp, const float *mean,
                                   const float *rstd, int N, int C) {
    int S = (N + NORM_STRIP_ROWS - 1) / NORM_STRIP_ROWS;
    if (S > NORM_MAX_STRIPS) S = NORM_MAX_STRIPS;
    int rows_per_strip = (int)(((long)N + S - 1) / S);
    float *part = NULL;
    size_t bytes = (size_t)(dbias ? 2 : 1) * S * C * sizeof(float);
    cudaError_t e = cudaMallocAsync((void **)&part, bytes, ctx->stream);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* not sticky: clear it for the next launch check */
        return moe_cuda_fail(e, "cudaMallocAsync (norm parameter gradients)", __FILE__, __LINE__);
    }
    dim3 threads(32, 8), grid(moe_cuda_blocks(C, 32), (unsigned)S);
    MOE_DISPATCH_DT(dt, T,
                    MOE_LAUNCH(norm_param_partial_kernel<T>, grid, threads, 0, ctx->stream, part,
                               (const T *)dout, (const T *)inp, mean, rstd, N, C, rows_per_strip,
                               dbias != NULL););
    e = cudaGetLastError();
    if (e == cudaSuccess) {
        MOE_LAUNCH(norm_param_finish_kernel, moe_cuda_blocks(C, 256), 256, 0, ctx->stream, dweight,
                   dbias, part, S, C);
        e = cudaGetLastError();
    }
    cudaFreeAsync(part, ctx->stream); /* after the kernels, in stream order */
    if (e != cudaSuccess)
        return moe_cuda_fail(e, "norm_param_partial/finish_kernel", __FILE__, __LINE__);
    return MOE_OK;
}

template <bool RMS>
static moe_status norm_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, float *dweight,
                                float *dbias, const void *dout, const void *inp,
                                const float *weight, const float *mean, const float *rstd, int N,
                                int C, const char *fn) {
    MOE_CUDA_REQUIRE(N >= 0 && C >= 1, fn);
    if (N == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(dinp && dout && inp && weight && rstd && (RMS || mean), fn);
    dim3 threads(32, NORM_ROWS_PER_BLOCK);
    unsigned blocks = moe_cuda_blocks(N, NORM_ROWS_PER_BLOCK);
    MOE_DISPATCH_DT(dt, T,
                    MOE_LAUNCH((norm_backward_kernel<T, RMS>), blocks, threads, 0, ctx->stream,
                               (T *)dinp, (const T *)dout, (const T *)inp, weight, mean, rstd, N,
                               C););
    MOE_CUDA_LAUNCHED(RMS ? "rmsnorm_backward_kernel" : "layernorm_backward_kernel");
    if (!dweight && !dbias) return MOE_OK;
    return norm_param_grads(ctx, dt, dweight, dbias, dout, inp, RMS ? NULL : mean, rstd, N, C);
}

moe_status moe_cuda_layernorm_forward(moe_cuda *ctx, moe_dtype dt, void *out, float *mean,
                                      float *rstd, const void *inp, const float *weight,
                                      const float *bias, int N, int C, float eps) {
    return norm_forward<false>(ctx, dt, out, mean, rstd, inp, weight, bias, N, C, eps,
                               "moe_cuda_layernorm_forward");
}

moe_status moe_cuda_layernorm_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, float *dweight,
                                       float *dbias, const void *dout, const void *inp,
                                       const float *weight, const float *mean, const float *rstd,
                                       int N, int C) {
    return norm_backward<false>(ctx, dt, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C,
                                "moe_cuda_layernorm_backward");
}

moe_status moe_cuda_rmsnorm_forward(moe_cuda *ctx, moe_dtype dt, void *out, float *rstd,
                                    const void *inp, const float *weight, int N, int C, float eps) {
    return norm_forward<true>(ctx, dt, out, NULL, rstd, inp, weight, NULL, N, C, eps,
                              "moe_cuda_rmsnorm_forward");
}

moe_status moe_cuda_rmsnorm_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, float *dweight,
                                     const void *dout, const void *inp, const float *weight,
                                     const float *rstd, int N, int C) {
    return norm_backward<true>(ctx, dt, dinp, dweight, NULL, dout, inp, weight, NULL, rstd, N, C,
                               "moe_cuda_rmsnorm_backward");
}
