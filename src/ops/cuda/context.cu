/* The CUDA context: device choice, stream, cuBLAS handles and workspace, and
 * the error messages every launcher returns. */
#include "ops/cuda/cuda_common.cuh"

#include <stdio.h>
#include <stdlib.h>

/* cuBLASLt's recommended workspace on Hopper is 32 MiB. */
#define MOE_CUBLAS_WORKSPACE (32u << 20)

moe_status moe_cuda_fail(cudaError_t e, const char *what, const char *file, int line) {
    /* A failed runtime call also leaves its error as the thread's last error:
     * clear it (when not sticky), or the next launch check reports it again. */
    cudaGetLastError();
    return moe_error(e == cudaErrorMemoryAllocation ? MOE_ERR_NOMEM : MOE_ERR_UNSUPPORTED,
                     "CUDA: %s failed: %s (%s) at %s:%d", what, cudaGetErrorName(e),
                     cudaGetErrorString(e), file, line);
}

moe_status moe_cublas_fail(cublasStatus_t s, const char *what, const char *file, int line) {
    return moe_error(s == CUBLAS_STATUS_ALLOC_FAILED ? MOE_ERR_NOMEM : MOE_ERR_UNSUPPORTED,
                     "cuBLAS: %s failed: %s (%s) at %s:%d", what, cublasGetStatusName(s),
                     cublasGetStatusString(s), file, line);
}

int moe_cuda_device_count(char *why, size_t n) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        if (why) snprintf(why, n, "%s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
        cudaGetLastError(); /* clear it: it is an answer, not a fault */
        return 0;
    }
    if (count == 0 && why) snprintf(why, n, "the driver reports no CUDA device");
    return count;
}

void moe_cuda_destroy(moe_cuda *ctx) {
    if (!ctx) return;
    if (ctx->lt) cublasLtDestroy(ctx->lt);
    if (ctx->blas) cublasDestroy(ctx->blas);
    if (ctx->workspace) cudaFree(ctx->workspace);
    if (ctx->stream) cudaStreamDestroy(ctx->stream);
    free(ctx);
}

moe_status moe_cuda_create(moe_cuda **out, int device) {
    *out = NULL;
    char why[200];
    int count = moe_cuda_device_count(why, sizeof why);
    if (count == 0) return moe_error(MOE_ERR_UNSUPPORTED, "no CUDA device: %s", why);
    if (device < 0 || device >= count)
        return moe_error(MOE_ERR_INVALID, "CUDA device %d does not exist (this machine has %d)",
                         device, count);
    moe_cuda *ctx = (moe_cuda *)calloc(1, sizeof *ctx);
    if (!ctx) return moe_error(MOE_ERR_NOMEM, "CUDA context: out of host memory");
    ctx->device = device;
    moe_status st = MOE_OK;
#define TRY_OR_CLEAN(expr)                                                                         \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != MOE_OK) {                                                                        \
            moe_cuda_destroy(ctx);                                                                 \
            return st;                                                                             \
        }                                                                                          \
    } while (0)
    TRY_OR_CLEAN([&]() -> moe_status {
        MOE_CUDA_TRY(cudaSetDevice(device));
        MOE_CUDA_TRY(cudaGetDeviceProperties(&ctx->prop, device));
        MOE_CUDA_TRY(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
        MOE_CUBLAS_TRY(cublasCreate(&ctx->blas));
        MOE_CUBLAS_TRY(cublasLtCreate(&ctx->lt));
        MOE_CUBLAS_TRY(cublasSetStream(ctx->blas, ctx->stream));
        ctx->workspace_bytes = MOE_CUBLAS_WORKSPACE;
        MOE_CUDA_TRY(cudaMalloc(&ctx->workspace, ctx->workspace_bytes));
        MOE_CUBLAS_TRY(cublasSetWorkspace(ctx->blas, ctx->workspace, ctx->workspace_bytes));
        /* Launchers that take stream-ordered scratch (cudaMallocAsync: norm
         * gradients, sums of squares) reuse the pool's memory instead of
         * returning it to the driver at every synchronisation. */
        cudaMemPool_t pool;
        MOE_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, device));
        uint64_t keep = UINT64_MAX;
        MOE_CUDA_TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
        /* fp32 GEMMs stay fp32 (no TF32), so they match the CPU reference. */
        MOE_CUBLAS_TRY(cublasSetMathMode(ctx->blas, CUBLAS_DEFAULT_MATH));
        return MOE_OK;
    }());
#undef TRY_OR_CLEAN
    *out = ctx;
    return MOE_OK;
}

static void describe(const cudaDeviceProp *p, char *buf, size_t n) {
    snprintf(buf, n, "%s, sm_%d%d, %d SMs, %.1f GiB", p->name, p->major, p->minor,
             p->multiProcessorCount, (double)p->totalGlobalMem / (1u << 30));
}

void moe_cuda_describe(const moe_cuda *ctx, char *buf, size_t n) {
    describe(&ctx->prop, buf, n);
}

moe_status moe_cuda_device_describe(int device, char *buf, size_t n) {
    cudaDeviceProp prop;
    MOE_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
    describe(&prop, buf, n);
    return MOE_OK;
}

const char *moe_cuda_runtime_string(void) {
    static char version[16];
    int v = CUDART_VERSION; /* the runtime linked in, as compiled */
    snprintf(version, sizeof version, "%d.%d", v / 1000, (v % 1000) / 10);
    return version;
}

void *moe_cuda_stream(moe_cuda *ctx) {
    return (void *)ctx->stream;
}

moe_status moe_cuda_sync(moe_cuda *ctx) {
    MOE_CUDA_TRY(cudaStreamSynchronize(ctx->stream));
    MOE_CUDA_TRY(cudaGetLastError());
    return MOE_OK;
}
