/* GPU MoE layer throughput (bf16), the libmoe side of bench/torch_moe_gpu.py
 * (a copy of ../shared/anchors/torch_moe_gpu.py): its three shapes, SwiGLU
 * experts, softmax over all experts then top-k with the k weights
 * renormalised (its route()), dropless, no auxiliary loss. For each shape:
 *  - libmoe: the GPU layer (src/nn/moe/cuda/layer_cuda.c), forward, and
 *    forward + backward (dx and every weight gradient, as x.grad and W.grad
 *    in the script);
 *  - dense_same_active: a dense SwiGLU FFN of width ff*k (the same active
 *    FLOPs) through the linear layer launchers: the layer's ceiling.
 * Plus the bf16 GEMM ceiling (8192^3) and a 1 GiB device copy, once.
 * Timing as the script: cudaEvents on the library's stream, warm-up 5 and
 * median of 20 for forward, warm-up 3 and median of 10 for forward+backward.
 * TFLOP/s counts active FLOPs: 6*T*k*d*ff forward, 3x that forward+backward.
 * Prints one JSON object on stdout and a table on stderr; scripts/gpu/
 * bench_layer.sh runs it next to the PyTorch script. Exit 2: no backend or
 * no device. */
#include <stdio.h>

#ifdef MOE_HAVE_CUDA
#include "bench_util.h"
#include "nn/moe/cuda/layer_cuda.h"
#include "ops/cuda/cuda_ops.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static moe_cuda *ctx;

#define CK(call)                                                                                   \
    do {                                                                                           \
        moe_status st_ = (call);                                                                   \
        if (st_ != MOE_OK) {                                                                       \
            fprintf(stderr, "bench_moe_gpu: %s: %s\n", #call, moe_last_error());                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define CUDA_CK(call)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "bench_moe_gpu: %s: %s\n", #call, cudaGetErrorString(e_));             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void *dalloc(size_t bytes) {
    void *p;
    CK(moe_cuda_alloc(ctx, &p, bytes));
    return p;
}

/* dev [n] (bf16) = values of standard deviation scale (uniform on
 * [-sqrt(3), sqrt(3)) * scale: only the spread matters here), generated on the
 * host in chunks from a xorshift stream. */
static void fill_bf16(void *dev, long n, float scale, uint64_t seed) {
    const long chunk = 1L << 24;
    uint16_t *h = malloc((size_t)chunk * 2);
    if (!h) exit(1);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    const float a = 1.7320508f * scale;
    for (long o = 0; o < n; o += chunk) {
        long m = n - o < chunk ? n - o : chunk;
        for (long i = 0; i < m; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            float u = (float)(s >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
            h[i] = moe_bf16_from_float(a * (2 * u - 1));
        }
        CK(moe_cuda_upload(ctx, (uint16_t *)dev + o, h, (size_t)m * 2));
        CK(moe_cuda_sync(ctx)); /* h is refilled next */
    }
    free(h);
}

static void *random_bf16(long n, float scale, uint64_t seed) {
    void *d = dalloc((size_t)n * 2);
    fill_bf16(d, n, scale, seed);
    return d;
}

static float *zeros_f32(long n) {
    float *d = dalloc((size_t)n * 4);
    CK(moe_cuda_zero(ctx, d, (size_t)n * 4));
    return d;
}

/* Median milliseconds of iters calls of step after warm ones, each timed by
 * a pair of events around it on the library's stream. */
typedef void (*step_fn)(void *arg);
static double time_ms(step_fn step, void *arg, int warm, int iters) {
    cudaStream_t s = (cudaStream_t)moe_cuda_stream(ctx);
    for (int i = 0; i < warm; i++) step(arg);
    CK(moe_cuda_sync(ctx));
    cudaEvent_t a, b;
    CUDA_CK(cudaEventCreate(&a));
    CUDA_CK(cudaEventCreate(&b));
    double ts[64];
    for (int i = 0; i < iters; i++) {
        CUDA_CK(cudaEventRecord(a, s));
        step(arg);
        CUDA_CK(cudaEventRecord(b, s));
        CUDA_CK(cudaEventSynchronize(b));
        float ms;
        CUDA_CK(cudaEventElapsedTime(&ms, a, b));
        ts[i] = ms;
    }
    CK(moe_cuda_sync(ctx)); /* any error a kernel raised */
    CUDA_CK(cudaEventDestroy(a));
    CUDA_CK(cudaEventDestroy(b));
    bench_sort(ts, (size_t)iters);
    return ts[iters / 2];
}

/* ---- ceilings ---------------------------------------------------------------- */

typedef struct gemm_arg {
    void *A, *B, *C;
    int n;
} gemm_arg;

static void gemm_step(void *p) {
    gemm_arg *g = p;
    CK(moe_cuda_gemm(ctx, 0, 0, g->n, g->n, g->n, 1.0f, g->A, g->n, g->B, g->n, MOE_DT_BF16, 0.0f,
                     g->C, MOE_DT_BF16, g->n));
}

typedef struct copy_arg {
    void *dst, *src;
    size_t bytes;
} copy_arg;

static void copy_step(void *p) {
    copy_arg *c = p;
    CK(moe_cuda_copy(ctx, c->dst, c->src, c->bytes));
}

/* ---- the MoE layer ---------------------------------------------------------- */

typedef struct moe_arg {
    moe_layer_cuda_ws *ws;
    moe_layer_cuda_params p;
    moe_layer_cuda_grads g;
    void *x, *out, *dout, *dx;
    int T;
} moe_arg;

static void moe_fwd(void *p) {
    moe_arg *m = p;
    CK(moe_layer_cuda_forward(m->ws, &m->p, m->out, m->x, m->T, 0));
}

static void moe_fwdbwd(void *p) {
    moe_arg *m = p;
    CK(moe_layer_cuda_forward(m->ws, &m->p, m->out, m->x, m->T, 1));
    CK(moe_layer_cuda_backward(m->ws, &m->p, &m->g, m->dx, m->dout, 1.0f));
}

/* ---- the dense SwiGLU FFN of the same active FLOPs ------------------------- */

typedef struct dense_arg {
    void *x, *dout, *dx;                /* [T,d] */
    void *w1, *w3, *w2;                 /* [n,d], [n,d], [d,n] */
    float *g1, *g3, *g2;                /* their gradients */
    void *a, *b, *h, *y, *dh, *da, *db; /* [T,n] (y [T,d]) */
    int T, d, n;
} dense_arg;

static void dense_fwd(void *p) {
    dense_arg *q = p;
    const moe_dtype bf = MOE_DT_BF16;
    CK(moe_cuda_matmul_forward(ctx, bf, q->a, q->x, q->w1, NULL, q->T, q->d, q->n));
    CK(moe_cuda_matmul_forward(ctx, bf, q->b, q->x, q->w3, NULL, q->T, q->d, q->n));
    CK(moe_cuda_swiglu_forward(ctx, bf, q->h, q->a, q->b, (long)q->T * q->n));
    CK(moe_cuda_matmul_forward(ctx, bf, q->y, q->h, q->w2, NULL, q->T, q->n, q->d));
}

static void dense_fwdbwd(void *p) {
    dense_arg *q = p;
    const moe_dtype bf = MOE_DT_BF16;
    dense_fwd(p);
    CK(moe_cuda_matmul_backward(ctx, bf, q->dh, q->g2, NULL, q->dout, q->h, q->w2, q->T, q->n,
                                q->d));
    CK(moe_cuda_swiglu_backward(ctx, bf, q->da, q->db, q->dh, q->a, q->b, (long)q->T * q->n));
    CK(moe_cuda_matmul_backward(ctx, bf, NULL, q->g1, NULL, q->da, q->x, q->w1, q->T, q->d, q->n));
    CK(moe_cuda_matmul_backward(ctx, bf, NULL, q->g3, NULL, q->db, q->x, q->w3, q->T, q->d, q->n));
    /* dx = da w1 + db w3: the second GEMM adds (beta = 1) */
    CK(moe_cuda_gemm(ctx, 0, 0, q->T, q->d, q->n, 1.0f, q->da, q->n, q->w1, q->d, bf, 0.0f, q->dx,
                     bf, q->d));
    CK(moe_cuda_gemm(ctx, 0, 0, q->T, q->d, q->n, 1.0f, q->db, q->n, q->w3, q->d, bf, 1.0f, q->dx,
                     bf, q->d));
}

typedef struct timing {
    double fwd_ms, fwdbwd_ms;
} timing;

static void print_timing(const char *name, timing t, double fl, int T, int last) {
    printf("\"%s\": {\"fwd_ms\": %.3f, \"fwd_tflops\": %.1f, \"fwdbwd_ms\": %.3f, "
           "\"fwdbwd_tflops\": %.1f, \"train_tok_per_s\": %.0f}%s",
           name, t.fwd_ms, fl / t.fwd_ms / 1e9, t.fwdbwd_ms, 3 * fl / t.fwdbwd_ms / 1e9,
           T / t.fwdbwd_ms * 1e3, last ? "" : ", ");
}

typedef struct shape {
    const char *name;
    int T, d, ff, E, k;
} shape;

static void run_shape(const shape *s, int first) {
    const int T = s->T, d = s->d, ff = s->ff, E = s->E, k = s->k, n = ff * k;
    const double fl = 6.0 * T * k * d * ff;
    const float sd = 1.0f / sqrtf((float)d), sf = 1.0f / sqrtf((float)ff);
    const long Td = (long)T * d, EFd = (long)E * ff * d;

    moe_layer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.d_model = d, cfg.n_experts = E, cfg.top_k = k, cfg.d_ff = ff;
    cfg.act = MOE_ACT_SWIGLU;
    cfg.score = MOE_SCORE_SOFTMAX;
    cfg.topk_before_softmax = 0; /* softmax over all E, then top-k */
    cfg.renormalize = 1;
    cfg.temperature = 1.0f;
    cfg.capacity_factor = 0; /* dropless */
    cfg.routing = MOE_ROUTE_TOPK;
    cfg.switch_divide_by_k = 1;

    /* libmoe */
    moe_arg m = {.T = T};
    m.x = random_bf16(Td, 1.0f, 1);
    m.dout = random_bf16(Td, 1.0f, 2);
    m.out = dalloc((size_t)Td * 2);
    m.dx = dalloc((size_t)Td * 2);
    m.p.gate = random_bf16((long)E * d, sd, 3);
    m.p.w1 = random_bf16(EFd, sd, 4);
    m.p.w3 = random_bf16(EFd, sd, 5);
    m.p.w2 = random_bf16(EFd, sf, 6);
    m.g.gate = zeros_f32((long)E * d);
    m.g.w1 = zeros_f32(EFd);
    m.g.w3 = zeros_f32(EFd);
    m.g.w2 = zeros_f32(EFd);
    CK(moe_layer_cuda_workspace_create(&m.ws, ctx, &cfg, T, MOE_DT_BF16));
    timing moe;
    moe.fwd_ms = time_ms(moe_fwd, &m, 5, 20);
    moe.fwdbwd_ms = time_ms(moe_fwdbwd, &m, 3, 10);
    moe_layer_cuda_stats st;
    CK(moe_layer_cuda_stats_read(m.ws, &st));
    int most = 0;
    for (int e = 0; e < E; e++) most = st.kept[e] > most ? st.kept[e] : most;
    const double max_load = most / ((double)T * k / E); /* busiest expert / balanced share */
    moe_layer_cuda_workspace_destroy(m.ws);
    void *mf[] = {m.out,          m.dx,     (void *)m.p.gate, (void *)m.p.w1, (void *)m.p.w3,
                  (void *)m.p.w2, m.g.gate, m.g.w1,           m.g.w3,         m.g.w2};
    for (size_t i = 0; i < sizeof mf / sizeof mf[0]; i++) moe_cuda_free(ctx, mf[i]);

    /* dense, width ff*k, on the same x and dout */
    dense_arg q = {.x = m.x, .dout = m.dout, .T = T, .d = d, .n = n};
    const long Tn = (long)T * n, nd = (long)n * d;
    q.w1 = random_bf16(nd, sd, 7);
    q.w3 = random_bf16(nd, sd, 8);
    q.w2 = random_bf16(nd, 1.0f / sqrtf((float)n), 9);
    q.g1 = zeros_f32(nd), q.g3 = zeros_f32(nd), q.g2 = zeros_f32(nd);
    q.dx = dalloc((size_t)Td * 2);
    q.y = dalloc((size_t)Td * 2);
    void **tn[] = {&q.a, &q.b, &q.h, &q.dh, &q.da, &q.db};
    for (int i = 0; i < 6; i++) *tn[i] = dalloc((size_t)Tn * 2);
    timing dense;
    dense.fwd_ms = time_ms(dense_fwd, &q, 5, 20);
    dense.fwdbwd_ms = time_ms(dense_fwdbwd, &q, 3, 10);
    void *df[] = {q.w1, q.w3, q.w2, q.g1, q.g3, q.g2, q.dx, q.y,
                  q.a,  q.b,  q.h,  q.dh, q.da, q.db, m.x,  m.dout};
    for (size_t i = 0; i < sizeof df / sizeof df[0]; i++) moe_cuda_free(ctx, df[i]);

    printf("%s{\"name\": \"%s\", \"T\": %d, \"d\": %d, \"ff\": %d, \"E\": %d, \"k\": %d, "
           "\"rows\": %d, \"dropped\": %d, \"max_load\": %.3f, ",
           first ? "" : ", ", s->name, T, d, ff, E, k, st.n_rows, st.n_dropped, max_load);
    print_timing("libmoe", moe, fl, T, 0);
    print_timing("dense_same_active", dense, fl, T, 1);
    printf("}");
    fflush(stdout);
    fprintf(stderr, "%-13s %8.3f %7.1f %9.3f %7.1f %10.0f   %8.3f %7.1f %9.3f %7.1f  %5.2f\n",
            s->name, moe.fwd_ms, fl / moe.fwd_ms / 1e9, moe.fwdbwd_ms, 3 * fl / moe.fwdbwd_ms / 1e9,
            T / moe.fwdbwd_ms * 1e3, dense.fwd_ms, fl / dense.fwd_ms / 1e9, dense.fwdbwd_ms,
            3 * fl / dense.fwdbwd_ms / 1e9, max_load);
}

int main(void) {
    char why[256] = "";
    if (moe_cuda_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "bench_moe_gpu: no CUDA device: %s\n", why);
        return 2;
    }
    CK(moe_cuda_create(&ctx, 0));
    char desc[256];
    moe_cuda_describe(ctx, desc, sizeof desc);

    /* ceilings: bf16 GEMM 8192^3 and a 1 GiB device-to-device copy */
    gemm_arg g = {.n = 8192};
    const long nn = (long)g.n * g.n;
    g.A = random_bf16(nn, 1.0f, 11);
    g.B = random_bf16(nn, 1.0f, 12);
    g.C = dalloc((size_t)nn * 2);
    const double peak = 2.0 * g.n * g.n * (double)g.n / time_ms(gemm_step, &g, 5, 20) / 1e9;
    moe_cuda_free(ctx, g.A), moe_cuda_free(ctx, g.B), moe_cuda_free(ctx, g.C);
    copy_arg c = {.bytes = (size_t)1 << 30};
    c.src = dalloc(c.bytes);
    c.dst = dalloc(c.bytes);
    CK(moe_cuda_zero(ctx, c.src, c.bytes));
    /* read + write bytes per second */
    const double gbs = 2.0 * (double)c.bytes / (time_ms(copy_step, &c, 5, 20) * 1e-3) / 1e9;
    moe_cuda_free(ctx, c.src), moe_cuda_free(ctx, c.dst);
    fprintf(stderr, "%s: bf16 gemm %.0f TFLOP/s, d2d copy %.0f GB/s\n", desc, peak, gbs);
    fprintf(stderr, "%-13s %8s %7s %9s %7s %10s   %8s %7s %9s %7s  %5s\n", "shape", "fwd ms",
            "TFLOP/s", "f+b ms", "TFLOP/s", "train tok/s", "dense fwd", "TFLOP/s", "dense f+b",
            "TFLOP/s", "load");

    printf("{\"name\": \"libmoe-gpu\", \"gpu\": \"%s\", \"bf16_gemm_tflops\": %.0f, "
           "\"copy_gbs\": %.0f, \"results\": [",
           desc, peak, gbs);
    const shape shapes[] = {{"mixtral-like", 16384, 2048, 5632, 8, 2},
                            {"fine-grained", 16384, 1024, 1024, 64, 8},
                            {"16-experts", 8192, 1024, 4096, 16, 2}};
    for (int i = 0; i < 3; i++) run_shape(&shapes[i], i == 0);
    printf("]}\n");
    moe_cuda_destroy(ctx);
    return 0;
}

#else

int main(void) {
    fprintf(stderr, "bench_moe_gpu: built without the CUDA backend\n");
    return 2;
}

#endif
