/* Token embedding (embedding.c on the GPU): a row gather forward, a row
 * scatter-add backward. */
#include "ops/cuda/cuda_common.cuh"

#define EMB_THREADS 256
#define EMB_MAX_BLOCKS (65535u * 8)

/* out [N,C] = table rows ids [N]. One thread per output element (grid-stride). */
template <typename T>
__global__ void embedding_forward_kernel(T *out, const int32_t *ids, const T *table, int N, int C) {
    long n = (long)N * C;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        long row = i / C, col = i - row * C;
        out[i] = table[(long)ids[row] * C + col];
    }
}

/* dtable [V,C] (fp32) += dout rows, one thread per dout element
 * (grid-stride). Repeated ids add into the same row: fp32 atomicAdd, so the
 * order of those additions (and the last bits of such rows) may differ from
 * run to run. A deterministic version would sort the ids first. */
template <typename T>
__global__ void embedding_backward_kernel(float *dtable, const T *dout, const int32_t *ids, int N,
                                          int C) {
    long n = (long)N * C;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        long row = i / C, col = i - row * C;
        atomicAdd(dtable + (long)ids[row] * C + col, ld(dout, i));
    }
}

static unsigned emb_blocks(long n) {
    unsigned blocks = moe_cuda_blocks(n, EMB_THREADS);
    return blocks > EMB_MAX_BLOCKS ? EMB_MAX_BLOCKS : blocks;
}

moe_status moe_cuda_embedding_forward(moe_cuda *ctx, moe_dtype dt, void *out, const int32_t *ids,
                                      const void *table, int N, int C) {
    MOE_CUDA_REQUIRE(N >= 0 && C >= 0, "moe_cuda_embedding_forward");
    long n = (long)N * C;
    if (n == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(out && ids && table, "moe_cuda_embedding_forward");
    MOE_DISPATCH_DT(dt, T,
                    MOE_LAUNCH(embedding_forward_kernel<T>, emb_blocks(n), EMB_THREADS, 0,
                               ctx->stream, (T *)out, ids, (const T *)table, N, C););
    MOE_CUDA_LAUNCHED("embedding_forward_kernel");
    return MOE_OK;
}

moe_status moe_cuda_embedding_backward(moe_cuda *ctx, moe_dtype dt, float *dtable, const void *dout,
                                       const int32_t *ids, int N, int C) {
    MOE_CUDA_REQUIRE(N >= 0 && C >= 0, "moe_cuda_embedding_backward");
    long n = (long)N * C;
    if (n == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(dtable && dout && ids, "moe_cuda_embedding_backward");
    MOE_DISPATCH_DT(dt, T,
                    MOE_LAUNCH(embedding_backward_kernel<T>, emb_blocks(n), EMB_THREADS, 0,
                               ctx->stream, dtable, (const T *)dout, ids, N, C););
    MOE_CUDA_LAUNCHED("embedding_backward_kernel");
    return MOE_OK;
}
