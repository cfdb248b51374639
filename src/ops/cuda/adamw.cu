/* The optimizer step on the GPU: the global sum of squares for clipping and
 * AdamW over the fp32 master parameters, as step_adam (decoupled) in
 * src/train/optim.c and moe_grad_clip in src/train/clip.c. */
#include "ops/cuda/cuda_common.cuh"

#include <math.h>

#define SUMSQ_THREADS 256
#define SUMSQ_MAX_BLOCKS 1024 /* partial sums: the temporary buffer's length */
#define SUMSQ_PER_THREAD 8    /* elements per thread before another block is used */
#define ADAMW_THREADS 256
#define ADAMW_MAX_BLOCKS (65535u * 8)

/* part [gridDim.x] = sums of g^2 over a grid-stride slice, in double. Block
 * SUMSQ_THREADS threads; a fixed-order block reduction. */
__global__ void sumsq_partial_kernel(double *part, const float *g, long n) {
    __shared__ double sh[32];
    double s = 0;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        double x = g[i];
        s += x * x;
    }
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* *out = sum of part [P], one block, a fixed order. */
__global__ void sumsq_finish_kernel(float *out, const double *part, int P) {
    __shared__ double sh[32];
    double s = 0;
    for (int i = threadIdx.x; i < P; i += blockDim.x) s += part[i];
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) *out = (float)s;
}

/* The number of blocks depends only on n: the same n always adds in the
 * same order (deterministic). The partials live in a temporary buffer from
 * cudaMallocAsync on the context's stream (stream-ordered, no host sync). */
moe_status moe_cuda_sumsq(moe_cuda *ctx, float *out, const float *g, long n) {
    MOE_CUDA_REQUIRE(n >= 0 && out != NULL && (n == 0 || g != NULL), "moe_cuda_sumsq");
    long want =
        (n + (long)SUMSQ_THREADS * SUMSQ_PER_THREAD - 1) / ((long)SUMSQ_THREADS * SUMSQ_PER_THREAD);
    int P = want < 1 ? 1 : want > SUMSQ_MAX_BLOCKS ? SUMSQ_MAX_BLOCKS : (int)want;
    double *part = NULL;
    cudaError_t e = cudaMallocAsync((void **)&part, (size_t)P * sizeof(double), ctx->stream);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* not sticky: clear it for the next launch check */
        return moe_cuda_fail(e, "cudaMallocAsync (sumsq partials)", __FILE__, __LINE__);
    }
    MOE_LAUNCH(sumsq_partial_kernel, P, SUMSQ_THREADS, 0, ctx->stream, part, g, n);
    e = cudaGetLastError();
    if (e == cudaSuccess) {
        MOE_LAUNCH(sumsq_finish_kernel, 1, SUMSQ_THREADS, 0, ctx->stream, out, part, P);
        e = cudaGetLastError();
    }
    cudaFreeAsync(part, ctx->stream); /* after the kernels, in stream order */
    if (e != cudaSuccess)
        return moe_cuda_fail(e, "sumsq_partial/finish_kernel", __FILE__, __LINE__);
    return MOE_OK;
}

/* The step's constants, computed on the host in double and rounded to fp32
 * exactly as step_adam does. */
struct adamw_consts {
    float decay;     /* 1 - lr * wd */
    float step_size; /* lr / (1 - b1^t) */
    float bc2_sqrt;  /* sqrt(1 - b2^t) */
    float b1, b2, c1, c2, eps;
    float max_norm; /* > 0: clip with *sumsq */
};

/* One thread per parameter (grid-stride), in step_adam's order of float
 * operations: g' = g * clip; p' = p * decay; m = b1 m + (1-b1) g';
 * v = b2 v + (1-b2) g'^2; p = p' - step_size * (m / (sqrt(v) / bc2_sqrt + eps)).
 * clip = max_norm / (sqrt(*sumsq) + 1e-6) when that is below 1, as
 * moe_grad_clip (torch's clip_grad_norm_); NaN norms leave g as it is. */
template <typename C>
__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, C *copy, long n,
                             adamw_consts k, const float *sumsq) {
    float clip = 1.0f;
    if (sumsq && k.max_norm > 0) {
        double coef = (double)k.max_norm / (sqrt((double)*sumsq) + 1e-6);
        if (coef < 1.0) clip = (float)coef;
    }
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        /* __fmul_rn/__fadd_rn: no fused multiply-adds, as the CPU (C11, no
         * contraction) rounds every product and sum on its own */
        float g = __fmul_rn(grad[i], clip);
        float p = __fmul_rn(param[i], k.decay);
        float mi = __fadd_rn(__fmul_rn(m[i], k.b1), __fmul_rn(k.c1, g));
        float vi = __fadd_rn(__fmul_rn(v[i], k.b2), __fmul_rn(__fmul_rn(k.c2, g), g));
        m[i] = mi;
        v[i] = vi;
        p = __fsub_rn(p, __fmul_rn(k.step_size, mi / (sqrtf(vi) / k.bc2_sqrt + k.eps)));
        param[i] = p;
        if (copy) st(copy, i, p);
    }
}

moe_status moe_cuda_adamw_step(moe_cuda *ctx, float *param, const float *grad, float *m, float *v,
                               void *copy, moe_dtype copy_dt, long n, const moe_cuda_adamw *h,
                               const float *sumsq) {
    MOE_CUDA_REQUIRE(n >= 0 && h != NULL, "moe_cuda_adamw_step");
    MOE_CUDA_REQUIRE(h->step >= 1, "moe_cuda_adamw_step");
    if (n == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(param && grad && m && v, "moe_cuda_adamw_step");
    const double b1 = h->beta1, b2 = h->beta2, t = (double)h->step;
    adamw_consts k;
    k.decay = (float)(1.0 - (double)h->lr * h->weight_decay);
    k.step_size = (float)(h->lr / (1.0 - pow(b1, t)));
    k.bc2_sqrt = (float)sqrt(1.0 - pow(b2, t));
    k.b1 = (float)b1;
    k.b2 = (float)b2;
    k.c1 = (float)(1.0 - b1);
    k.c2 = (float)(1.0 - b2);
    k.eps = h->eps;
    k.max_norm = h->max_norm;
    unsigned blocks = moe_cuda_blocks(n, ADAMW_THREADS);
    if (blocks > ADAMW_MAX_BLOCKS) blocks = ADAMW_MAX_BLOCKS;
    MOE_DISPATCH_DT(copy_dt, C,
                    MOE_LAUNCH(adamw_kernel<C>, blocks, ADAMW_THREADS, 0, ctx->stream, param, grad,
                               m, v, (C *)copy, n, k, sumsq););
    MOE_CUDA_LAUNCHED("adamw_kernel");
    return MOE_OK;
}
