/* cuda_sim: the scheduler of simulated kernel launches, the CUDA runtime
 * and the cuBLAS calls the backend uses, on the host (see cuda_sim.h). */
#include "cuda_sim.h"

#include <sys/mman.h>
#ifndef __x86_64__
#include <ucontext.h>
#endif

#include <chrono>
#include <map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define MOE_SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOE_SIM_ASAN 1
#endif
#endif
#ifdef MOE_SIM_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

thread_local uint3 threadIdx, blockIdx;
thread_local moe_sim_warp *moe_sim_cur_warp;
thread_local int moe_sim_cur_lane;
thread_local dim3 blockDim, gridDim;

/* Context switches between fibers. On x86-64 a switch saves the callee-saved
 * registers on the stack and swaps stack pointers (no signal-mask system
 * call, unlike swapcontext: most of the simulator's time is switches). */
#ifdef __x86_64__
extern "C" void moe_sim_switch(void **save_sp, void *to_sp);
asm(R"(
    .text
    .p2align 4
    .type moe_sim_switch, @function
moe_sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size moe_sim_switch, .-moe_sim_switch
)");
namespace {
struct Ctx {
    void *sp;
};
void ctx_switch(Ctx *save, Ctx *to) {
    moe_sim_switch(&save->sp, to->sp);
}
/* A fresh context that starts entry() on the stack [stack, stack + size). */
void ctx_init(Ctx *c, char *stack, size_t size, void (*entry)()) {
    void **sp = (void **)(((uintptr_t)(stack + size)) & ~(uintptr_t)15);
    *--sp = nullptr;                             /* entry() starts as if called: rsp = 8 mod 16 */
    *--sp = (void *)entry;                       /* the ret of moe_sim_switch goes there */
    for (int r = 0; r < 6; r++) *--sp = nullptr; /* rbp rbx r12-r15 */
    c->sp = sp;
}
} // namespace
#else
namespace {
typedef ucontext_t Ctx;
void ctx_switch(Ctx *save, Ctx *to) {
    swapcontext(save, to);
}
void ctx_init(Ctx *c, char *stack, size_t size, void (*entry)()) {
    getcontext(c);
    c->uc_stack.ss_sp = stack;
    c->uc_stack.ss_size = size;
    c->uc_link = nullptr;
    makecontext(c, entry, 0);
}
} // namespace
#endif

namespace {

constexpr size_t STACK = 256 << 10; /* per simulated thread */

struct Fiber {
    Ctx ctx;
    char *stack;
    unsigned tid;
    uint3 idx; /* threadIdx */
    int warp;
    bool done;
    moe_sim_barrier *wait; /* waiting until wait->gen != wait_gen */
    unsigned wait_gen;
};

typedef moe_sim_warp Warp;

struct Launch {
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    moe_sim_barrier block_bar;
    int block_live;
    Ctx sched;
    const void *sched_bottom; /* the scheduler's stack, for ASan */
    size_t sched_size;
    Fiber *cur;
    moe_sim_body body;
    unsigned char *dyn;
    std::vector<std::pair<void *, size_t>> shared; /* static __shared__ arrays seen */
};

thread_local Launch *g_launch;
thread_local cudaError_t g_last_error = cudaSuccess;
thread_local std::vector<char *> g_stacks;
std::map<const void *, int> g_max_dyn_smem;

void set_error(cudaError_t e) {
    if (g_last_error == cudaSuccess) g_last_error = e;
}

void set_thread_index(const Fiber *f) {
    threadIdx = f->idx;
    moe_sim_cur_warp = &g_launch->warps[f->warp];
    moe_sim_cur_lane = (int)(f->tid % 32);
}

/* Switches from fiber f back to the scheduler. */
void yield_to_scheduler(Fiber *f) {
#ifdef MOE_SIM_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, g_launch->sched_bottom, g_launch->sched_size);
#endif
    ctx_switch(&f->ctx, &g_launch->sched);
#ifdef MOE_SIM_ASAN
    __sanitizer_finish_switch_fiber(fake, &g_launch->sched_bottom, &g_launch->sched_size);
#endif
}

/* Arrives at b, which opens when `live` threads have arrived. */
void arrive(moe_sim_barrier *b, int live) {
    if (++b->arrived >= live) {
        b->arrived = 0;
        b->gen++;
        return;
    }
    Fiber *f = g_launch->cur;
    f->wait = b;
    f->wait_gen = b->gen;
    yield_to_scheduler(f);
    f->wait = nullptr;
}

/* A thread leaves the block: barriers waiting only for it open. */
void leave(Fiber *f) {
    Launch *L = g_launch;
    Warp &w = L->warps[f->warp];
    f->done = true;
    L->block_live--;
    w.live--;
    if (L->block_bar.arrived > 0 && L->block_bar.arrived >= L->block_live) {
        L->block_bar.arrived = 0;
        L->block_bar.gen++;
    }
    if (w.bar.arrived > 0 && w.bar.arrived >= w.live) {
        w.bar.arrived = 0;
        w.bar.gen++;
    }
}

void fiber_main() {
    Launch *L = g_launch;
#ifdef MOE_SIM_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &L->sched_bottom, &L->sched_size);
#endif
    Fiber *f = L->cur;
    L->body.call(L->body.arg);
    leave(f);
#ifdef MOE_SIM_ASAN
    __sanitizer_start_switch_fiber(nullptr, L->sched_bottom, L->sched_size);
#endif
    ctx_switch(&f->ctx, &L->sched); /* never resumed */
    abort();
}

char *stack_of(unsigned i) {
    while (g_stacks.size() <= i) {
        void *p = mmap(nullptr, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "cuda_sim: out of memory for thread stacks\n");
            abort();
        }
        g_stacks.push_back((char *)p);
    }
    return g_stacks[i];
}

void run_block(Launch *L, unsigned nthreads, size_t dyn_bytes) {
    /* poisoned shared memory, static and dynamic */
    for (auto &a : L->shared) memset(a.first, 0xff, a.second);
    if (dyn_bytes) memset(L->dyn, 0xff, dyn_bytes);
    L->block_bar = {0, 0};
    L->block_live = (int)nthreads;
    for (size_t w = 0; w < L->warps.size(); w++) {
        Warp &wp = L->warps[w];
        wp.bar = {0, 0};
        wp.lanes = (int)std::min(32u, nthreads - 32u * (unsigned)w);
        wp.live = wp.lanes;
    }
    for (unsigned t = 0; t < nthreads; t++) {
        Fiber &f = L->fibers[t];
        f.tid = t;
        f.idx.x = t % blockDim.x;
        f.idx.y = (t / blockDim.x) % blockDim.y;
        f.idx.z = t / (blockDim.x * blockDim.y);
        f.warp = (int)(t / 32);
        f.done = false;
        f.wait = nullptr;
        f.stack = stack_of(t);
        ctx_init(&f.ctx, f.stack, STACK, fiber_main);
    }
    unsigned done = 0;
    /* Each pass visits the threads from a pseudo-random start in a
     * pseudo-random direction (a fixed sequence: runs repeat), so which
     * thread opens a barrier and runs ahead of the others varies. */
    static thread_local uint64_t rng = 0x9e3779b97f4a7c15ull;
    unsigned start = 0;
    bool down = false;
    while (done < nthreads) {
        bool progress = false;
        for (unsigned k = 0, t = start; k < nthreads; k++, t = t + 1 == nthreads ? 0 : t + 1) {
            Fiber &f = L->fibers[down ? nthreads - 1 - t : t];
            if (f.done || (f.wait && f.wait->gen == f.wait_gen)) continue;
            L->cur = &f;
            set_thread_index(&f);
#ifdef MOE_SIM_ASAN
            void *fake = nullptr;
            __sanitizer_start_switch_fiber(&fake, f.stack, STACK);
#endif
            ctx_switch(&L->sched, &f.ctx);
#ifdef MOE_SIM_ASAN
            __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
            progress = true;
            if (f.done) done++;
        }
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        start = (unsigned)(rng >> 33) % nthreads;
        down = (rng >> 32) & 1;
        if (!progress) {
            fprintf(stderr,
                    "cuda_sim: deadlock in block (%u,%u,%u): the live threads wait at "
                    "barriers none of them can open (a warp split between __syncthreads and "
                    "a warp-level barrier?)\n",
                    blockIdx.x, blockIdx.y, blockIdx.z);
            abort();
        }
    }
}

} // namespace

void moe_sim_block_sync(void) {
    arrive(&g_launch->block_bar, g_launch->block_live);
}
void moe_sim_warp_sync(void) {
    arrive(&moe_sim_cur_warp->bar, moe_sim_cur_warp->live);
}
void moe_sim_shared(void *p, size_t bytes) {
    for (auto &a : g_launch->shared)
        if (a.first == p) return;
    g_launch->shared.emplace_back(p, bytes);
    memset(p, 0xff, bytes);
}
void *moe_sim_dynamic_smem(void) {
    return g_launch->dyn;
}
void moe_sim_launch_body(const void *kernel, dim3 grid, dim3 block, size_t smem, moe_sim_body b) {
    unsigned long nthreads = (unsigned long)block.x * block.y * block.z;
    if (nthreads == 0 || nthreads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 ||
        grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 ||
        grid.z > 65535) {
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    if (smem > 48 * 1024) {
        auto it = g_max_dyn_smem.find(kernel);
        if (it == g_max_dyn_smem.end() || (size_t)it->second < smem || smem > 227 * 1024) {
            set_error(cudaErrorInvalidValue);
            return;
        }
    }
    if (g_launch) {
        fprintf(stderr, "cuda_sim: a kernel launched from inside a kernel\n");
        abort();
    }
    Launch L;
    L.fibers.resize(nthreads);
    L.warps.resize((nthreads + 31) / 32);
    L.body = b;
    L.sched_bottom = nullptr;
    L.sched_size = 0;
    L.dyn = smem ? (unsigned char *)aligned_alloc(128, (smem + 127) / 128 * 128) : nullptr;
    g_launch = &L;
    gridDim = grid;
    blockDim = block;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx.x = x;
                blockIdx.y = y;
                blockIdx.z = z;
                run_block(&L, (unsigned)nthreads, smem);
            }
    g_launch = nullptr;
    free(L.dyn);
}

/* ---- runtime ---- */
cudaError_t moe_sim_func_set_attribute(const void *f, cudaFuncAttribute a, int v) {
    if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v < 0 || v > 227 * 1024) {
        set_error(cudaErrorInvalidValue);
        return cudaErrorInvalidValue;
    }
    g_max_dyn_smem[f] = v;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
    if (d != 0) {
        set_error(cudaErrorInvalidDevice);
        return cudaErrorInvalidDevice;
    }
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) {
        set_error(cudaErrorInvalidDevice);
        return cudaErrorInvalidDevice;
    }
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cuda_sim (host threads)");
    p->totalGlobalMem = (size_t)80 << 30;
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = 227 * 1024;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff;
    p->maxGridSize[1] = p->maxGridSize[2] = 65535;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 132;
    p->maxThreadsPerMultiProcessor = 2048;
    p->l2CacheSize = 50u << 20;
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last_error;
    g_last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) {
    return g_last_error;
}
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "cudaSuccess";
    case cudaErrorInvalidValue:
        return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
        return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
        return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice:
        return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice:
        return "cudaErrorNoDevice";
    case cudaErrorLaunchFailure:
        return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure:
        return "unspecified launch failure";
    }
    return "unknown error";
}
cudaError_t cudaMalloc(void **p, size_t n) {
    /* poisoned like fresh device memory would be garbage */
    *p = aligned_alloc(256, (n + 255) / 256 * 256 + 256);
    if (!*p) {
        set_error(cudaErrorMemoryAllocation);
        return cudaErrorMemoryAllocation;
    }
    memset(*p, 0xff, n);
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t) {
    return cudaMalloc(p, n);
}
cudaError_t cudaFreeAsync(void *p, cudaStream_t) {
    return cudaFree(p);
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) {
    if (n) memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t) {
    return cudaMemcpy(d, s, n, k);
}
cudaError_t cudaMemset(void *d, int v, size_t n) {
    if (n) memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) {
    return cudaMemset(d, v, n);
}
struct moe_sim_stream {
    int unused;
};
struct moe_sim_event {
    std::chrono::steady_clock::time_point t;
};
cudaError_t cudaStreamCreate(cudaStream_t *s) {
    *s = new moe_sim_stream();
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) {
    return cudaStreamCreate(s);
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new moe_sim_event();
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    e->t = std::chrono::steady_clock::now();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) {
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) {
    return cudaSuccess;
}
struct moe_sim_pool {
    int unused;
};
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *p, int) {
    static moe_sim_pool pool;
    *p = &pool;
    return cudaSuccess;
}
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void *) {
    return cudaSuccess;
}

/* ---- cuBLAS ---- */
struct moe_sim_blas {
    int unused;
};
struct moe_sim_blaslt {
    int unused;
};
cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new moe_sim_blas();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) {
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void *, size_t) {
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) {
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = new moe_sim_blaslt();
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasGetStatusName(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS:
        return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
        return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}
const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS:
        return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
        return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "the functionality requested is not supported";
    }
    return "unknown";
}

static float blas_ld(const void *p, cudaDataType_t t, long i) {
    if (t == CUDA_R_16BF) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}

/* Column-major C [m,n] = alpha op(A) [m,k] op(B) [k,n] + beta C, fp32
 * accumulation in k order; beta == 0 does not read C. */
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha_p, const void *A, cudaDataType_t at,
                            int lda, const void *B, cudaDataType_t bt, int ldb, const void *beta_p,
                            void *C, cudaDataType_t ct, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0 || ta == CUBLAS_OP_C || tb == CUBLAS_OP_C ||
        lda < std::max(1, ta == CUBLAS_OP_N ? m : k) ||
        ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) || ldc < std::max(1, m) ||
        (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC))
        return CUBLAS_STATUS_INVALID_VALUE;
    if ((at != CUDA_R_32F && at != CUDA_R_16BF) || bt != at ||
        (ct != CUDA_R_32F && ct != CUDA_R_16BF))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    const float alpha = *(const float *)alpha_p, beta = *(const float *)beta_p;
    std::vector<float> a((size_t)m * k), b((size_t)n * k); /* a[i][p], b[j][p] */
    for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++)
            a[(size_t)i * k + p] =
                blas_ld(A, at, ta == CUBLAS_OP_N ? i + (long)p * lda : p + (long)i * lda);
    for (int j = 0; j < n; j++)
        for (int p = 0; p < k; p++)
            b[(size_t)j * k + p] =
                blas_ld(B, bt, tb == CUBLAS_OP_N ? p + (long)j * ldb : j + (long)p * ldb);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            const float *ar = a.data() + (size_t)i * k, *br = b.data() + (size_t)j * k;
            float s = 0;
            for (int p = 0; p < k; p++) s += ar[p] * br[p];
            long c = i + (long)j * ldc;
            float v = alpha * s;
            if (beta != 0) v += beta * blas_ld(C, ct, c);
            if (ct == CUDA_R_16BF)
                ((__nv_bfloat16 *)C)[c] = __float2bfloat16_rn(v);
            else
                ((float *)C)[c] = v;
        }
    return CUBLAS_STATUS_SUCCESS;
}
