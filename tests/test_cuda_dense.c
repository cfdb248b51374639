/* GPU: the dense ops (norms, activations, residual, embedding, RoPE,
 * cross-entropy, sum of squares, AdamW) against the CPU reference (ops.h,
 * src/train/optim.c, clip.c), in fp32 and bf16, on fresh random inputs,
 * outputs poisoned before each call. Skips without a GPU.
 * Bounds (normalised L2 error): fp32 outputs 1e-5 (fp32 math against the
 * CPU's float/double: a few ulp); bf16 outputs 1e-2 (one bf16 rounding of
 * the output, 2^-9 relative at most); fp32 statistics and parameter
 * gradients 1e-5 in both modes (the inputs are the same bf16-rounded values
 * on both sides, the arithmetic is fp32). */
#include "cuda_test.h"
#include "moe/optim.h"
#include "ops/ops.h"

#include <string.h>

static moe_rng rng;

#define F32_BOUND 1e-5
#define BF16_BOUND 1e-2

static double out_bound(moe_dtype dt) {
    return cuda_test_bound(dt, F32_BOUND, BF16_BOUND);
}

static float *randn_host(long n, float scale, float shift, moe_dtype dt) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    cuda_test_randn(x, n, scale, &rng);
    for (long i = 0; i < n; i++) x[i] += shift;
    cuda_test_round(x, n, dt);
    return x;
}

static void gfree(void *p) {
    moe_cuda_free(cuda_test_ctx, p);
}

/* ---- LayerNorm ------------------------------------------------------------ */

static void check_layernorm(moe_dtype dt, int N, int C, int with_bias) {
    long n = (long)N * C;
    const float eps = 1e-5f;
    /* a non-zero mean (shift 2) exercises the two-pass variance */
    float *x = randn_host(n, 1, 2, dt), *dy = randn_host(n, 1, 0, dt);
    float *w = randn_host(C, 1, 1, MOE_DT_F32), *b = randn_host(C, 1, 0, MOE_DT_F32);
    float *dw = randn_host(C, 1, 0, MOE_DT_F32), *db = randn_host(C, 1, 0, MOE_DT_F32);
    float *y = malloc(n * 4), *mean = malloc(N * 4), *rstd = malloc(N * 4), *dx = malloc(n * 4);
    void *gx = cuda_test_upload(x, n, dt), *gdy = cuda_test_upload(dy, n, dt);
    float *gw = cuda_test_upload(w, C, MOE_DT_F32), *gb = cuda_test_upload(b, C, MOE_DT_F32);
    float *gdw = cuda_test_upload(dw, C, MOE_DT_F32), *gdb = cuda_test_upload(db, C, MOE_DT_F32);
    void *gy = cuda_test_poisoned(n, dt), *gdx = cuda_test_poisoned(n, dt);
    float *gmean = cuda_test_poisoned(N, MOE_DT_F32), *grstd = cuda_test_poisoned(N, MOE_DT_F32);
    const float *bias = with_bias ? b : NULL;
    float *gbias = with_bias ? gb : NULL, *gdbias = with_bias ? gdb : NULL;

    CUDA_OK(
        moe_cuda_layernorm_forward(cuda_test_ctx, dt, gy, gmean, grstd, gx, gw, gbias, N, C, eps));
    CUDA_OK(moe_cuda_layernorm_backward(cuda_test_ctx, dt, gdx, gdw, gdbias, gdy, gx, gw, gmean,
                                        grstd, N, C));
    layernorm_forward(y, mean, rstd, x, w, bias, N, C, eps);
    layernorm_backward(dx, dw, with_bias ? db : NULL, dy, x, w, mean, rstd, N, C);

    float *hy = cuda_test_download(gy, n, dt), *hdx = cuda_test_download(gdx, n, dt);
    float *hmean = cuda_test_download(gmean, N, MOE_DT_F32);
    float *hrstd = cuda_test_download(grstd, N, MOE_DT_F32);
    float *hdw = cuda_test_download(gdw, C, MOE_DT_F32), *hdb = cuda_test_download(gdb, C, 0);
    char what[96];
#define WHAT(s)                                                                                    \
    (snprintf(what, sizeof what, "layernorm %s %s N=%d C=%d%s", s, moe_dtype_name(dt), N, C,       \
              with_bias ? "" : " nobias"),                                                         \
     what)
    cuda_assert_close(WHAT("out"), hy, y, n, out_bound(dt));
    cuda_assert_close(WHAT("mean"), hmean, mean, N, F32_BOUND);
    cuda_assert_close(WHAT("rstd"), hrstd, rstd, N, F32_BOUND);
    /* dinp: fp32 math; C=4100 rows sum 4100 products: a little more slack */
    cuda_assert_close(WHAT("dinp"), hdx, dx, n, cuda_test_bound(dt, 2e-5, BF16_BOUND));
    cuda_assert_close(WHAT("dweight (+=)"), hdw, dw, C, F32_BOUND);
    /* without bias the launcher must leave dbias alone: db is unchanged */
    cuda_assert_close(WHAT("dbias (+= or untouched)"), hdb, db, C, F32_BOUND);
#undef WHAT
    void *g[] = {gx, gdy, gw, gb, gdw, gdb, gy, gdx, gmean, grstd};
    for (int i = 0; i < 10; i++) gfree(g[i]);
    float *h[] = {x, dy, w, b, dw, db, y, mean, rstd, dx, hy, hdx, hmean, hrstd, hdw, hdb};
    for (int i = 0; i < 16; i++) free(h[i]);
}

static const int norm_shapes[][2] = {{5, 1}, {3, 7}, {1, 768}, {64, 768}, {9, 4100}, {300, 33}};
#define N_NORM_SHAPES (int)(sizeof norm_shapes / sizeof norm_shapes[0])

static void test_layernorm(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++)
        for (int s = 0; s < N_NORM_SHAPES; s++)
            check_layernorm((moe_dtype)dt, norm_shapes[s][0], norm_shapes[s][1], s != 2);
    /* many rows: several strips of the column sums (NORM_MAX_STRIPS reached) */
    check_layernorm(MOE_DT_F32, 40000, 9, 1);
    check_layernorm(MOE_DT_BF16, 40000, 9, 0);
}

/* ---- RMSNorm -------------------------------------------------------------- */

static void check_rmsnorm(moe_dtype dt, int N, int C) {
    long n = (long)N * C;
    /* C = 1: dinp = s w g eps / (x^2 + eps), a difference of two nearly equal
     * terms; fp32 keeps its relative error small only for a large eps */
    const float eps = C == 1 ? 1.0f : 1e-6f;
    float *x = randn_host(n, 1, 0.5f, dt), *dy = randn_host(n, 1, 0, dt);
    float *w = randn_host(C, 1, 1, MOE_DT_F32), *dw = randn_host(C, 1, 0, MOE_DT_F32);
    float *y = malloc(n * 4), *rstd = malloc(N * 4), *dx = malloc(n * 4);
    void *gx = cuda_test_upload(x, n, dt), *gdy = cuda_test_upload(dy, n, dt);
    float *gw = cuda_test_upload(w, C, MOE_DT_F32), *gdw = cuda_test_upload(dw, C, MOE_DT_F32);
    void *gy = cuda_test_poisoned(n, dt), *gdx = cuda_test_poisoned(n, dt);
    float *grstd = cuda_test_poisoned(N, MOE_DT_F32);

    CUDA_OK(moe_cuda_rmsnorm_forward(cuda_test_ctx, dt, gy, grstd, gx, gw, N, C, eps));
    CUDA_OK(moe_cuda_rmsnorm_backward(cuda_test_ctx, dt, gdx, gdw, gdy, gx, gw, grstd, N, C));
    rmsnorm_forward(y, rstd, x, w, N, C, eps);
    rmsnorm_backward(dx, dw, dy, x, w, rstd, N, C);

    float *hy = cuda_test_download(gy, n, dt), *hdx = cuda_test_download(gdx, n, dt);
    float *hrstd = cuda_test_download(grstd, N, MOE_DT_F32);
    float *hdw = cuda_test_download(gdw, C, MOE_DT_F32);
    char what[96];
#define WHAT(s)                                                                                    \
    (snprintf(what, sizeof what, "rmsnorm %s %s N=%d C=%d", s, moe_dtype_name(dt), N, C), what)
    cuda_assert_close(WHAT("out"), hy, y, n, out_bound(dt));
    cuda_assert_close(WHAT("rstd"), hrstd, rstd, N, F32_BOUND);
    cuda_assert_close(WHAT("dinp"), hdx, dx, n, cuda_test_bound(dt, 2e-5, BF16_BOUND));
    cuda_assert_close(WHAT("dweight (+=)"), hdw, dw, C, F32_BOUND);
#undef WHAT
    void *g[] = {gx, gdy, gw, gdw, gy, gdx, grstd};
    for (int i = 0; i < 7; i++) gfree(g[i]);
    float *h[] = {x, dy, w, dw, y, rstd, dx, hy, hdx, hrstd, hdw};
    for (int i = 0; i < 11; i++) free(h[i]);
}

static void test_rmsnorm(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++)
        for (int s = 0; s < N_NORM_SHAPES; s++)
            check_rmsnorm((moe_dtype)dt, norm_shapes[s][0], norm_shapes[s][1]);
    check_rmsnorm(MOE_DT_F32, 40000, 9);
}

/* ---- Activations, SwiGLU, residual ---------------------------------------- */

typedef void (*act_fwd_fn)(moe_real *, const moe_real *, long);
typedef void (*act_bwd_fn)(moe_real *, const moe_real *, const moe_real *, long);

static void check_act(moe_dtype dt, moe_cuda_act act, long n, int in_place) {
    static const act_fwd_fn fwd[] = {relu_forward, gelu_forward, silu_forward};
    static const act_bwd_fn bwd[] = {relu_backward, gelu_backward, silu_backward};
    static const char *name[] = {"relu", "gelu", "silu"};
    float *x = randn_host(n, 3, 0, dt), *dy = randn_host(n, 1, 0, dt);
    float *y = malloc(n * 4), *dx = malloc(n * 4);
    void *gx = cuda_test_upload(x, n, dt), *gdy = cuda_test_upload(dy, n, dt);
    void *gy, *gdx;
    /* backward first (it reads x), then forward; in place: the output
     * overwrites its own input (dinp over dout, out over inp) */
    if (in_place) {
        gdx = gdy;
        CUDA_OK(moe_cuda_act_backward(cuda_test_ctx, dt, act, gdx, gdy, gx, n));
        gy = gx;
        CUDA_OK(moe_cuda_act_forward(cuda_test_ctx, dt, act, gy, gx, n));
    } else {
        gdx = cuda_test_poisoned(n, dt), gy = cuda_test_poisoned(n, dt);
        CUDA_OK(moe_cuda_act_backward(cuda_test_ctx, dt, act, gdx, gdy, gx, n));
        CUDA_OK(moe_cuda_act_forward(cuda_test_ctx, dt, act, gy, gx, n));
    }
    fwd[act](y, x, n);
    bwd[act](dx, dy, x, n);
    float *hy = cuda_test_download(gy, n, dt), *hdx = cuda_test_download(gdx, n, dt);
    char what[96];
    snprintf(what, sizeof what, "%s out %s n=%ld%s", name[act], moe_dtype_name(dt), n,
             in_place ? " in place" : "");
    cuda_assert_close(what, hy, y, n, out_bound(dt));
    snprintf(what, sizeof what, "%s dinp %s n=%ld%s", name[act], moe_dtype_name(dt), n,
             in_place ? " in place" : "");
    cuda_assert_close(what, hdx, dx, n, out_bound(dt));
    gfree(gx), gfree(gdy);
    if (!in_place) gfree(gy), gfree(gdx);
    free(x), free(dy), free(y), free(dx), free(hy), free(hdx);
}

static void test_activations(void **state) {
    (void)state;
    const long sizes[] = {1, 7, 100003};
    for (int dt = 0; dt < 2; dt++)
        for (int a = 0; a < 3; a++) {
            for (int s = 0; s < 3; s++) check_act((moe_dtype)dt, (moe_cuda_act)a, sizes[s], 0);
            check_act((moe_dtype)dt, (moe_cuda_act)a, 4099, 1);
        }
}

static void check_swiglu(moe_dtype dt, long n) {
    float *a = randn_host(n, 3, 0, dt), *b = randn_host(n, 1, 0, dt), *dy = randn_host(n, 1, 0, dt);
    float *y = malloc(n * 4), *da = malloc(n * 4), *db = malloc(n * 4);
    void *ga = cuda_test_upload(a, n, dt), *gb = cuda_test_upload(b, n, dt);
    void *gdy = cuda_test_upload(dy, n, dt), *gy = cuda_test_poisoned(n, dt);
    void *gda = cuda_test_poisoned(n, dt), *gdb = cuda_test_poisoned(n, dt);
    CUDA_OK(moe_cuda_swiglu_forward(cuda_test_ctx, dt, gy, ga, gb, n));
    CUDA_OK(moe_cuda_swiglu_backward(cuda_test_ctx, dt, gda, gdb, gdy, ga, gb, n));
    swiglu_forward(y, a, b, n);
    swiglu_backward(da, db, dy, a, b, n);
    float *hy = cuda_test_download(gy, n, dt), *hda = cuda_test_download(gda, n, dt);
    float *hdb = cuda_test_download(gdb, n, dt);
    char what[96];
    snprintf(what, sizeof what, "swiglu out %s n=%ld", moe_dtype_name(dt), n);
    cuda_assert_close(what, hy, y, n, out_bound(dt));
    snprintf(what, sizeof what, "swiglu da %s n=%ld", moe_dtype_name(dt), n);
    cuda_assert_close(what, hda, da, n, out_bound(dt));
    snprintf(what, sizeof what, "swiglu db %s n=%ld", moe_dtype_name(dt), n);
    cuda_assert_close(what, hdb, db, n, out_bound(dt));
    void *g[] = {ga, gb, gdy, gy, gda, gdb};
    for (int i = 0; i < 6; i++) gfree(g[i]);
    float *h[] = {a, b, dy, y, da, db, hy, hda, hdb};
    for (int i = 0; i < 9; i++) free(h[i]);
}

static void test_swiglu(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        check_swiglu((moe_dtype)dt, 1);
        check_swiglu((moe_dtype)dt, 77777);
    }
}

static void check_residual(moe_dtype dt, long n) {
    float *a = randn_host(n, 1, 0, dt), *b = randn_host(n, 1, 0, dt), *dy = randn_host(n, 1, 0, dt);
    /* backward adds into da, db: they start non-zero */
    float *da = randn_host(n, 1, 0, dt), *db = randn_host(n, 1, 0, dt), *y = malloc(n * 4);
    void *ga = cuda_test_upload(a, n, dt), *gb = cuda_test_upload(b, n, dt);
    void *gdy = cuda_test_upload(dy, n, dt), *gy = cuda_test_poisoned(n, dt);
    void *gda = cuda_test_upload(da, n, dt), *gdb = cuda_test_upload(db, n, dt);
    CUDA_OK(moe_cuda_residual_forward(cuda_test_ctx, dt, gy, ga, gb, n));
    CUDA_OK(moe_cuda_residual_backward(cuda_test_ctx, dt, gda, gdb, gdy, n));
    residual_forward(y, a, b, n);
    residual_backward(da, db, dy, n);
    float *hy = cuda_test_download(gy, n, dt), *hda = cuda_test_download(gda, n, dt);
    float *hdb = cuda_test_download(gdb, n, dt);
    char what[96];
    snprintf(what, sizeof what, "residual out %s n=%ld", moe_dtype_name(dt), n);
    cuda_assert_close(what, hy, y, n, out_bound(dt));
    snprintf(what, sizeof what, "residual da (+=) %s n=%ld", moe_dtype_name(dt), n);
    cuda_assert_close(what, hda, da, n, out_bound(dt));
    snprintf(what, sizeof what, "residual db (+=) %s n=%ld", moe_dtype_name(dt), n);
    cuda_assert_close(what, hdb, db, n, out_bound(dt));
    /* in place: out = a + b over a */
    CUDA_OK(moe_cuda_residual_forward(cuda_test_ctx, dt, ga, ga, gb, n));
    float *ha = cuda_test_download(ga, n, dt);
    snprintf(what, sizeof what, "residual out over a %s n=%ld", moe_dtype_name(dt), n);
    cuda_assert_close(what, ha, y, n, out_bound(dt));
    void *g[] = {ga, gb, gdy, gy, gda, gdb};
    for (int i = 0; i < 6; i++) gfree(g[i]);
    float *h[] = {a, b, dy, da, db, y, hy, hda, hdb, ha};
    for (int i = 0; i < 10; i++) free(h[i]);
}

static void test_residual(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        check_residual((moe_dtype)dt, 1);
        check_residual((moe_dtype)dt, 100001);
    }
}

/* ---- Embedding ------------------------------------------------------------ */

static void check_embedding(moe_dtype dt, int V, int N, int C) {
    long nt = (long)V * C, n = (long)N * C;
    float *table = randn_host(nt, 1, 0, dt), *dy = randn_host(n, 1, 0, dt);
    float *dtable = randn_host(nt, 1, 0, MOE_DT_F32), *y = malloc(n * 4);
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    for (int i = 0; i < N; i++) ids[i] = (int32_t)moe_rng_below(&rng, (uint32_t)V); /* repeats */
    if (N > 1) ids[N - 1] = ids[0];
    int32_t *gids;
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, (void **)&gids, (size_t)N * sizeof *gids));
    CUDA_OK(moe_cuda_upload(cuda_test_ctx, gids, ids, (size_t)N * sizeof *gids));
    void *gt = cuda_test_upload(table, nt, dt), *gdy = cuda_test_upload(dy, n, dt);
    float *gdt = cuda_test_upload(dtable, nt, MOE_DT_F32);
    void *gy = cuda_test_poisoned(n, dt);
    CUDA_OK(moe_cuda_embedding_forward(cuda_test_ctx, dt, gy, gids, gt, N, C));
    CUDA_OK(moe_cuda_embedding_backward(cuda_test_ctx, dt, gdt, gdy, gids, N, C));
    embedding_forward(y, ids, table, N, C);
    embedding_backward(dtable, dy, ids, N, C);
    float *hy = cuda_test_download(gy, n, dt), *hdt = cuda_test_download(gdt, nt, MOE_DT_F32);
    char what[96];
    snprintf(what, sizeof what, "embedding out %s V=%d N=%d C=%d", moe_dtype_name(dt), V, N, C);
    cuda_assert_close(what, hy, y, n, 0); /* a copy: exact */
    /* fp32 atomics: repeated ids add in any order */
    snprintf(what, sizeof what, "embedding dtable (+=) %s V=%d N=%d C=%d", moe_dtype_name(dt), V, N,
             C);
    cuda_assert_close(what, hdt, dtable, nt, F32_BOUND);
    gfree(gids), gfree(gt), gfree(gdy), gfree(gdt), gfree(gy);
    free(table), free(dy), free(dtable), free(y), free(ids), free(hy), free(hdt);
}

static void test_embedding(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        check_embedding((moe_dtype)dt, 50, 1, 768);
        check_embedding((moe_dtype)dt, 50, 300, 7);
        check_embedding((moe_dtype)dt, 1000, 257, 768);
        check_embedding((moe_dtype)dt, 3, 100, 1);
    }
}

/* ---- RoPE ----------------------------------------------------------------- */

static void check_rope(moe_dtype dt, int B, int T, int H, int hd, int extra, int pos0,
                       int in_place) {
    int row_stride = H * hd + extra;
    long n = (long)B * T * row_stride;
    const float theta = 10000.0f;
    float *x = randn_host(n, 1, 0, dt), *dy = randn_host(n, 1, 0, dt);
    /* outputs start as random values, the same on both sides: the elements
     * past H*hd in each row must keep them */
    float *y = randn_host(n, 1, 0, dt), *dx = randn_host(n, 1, 0, dt);
    void *gx = cuda_test_upload(x, n, dt), *gdy = cuda_test_upload(dy, n, dt);
    void *gy = in_place ? gx : cuda_test_upload(y, n, dt);
    void *gdx = in_place ? gdy : cuda_test_upload(dx, n, dt);
    if (in_place) memcpy(y, x, n * 4), memcpy(dx, dy, n * 4);
    CUDA_OK(moe_cuda_rope_forward(cuda_test_ctx, dt, gy, gx, B, T, H, hd, row_stride, pos0, theta));
    CUDA_OK(
        moe_cuda_rope_backward(cuda_test_ctx, dt, gdx, gdy, B, T, H, hd, row_stride, pos0, theta));
    rope_forward(y, x, B, T, H, hd, row_stride, pos0, theta);
    rope_backward(dx, dy, B, T, H, hd, row_stride, pos0, theta);
    float *hy = cuda_test_download(gy, n, dt), *hdx = cuda_test_download(gdx, n, dt);
    char what[120];
    snprintf(what, sizeof what, "rope out %s B=%d T=%d H=%d hd=%d +%d pos0=%d%s",
             moe_dtype_name(dt), B, T, H, hd, extra, pos0, in_place ? " in place" : "");
    cuda_assert_close(what, hy, y, n, out_bound(dt));
    snprintf(what, sizeof what, "rope dinp %s B=%d T=%d H=%d hd=%d +%d pos0=%d%s",
             moe_dtype_name(dt), B, T, H, hd, extra, pos0, in_place ? " in place" : "");
    cuda_assert_close(what, hdx, dx, n, out_bound(dt));
    gfree(gx), gfree(gdy);
    if (!in_place) gfree(gy), gfree(gdx);
    free(x), free(dy), free(y), free(dx), free(hy), free(hdx);
}

static void test_rope(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        check_rope((moe_dtype)dt, 2, 5, 3, 8, 5, 7, 0);          /* gaps between rows */
        check_rope((moe_dtype)dt, 1, 1, 1, 2, 0, 3, 0);          /* one pair */
        check_rope((moe_dtype)dt, 3, 33, 4, 64, 0, 1000, 0);     /* large angles */
        check_rope((moe_dtype)dt, 2, 17, 6, 128, 3 * 128, 5, 1); /* in place, inside qkv */
    }
}

/* ---- Cross-entropy --------------------------------------------------------- */

/* ignore_every: every so many rows get ignore_index (0: none); bad_row >= 0:
 * that row's target is out of range; alias: dlogits over logits; no_grad:
 * dlogits NULL. */
static void check_ce(moe_dtype dt, int N, int V, int ignore_every, int bad_row, int alias,
                     int no_grad, int all_ignored) {
    const int ignore_index = -100;
    const float scale = 0.75f;
    long n = (long)N * V;
    float *x = randn_host(n, 2, 0, dt), *probs = malloc(n * 4), *dx = malloc(n * 4);
    int32_t *t = malloc((size_t)(N ? N : 1) * sizeof *t);
    for (int i = 0; i < N; i++) {
        t[i] = (int32_t)moe_rng_below(&rng, (uint32_t)V);
        if (all_ignored || (ignore_every && i % ignore_every == 1)) t[i] = ignore_index;
    }
    if (bad_row >= 0) t[bad_row] = V + 3;
    int count = -1;
    double loss = crossentropy_forward(probs, x, t, N, V, ignore_index, &count);
    crossentropy_backward(dx, probs, t, N, V, ignore_index, count, scale);

    int32_t *gt;
    void *scratch;
    float *gloss = cuda_test_poisoned(1, MOE_DT_F32);
    int *gcount;
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, (void **)&gt, (size_t)(N ? N : 1) * sizeof *gt));
    CUDA_OK(moe_cuda_upload(cuda_test_ctx, gt, t, (size_t)N * sizeof *gt));
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, (void **)&gcount, sizeof(int)));
    int poison = -7;
    CUDA_OK(moe_cuda_upload(cuda_test_ctx, gcount, &poison, sizeof poison));
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, &scratch, moe_cuda_crossentropy_scratch(N)));
    void *gx = cuda_test_upload(x, n, dt);
    void *gdx = no_grad ? NULL : alias ? gx : cuda_test_poisoned(n, dt);
    /* the no-gradient case also leaves count NULL */
    CUDA_OK(moe_cuda_crossentropy(cuda_test_ctx, dt, gloss, no_grad ? NULL : gcount, gdx, gx, gt, N,
                                  V, ignore_index, scale, scratch));
    float hloss;
    int hcount = -1;
    CUDA_OK(moe_cuda_download(cuda_test_ctx, &hloss, gloss, sizeof hloss));
    CUDA_OK(moe_cuda_download(cuda_test_ctx, &hcount, gcount, sizeof hcount));
    char what[120];
    snprintf(what, sizeof what, "crossentropy %s N=%d V=%d%s%s%s", moe_dtype_name(dt), N, V,
             alias ? " in place" : "", no_grad ? " no grad, count NULL" : "",
             all_ignored ? " all ignored" : "");
    printf("  %s: loss %.7g (cpu %.7g), count %d (cpu %d)\n", what, hloss, loss, hcount, count);
    assert_int_equal(hcount, no_grad ? poison : count);
    if (bad_row >= 0) {
        assert_true(isnan(hloss)); /* an out-of-range target: NaN loss */
        assert_true(isnan(loss));
    } else {
        float want = (float)loss;
        /* the loss: fp32 per row, double sum; the logits are the same values */
        cuda_assert_close("  loss", &hloss, &want, 1, all_ignored ? 0 : F32_BOUND);
    }
    if (!no_grad) {
        float *hdx = cuda_test_download(gdx, n, dt);
        cuda_assert_close("  dlogits", hdx, dx, n, out_bound(dt));
        free(hdx);
    }
    gfree(gt), gfree(gcount), gfree(scratch), gfree(gloss), gfree(gx);
    if (gdx && gdx != gx) gfree(gdx);
    free(x), free(probs), free(dx), free(t);
}

static void test_crossentropy(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        moe_dtype d = (moe_dtype)dt;
        check_ce(d, 37, 1000, 5, -1, 0, 0, 0); /* some rows ignored */
        check_ce(d, 1, 7, 0, -1, 0, 0, 0);     /* one row, short */
        check_ce(d, 13, 1, 3, -1, 0, 0, 0);    /* V = 1: loss 0, dlogits 0 */
        check_ce(d, 8, 50257, 4, -1, 1, 0, 0); /* GPT-2 vocabulary, in place */
        check_ce(d, 2000, 33, 7, -1, 0, 0, 0); /* many rows */
        check_ce(d, 9, 100, 0, -1, 0, 1, 0);   /* no dlogits */
        check_ce(d, 6, 100, 0, -1, 0, 0, 1);   /* every row ignored: loss 0, count 0 */
        check_ce(d, 11, 100, 3, 4, 0, 0, 0);   /* an out-of-range target: NaN */
    }
}

/* ---- Sum of squares and AdamW -------------------------------------------- */

static void test_sumsq(void **state) {
    (void)state;
    const long sizes[] = {1, 1000, 3000001};
    for (int s = 0; s < 3; s++) {
        long n = sizes[s];
        float *g = randn_host(n, 1, 0, MOE_DT_F32);
        double want = 0;
        for (long i = 0; i < n; i++) want += (double)g[i] * g[i];
        float *gg = cuda_test_upload(g, n, MOE_DT_F32), *gout = cuda_test_poisoned(2, MOE_DT_F32);
        CUDA_OK(moe_cuda_sumsq(cuda_test_ctx, gout, gg, n));
        CUDA_OK(moe_cuda_sumsq(cuda_test_ctx, gout + 1, gg, n));
        float got[2];
        CUDA_OK(moe_cuda_download(cuda_test_ctx, got, gout, sizeof got));
        float w = (float)want;
        char what[64];
        snprintf(what, sizeof what, "sumsq n=%ld", n);
        cuda_assert_close(what, got, &w, 1, 1e-6);
        assert_memory_equal(&got[0], &got[1], 4); /* deterministic */
        gfree(gg), gfree(gout), free(g);
    }
}

/* 3 AdamW steps on n parameters against moe_optim_step (AdamW), with
 * clipping off, on (max_norm well under the gradient norm: clip < 1) and
 * inactive (max_norm over it); the bf16 or fp32 copy is checked too. */
static void check_adamw(long n, float max_norm_factor, moe_dtype copy_dt) {
    moe_optim_config cfg = {0};
    cfg.kind = MOE_OPT_ADAMW;
    cfg.lr = 1e-2f, cfg.beta1 = 0.9f, cfg.beta2 = 0.95f, cfg.eps = 1e-8f;
    cfg.weight_decay = 0.1f;
    moe_optim o;
    CUDA_OK(moe_optim_init(&o, &cfg, (size_t)n));
    float *p = randn_host(n, 1, 0, MOE_DT_F32), *g = malloc(n * 4);
    float *gp = cuda_test_upload(p, n, MOE_DT_F32), *gg = cuda_test_poisoned(n, MOE_DT_F32);
    float *gm, *gv, *gsum = cuda_test_poisoned(1, MOE_DT_F32);
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, (void **)&gm, n * 4));
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, (void **)&gv, n * 4));
    CUDA_OK(moe_cuda_zero(cuda_test_ctx, gm, n * 4));
    CUDA_OK(moe_cuda_zero(cuda_test_ctx, gv, n * 4));
    void *gcopy = cuda_test_poisoned(n, copy_dt);
    const float lrs[3] = {1e-2f, 5e-3f, 2e-2f};
    for (int step = 1; step <= 3; step++) {
        cuda_test_randn(g, n, 1, &rng);
        CUDA_OK(moe_cuda_upload(cuda_test_ctx, gg, g, n * 4));
        CUDA_OK(moe_cuda_sync(cuda_test_ctx)); /* g changes on the host below */
        double norm = 0;
        for (long i = 0; i < n; i++) norm += (double)g[i] * g[i];
        norm = sqrt(norm);
        float max_norm = (float)(norm * max_norm_factor);
        moe_cuda_adamw h = {lrs[step - 1],    cfg.beta1, cfg.beta2, cfg.eps,
                            cfg.weight_decay, step,      max_norm};
        if (max_norm > 0) {
            CUDA_OK(moe_cuda_sumsq(cuda_test_ctx, gsum, gg, n));
            moe_grad_clip(g, (size_t)n, max_norm);
        }
        CUDA_OK(moe_cuda_adamw_step(cuda_test_ctx, gp, gg, gm, gv, gcopy, copy_dt, n, &h,
                                    max_norm > 0 ? gsum : NULL));
        moe_optim_step(&o, p, g, lrs[step - 1]);
    }
    float *hp = cuda_test_download(gp, n, MOE_DT_F32), *hm = cuda_test_download(gm, n, 0);
    float *hv = cuda_test_download(gv, n, MOE_DT_F32), *hc = cuda_test_download(gcopy, n, copy_dt);
    char what[96];
    snprintf(what, sizeof what, "adamw p n=%ld clip x%.2f", n, max_norm_factor);
    cuda_assert_close(what, hp, p, n, F32_BOUND);
    snprintf(what, sizeof what, "adamw m n=%ld clip x%.2f", n, max_norm_factor);
    cuda_assert_close(what, hm, o.state, n, F32_BOUND);
    snprintf(what, sizeof what, "adamw v n=%ld clip x%.2f", n, max_norm_factor);
    cuda_assert_close(what, hv, o.state + n, n, F32_BOUND);
    /* the copy is the device's own p, rounded once to copy_dt */
    cuda_test_round(hp, n, copy_dt);
    snprintf(what, sizeof what, "adamw copy (%s) = p", moe_dtype_name(copy_dt));
    cuda_assert_close(what, hc, hp, n, 0);
    moe_optim_free(&o);
    gfree(gp), gfree(gg), gfree(gm), gfree(gv), gfree(gsum), gfree(gcopy);
    free(p), free(g), free(hp), free(hm), free(hv), free(hc);
}

static void test_adamw(void **state) {
    (void)state;
    check_adamw(10007, 0, MOE_DT_BF16);    /* no clipping */
    check_adamw(10007, 0.3f, MOE_DT_BF16); /* clipping active */
    check_adamw(10007, 2.0f, MOE_DT_F32);  /* clipping on, not active */
    check_adamw(1, 0.5f, MOE_DT_F32);
}

/* ---- Bad arguments -------------------------------------------------------- */

static void expect_invalid(moe_status st, const char *what) {
    if (st != MOE_ERR_INVALID) fail_msg("%s: status %d, expected MOE_ERR_INVALID", what, (int)st);
    printf("  %s: %s\n", what, moe_last_error());
}

static void test_bad_arguments(void **state) {
    (void)state;
    moe_cuda *c = cuda_test_ctx;
    float dummy_f[4] = {0};
    void *d = dummy_f; /* never dereferenced: the checks come first */
    moe_cuda_adamw h = {1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0, 0};
    expect_invalid(moe_cuda_layernorm_forward(c, MOE_DT_F32, d, d, d, d, d, d, -1, 8, 1e-5f),
                   "layernorm N<0");
    expect_invalid(moe_cuda_layernorm_backward(c, MOE_DT_F32, d, d, d, d, d, d, d, d, 4, 0),
                   "layernorm_backward C=0");
    expect_invalid(moe_cuda_rmsnorm_forward(c, MOE_DT_F32, d, d, d, d, 4, 0, 1e-5f), "rmsnorm C=0");
    expect_invalid(moe_cuda_rmsnorm_backward(c, MOE_DT_F32, d, d, d, d, d, d, -2, 4),
                   "rmsnorm_backward N<0");
    expect_invalid(moe_cuda_act_forward(c, MOE_DT_F32, MOE_CUDA_GELU, d, d, -1), "act n<0");
    expect_invalid(moe_cuda_act_forward(c, MOE_DT_F32, (moe_cuda_act)7, d, d, 4), "act kind 7");
    expect_invalid(moe_cuda_act_backward(c, MOE_DT_BF16, MOE_CUDA_SILU, d, d, d, -1),
                   "act_backward n<0");
    expect_invalid(moe_cuda_swiglu_forward(c, MOE_DT_F32, d, d, d, -1), "swiglu n<0");
    expect_invalid(moe_cuda_swiglu_backward(c, MOE_DT_F32, d, d, d, d, d, -1),
                   "swiglu_backward n<0");
    expect_invalid(moe_cuda_residual_forward(c, MOE_DT_F32, d, d, d, -1), "residual n<0");
    expect_invalid(moe_cuda_residual_backward(c, MOE_DT_F32, d, d, d, -1), "residual_backward n<0");
    expect_invalid(moe_cuda_embedding_forward(c, MOE_DT_F32, d, d, d, -1, 4), "embedding N<0");
    expect_invalid(moe_cuda_embedding_backward(c, MOE_DT_F32, d, d, d, 4, -1),
                   "embedding_backward C<0");
    expect_invalid(moe_cuda_rope_forward(c, MOE_DT_F32, d, d, 1, 1, 1, 7, 7, 0, 1e4f),
                   "rope odd hd");
    expect_invalid(moe_cuda_rope_backward(c, MOE_DT_F32, d, d, 1, 1, 2, 8, 15, 0, 1e4f),
                   "rope_backward row_stride < H*hd");
    expect_invalid(moe_cuda_crossentropy(c, MOE_DT_F32, d, NULL, NULL, d, d, 4, 0, -100, 1, d),
                   "crossentropy V=0");
    expect_invalid(moe_cuda_crossentropy(c, MOE_DT_F32, d, NULL, NULL, d, d, -1, 8, -100, 1, d),
                   "crossentropy N<0");
    expect_invalid(moe_cuda_sumsq(c, d, d, -1), "sumsq n<0");
    expect_invalid(moe_cuda_adamw_step(c, d, d, d, d, NULL, MOE_DT_F32, 4, &h, NULL),
                   "adamw step 0");
    h.step = 1;
    expect_invalid(moe_cuda_adamw_step(c, d, d, d, d, NULL, MOE_DT_F32, -4, &h, NULL), "adamw n<0");
    /* NULL where a buffer is required (non-empty sizes) */
    expect_invalid(moe_cuda_layernorm_forward(c, MOE_DT_F32, d, NULL, d, d, d, NULL, 4, 8, 1e-5f),
                   "layernorm mean NULL");
    expect_invalid(moe_cuda_rmsnorm_forward(c, MOE_DT_F32, d, d, d, NULL, 4, 8, 1e-5f),
                   "rmsnorm weight NULL");
    expect_invalid(moe_cuda_act_forward(c, MOE_DT_F32, MOE_CUDA_GELU, NULL, d, 4), "act out NULL");
    expect_invalid(moe_cuda_embedding_forward(c, MOE_DT_F32, d, NULL, d, 4, 4),
                   "embedding ids NULL");
    expect_invalid(moe_cuda_crossentropy(c, MOE_DT_F32, d, NULL, NULL, NULL, d, 4, 8, -100, 1, d),
                   "crossentropy logits NULL");
    expect_invalid(moe_cuda_sumsq(c, NULL, d, 4), "sumsq out NULL");
    expect_invalid(moe_cuda_adamw_step(c, d, NULL, d, d, NULL, MOE_DT_F32, 4, &h, NULL),
                   "adamw grad NULL");
    expect_invalid(moe_cuda_cast(c, d, MOE_DT_BF16, d, MOE_DT_F32, -1), "cast n<0");
    /* nothing was launched: the context still works */
    CUDA_OK(moe_cuda_sync(c));
}

int main(void) {
    cuda_test_init_or_skip();
    cuda_test_seed(&rng);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm),     cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_activations),   cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_residual),      cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_rope),          cmocka_unit_test(test_crossentropy),
        cmocka_unit_test(test_sumsq),         cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_bad_arguments),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    moe_cuda_destroy(cuda_test_ctx);
    return rc;
}
