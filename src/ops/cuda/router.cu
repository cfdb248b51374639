/* The MoE router on the GPU (router.c, softmax scores, no noise): softmax,
 * logsumexp, top-k and gate weights per token, the per-expert sums the
 * auxiliary losses need, their backward, and the losses themselves.
 * One warp per token: E <= 256, so each lane keeps E/32 <= 8 logits in
 * registers (expert e = lane + 32 i lives in slot i of lane e % 32). */
#include "ops/cuda/cuda_common.cuh"

#define ROUTER_SLOTS 8 /* 256 experts / 32 lanes */
#define ROUTER_WARPS 8 /* tokens per block */

/* a beats b: larger value, or equal value and lower index; idx < 0 means
 * "no candidate" (loses to everything). As top_n in router.c. */
__device__ __forceinline__ bool router_better(float av, int ai, float bv, int bi) {
    if (ai < 0) return false;
    if (bi < 0) return true;
    return av > bv || (av == bv && ai < bi);
}

/* Forward: one warp per token, ROUTER_WARPS tokens per block. Writes
 * scores, lse, chosen, weights; counts routed[e] with int atomics (exact,
 * so deterministic; routed is zeroed by the launcher first). */
__global__ void router_forward_kernel(float *scores, float *lse, int32_t *chosen, float *weights,
                                      int32_t *routed, const float *logits, int T, int E, int k,
                                      int topk_before_softmax, int renormalize) {
    const int lane = threadIdx.x & 31;
    const int t = blockIdx.x * ROUTER_WARPS + (threadIdx.x >> 5);
    if (t >= T) return; /* whole warp leaves together */
    const float *l = logits + (long)t * E;
    float v[ROUTER_SLOTS];
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < ROUTER_SLOTS; i++) {
        int e = lane + 32 * i;
        v[i] = e < E ? l[e] : -INFINITY;
        mx = fmaxf(mx, v[i]);
    }
    mx = warp_max(mx);
    float sum = 0;
#pragma unroll
    for (int i = 0; i < ROUTER_SLOTS; i++) {
        int e = lane + 32 * i;
        if (e < E) sum += expf(v[i] - mx);
    }
    sum = warp_sum(sum);
    const float inv = 1.0f / sum;
    const float lt = mx + logf(sum);
#pragma unroll
    for (int i = 0; i < ROUTER_SLOTS; i++) {
        int e = lane + 32 * i;
        if (e < E) scores[(long)t * E + e] = expf(v[i] - mx) * inv;
    }
    if (lane == 0) lse[t] = lt;

    /* top-k: k rounds of a warp argmax; lane j keeps the j-th choice */
    unsigned used = 0; /* bit i: slot i already chosen */
    int my_idx = -1;
    float my_logit = 0;
    for (int j = 0; j < k; j++) {
        float bv = 0;
        int bi = -1;
#pragma unroll
        for (int i = 0; i < ROUTER_SLOTS; i++) {
            int e = lane + 32 * i;
            if (e < E && !(used >> i & 1u) && router_better(v[i], e, bv, bi)) bv = v[i], bi = e;
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (router_better(ov, oi, bv, bi)) bv = ov, bi = oi;
        }
        /* every lane now holds the same (bv, bi) */
        if (bi % 32 == lane) used |= 1u << (bi / 32);
        if (lane == j) my_idx = bi, my_logit = bv;
    }
    /* weights; lanes >= k contribute 0 to the sums */
    const bool mine = lane < k;
    float w;
    if (topk_before_softmax) {
        float m0 = __shfl_sync(0xffffffffu, my_logit, 0); /* the largest */
        float ex = mine ? expf(my_logit - m0) : 0.0f;
        float z = warp_sum(ex);
        w = ex / z;
    } else {
        float s = mine ? expf(my_logit - mx) * inv : 0.0f;
        float S = warp_sum(s);
        w = renormalize ? s / S : s;
    }
    if (mine) {
        chosen[(long)t * k + lane] = my_idx;
        weights[(long)t * k + lane] = w;
        atomicAdd(&routed[my_idx], 1);
    }
}

/* prob_sum [E] = column sums of scores [T,E]; z_sum = sum of lse^2.
 * Blocks 0 .. ceil(E/32)-1: 32 columns x 8 row strips, strips summed in a
 * fixed order in shared memory; the last block: z_sum over lse, 256
 * threads strided then a fixed-order tree. Deterministic, no atomics. */
__global__ void router_sums_kernel(float *prob_sum, float *z_sum, const float *scores,
                                   const float *lse, int T, int E) {
    __shared__ float part[8][33];
    __shared__ float red[256];
    const int tx = threadIdx.x, ty = threadIdx.y;
    if ((int)blockIdx.x < (E + 31) / 32) {
        int col = blockIdx.x * 32 + tx;
        float s = 0;
        if (col < E)
            for (int r = ty; r < T; r += 8) s += scores[(long)r * E + col];
        part[ty][tx] = s;
        __syncthreads();
        if (ty == 0 && col < E) {
            for (int y = 1; y < 8; y++) s += part[y][tx];
            prob_sum[col] = s;
        }
    } else {
        int tid = ty * 32 + tx;
        float s = 0;
        for (int r = tid; r < T; r += 256) s += lse[r] * lse[r];
        red[tid] = s;
        __syncthreads();
        for (int h = 128; h > 0; h >>= 1) {
            if (tid < h) red[tid] += red[tid + h];
            __syncthreads();
        }
        if (tid == 0) *z_sum = red[0];
    }
}

static moe_status router_check(int T, int E, int k, const char *fn) {
    MOE_CUDA_REQUIRE(T >= 0, fn);
    MOE_CUDA_REQUIRE(E >= 1 && E <= 256, fn);
    MOE_CUDA_REQUIRE(k >= 1 && k <= 8 && k <= E, fn);
    return MOE_OK;
}

moe_status moe_cuda_router_forward(moe_cuda *ctx, float *scores, float *lse, int32_t *chosen,
                                   float *weights, int32_t *routed, float *prob_sum, float *z_sum,
                                   const float *logits, int T, int E, int k,
                                   int topk_before_softmax, int renormalize) {
    moe_status s = router_check(T, E, k, "moe_cuda_router_forward");
    if (s != MOE_OK) return s;
    MOE_CUDA_TRY(cudaMemsetAsync(routed, 0, sizeof(int32_t) * (size_t)E, ctx->stream));
    if (T > 0) {
        MOE_LAUNCH(router_forward_kernel, moe_cuda_blocks(T, ROUTER_WARPS), 32 * ROUTER_WARPS, 0,
                   ctx->stream, scores, lse, chosen, weights, routed, logits, T, E, k,
                   topk_before_softmax, renormalize);
        MOE_CUDA_LAUNCHED("router_forward_kernel");
    }
    MOE_LAUNCH(router_sums_kernel, (E + 31) / 32 + 1, dim3(32, 8), 0, ctx->stream, prob_sum, z_sum,
               scores, lse, T, E);
    MOE_CUDA_LAUNCHED("router_sums_kernel");
    return MOE_OK;
}

/* Backward: one warp per token (layout as forward). Per expert e:
 * dp_e = dP[e] + the weights' share (router.c token_backward), then
 * dlogit_e = s_e (dp_e - sum_f s_f dp_f) + direct_e + dz 2 lse_t s_e, where
 * direct_e is the top-k-before-softmax term w_j (dw_j - sum_i w_i dw_i). */
__global__ void router_backward_kernel(float *dlogits, const float *dw, const float *dP,
                                       const float *dz, const float *scores, const float *lse,
                                       const int32_t *chosen, const float *weights, int T, int E,
                                       int k, int topk_before_softmax, int renormalize) {
    const int lane = threadIdx.x & 31;
    const int t = blockIdx.x * ROUTER_WARPS + (threadIdx.x >> 5);
    if (t >= T) return;
    const float *s = scores + (long)t * E;
    float sv[ROUTER_SLOTS], dp[ROUTER_SLOTS], direct[ROUTER_SLOTS];
#pragma unroll
    for (int i = 0; i < ROUTER_SLOTS; i++) {
        int e = lane + 32 * i;
        sv[i] = e < E ? s[e] : 0.0f;
        dp[i] = e < E && dP ? dP[e] : 0.0f;
        direct[i] = 0;
    }
    const bool mine = lane < k;
    const int ch = mine ? chosen[(long)t * k + lane] : -1;
    const float w = mine ? weights[(long)t * k + lane] : 0.0f;
    const float g = mine ? dw[(long)t * k + lane] : 0.0f;
    const float wd = warp_sum(w * g);
    /* this lane's slot's contribution: to direct (before softmax) or dp */
    float add;
    if (topk_before_softmax) {
        add = w * (g - wd);
    } else if (renormalize) {
        float sc = mine ? s[ch] : 0.0f;
        float S = warp_sum(sc);
        add = (g - wd) / S;
    } else {
        add = g;
    }
    for (int j = 0; j < k; j++) {
        int cj = __shfl_sync(0xffffffffu, ch, j);
        float aj = __shfl_sync(0xffffffffu, add, j);
#pragma unroll
        for (int i = 0; i < ROUTER_SLOTS; i++)
            if (cj == lane + 32 * i) {
                if (topk_before_softmax)
                    direct[i] += aj;
                else
                    dp[i] += aj;
            }
    }
    float sd = 0;
#pragma unroll
    for (int i = 0; i < ROUTER_SLOTS; i++) sd += sv[i] * dp[i];
    sd = warp_sum(sd);
    const float a = dz ? *dz * 2.0f * lse[t] : 0.0f;
#pragma unroll
    for (int i = 0; i < ROUTER_SLOTS; i++) {
        int e = lane + 32 * i;
        if (e < E) dlogits[(long)t * E + e] = sv[i] * (dp[i] - sd) + direct[i] + a * sv[i];
    }
}

moe_status moe_cuda_router_backward(moe_cuda *ctx, float *dlogits, const float *dw, const float *dP,
                                    const float *dz, const float *scores, const float *lse,
                                    const int32_t *chosen, const float *weights, int T, int E,
                                    int k, int topk_before_softmax, int renormalize) {
    moe_status s = router_check(T, E, k, "moe_cuda_router_backward");
    if (s != MOE_OK) return s;
    if (T == 0) return MOE_OK;
    MOE_LAUNCH(router_backward_kernel, moe_cuda_blocks(T, ROUTER_WARPS), 32 * ROUTER_WARPS, 0,
               ctx->stream, dlogits, dw, dP, dz, scores, lse, chosen, weights, T, E, k,
               topk_before_softmax, renormalize);
    MOE_CUDA_LAUNCHED("router_backward_kernel");
    return MOE_OK;
}

/* Switch and z losses and their gradients: one block of 256 threads, thread
 * e < E for expert e; the switch sum is added by thread 0 in expert order
 * (deterministic). */
__global__ void aux_loss_kernel(float *aux, float *dP, float *dz, const int32_t *routed,
                                const float *prob_sum, const float *z_sum, int T, int E, float fden,
                                float switch_coef, float z_coef, float daux) {
    __shared__ float term[256];
    const int e = threadIdx.x;
    if (e < E) {
        float f = (float)routed[e] / fden;
        term[e] = f * (prob_sum[e] / (float)T);
        if (dP) dP[e] = daux * switch_coef * (float)E * f / (float)T;
    }
    __syncthreads();
    if (e == 0) {
        float sw = 0;
        for (int i = 0; i < E; i++) sw += term[i];
        float a0 = (float)E * sw, a1 = *z_sum / (float)T;
        aux[0] = a0;
        aux[1] = a1;
        aux[2] = switch_coef * a0 + z_coef * a1;
        if (dz) *dz = daux * z_coef / (float)T;
    }
}

moe_status moe_cuda_aux_loss(moe_cuda *ctx, float *aux, float *dP, float *dz, const int32_t *routed,
                             const float *prob_sum, const float *z_sum, int T, int E, int k,
                             int switch_divide_by_k, float switch_coef, float z_coef, float daux) {
    moe_status s = router_check(T, E, k, "moe_cuda_aux_loss");
    if (s != MOE_OK) return s;
    MOE_CUDA_REQUIRE(T >= 1, "moe_cuda_aux_loss");
    float fden = switch_divide_by_k ? (float)T * (float)k : (float)T;
    MOE_LAUNCH(aux_loss_kernel, 1, 256, 0, ctx->stream, aux, dP, dz, routed, prob_sum, z_sum, T, E,
               fden, switch_coef, z_coef, daux);
    MOE_CUDA_LAUNCHED("aux_loss_kernel");
    return MOE_OK;
}
