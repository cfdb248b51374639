/* Pointwise ops (activation.c and residual.c on the GPU): ReLU, GELU (exact
 * erf form), SiLU, SwiGLU and the residual add. One grid-stride loop per
 * kernel; each thread reads its element(s) before writing, so outputs may
 * alias inputs element for element. */
#include "ops/cuda/cuda_common.cuh"

#define ACT_THREADS 256
#define ACT_MAX_BLOCKS (65535u * 8)

#define GRID_STRIDE(i, n)                                                                          \
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n);                            \
         i += (long)gridDim.x * blockDim.x)

__device__ __forceinline__ float sigmoidf_(float x) {
    return 1.0f / (1.0f + expf(-x));
}

template <moe_cuda_act A> __device__ __forceinline__ float act_f(float x) {
    if (A == MOE_CUDA_RELU) return x > 0 ? x : 0.0f;
    /* 1 + erf(x/sqrt2) as erfc(-x/sqrt2): no cancellation for x << 0 */
    if (A == MOE_CUDA_GELU) return 0.5f * x * erfcf(x * -0.70710678118654752f);
    return x * sigmoidf_(x);
}

/* d act / dx times g. */
template <moe_cuda_act A> __device__ __forceinline__ float act_df(float x, float g) {
    if (A == MOE_CUDA_RELU) return x > 0 ? g : 0.0f;
    if (A == MOE_CUDA_GELU) {
        float cdf = 0.5f * erfcf(x * -0.70710678118654752f);
        float pdf = 0.39894228040143267794f * expf(-0.5f * x * x);
        return g * (cdf + x * pdf);
    }
    float s = sigmoidf_(x);
    return g * s * (1.0f + x * (1.0f - s));
}

/* out [n] = act(inp). */
template <typename T, moe_cuda_act A>
__global__ void act_forward_kernel(T *out, const T *inp, long n) {
    GRID_STRIDE(i, n) st(out, i, act_f<A>(ld(inp, i)));
}

/* dinp [n] = act'(inp) * dout. */
template <typename T, moe_cuda_act A>
__global__ void act_backward_kernel(T *dinp, const T *dout, const T *inp, long n) {
    GRID_STRIDE(i, n) st(dinp, i, act_df<A>(ld(inp, i), ld(dout, i)));
}

/* out [n] = silu(a) * b. */
template <typename T>
__global__ void swiglu_forward_kernel(T *out, const T *a, const T *b, long n) {
    GRID_STRIDE(i, n) {
        float x = ld(a, i);
        st(out, i, x * sigmoidf_(x) * ld(b, i));
    }
}

/* db = dout * silu(a); da = dout * b * silu'(a). */
template <typename T>
__global__ void swiglu_backward_kernel(T *da, T *db, const T *dout, const T *a, const T *b,
                                       long n) {
    GRID_STRIDE(i, n) {
        float x = ld(a, i), y = ld(b, i), g = ld(dout, i);
        float s = sigmoidf_(x);
        st(db, i, g * x * s);
        st(da, i, g * y * s * (1.0f + x * (1.0f - s)));
    }
}

/* out [n] = a + b. */
template <typename T>
__global__ void residual_forward_kernel(T *out, const T *a, const T *b, long n) {
    GRID_STRIDE(i, n) st(out, i, ld(a, i) + ld(b, i));
}

/* da += dout; db += dout (dout read first). */
template <typename T>
__global__ void residual_backward_kernel(T *da, T *db, const T *dout, long n) {
    GRID_STRIDE(i, n) {
        float g = ld(dout, i);
        st(da, i, ld(da, i) + g);
        st(db, i, ld(db, i) + g);
    }
}

static unsigned act_blocks(long n) {
    unsigned blocks = moe_cuda_blocks(n, ACT_THREADS);
    return blocks > ACT_MAX_BLOCKS ? ACT_MAX_BLOCKS : blocks;
}

moe_status moe_cuda_act_forward(moe_cuda *ctx, moe_dtype dt, moe_cuda_act act, void *out,
                                const void *inp, long n) {
    MOE_CUDA_REQUIRE(n >= 0, "moe_cuda_act_forward");
    MOE_CUDA_REQUIRE(act == MOE_CUDA_RELU || act == MOE_CUDA_GELU || act == MOE_CUDA_SILU,
                     "moe_cuda_act_forward");
    if (n == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(out && inp, "moe_cuda_act_forward");
    unsigned blocks = act_blocks(n);
    MOE_DISPATCH_DT(dt, T, {
        T *o = (T *)out;
        const T *x = (const T *)inp;
        if (act == MOE_CUDA_RELU)
            MOE_LAUNCH((act_forward_kernel<T, MOE_CUDA_RELU>), blocks, ACT_THREADS, 0, ctx->stream,
                       o, x, n);
        else if (act == MOE_CUDA_GELU)
            MOE_LAUNCH((act_forward_kernel<T, MOE_CUDA_GELU>), blocks, ACT_THREADS, 0, ctx->stream,
                       o, x, n);
        else
            MOE_LAUNCH((act_forward_kernel<T, MOE_CUDA_SILU>), blocks, ACT_THREADS, 0, ctx->stream,
                       o, x, n);
    });
    MOE_CUDA_LAUNCHED("act_forward_kernel");
    return MOE_OK;
}

moe_status moe_cuda_act_backward(moe_cuda *ctx, moe_dtype dt, moe_cuda_act act, void *dinp,
                                 const void *dout, const void *inp, long n) {
    MOE_CUDA_REQUIRE(n >= 0, "moe_cuda_act_backward");
    MOE_CUDA_REQUIRE(act == MOE_CUDA_RELU || act == MOE_CUDA_GELU || act == MOE_CUDA_SILU,
                     "moe_cuda_act_backward");
    if (n == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(dinp && dout && inp, "moe_cuda_act_backward");
    unsigned blocks = act_blocks(n);
    MOE_DISPATCH_DT(dt, T, {
        T *dx = (T *)dinp;
        const T *g = (const T *)dout, *x = (const T *)inp;
        if (act == MOE_CUDA_RELU)
            MOE_LAUNCH((act_backward_kernel<T, MOE_CUDA_RELU>), blocks, ACT_THREADS, 0, ctx->stream,
                       dx, g, x, n);
        else if (act == MOE_CUDA_GELU)
            MOE_LAUNCH((act_backward_kernel<T, MOE_CUDA_GELU>), blocks, ACT_THREADS, 0, ctx->stream,
                       dx, g, x, n);
        else
            MOE_LAUNCH((act_backward_kernel<T, MOE_CUDA_SILU>), blocks, ACT_THREADS, 0, ctx->stream,
                       dx, g, x, n);
    });
    MOE_CUDA_LAUNCHED("act_backward_kernel");
    return MOE_OK;
}

moe_status moe_cuda_swiglu_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *a,
                                   const void *b, long n) {
    MOE_CUDA_REQUIRE(n >= 0, "moe_cuda_swiglu_forward");
    if (n == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(out && a && b, "moe_cuda_swiglu_forward");
    MOE_DISPATCH_DT(dt, T,
                    MOE_LAUNCH(swiglu_forward_kernel<T>, act_blocks(n), ACT_THREADS, 0, ctx->stream,
                               (T *)out, (const T *)a, (const T *)b, n););
    MOE_CUDA_LAUNCHED("swiglu_forward_kernel");
    return MOE_OK;
}

moe_status moe_cuda_swiglu_backward(moe_cuda *ctx, moe_dtype dt, void *da, void *db,
                                    const void *dout, const void *a, const void *b, long n) {
    MOE_CUDA_REQUIRE(n >= 0, "moe_cuda_swiglu_backward");
    if (n == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(da && db && dout && a && b, "moe_cuda_swiglu_backward");
    MOE_DISPATCH_DT(dt, T,
                    MOE_LAUNCH(swiglu_backward_kernel<T>, act_blocks(n), ACT_THREADS, 0,
                               ctx->stream, (T *)da, (T *)db, (const T *)dout, (const T *)a,
                               (const T *)b, n););
    MOE_CUDA_LAUNCHED("swiglu_backward_kernel");
    return MOE_OK;
}

moe_status moe_cuda_residual_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *a,
                                     const void *b, long n) {
    MOE_CUDA_REQUIRE(n >= 0, "moe_cuda_residual_forward");
    if (n == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(out && a && b, "moe_cuda_residual_forward");
    MOE_DISPATCH_DT(dt, T,
                    MOE_LAUNCH(residual_forward_kernel<T>, act_blocks(n), ACT_THREADS, 0,
                               ctx->stream, (T *)out, (const T *)a, (const T *)b, n););
    MOE_CUDA_LAUNCHED("residual_forward_kernel");
    return MOE_OK;
}

moe_status moe_cuda_residual_backward(moe_cuda *ctx, moe_dtype dt, void *da, void *db,
                                      const void *dout, long n) {
    MOE_CUDA_REQUIRE(n >= 0, "moe_cuda_residual_backward");
    if (n == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(da && db && dout, "moe_cuda_residual_backward");
    MOE_DISPATCH_DT(dt, T,
                    MOE_LAUNCH(residual_backward_kernel<T>, act_blocks(n), ACT_THREADS, 0,
                               ctx->stream, (T *)da, (T *)db, (const T *)dout, n););
    MOE_CUDA_LAUNCHED("residual_backward_kernel");
    return MOE_OK;
}
