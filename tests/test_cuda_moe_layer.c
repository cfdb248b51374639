/* GPU: the MoE layer (src/nn/moe/cuda/layer_cuda.c) against the CPU layer
 * (include/moe/layer.h) on the same weights and input, in fp32 and bf16:
 * routing (chosen experts, capacity, rows) exactly, router scores, weights and
 * auxiliary losses, out, dx and the parameter gradients within bounds.
 *
 * Routing is made decisive, not lucky: the GPU's logits come out of an fp32
 * GEMM over the same (bf16-rounded) inputs, so they differ from the CPU's by
 * rounding only (~1e-6); every token's input is redrawn until the gaps between
 * its top k+1 logits exceed 1e-3, so no near-tie can flip a choice, in either
 * dtype. The input is skewed toward expert 0 so the capacity configs really
 * drop pairs (asserted on the CPU side).
 *
 * The configuration checks (moe_layer_cuda_supported) need no GPU and run
 * first; the rest skips (77) without a device. */
#include "cuda_test.h"
#include "moe_layer_buf.h"
#include "nn/moe/cuda/layer_cuda.h"
#include "nn/moe/moe_internal.h"

#include <string.h>

static moe_rng rng;

/* Router weights N(0, GATE_SCALE^2 / D): logits of spread ~GATE_SCALE; the
 * input leans SKEW along expert 0's router row, so expert 0 is popular:
 * with these values (tried on 150 draws of each config on the CPU) the
 * capacity configs drop at least 13 pairs (T = 97) or 47 (T = 333), and
 * tiny-silu always drops (10 pairs, 8 experts of capacity 1). */
#ifndef GATE_SCALE
#define GATE_SCALE 1.0f
#endif
#ifndef SKEW
#define SKEW 1.0
#endif

typedef struct layer_case {
    const char *name;
    moe_layer_config cfg;
    int T, T_max; /* tokens of the call, tokens the workspace is sized for */
    float daux;
    int drops; /* 1: the CPU must drop pairs (capacity is exercised) */
} layer_case;

/* Mixtral: top-k on logits then softmax over the k, SwiGLU, dropless,
 * Switch (f over T, HF style) and z losses; a workspace larger than T. */
static layer_case case_mixtral(void) {
    layer_case c = {"mixtral-like", layer_cfg(64, 8, 2, 96, MOE_ACT_SWIGLU), 333, 400, 1.0f, 0};
    c.cfg.topk_before_softmax = 1;
    c.cfg.renormalize = 1;
    c.cfg.capacity_factor = 0;
    c.cfg.switch_coef = 0.1f;
    c.cfg.switch_divide_by_k = 0;
    c.cfg.z_coef = 0.05f;
    return c;
}

/* Switch: k = 1, capacity factor 1 (drops), GELU, no renormalisation. */
static layer_case case_switch(void) {
    layer_case c = {"switch-like", layer_cfg(64, 8, 1, 96, MOE_ACT_GELU), 333, 333, 1.0f, 1};
    c.cfg.renormalize = 0;
    c.cfg.capacity_factor = 1.0f;
    c.cfg.switch_coef = 1.0f;
    return c;
}

/* DeepSpeed: k = 2 renormalised, cf 1.25, f over T*k; temperature, daux != 1,
 * ReLU, and a workspace sized for more tokens than the call. */
static layer_case case_deepspeed(void) {
    layer_case c = {"deepspeed-like", layer_cfg(64, 8, 2, 96, MOE_ACT_RELU), 333, 512, 0.5f, 1};
    c.cfg.renormalize = 1;
    c.cfg.capacity_factor = 1.25f;
    c.cfg.switch_coef = 0.5f;
    c.cfg.switch_divide_by_k = 1;
    c.cfg.z_coef = 0.1f;
    c.cfg.temperature = 0.7f;
    return c;
}

/* Few tokens: most experts get no rows; SiLU; cf 0.5 drops (C = 1). */
static layer_case case_tiny(void) {
    layer_case c = {"tiny-silu", layer_cfg(40, 8, 2, 24, MOE_ACT_SILU), 5, 7, 1.0f, 1};
    c.cfg.renormalize = 1;
    c.cfg.capacity_factor = 0.5f;
    c.cfg.switch_coef = 0.3f;
    c.cfg.z_coef = 0.1f;
    return c;
}

/* One token, k = E (every expert, renormalised softmax), odd widths. */
static layer_case case_one_token(void) {
    layer_case c = {"one-token-k=E", layer_cfg(33, 4, 4, 17, MOE_ACT_SWIGLU), 1, 1, 1.0f, 0};
    c.cfg.renormalize = 1;
    c.cfg.z_coef = 0.2f;
    c.cfg.switch_coef = 0.2f;
    return c;
}

/* ---- configuration checks (no GPU) ---------------------------------------- */

static void expect_unsupported(moe_layer_config cfg, const char *field) {
    moe_status st = moe_layer_cuda_supported(&cfg);
    if (st != MOE_ERR_UNSUPPORTED || !strstr(moe_last_error(), field))
        fail_msg("expected MOE_ERR_UNSUPPORTED naming %s, got %d: %s", field, (int)st,
                 moe_last_error());
}

static void test_supported(void **state) {
    (void)state;
    layer_case (*cases[])(void) = {case_mixtral, case_switch, case_deepspeed, case_tiny,
                                   case_one_token};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        layer_case c = cases[i]();
        assert_int_equal(moe_layer_cuda_supported(&c.cfg), MOE_OK);
    }
    moe_layer_config base = case_deepspeed().cfg, c;
    c = base, c.noisy = 1;
    expect_unsupported(c, "moe.noisy");
    c = base, c.shared_d_ff = 32;
    expect_unsupported(c, "moe.shared_d_ff");
    c = base, c.expert_bias = 1;
    expect_unsupported(c, "moe.expert_bias");
    c = base, c.score = MOE_SCORE_SIGMOID;
    expect_unsupported(c, "moe.score");
    c = base, c.routing = MOE_ROUTE_ROUND_ROBIN;
    expect_unsupported(c, "moe.routing");
    c = base, c.var_coef = 0.1f;
    expect_unsupported(c, "moe.var_coef");
    c = base, c.cv_coef = 0.1f;
    expect_unsupported(c, "moe.cv_coef");
    c = base, c.fallback = 1, c.fallback_expert = 0;
    expect_unsupported(c, "moe.fallback");
    c = base, c.n_experts = 300;
    expect_unsupported(c, "moe.n_experts");
    c = base, c.n_experts = 16, c.top_k = 9;
    expect_unsupported(c, "moe.top_k");
    /* invalid stays invalid */
    c = base, c.top_k = 9;
    assert_int_equal(moe_layer_cuda_supported(&c), MOE_ERR_INVALID);
    assert_int_equal(moe_layer_cuda_supported(NULL), MOE_ERR_INVALID);
}

static void test_rows(void **state) {
    (void)state;
    moe_layer_config c = case_mixtral().cfg;
    assert_int_equal(moe_layer_cuda_rows(&c, 333), 666); /* dropless: T*k */
    c = case_switch().cfg;                               /* C = ceil(333/8) = 42 */
    assert_int_equal(moe_layer_cuda_rows(&c, 333), 333); /* min(333, 8*42) */
    c.capacity_factor = 0.5f;                            /* C = ceil(20.8) = 21 */
    assert_int_equal(moe_layer_cuda_rows(&c, 333), 168);
    c = case_deepspeed().cfg; /* C = ceil(1.25*666/8) = 105 */
    assert_int_equal(moe_layer_cuda_rows(&c, 333), 666);
    c.capacity_factor = 0.25f; /* C = ceil(20.8) = 21 */
    assert_int_equal(moe_layer_cuda_rows(&c, 333), 168);
}

/* ---- GPU against CPU ------------------------------------------------------- */

/* Smallest gap between neighbouring logits among the top min(k+1, E) of one
 * token (x [D] . gate^T / temperature, in double). */
static double token_margin(const float *x, const float *gate, const moe_layer_config *cfg) {
    const int D = cfg->d_model, E = cfg->n_experts, k = cfg->top_k;
    double l[256];
    for (int e = 0; e < E; e++) {
        double s = 0;
        for (int i = 0; i < D; i++) s += (double)x[i] * gate[(size_t)e * D + i];
        l[e] = s / cfg->temperature;
    }
    for (int i = 1; i < E; i++) /* insertion sort, descending */
        for (int j = i; j > 0 && l[j] > l[j - 1]; j--) {
            double t = l[j];
            l[j] = l[j - 1], l[j - 1] = t;
        }
    const int n = k < E ? k + 1 : E;
    double m = INFINITY;
    for (int j = 0; j + 1 < n; j++) m = fmin(m, l[j] - l[j + 1]);
    return m;
}

/* x [T,D]: N(0,1) plus a push toward expert 0 (so capacity drops), rounded
 * for dt, each row redrawn until its routing margin is at least 1e-3. */
static void draw_input(float *x, const float *gate, const moe_layer_config *cfg, int T,
                       moe_dtype dt) {
    const int D = cfg->d_model;
    double norm = 0;
    for (int i = 0; i < D; i++) norm += (double)gate[i] * gate[i];
    norm = sqrt(norm);
    for (int t = 0; t < T; t++) {
        float *row = x + (size_t)t * D;
        int tries = 0;
        do {
            assert_true(++tries < 10000);
            cuda_test_randn(row, D, 1, &rng);
            for (int i = 0; i < D; i++) row[i] += (float)(SKEW * gate[i] / norm);
            cuda_test_round(row, D, dt);
        } while (token_margin(row, gate, cfg) < 1e-3);
    }
}

static int32_t *download_ints(const void *d, long n) {
    int32_t *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    CUDA_OK(moe_cuda_download(cuda_test_ctx, h, d, (size_t)n * sizeof *h));
    return h;
}

static void assert_ints_equal(const char *what, const int32_t *got, const int *want, long n) {
    for (long i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("%s: element %ld is %d, the CPU has %d", what, i, got[i], want[i]);
    printf("  %-40s n=%-9ld equal\n", what, n);
}

/* The workspace poison (bytes 0xff) reads as -1 in row_of, which is also
 * its value for a dropped pair: refill row_of with bytes 0xa5 (a large
 * negative int), so a dropped pair left unwritten shows. */
static void poison_row_of(moe_layer_cuda_ws *ws) {
    const size_t n = (size_t)ws->T_max * (size_t)ws->cfg.top_k * sizeof(int32_t);
    void *h = malloc(n);
    memset(h, 0xa5, n);
    CUDA_OK(moe_cuda_upload(cuda_test_ctx, ws->row_of, h, n));
    CUDA_OK(moe_cuda_sync(cuda_test_ctx));
    free(h);
}

/* got - base vs want - base over n fp32 values: what was ADDED. */
static void assert_added(const char *what, float *got, float *want, const float *base, long n,
                         double bound) {
    for (long i = 0; i < n; i++) got[i] -= base[i], want[i] -= base[i];
    cuda_assert_close(what, got, want, n, bound);
}

/* One forward and backward of lc on both sides, compared. ws: a workspace
 * to reuse (sized for lc->T_max, dt), or NULL for a fresh poisoned one. */
static void check_case(const layer_case *lc, moe_dtype dt, moe_layer_cuda_ws *ws) {
    const moe_layer_config *cfg = &lc->cfg;
    const int T = lc->T, D = cfg->d_model, E = cfg->n_experts, k = cfg->top_k, F = cfg->d_ff;
    const int glu = cfg->act == MOE_ACT_SWIGLU;
    const long TD = (long)T * D, EFD = (long)E * F * D, ED = (long)E * D;
    printf("%s, %s, T=%d (workspace %d)\n", lc->name, moe_dtype_name(dt), T, lc->T_max);

    /* weights, rounded for dt; the gradients start non-zero (they add) */
    layer_buf b;
    assert_int_equal(layer_buf_init(&b, cfg), 0);
    cuda_test_randn(b.p.gate, ED, GATE_SCALE / sqrtf((float)D), &rng);
    cuda_test_randn(b.p.w1, EFD, 1.0f / sqrtf((float)D), &rng);
    if (glu) cuda_test_randn(b.p.w3, EFD, 1.0f / sqrtf((float)D), &rng);
    cuda_test_randn(b.p.w2, EFD, 1.0f / sqrtf((float)F), &rng);
    cuda_test_round(b.pblock, (long)b.n, dt);
    cuda_test_randn(b.gblock, (long)b.n, 0.5f, &rng);
    float *g0 = malloc(b.n * sizeof *g0); /* the gradients before backward */
    memcpy(g0, b.gblock, b.n * sizeof *g0);

    float *x = malloc((size_t)TD * 4), *dout = malloc((size_t)TD * 4);
    float *out = malloc((size_t)TD * 4), *dx = malloc((size_t)TD * 4);
    draw_input(x, b.p.gate, cfg, T, dt);
    cuda_test_randn(dout, TD, 1, &rng);
    cuda_test_round(dout, TD, dt);

    /* CPU reference */
    moe_arena arena;
    moe_arena_init(&arena);
    moe_layer_cache *cache = NULL;
    moe_layer_stats *st = NULL;
    moe_rng cpu_rng;
    moe_rng_seed(&cpu_rng, 1);
    CUDA_OK(moe_layer_forward(cfg, &b.p, out, x, T, 1, &cpu_rng, &arena, &cache, &st));
    CUDA_OK(moe_layer_backward(cfg, &b.p, &b.g, dx, dout, cache, lc->daux, &arena));
    const int R = cache->R;
    printf("  CPU: %d of %d pairs kept, %d dropped\n", R, T * k, st->n_dropped);
    if (lc->drops) assert_true(st->n_dropped > 0);
    if (cfg->capacity_factor <= 0) assert_int_equal(st->n_dropped, 0);

    /* GPU */
    moe_cuda *ctx = cuda_test_ctx;
    moe_layer_cuda_params gp = {
        .gate = cuda_test_upload(b.p.gate, ED, dt),
        .w1 = cuda_test_upload(b.p.w1, EFD, dt),
        .w3 = glu ? cuda_test_upload(b.p.w3, EFD, dt) : NULL,
        .w2 = cuda_test_upload(b.p.w2, EFD, dt),
    };
    moe_layer_params g0p; /* the initial gradients, laid out like b.g */
    layer_buf_layout(&g0p, g0, cfg);
    moe_layer_cuda_grads gg = {
        .gate = cuda_test_upload(g0p.gate, ED, MOE_DT_F32),
        .w1 = cuda_test_upload(g0p.w1, EFD, MOE_DT_F32),
        .w3 = glu ? cuda_test_upload(g0p.w3, EFD, MOE_DT_F32) : NULL,
        .w2 = cuda_test_upload(g0p.w2, EFD, MOE_DT_F32),
    };
    void *gx = cuda_test_upload(x, TD, dt), *gdout = cuda_test_upload(dout, TD, dt);
    void *gout = cuda_test_poisoned(TD, dt), *gdx = cuda_test_poisoned(TD, dt);
    const int own_ws = ws == NULL;
    if (own_ws) {
        CUDA_OK(moe_layer_cuda_workspace_create(&ws, ctx, cfg, lc->T_max, dt));
        CUDA_OK(moe_layer_cuda_workspace_poison(ws)); /* read before written: NaN */
        poison_row_of(ws);
    }
    CUDA_OK(moe_layer_cuda_forward(ws, &gp, gout, gx, T, 1));
    CUDA_OK(moe_layer_cuda_backward(ws, &gp, &gg, gdx, gdout, lc->daux));
    CUDA_OK(moe_cuda_sync(ctx));

    /* routing: exactly the CPU's decisions */
    int32_t *chosen = download_ints(ws->chosen, (long)T * k);
    int32_t *row_of = download_ints(ws->row_of, (long)T * k);
    int32_t *offsets = download_ints(ws->offsets, E + 1);
    int32_t *token_of = download_ints(ws->token_of, R);
    int32_t *routed = download_ints(ws->routed, E), *kept = download_ints(ws->kept, E);
    int *want_tok = malloc((size_t)(R ? R : 1) * sizeof *want_tok);
    for (int r = 0; r < R; r++) want_tok[r] = cache->perm[r] / k;
    assert_ints_equal("chosen", chosen, cache->chosen, (long)T * k);
    assert_ints_equal("routed", routed, cache->routed, E);
    assert_ints_equal("kept", kept, cache->kept, E);
    assert_ints_equal("offsets", offsets, cache->offsets, E + 1);
    assert_ints_equal("row_of", row_of, cache->row_of, (long)T * k);
    assert_ints_equal("token_of", token_of, want_tok, R);
    moe_layer_cuda_stats gs;
    CUDA_OK(moe_layer_cuda_stats_read(ws, &gs));
    assert_int_equal(gs.n_tokens, T);
    assert_int_equal(gs.n_pairs, T * k);
    assert_int_equal(gs.n_rows, R);
    assert_int_equal(gs.n_dropped, st->n_dropped);
    for (int e = 0; e < E; e++) {
        assert_int_equal(gs.routed[e], cache->routed[e]);
        assert_int_equal(gs.kept[e], st->expert_tokens[e]);
    }

    /* router values: fp32 from the same logits in both dtypes */
    float *scores = cuda_test_download(ws->scores, (long)T * E, MOE_DT_F32);
    float *lse = cuda_test_download(ws->lse, T, MOE_DT_F32);
    float *weights = cuda_test_download(ws->weights, (long)T * k, MOE_DT_F32);
    cuda_assert_close("scores", scores, cache->scores, (long)T * E, 1e-5);
    cuda_assert_close("lse", lse, cache->lse, T, 1e-5);
    cuda_assert_close("weights", weights, cache->weights, (long)T * k, 1e-5);
    float got_aux[3] = {gs.aux_switch, gs.aux_z, gs.aux_total};
    float want_aux[3] = {(float)st->aux_switch, (float)st->aux_z, (float)st->aux_total};
    for (int i = 0; i < 3; i++) { /* each on its own: their sizes differ */
        printf("  aux[%d] %.7g (CPU %.7g)\n", i, got_aux[i], want_aux[i]);
        assert_close(got_aux[i], want_aux[i], 2e-5 * fmax(1.0, fabs(want_aux[i])));
    }
    cuda_assert_close("mean router probability", gs.mean_prob, st->mean_prob, E, 2e-5);

    /* outputs and gradients. bf16 stores xp, ha, hb, h, y, out (and dy, dh,
     * dha, dhb, dxp, dx, dlogits) rounded: a chain of ~6 roundings of 2^-9. */
    const double act_bound = cuda_test_bound(dt, 1e-5, 2.5e-2);
    float *hout = cuda_test_download(gout, TD, dt), *hdx = cuda_test_download(gdx, TD, dt);
    cuda_assert_close("out", hout, out, TD, act_bound);
    cuda_assert_close("dx", hdx, dx, TD, act_bound);
    struct {
        const char *what;
        float *dev, *want, *base;
        long n;
    } grads[] = {{"dgate (added)", gg.gate, b.g.gate, g0p.gate, ED},
                 {"dw1 (added)", gg.w1, b.g.w1, g0p.w1, EFD},
                 {"dw3 (added)", gg.w3, b.g.w3, g0p.w3, EFD},
                 {"dw2 (added)", gg.w2, b.g.w2, g0p.w2, EFD}};
    for (int i = 0; i < 4; i++) {
        if (!grads[i].dev) continue;
        float *h = cuda_test_download(grads[i].dev, grads[i].n, MOE_DT_F32);
        assert_added(grads[i].what, h, grads[i].want, grads[i].base, grads[i].n, act_bound);
        free(h);
    }

    /* argument checks on this workspace */
    assert_int_equal(moe_layer_cuda_backward(ws, &gp, &gg, gdx, gdout, 1.0f), MOE_ERR_INVALID);
    assert_int_equal(moe_layer_cuda_forward(ws, &gp, gout, gx, lc->T_max + 1, 1), MOE_ERR_INVALID);
    assert_int_equal(moe_layer_cuda_forward(ws, &gp, gout, gx, 0, 1), MOE_ERR_INVALID);
    moe_layer_cuda_params no_w2 = gp;
    no_w2.w2 = NULL;
    assert_int_equal(moe_layer_cuda_forward(ws, &no_w2, gout, gx, T, 1), MOE_ERR_INVALID);
    CUDA_OK(moe_cuda_sync(ctx));

    if (own_ws) moe_layer_cuda_workspace_destroy(ws);
    void *dev[] = {(void *)gp.gate, (void *)gp.w1, (void *)gp.w3,
                   (void *)gp.w2,   gg.gate,       gg.w1,
                   gg.w3,           gg.w2,         gx,
                   gdout,           gout,          gdx};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) moe_cuda_free(ctx, dev[i]);
    void *host[] = {chosen,  row_of, offsets, token_of, routed, kept, want_tok, scores, lse,
                    weights, hout,   hdx,     x,        dout,   out,  dx,       g0};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
    moe_arena_free(&arena);
    layer_buf_free(&b);
}

static void check_both(layer_case c) {
    check_case(&c, MOE_DT_F32, NULL);
    check_case(&c, MOE_DT_BF16, NULL);
}

static void test_mixtral(void **state) {
    (void)state;
    check_both(case_mixtral());
}

static void test_switch(void **state) {
    (void)state;
    check_both(case_switch());
}

static void test_deepspeed(void **state) {
    (void)state;
    check_both(case_deepspeed());
}

static void test_small(void **state) {
    (void)state;
    check_both(case_tiny());
    check_both(case_one_token());
}

/* One workspace (poisoned once), several steps with a different T each:
 * nothing stale from a longer step leaks into a shorter one. */
static void test_reuse(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        layer_case c = case_deepspeed();
        moe_layer_cuda_ws *ws = NULL;
        CUDA_OK(
            moe_layer_cuda_workspace_create(&ws, cuda_test_ctx, &c.cfg, c.T_max, (moe_dtype)dt));
        CUDA_OK(moe_layer_cuda_workspace_poison(ws));
        poison_row_of(ws);
        const int Ts[] = {512, 97, 333, 1};
        for (int i = 0; i < 4; i++) {
            c.T = Ts[i];
            c.drops = c.T > 1; /* one token cannot overflow C = ceil(1.25 * 2 / 8) = 1 */
            check_case(&c, (moe_dtype)dt, ws);
        }
        moe_layer_cuda_workspace_destroy(ws);
    }
}

int main(void) {
    const struct CMUnitTest host_tests[] = {
        cmocka_unit_test(test_supported),
        cmocka_unit_test(test_rows),
    };
    int rc = cmocka_run_group_tests_name("moe layer config (no GPU)", host_tests, NULL, NULL);
    if (rc) return rc;
    cuda_test_init_or_skip();
    cuda_test_seed(&rng);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixtral),   cmocka_unit_test(test_switch),
        cmocka_unit_test(test_deepspeed), cmocka_unit_test(test_small),
        cmocka_unit_test(test_reuse),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    moe_cuda_destroy(cuda_test_ctx);
    return rc;
}
