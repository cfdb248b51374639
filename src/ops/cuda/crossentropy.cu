/* Softmax cross-entropy with hard labels, forward and backward fused
 * (crossentropy.c on the GPU), without a host round trip: three kernels on
 * the stream. 1: count the rows that count (and flag a target out of range);
 * 2: one block per row: log-sum-exp, the row's loss, and dlogits (which needs
 * the count); 3: one block adds the row losses in a fixed order into the
 * mean. Deterministic. */
#include "ops/cuda/cuda_common.cuh"

#include <math.h>

#define CE_THREADS 256      /* row kernel */
#define CE_SUM_THREADS 1024 /* count and final sum: one block */

/* The scratch: a header of two ints (counted rows, bad target seen) padded
 * to 16 bytes, then the per-row losses [N] (fp32). */
struct ce_head {
    int count, bad, pad[2];
};

size_t moe_cuda_crossentropy_scratch(int N) {
    return sizeof(ce_head) + (size_t)(N > 0 ? N : 0) * sizeof(float);
}

/* head->count = rows with targets in [0, V); head->bad = 1 when a target is
 * outside [0, V) and not ignore_index; *count (if not NULL) = head->count.
 * One block, threads stride the rows; integer sums, so the order is free. */
__global__ void ce_count_kernel(ce_head *head, int *count, const int32_t *targets, int N, int V,
                                int ignore_index) {
    __shared__ int wc[32], wb[32];
    int c = 0, bad = 0;
    for (int n = threadIdx.x; n < N; n += blockDim.x) {
        int y = targets[n];
        if (y == ignore_index) continue;
        if (y < 0 || y >= V)
            bad = 1;
        else
            c++;
    }
    for (int o = 16; o > 0; o >>= 1) {
        c += __shfl_xor_sync(0xffffffffu, c, o);
        bad |= __shfl_xor_sync(0xffffffffu, bad, o);
    }
    if ((threadIdx.x & 31) == 0) {
        wc[threadIdx.x >> 5] = c;
        wb[threadIdx.x >> 5] = bad;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int total = 0, any = 0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) {
            total += wc[w];
            any |= wb[w];
        }
        head->count = total;
        head->bad = any;
        if (count) *count = total;
    }
}

/* Row n (one block of CE_THREADS threads, striding the row): rowloss[n] =
 * logsumexp(x) - x[y] when the row counts, else 0; dlogits row (if not
 * NULL) = k * (softmax(x) - onehot(y)) with k = scale / count, or 0 on a row
 * that does not count. Every element of the row is read (max, then sum)
 * before the block's barriers and any write, and the write pass re-reads
 * element j in the thread that writes it, so dlogits may alias logits. */
template <typename T>
__global__ void ce_row_kernel(float *rowloss, T *dlogits, const T *logits, const int32_t *targets,
                              const ce_head *head, int V, int ignore_index, float scale) {
    __shared__ float sh[32];
    long off = (long)blockIdx.x * V;
    const T *x = logits + off;
    int y = targets[blockIdx.x];
    int counted = y != ignore_index && y >= 0 && y < V;
    float xy = counted ? ld(x, y) : 0.0f; /* read before anyone writes the row */
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, ld(x, j));
    mx = block_max(mx, sh);
    float s = 0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) s += expf(ld(x, j) - mx);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) rowloss[blockIdx.x] = counted ? logf(s) + mx - xy : 0.0f;
    if (!dlogits) return;
    int cnt = head->count;
    T *d = dlogits + off;
    if (!counted || cnt <= 0) {
        for (int j = threadIdx.x; j < V; j += blockDim.x) st(d, j, 0.0f);
        return;
    }
    float k = (float)((double)scale / cnt), inv = (float)(1.0 / (double)s);
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float p = expf(ld(x, j) - mx) * inv;
        st(d, j, j == y ? k * p - k : k * p);
    }
}

/* *loss = sum of rowloss [N] / count (0 when count is 0; NaN when a target
 * was out of range). One block: each thread adds a fixed stride of rows in
 * double, then a fixed-order block reduction. */
__global__ void ce_mean_kernel(float *loss, const float *rowloss, const ce_head *head, int N) {
    __shared__ double sh[32];
    double s = 0;
    for (int n = threadIdx.x; n < N; n += blockDim.x) s += rowloss[n];
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) {
        int cnt = head->count;
        *loss = head->bad ? NAN : cnt > 0 ? (float)(s / cnt) : 0.0f;
    }
}

moe_status moe_cuda_crossentropy(moe_cuda *ctx, moe_dtype dt, float *loss, int *count,
                                 void *dlogits, const void *logits, const int32_t *targets, int N,
                                 int V, int ignore_index, float scale, void *scratch) {
    MOE_CUDA_REQUIRE(N >= 0 && V >= 1, "moe_cuda_crossentropy");
    MOE_CUDA_REQUIRE(loss != NULL && scratch != NULL, "moe_cuda_crossentropy");
    MOE_CUDA_REQUIRE(N == 0 || (logits != NULL && targets != NULL), "moe_cuda_crossentropy");
    ce_head *head = (ce_head *)scratch;
    float *rowloss = (float *)(head + 1);
    MOE_LAUNCH(ce_count_kernel, 1, CE_SUM_THREADS, 0, ctx->stream, head, count, targets, N, V,
               ignore_index);
    MOE_CUDA_LAUNCHED("ce_count_kernel");
    if (N > 0) {
        MOE_DISPATCH_DT(dt, T,
                        MOE_LAUNCH(ce_row_kernel<T>, (unsigned)N, CE_THREADS, 0, ctx->stream,
                                   rowloss, (T *)dlogits, (const T *)logits, targets, head, V,
                                   ignore_index, scale););
        MOE_CUDA_LAUNCHED("ce_row_kernel");
    }
    MOE_LAUNCH(ce_mean_kernel, 1, CE_SUM_THREADS, 0, ctx->stream, loss, rowloss, head, N);
    MOE_CUDA_LAUNCHED("ce_mean_kernel");
    return MOE_OK;
}
