/* cuda_sim: runs the CUDA kernels of src/ops/cuda (.cu files) on the host, for
 * machines without a GPU. Each .cu file is compiled as C++17 by the host
 * compiler with this header included first (-include) and -DMOE_CUDA_SIM=1;
 * tests/sim/include/ holds empty stand-ins for the CUDA headers.
 *
 * Execution model. A launch runs its blocks one after another (blockIdx in
 * x, y, z order). The threads of a block are cooperative fibers (ucontext)
 * on the calling OS thread: a fiber runs until it reaches a barrier
 * (__syncthreads, or a warp barrier: __syncwarp, shuffles, votes, matches)
 * or returns. A barrier opens when every thread still running the block (or
 * lane still running the warp) has arrived, so threads that return early
 * never deadlock the others; a barrier no live thread can open (threads of a
 * warp waiting at different kinds of barrier) aborts with a message. Between
 * two barriers the fibers run in turn, alternately in ascending and
 * descending thread order, so that a missing barrier changes results.
 * __shared__ is `static` (one block at a time); tests/sim/rewrite.cmake
 * registers each such array, which is then poisoned (0xff) before every
 * block, as is the dynamic shared memory.
 * Host memory stands in for device memory; cuBLAS GEMMs are computed on the
 * host with fp32 accumulation.
 *
 * What it does not model (a pass here is not a proof):
 * - concurrency: one thread runs at a time and switches only at barriers,
 *   so a race between barriers gives one of its possible results (the
 *   visiting order varies, which exposes many but not all missing
 *   barriers); no memory model, no torn or reordered accesses; atomics are
 *   trivially atomic; blocks never overlap (a kernel relying on blocks
 *   running concurrently, or on their order, is not checked);
 * - barrier call sites: __syncthreads counts arrivals, it does not check that
 *   all threads wait at the same __syncthreads (a divergent barrier that the
 *   GPU would hang or mis-synchronise on can pass); the masks of *_sync
 *   intrinsics are ignored (every live lane of the warp takes part);
 * - arithmetic: the host's expf/erff/logf/sqrtf (glibc, correctly rounded or
 *   close; CUDA's are within their documented ulp bounds, so results differ
 *   in the last bits); no FMA contraction (nvcc contracts a*b+c by default;
 *   the kernels compiled here with -ffp-contract=off); wmma products are
 *   exact and summed in fp32 in k order, while tensor cores may round
 *   differently; cuBLAS's summation order differs;
 * - resources: registers, shared memory size limits (only the dynamic
 *   shared memory opt-in above 48 KiB is checked), occupancy, timing;
 * - faults: an out-of-bounds access is only caught by the host (a segfault,
 *   or ASan in the sanitizer build: cudaMalloc is malloc). */
#ifndef MOE_CUDA_SIM_H
#define MOE_CUDA_SIM_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

/* ---- qualifiers ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
#define CUDART_VERSION 13000

using std::max;
using std::min;

/* ---- vector types ---- */
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned x, y, z;
};
struct __align__(16) float4 {
    float x, y, z, w;
};
struct __align__(8) float2 {
    float x, y;
};
struct __align__(16) int4 {
    int x, y, z, w;
};
struct __align__(8) int2 {
    int x, y;
};

extern thread_local uint3 threadIdx, blockIdx;
extern thread_local dim3 blockDim, gridDim;

/* ---- bf16 ---- */
struct __nv_bfloat16;
static inline float __bfloat162float(__nv_bfloat16 h);
static inline __nv_bfloat16 __float2bfloat16_rn(float f);
/* Conversions to and from float as cuda_bf16.h has them (round to nearest
 * even); arithmetic goes through float. */
struct __nv_bfloat16 {
    uint16_t x;
    __nv_bfloat16() = default;
    inline __nv_bfloat16(float f);
    inline operator float() const;
    inline __nv_bfloat16 &operator+=(float v);
};
typedef __nv_bfloat16 nv_bfloat16;
static inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.x << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* Round to nearest even; NaN stays a (quiet) NaN: as moe_bf16_from_float. */
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        h.x = (uint16_t)((u >> 16) | 0x40);
        return h;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    h.x = (uint16_t)(u >> 16);
    return h;
}
inline __nv_bfloat16::__nv_bfloat16(float f) : x(__float2bfloat16_rn(f).x) {}
inline __nv_bfloat16::operator float() const {
    return __bfloat162float(*this);
}
inline __nv_bfloat16 &__nv_bfloat16::operator+=(float v) {
    return *this = __nv_bfloat16(__bfloat162float(*this) + v);
}
static inline __nv_bfloat16 __float2bfloat16(float f) {
    return __float2bfloat16_rn(f);
}

/* ---- arithmetic intrinsics (the host's fp32 arithmetic; no FMA contraction
 * is requested, so _rn operations are exactly the plain ones) ---- */
static inline float __fmul_rn(float a, float b) {
    return a * b;
}
static inline float __fadd_rn(float a, float b) {
    return a + b;
}
static inline float __fsub_rn(float a, float b) {
    return a - b;
}
static inline float __fdiv_rn(float a, float b) {
    return a / b;
}
static inline int __popc(unsigned x) {
    return __builtin_popcount(x);
}
static inline int __ffs(int x) {
    return __builtin_ffs(x);
}
static inline int __clz(int x) {
    return x == 0 ? 32 : __builtin_clz((unsigned)x);
}

/* ---- the fiber scheduler (tests/sim/cuda_sim.cpp) ---- */
struct moe_sim_barrier {
    int arrived;
    unsigned gen;
};
/* A warp of the running block: its barrier, its live and existing lanes
 * and the buffers shuffles exchange values through. */
struct moe_sim_warp {
    moe_sim_barrier bar;
    int live;
    int lanes; /* 32 but in a last, partial warp */
    unsigned char xchg[2][32 * 8];
};
/* The running simulated thread's warp and lane (set at every switch). */
extern thread_local moe_sim_warp *moe_sim_cur_warp;
extern thread_local int moe_sim_cur_lane;
void moe_sim_block_sync(void);
void moe_sim_warp_sync(void);
static inline int moe_sim_lane(void) {
    return moe_sim_cur_lane;
}
static inline int moe_sim_warp_lanes(void) {
    return moe_sim_cur_warp->lanes;
}
/* The warp barrier's generation: its parity picks the exchange buffer, so
 * one barrier per shuffle suffices (a lane can only reuse a buffer after
 * every lane has passed the barrier in between). */
static inline unsigned moe_sim_warp_gen(void) {
    return moe_sim_cur_warp->bar.gen;
}
static inline unsigned char *moe_sim_warp_xchg(unsigned buf) {
    return moe_sim_cur_warp->xchg[buf & 1];
}
void *moe_sim_dynamic_smem(void);
/* A static __shared__ array of the running kernel: poisoned now if new to
 * this launch, and before every later block (tests/sim/rewrite.cmake puts
 * the calls after the declarations). */
void moe_sim_shared(void *p, size_t bytes);
#define MOE_SIM_SHARED(a) moe_sim_shared((void *)(a), sizeof(a))

static inline void __syncthreads(void) {
    moe_sim_block_sync();
}
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)mask;
    moe_sim_warp_sync();
}
static inline void __threadfence(void) {}
static inline void __threadfence_block(void) {}

/* Every lane publishes v, the warp synchronises, each reads lane src's. */
template <typename T> static inline T moe_sim_shfl(T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffle of a type over 8 bytes");
    int lane = moe_sim_lane();
    /* the buffer of this barrier phase: its generation's parity */
    unsigned buf = moe_sim_warp_gen() & 1u;
    memcpy(moe_sim_warp_xchg(buf) + 8 * lane, &v, sizeof(T));
    moe_sim_warp_sync();
    T r;
    memcpy(&r, moe_sim_warp_xchg(buf) + 8 * (src & 31), sizeof(T));
    return r;
}
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    (void)mask;
    int lane = moe_sim_lane();
    return moe_sim_shfl(v, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int o, int width = 32) {
    (void)mask;
    (void)width;
    return moe_sim_shfl(v, moe_sim_lane() ^ o);
}
template <typename T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
    (void)mask;
    int lane = moe_sim_lane();
    int src = (lane % width) + (int)d < width ? lane + (int)d : lane;
    return moe_sim_shfl(v, src);
}
template <typename T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
    (void)mask;
    int lane = moe_sim_lane();
    int src = (lane % width) >= (int)d ? lane - (int)d : lane;
    return moe_sim_shfl(v, src);
}
/* Votes and matches: every live lane's value; lanes past the warp's end
 * (a partial warp) do not exist. */
template <typename T, typename F> static inline unsigned moe_sim_vote(T v, F same) {
    int lane = moe_sim_lane(), n = moe_sim_warp_lanes();
    unsigned buf = moe_sim_warp_gen() & 1u;
    long long w = 0;
    memcpy(&w, &v, sizeof(T));
    memcpy(moe_sim_warp_xchg(buf) + 8 * lane, &w, 8);
    moe_sim_warp_sync();
    unsigned m = 0;
    for (int l = 0; l < n; l++) {
        long long o;
        memcpy(&o, moe_sim_warp_xchg(buf) + 8 * l, 8);
        if (same(w, o)) m |= 1u << l;
    }
    return m;
}
static inline unsigned __ballot_sync(unsigned mask, int pred) {
    return moe_sim_vote(pred != 0, [](long long, long long o) { return o != 0; }) & mask;
}
static inline int __any_sync(unsigned mask, int pred) {
    return __ballot_sync(mask, pred) != 0;
}
static inline int __all_sync(unsigned mask, int pred) {
    return __ballot_sync(mask, pred) ==
           (mask & moe_sim_vote(1, [](long long, long long) { return true; }));
}
template <typename T> static inline unsigned __match_any_sync(unsigned mask, T v) {
    return moe_sim_vote(v, [](long long a, long long b) { return a == b; }) & mask;
}

/* ---- atomics: all fibers run on one OS thread, between barriers one at a
 * time, so a plain read-modify-write is atomic ---- */
template <typename T> static inline T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> static inline T atomicMax(T *p, T v) {
    T old = *p;
    if (v > old) *p = v;
    return old;
}
template <typename T> static inline T atomicMin(T *p, T v) {
    T old = *p;
    if (v < old) *p = v;
    return old;
}
template <typename T> static inline T atomicExch(T *p, T v) {
    T old = *p;
    *p = v;
    return old;
}
template <typename T> static inline T atomicCAS(T *p, T cmp, T v) {
    T old = *p;
    if (old == cmp) *p = v;
    return old;
}

/* ---- the CUDA runtime ---- */
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoDevice = 100,
    cudaErrorLaunchFailure = 719,
} cudaError_t;
typedef struct moe_sim_stream *cudaStream_t;
typedef struct moe_sim_event *cudaEvent_t;
typedef struct moe_sim_pool *cudaMemPool_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold = 4 };
#define cudaStreamNonBlocking 0x01
#define cudaStreamDefault 0x00
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    int regsPerBlock;
    int warpSize;
    int maxThreadsPerBlock;
    int maxThreadsDim[3];
    int maxGridSize[3];
    int major, minor;
    int multiProcessorCount;
    int maxThreadsPerMultiProcessor;
    size_t l2CacheSize;
};

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorName(cudaError_t e);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t s);
cudaError_t cudaFreeAsync(void *p, cudaStream_t s);
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st);
cudaError_t cudaMemset(void *d, int v, size_t n);
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags);
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *p, int d);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t p, cudaMemPoolAttr a, void *v);
cudaError_t moe_sim_func_set_attribute(const void *f, cudaFuncAttribute a, int v);
template <typename F>
static inline cudaError_t cudaFuncSetAttribute(F *f, cudaFuncAttribute a, int v) {
    return moe_sim_func_set_attribute((const void *)f, a, v);
}

/* ---- kernel launches: MOE_LAUNCH in cuda_common.cuh ---- */
struct moe_sim_body {
    void (*call)(void *);
    void *arg;
};
void moe_sim_launch_body(const void *kernel, dim3 grid, dim3 block, size_t smem, moe_sim_body b);
template <typename F>
static inline void moe_sim_launch(const void *kernel, dim3 grid, dim3 block, size_t smem,
                                  cudaStream_t stream, F f) {
    (void)stream;
    moe_sim_body b = {[](void *p) { (*(F *)p)(); }, (void *)&f};
    moe_sim_launch_body(kernel, grid, block, smem, b);
}

/* ---- cuBLAS ---- */
typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16BF = 14 } cudaDataType_t;
typedef cudaDataType_t cudaDataType;
typedef enum {
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
} cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
typedef enum {
    CUBLAS_DEFAULT_MATH = 0,
    CUBLAS_TF32_TENSOR_OP_MATH = 3,
    CUBLAS_PEDANTIC_MATH = 2
} cublasMath_t;
typedef struct moe_sim_blas *cublasHandle_t;
typedef struct moe_sim_blaslt *cublasLtHandle_t;
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *w, size_t n);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h);
const char *cublasGetStatusName(cublasStatus_t s);
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType_t at,
                            int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta,
                            void *C, cudaDataType_t ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo);

/* ---- nvcuda::wmma, 16x16x16 bf16 -> fp32. The layout of a fragment is
 * opaque to kernels (they only fill, load, multiply and store), so here an
 * operand fragment holds the whole 16x16 tile in every lane and an
 * accumulator fragment holds 8 of the 256 results in each lane (lane l:
 * row l/2, columns 8(l%2)..+7). mma_sync computes each lane's 8 in fp32
 * (products of bf16 are exact in fp32; the sum order is k = 0..15). ---- */
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment;
template <typename Layout> struct fragment<matrix_a, 16, 16, 16, __nv_bfloat16, Layout> {
    float t[16][16];
};
template <typename Layout> struct fragment<matrix_b, 16, 16, 16, __nv_bfloat16, Layout> {
    float t[16][16];
};
template <> struct fragment<accumulator, 16, 16, 16, float, void> {
    static const int num_elements = 8;
    float x[8];
};
template <typename Use, typename Layout>
static inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout> &f,
                                    const __nv_bfloat16 *p, unsigned ld) {
    constexpr bool row = std::is_same<Layout, row_major>::value;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++)
            f.t[i][j] = __bfloat162float(row ? p[(long)i * ld + j] : p[(long)j * ld + i]);
}
static inline void fill_fragment(fragment<accumulator, 16, 16, 16, float, void> &f, float v) {
    for (int i = 0; i < 8; i++) f.x[i] = v;
}
template <typename LA, typename LB>
static inline void mma_sync(fragment<accumulator, 16, 16, 16, float, void> &d,
                            const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                            const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                            const fragment<accumulator, 16, 16, 16, float, void> &c) {
    int lane = moe_sim_lane(), i = lane / 2, j0 = (lane % 2) * 8;
    for (int q = 0; q < 8; q++) {
        float s = c.x[q];
        for (int k = 0; k < 16; k++) s += a.t[i][k] * b.t[k][j0 + q];
        d.x[q] = s;
    }
}
static inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float, void> &f,
                                    const float *p, unsigned ld, layout_t l) {
    int lane = moe_sim_lane(), i = lane / 2, j0 = (lane % 2) * 8;
    for (int q = 0; q < 8; q++)
        f.x[q] = l == mem_row_major ? p[(long)i * ld + j0 + q] : p[(long)(j0 + q) * ld + i];
}
static inline void store_matrix_sync(float *p,
                                     const fragment<accumulator, 16, 16, 16, float, void> &f,
                                     unsigned ld, layout_t l) {
    int lane = moe_sim_lane(), i = lane / 2, j0 = (lane % 2) * 8;
    for (int q = 0; q < 8; q++) {
        if (l == mem_row_major)
            p[(long)i * ld + j0 + q] = f.x[q];
        else
            p[(long)(j0 + q) * ld + i] = f.x[q];
    }
}
} // namespace wmma
} // namespace nvcuda

#endif
