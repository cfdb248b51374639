/* Device memory: allocation, copies on the context's stream, casts between
 * fp32 and bf16, and the host-side bf16 conversions. */
#include "ops/cuda/cuda_common.cuh"

moe_status moe_cuda_alloc(moe_cuda *ctx, void **ptr, size_t bytes) {
    (void)ctx;
    *ptr = NULL;
    cudaError_t e = cudaMalloc(ptr, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return moe_error(MOE_ERR_NOMEM, "CUDA: cannot allocate %.1f MiB of device memory: %s",
                         (double)bytes / (1u << 20), cudaGetErrorString(e));
    }
    return MOE_OK;
}

void moe_cuda_free(moe_cuda *ctx, void *ptr) {
    (void)ctx;
    if (ptr) cudaFree(ptr);
}

moe_status moe_cuda_upload(moe_cuda *ctx, void *dst, const void *host_src, size_t bytes) {
    MOE_CUDA_TRY(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->stream));
    return MOE_OK;
}

moe_status moe_cuda_download(moe_cuda *ctx, void *host_dst, const void *src, size_t bytes) {
    MOE_CUDA_TRY(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    MOE_CUDA_TRY(cudaStreamSynchronize(ctx->stream));
    return MOE_OK;
}

moe_status moe_cuda_copy(moe_cuda *ctx, void *dst, const void *src, size_t bytes) {
    MOE_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
    return MOE_OK;
}

moe_status moe_cuda_zero(moe_cuda *ctx, void *ptr, size_t bytes) {
    MOE_CUDA_TRY(cudaMemsetAsync(ptr, 0, bytes, ctx->stream));
    return MOE_OK;
}

template <typename To, typename From>
__global__ void cast_kernel(To *out, const From *inp, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x)
        st(out, i, ld(inp, i));
}

moe_status moe_cuda_cast(moe_cuda *ctx, void *out, moe_dtype out_dt, const void *inp,
                         moe_dtype in_dt, long n) {
    MOE_CUDA_REQUIRE(n >= 0, "moe_cuda_cast");
    if (n == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(out != NULL && inp != NULL, "moe_cuda_cast");
    if (out_dt == in_dt) return moe_cuda_copy(ctx, out, inp, (size_t)n * moe_dtype_size(out_dt));
    unsigned blocks = moe_cuda_blocks(n, 256);
    if (blocks > 65535u * 8) blocks = 65535u * 8;
    if (out_dt == MOE_DT_BF16)
        MOE_LAUNCH((cast_kernel<__nv_bfloat16, float>), blocks, 256, 0, ctx->stream,
                   (__nv_bfloat16 *)out, (const float *)inp, n);
    else
        MOE_LAUNCH((cast_kernel<float, __nv_bfloat16>), blocks, 256, 0, ctx->stream, (float *)out,
                   (const __nv_bfloat16 *)inp, n);
    MOE_CUDA_LAUNCHED("cast_kernel");
    return MOE_OK;
}
