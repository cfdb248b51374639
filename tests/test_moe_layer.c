/* MoE layer behaviour: pair accounting, capacity C = ceil(cf * T * k / E)
 * on a hand-built case where every token prefers experts 0 and 1, round
 * robin balance, the Switch loss of a balanced uniform router under both
 * top-k conventions, config errors naming the field, determinism of noisy
 * routing under a seed, top-1 + renormalisation giving the router no task
 * gradient, and no arena growth after the first step. */
#include "test_util.h"
#include "moe_layer_buf.h"

#include <math.h>
#include <stdio.h>

typedef struct run {
    layer_buf b;
    moe_real *x, *out, *dx, *dout; /* [T, D] */
    moe_arena arena;
    moe_layer_cache *cache;
    moe_layer_stats *st;
    int T;
} run;

static void run_init(run *r, const moe_layer_config *cfg, int T, unsigned long long seed) {
    memset(r, 0, sizeof *r);
    r->T = T;
    size_t TD = (size_t)T * cfg->d_model;
    assert_int_equal(layer_buf_init(&r->b, cfg), 0);
    fill_uniform(r->b.pblock, (long)r->b.n, -0.5, 0.5, seed);
    r->x = malloc(sizeof(moe_real) * TD);
    r->out = malloc(sizeof(moe_real) * TD);
    r->dx = malloc(sizeof(moe_real) * TD);
    r->dout = malloc(sizeof(moe_real) * TD);
    fill_uniform(r->x, (long)TD, -1, 1, seed + 1);
    fill_uniform(r->dout, (long)TD, -1, 1, seed + 2);
    moe_arena_init(&r->arena);
}

static moe_status run_forward(run *r, const moe_layer_config *cfg, int training,
                              uint64_t rng_seed) {
    moe_rng rng;
    moe_rng_seed(&rng, rng_seed);
    return moe_layer_forward(cfg, &r->b.p, r->out, r->x, r->T, training, &rng, &r->arena, &r->cache,
                             &r->st);
}

static void run_free(run *r) {
    free(r->x);
    free(r->out);
    free(r->dx);
    free(r->dout);
    layer_buf_free(&r->b);
    moe_arena_free(&r->arena);
}

static void test_pairs_add_up(void **state) {
    (void)state;
    const float cfs[] = {0.5f, 1.0f, 1.25f, 0.0f};
    for (int i = 0; i < 4; i++) {
        moe_layer_config cfg = layer_cfg(8, 8, 2, 6, MOE_ACT_GELU);
        cfg.capacity_factor = cfs[i];
        run r;
        run_init(&r, &cfg, 37, 5);
        assert_int_equal(run_forward(&r, &cfg, 0, 1), MOE_OK);
        int sum = 0, cap = (int)ceil((double)cfs[i] * 37 * 2 / 8);
        for (int e = 0; e < 8; e++) {
            sum += r.st->expert_tokens[e];
            if (cfs[i] > 0) assert_true(r.st->expert_tokens[e] <= cap);
        }
        assert_int_equal(r.st->n_pairs, 37 * 2);
        assert_int_equal(sum, 37 * 2 - r.st->n_dropped);
        if (cfs[i] == 0.0f) assert_int_equal(r.st->n_dropped, 0);
        if (cfs[i] == 0.5f) assert_true(r.st->n_dropped > 0);
        run_free(&r);
    }
}

/* Every token prefers expert 0, then 1: x0 = 1 and gate row e = (10 - e, 0, ...). */
static void test_capacity_hand_built(void **state) {
    (void)state;
    const float cfs[] = {1.0f, 0.3f, 1.5f, 0.0f};
    const int caps[] = {4, 2, 6, 8}; /* ceil(cf * 8 * 2 / 4); dropless keeps all 8 */
    for (int i = 0; i < 4; i++) {
        moe_layer_config cfg = layer_cfg(4, 4, 2, 3, MOE_ACT_RELU);
        cfg.capacity_factor = cfs[i];
        run r;
        run_init(&r, &cfg, 8, 9);
        memset(r.b.p.gate, 0, sizeof(moe_real) * 16);
        for (int e = 0; e < 4; e++) r.b.p.gate[e * 4] = (moe_real)(10 - e);
        for (int t = 0; t < 8; t++) r.x[t * 4] = 1;
        assert_int_equal(run_forward(&r, &cfg, 0, 1), MOE_OK);
        const int C = caps[i];
        assert_int_equal(r.st->expert_tokens[0], C);
        assert_int_equal(r.st->expert_tokens[1], C);
        assert_int_equal(r.st->expert_tokens[2], 0);
        assert_int_equal(r.st->expert_tokens[3], 0);
        assert_int_equal(r.st->n_dropped, 16 - 2 * C);
        /* the earliest tokens win; later tokens get nothing (no bias, no shared) */
        for (int t = 0; t < 8; t++) {
            double n2 = dot(r.out + t * 4, r.out + t * 4, 4);
            if (t < C)
                assert_true(n2 > 0);
            else
                assert_true(n2 == 0);
        }
        run_free(&r);
    }
}

static void test_round_robin_balanced(void **state) {
    (void)state;
    moe_layer_config cfg = layer_cfg(6, 4, 2, 5, MOE_ACT_RELU);
    cfg.routing = MOE_ROUTE_ROUND_ROBIN;
    cfg.capacity_factor = 1.0f;
    run r;
    run_init(&r, &cfg, 12, 3);
    assert_int_equal(run_forward(&r, &cfg, 1, 1), MOE_OK);
    for (int e = 0; e < 4; e++) assert_int_equal(r.st->expert_tokens[e], 12 * 2 / 4);
    assert_int_equal(r.st->n_dropped, 0);
    run_free(&r);
}

/* Uniform router (zero gate) with exactly balanced counts (round robin):
 * Switch = 1 dividing f by k, = k otherwise; variance 0; entropy log E. */
static void test_switch_balanced_uniform(void **state) {
    (void)state;
    for (int divk = 0; divk <= 1; divk++) {
        moe_layer_config cfg = layer_cfg(6, 4, 2, 5, MOE_ACT_RELU);
        cfg.routing = MOE_ROUTE_ROUND_ROBIN;
        cfg.switch_coef = 0.01f;
        cfg.switch_divide_by_k = divk;
        run r;
        run_init(&r, &cfg, 16, 4);
        memset(r.b.p.gate, 0, sizeof(moe_real) * 24);
        assert_int_equal(run_forward(&r, &cfg, 1, 1), MOE_OK);
        const double want = divk ? 1.0 : 2.0;
        assert_true(fabs(r.st->aux_switch - want) < 1e-6);
        assert_true(fabs(r.st->aux_total - 0.01 * want) < 1e-8);
        assert_true(fabs(r.st->aux_var) < 1e-12);
        assert_true(fabs(r.st->router_entropy - log(4.0)) < 1e-5);
        for (int e = 0; e < 4; e++) assert_true(fabs(r.st->mean_prob[e] - 0.25) < 1e-6);
        run_free(&r);
    }
}

static void expect_invalid(moe_layer_config cfg, const char *field) {
    assert_int_equal(moe_layer_config_check(&cfg), MOE_ERR_INVALID);
    if (!strstr(moe_last_error(), field))
        fail_msg("message '%s' does not name %s", moe_last_error(), field);
}

static void test_config_errors(void **state) {
    (void)state;
    moe_layer_config cfg = layer_cfg(8, 4, 5, 6, MOE_ACT_RELU);
    expect_invalid(cfg, "moe.top_k");
    assert_non_null(strstr(moe_last_error(), "moe.n_experts = 4"));
    cfg.top_k = 2;
    assert_int_equal(moe_layer_config_check(&cfg), MOE_OK);
    cfg.temperature = 0;
    expect_invalid(cfg, "moe.temperature");
    cfg.temperature = -1;
    expect_invalid(cfg, "moe.temperature");
    cfg.temperature = 1;
    cfg.top_k = 0;
    expect_invalid(cfg, "moe.top_k");
    cfg.top_k = 1;
    cfg.z_coef = -0.1f;
    expect_invalid(cfg, "moe.z_coef");
    /* forward refuses the same config */
    cfg.z_coef = 0;
    cfg.top_k = 5;
    moe_real x[8] = {0}, out[8];
    moe_arena a;
    moe_arena_init(&a);
    moe_layer_cache *c;
    moe_layer_params p = {0};
    assert_int_equal(moe_layer_forward(&cfg, &p, out, x, 1, 0, NULL, &a, &c, NULL),
                     MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "moe.top_k"));
    moe_arena_free(&a);
}

static void test_noisy_deterministic(void **state) {
    (void)state;
    moe_layer_config cfg = layer_cfg(8, 8, 2, 6, MOE_ACT_SWIGLU);
    cfg.noisy = 1;
    cfg.capacity_factor = 1.0f;
    cfg.cv_coef = 0.01f;
    run r;
    run_init(&r, &cfg, 20, 6);
    const size_t TD = 20 * 8;
    moe_real *first = malloc(sizeof(moe_real) * TD);
    assert_int_equal(run_forward(&r, &cfg, 1, 77), MOE_OK);
    memcpy(first, r.out, sizeof(moe_real) * TD);
    double aux = r.st->aux_total;
    assert_int_equal(moe_arena_reset(&r.arena), MOE_OK);
    assert_int_equal(run_forward(&r, &cfg, 1, 77), MOE_OK);
    assert_memory_equal(first, r.out, sizeof(moe_real) * TD);
    assert_true(aux == r.st->aux_total);
    /* another seed draws other noise (the routing of some token changes) */
    assert_int_equal(moe_arena_reset(&r.arena), MOE_OK);
    assert_int_equal(run_forward(&r, &cfg, 1, 78), MOE_OK);
    assert_true(memcmp(first, r.out, sizeof(moe_real) * TD) != 0);
    free(first);
    run_free(&r);
}

/* Top-1 with renormalisation: the gate weight is exactly 1, so the task
 * loss gives the router no gradient at all (seed systems 002 and 003). */
static void test_top1_renorm_no_router_grad(void **state) {
    (void)state;
    moe_layer_config cfg = layer_cfg(8, 4, 1, 6, MOE_ACT_RELU);
    cfg.renormalize = 1;
    run r;
    run_init(&r, &cfg, 16, 8);
    assert_int_equal(run_forward(&r, &cfg, 1, 1), MOE_OK);
    assert_int_equal(moe_layer_backward(&cfg, &r.b.p, &r.b.g, r.dx, r.dout, r.cache, 1, &r.arena),
                     MOE_OK);
    for (int i = 0; i < 4 * 8; i++) assert_true(r.b.g.gate[i] == 0);
    assert_true(dot(r.b.g.w1, r.b.g.w1, 4 * 6 * 8) > 0);
    run_free(&r);
}

/* After the first step the arena is one block, and later steps stay in it. */
static void test_no_growth_after_first_step(void **state) {
    (void)state;
    moe_layer_config cfg = layer_cfg(8, 4, 2, 6, MOE_ACT_GELU);
    cfg.shared_d_ff = 5;
    cfg.noisy = 1;
    cfg.switch_coef = cfg.z_coef = cfg.var_coef = cfg.cv_coef = 0.01f;
    assert_int_equal(moe_layer_param_count(&cfg),
                     layer_buf_layout(&(moe_layer_params){0}, NULL, &cfg));
    run r;
    run_init(&r, &cfg, 24, 2);
    size_t hw = 0;
    for (int step = 0; step < 3; step++) {
        assert_int_equal(run_forward(&r, &cfg, 1, (uint64_t)step), MOE_OK);
        assert_int_equal(
            moe_layer_backward(&cfg, &r.b.p, &r.b.g, r.dx, r.dout, r.cache, 1, &r.arena), MOE_OK);
        assert_int_equal(moe_arena_reset(&r.arena), MOE_OK);
        assert_int_equal(moe_arena_blocks(&r.arena), 1);
        if (step == 0) hw = r.arena.high_water;
    }
    assert_true(r.arena.high_water == hw);
    run_free(&r);
}

/* Routing fallback: a NaN in token 3's input sends it (only it) to the
 * fallback expert with weight 1, counted; every other token routes and
 * computes exactly as in a run without the NaN. Off, the NaN token routes
 * as the argmax of NaNs would, uncounted. */
static void test_fallback_nan_input(void **state) {
    (void)state;
    enum { T = 8, D = 6, E = 4, NT = 3, FB = 2 };
    moe_layer_config cfg = layer_cfg(D, E, 2, 5, MOE_ACT_GELU);
    cfg.renormalize = 1;
    cfg.switch_coef = cfg.z_coef = 0.01f;
    cfg.fallback = 1;
    cfg.fallback_expert = FB;
    run clean, bad;
    run_init(&clean, &cfg, T, 11);
    run_init(&bad, &cfg, T, 11);
    assert_int_equal(run_forward(&clean, &cfg, 0, 1), MOE_OK);
    assert_int_equal(clean.st->n_fallback, 0);
    bad.x[NT * D + 1] = NAN;
    assert_int_equal(run_forward(&bad, &cfg, 0, 1), MOE_OK);
    assert_int_equal(bad.st->n_fallback, 1);
    assert_non_null(bad.st->fallback);
    for (int t = 0; t < T; t++) {
        assert_int_equal(bad.st->fallback[t], t == NT);
        if (t == NT) {
            assert_int_equal(bad.st->chosen[t * 2], FB);
            assert_close(bad.st->gate[t * 2], 1, 0);
            assert_close(bad.st->gate[t * 2 + 1], 0, 0);
            assert_true(bad.st->chosen[t * 2 + 1] != FB);
            continue;
        }
        for (int j = 0; j < 2; j++) {
            assert_int_equal(bad.st->chosen[t * 2 + j], clean.st->chosen[t * 2 + j]);
            assert_close(bad.st->gate[t * 2 + j], clean.st->gate[t * 2 + j], 0);
        }
        for (int d = 0; d < D; d++) assert_close(bad.out[t * D + d], clean.out[t * D + d], 0);
    }
    /* the statistics and auxiliary losses stay finite */
    assert_true(isfinite(bad.st->aux_total) && isfinite(bad.st->router_entropy));
    for (int e = 0; e < E; e++) assert_true(isfinite(bad.st->mean_prob[e]));
    run_free(&clean);
    run_free(&bad);
}

/* A NaN in expert 1's router row makes every token's logits non-finite:
 * all go to the fallback expert, their outputs (finite inputs, finite
 * expert weights) are finite, and backward gives the router nothing. */
static void test_fallback_nan_gate_row(void **state) {
    (void)state;
    enum { T = 10, D = 6, E = 4, FB = 0 };
    moe_layer_config cfg = layer_cfg(D, E, 2, 5, MOE_ACT_RELU);
    cfg.fallback = 1;
    cfg.fallback_expert = FB;
    cfg.switch_coef = 0.01f;
    run r;
    run_init(&r, &cfg, T, 21);
    r.b.p.gate[1 * D + 2] = NAN;
    assert_int_equal(run_forward(&r, &cfg, 1, 1), MOE_OK);
    assert_int_equal(r.st->n_fallback, T);
    for (int t = 0; t < T; t++) assert_int_equal(r.st->chosen[t * 2], FB);
    for (int i = 0; i < T * D; i++) assert_true(isfinite(r.out[i]));
    assert_int_equal(r.st->expert_tokens[FB], T);
    assert_int_equal(moe_layer_backward(&cfg, &r.b.p, &r.b.g, r.dx, r.dout, r.cache, 1, &r.arena),
                     MOE_OK);
    for (int i = 0; i < E * D; i++) assert_true(r.b.g.gate[i] == 0);
    run_free(&r);
    /* off: the same router is not rescued */
    cfg.fallback = 0;
    run_init(&r, &cfg, T, 21);
    r.b.p.gate[1 * D + 2] = NAN;
    assert_int_equal(run_forward(&r, &cfg, 0, 1), MOE_OK);
    assert_int_equal(r.st->n_fallback, 0);
    assert_null(r.st->fallback);
    run_free(&r);
    /* out of range when on; a zeroed config (fallback 0, expert 0) is off */
    cfg.fallback = 1;
    cfg.fallback_expert = E;
    assert_int_equal(moe_layer_config_check(&cfg), MOE_ERR_INVALID);
    cfg.fallback_expert = -1;
    assert_int_equal(moe_layer_config_check(&cfg), MOE_ERR_INVALID);
    cfg.fallback = 0;
    cfg.fallback_expert = 0;
    assert_int_equal(moe_layer_config_check(&cfg), MOE_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pairs_add_up),
        cmocka_unit_test(test_capacity_hand_built),
        cmocka_unit_test(test_round_robin_balanced),
        cmocka_unit_test(test_switch_balanced_uniform),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_noisy_deterministic),
        cmocka_unit_test(test_top1_renorm_no_router_grad),
        cmocka_unit_test(test_no_growth_after_first_step),
        cmocka_unit_test(test_fallback_nan_input),
        cmocka_unit_test(test_fallback_nan_gate_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
