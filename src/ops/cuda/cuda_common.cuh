/* What every CUDA source shares: the context's fields, error checks that
 * turn a CUDA or cuBLAS failure into a moe_status with a message, and
 * loads/stores that read fp32 or bf16 as float (all arithmetic is fp32). */
#ifndef MOE_CUDA_COMMON_CUH
#define MOE_CUDA_COMMON_CUH

#include "ops/cuda/cuda_ops.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

struct moe_cuda {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *workspace; /* cuBLAS workspace, workspace_bytes */
    size_t workspace_bytes;
    cudaDeviceProp prop;
};

/* A failed CUDA runtime call: a message naming what was called. */
moe_status moe_cuda_fail(cudaError_t e, const char *what, const char *file, int line);
moe_status moe_cublas_fail(cublasStatus_t s, const char *what, const char *file, int line);

#define MOE_CUDA_TRY(call)                                                                         \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) return moe_cuda_fail(e_, #call, __FILE__, __LINE__);                \
    } while (0)
#define MOE_CUBLAS_TRY(call)                                                                       \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) return moe_cublas_fail(s_, #call, __FILE__, __LINE__);    \
    } while (0)
/* After every kernel launch: a bad configuration or an earlier fault. */
#define MOE_CUDA_LAUNCHED(kernel_name)                                                             \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess) return moe_cuda_fail(e_, kernel_name, __FILE__, __LINE__);          \
    } while (0)

/* A kernel launch, kernel<<<grid, block, smem, stream>>>(args...). A kernel
 * whose template arguments contain commas goes in parentheses. Under the
 * host simulator (tests/sim/cuda_sim.h, MOE_CUDA_SIM) the kernel runs on
 * host fibers instead. */
#ifdef MOE_CUDA_SIM
#define MOE_LAUNCH(kernel, grid, block, smem, stream, ...)                                         \
    moe_sim_launch((const void *)&kernel, dim3(grid), dim3(block), (smem), (stream),               \
                   [&] { kernel(__VA_ARGS__); })
/* The dynamic shared memory of a launch, as an array of type. */
#define MOE_DYNAMIC_SMEM(type, name) type *const name = (type *)moe_sim_dynamic_smem()
#else
#define MOE_LAUNCH(kernel, grid, block, smem, stream, ...)                                         \
    kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define MOE_DYNAMIC_SMEM(type, name) extern __shared__ type name[]
#endif

/* Launcher argument checks: the message names the launcher and the value. */
#define MOE_CUDA_REQUIRE(cond, fn)                                                                 \
    do {                                                                                           \
        if (!(cond)) return moe_error(MOE_ERR_INVALID, "%s: requires %s", fn, #cond);              \
    } while (0)

/* Element access in the activation type. */
template <typename T> __device__ __forceinline__ float ld(const T *p, long i);
template <> __device__ __forceinline__ float ld<float>(const float *p, long i) {
    return p[i];
}
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16 *p, long i) {
    return __bfloat162float(p[i]);
}
template <typename T> __device__ __forceinline__ void st(T *p, long i, float v);
template <> __device__ __forceinline__ void st<float>(float *p, long i, float v) {
    p[i] = v;
}
template <> __device__ __forceinline__ void st<__nv_bfloat16>(__nv_bfloat16 *p, long i, float v) {
    p[i] = __float2bfloat16_rn(v);
}

/* Calls body.template operator()<T>() with T = float or __nv_bfloat16 for dt:
 * one launcher serves both types without a switch in every file. */
#define MOE_DISPATCH_DT(dt, T, ...)                                                                \
    do {                                                                                           \
        if ((dt) == MOE_DT_F32) {                                                                  \
            typedef float T;                                                                       \
            __VA_ARGS__                                                                            \
        } else {                                                                                   \
            typedef __nv_bfloat16 T;                                                               \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)

/* Blocks needed to cover n items with threads per block. */
static inline unsigned moe_cuda_blocks(long n, int threads) {
    return (unsigned)((n + threads - 1) / threads);
}

/* Warp-wide sum and max (all 32 lanes active). */
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum and max of a 1-D block (blockDim.x a multiple of 32, at
 * most 1024). Every thread of the block must call them (they contain
 * __syncthreads) and every thread gets the result; sh is __shared__ scratch of
 * 32 elements, reusable by the next call. The order of the additions is fixed
 * by the block size, so results are deterministic. */
__device__ __forceinline__ float block_sum(float v, float *sh) {
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read by the previous call */
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? sh[threadIdx.x & 31] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *sh) {
    v = warp_max(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? sh[threadIdx.x & 31] : -INFINITY;
    return warp_max(v);
}
/* The same sum in double, for long reductions (losses, sums of squares). */
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double block_sum_d(double v, double *sh) {
    v = warp_sum_d(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? sh[threadIdx.x & 31] : 0.0;
    return warp_sum_d(v);
}

#endif
