/* Finite-difference check of the MoE layer backward (double build):
 * loss = sum(out * r) + aux_total, for dx and every parameter tensor, over
 * routing variants, capacity drops, a shared expert and each auxiliary loss.
 * Noisy gating: the rng is re-seeded before every forward, so the noise
 * draw is a constant of the loss. Inputs are random, so top-k ties (where
 * the loss is not differentiable) do not occur in practice. */
#include "test_util.h"
#include "moe_layer_buf.h"

#include <stdio.h>

#define T_TOK 10
#define MAX_CHECKS 40

typedef struct ctx {
    moe_layer_config cfg;
    layer_buf b;
    moe_real *x, *r, *out, *dx; /* [T, D] */
    moe_arena arena;
} ctx;

static double loss_fn(void *vp) {
    ctx *c = vp;
    moe_rng rng;
    moe_rng_seed(&rng, 1234);
    moe_arena_reset(&c->arena);
    moe_layer_cache *cache;
    moe_layer_stats *st;
    moe_status s =
        moe_layer_forward(&c->cfg, &c->b.p, c->out, c->x, T_TOK, 1, &rng, &c->arena, &cache, &st);
    assert_int_equal(s, MOE_OK);
    return dot(c->out, c->r, (long)T_TOK * c->cfg.d_model) + st->aux_total;
}

/* checks one tensor if the config uses it */
static int check(const char *cname, const char *tname, moe_real *x, const moe_real *g, size_t n,
                 ctx *c) {
    if (!x) return 0;
    char name[128];
    snprintf(name, sizeof name, "%s %s", cname, tname);
    return gradcheck(name, x, (long)n, g, loss_fn, c, MAX_CHECKS);
}

static void run_case(const char *name, moe_layer_config cfg) {
    ctx c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    assert_int_equal(moe_layer_config_check(&cfg), MOE_OK);
    assert_int_equal(layer_buf_init(&c.b, &cfg), 0);
    const int D = cfg.d_model, T = T_TOK;
    const size_t TD = (size_t)T * D;
    c.x = malloc(sizeof(moe_real) * TD);
    c.r = malloc(sizeof(moe_real) * TD);
    c.out = malloc(sizeof(moe_real) * TD);
    c.dx = malloc(sizeof(moe_real) * TD);
    fill_uniform(c.x, (long)TD, -1, 1, 11);
    fill_uniform(c.r, (long)TD, -1, 1, 12);
    fill_uniform(c.b.pblock, (long)c.b.n, -0.8, 0.8, 13);
    moe_arena_init(&c.arena);

    moe_rng rng;
    moe_rng_seed(&rng, 1234);
    moe_layer_cache *cache;
    moe_layer_stats *st;
    assert_int_equal(moe_layer_forward(&cfg, &c.b.p, c.out, c.x, T, 1, &rng, &c.arena, &cache, &st),
                     MOE_OK);
    assert_int_equal(
        moe_layer_backward(&cfg, &c.b.p, &c.b.g, c.dx, c.r, cache, (moe_real)1, &c.arena), MOE_OK);
    /* copy the analytic grads: the loss calls reuse the arena */
    moe_real *dx = malloc(sizeof(moe_real) * TD);
    memcpy(dx, c.dx, sizeof(moe_real) * TD);
    if (cfg.capacity_factor > 0 && cfg.capacity_factor < 1) assert_true(st->n_dropped > 0);

    const size_t E = cfg.n_experts, F = cfg.d_ff, Fs = cfg.shared_d_ff;
    moe_layer_params *p = &c.b.p, *g = &c.b.g;
    int bad = 0;
    bad += check(name, "dx", c.x, dx, TD, &c);
    bad += check(name, "gate", p->gate, g->gate, E * D, &c);
    bad += check(name, "noise", p->noise, g->noise, E * D, &c);
    bad += check(name, "w1", p->w1, g->w1, E * F * D, &c);
    bad += check(name, "w3", p->w3, g->w3, E * F * D, &c);
    bad += check(name, "w2", p->w2, g->w2, E * F * D, &c);
    bad += check(name, "b1", p->b1, g->b1, E * F, &c);
    bad += check(name, "b3", p->b3, g->b3, E * F, &c);
    bad += check(name, "b2", p->b2, g->b2, E * D, &c);
    bad += check(name, "shared_w1", p->shared_w1, g->shared_w1, Fs * D, &c);
    bad += check(name, "shared_w3", p->shared_w3, g->shared_w3, Fs * D, &c);
    bad += check(name, "shared_w2", p->shared_w2, g->shared_w2, Fs * D, &c);
    /* the router must get a nonzero gradient in every case checked here */
    double gn = dot(g->gate, g->gate, (long)(E * D));
    if (!(gn > 0)) fprintf(stderr, "%s: zero gate gradient\n", name);
    assert_true(gn > 0);
    assert_int_equal(bad, 0);

    free(dx);
    free(c.x);
    free(c.r);
    free(c.out);
    free(c.dx);
    layer_buf_free(&c.b);
    moe_arena_free(&c.arena);
}

static moe_layer_config base(int E, int k, moe_activation act) {
    return layer_cfg(6, E, k, 5, act);
}

static void test_softmax_before_topk_renorm(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_RELU);
    c.renormalize = 1;
    c.expert_bias = 1;
    run_case("softmax-topk-renorm", c);
}

static void test_topk_before_softmax(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_GELU);
    c.topk_before_softmax = 1;
    c.temperature = 0.7f;
    run_case("topk-softmax", c);
}

static void test_sigmoid_k1(void **s) {
    (void)s;
    moe_layer_config c = base(4, 1, MOE_ACT_SILU);
    c.score = MOE_SCORE_SIGMOID;
    run_case("sigmoid-k1", c);
}

static void test_sigmoid_k2_renorm(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_RELU);
    c.score = MOE_SCORE_SIGMOID;
    c.renormalize = 1;
    run_case("sigmoid-k2-renorm", c);
}

static void test_k4_of_8(void **s) {
    (void)s;
    moe_layer_config c = base(8, 4, MOE_ACT_SWIGLU);
    c.expert_bias = 1;
    run_case("k4-of-8", c);
}

static void test_capacity_drops(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_RELU);
    c.capacity_factor = 0.5f;
    c.expert_bias = 1;
    run_case("capacity-0.5", c);
}

static void test_dropless(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_SWIGLU);
    c.capacity_factor = 0;
    c.renormalize = 1;
    run_case("dropless", c);
}

static void test_shared_expert(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_SWIGLU);
    c.shared_d_ff = 7;
    c.capacity_factor = 1.0f;
    run_case("shared-swiglu", c);
    c = base(4, 2, MOE_ACT_GELU);
    c.shared_d_ff = 3;
    run_case("shared-gelu", c);
}

static void test_aux_switch(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_RELU);
    c.switch_coef = 0.7f;
    c.switch_divide_by_k = 1;
    run_case("switch-div-k", c);
    c.switch_divide_by_k = 0;
    c.topk_before_softmax = 1;
    run_case("switch-no-div-k", c);
    c = base(4, 2, MOE_ACT_RELU);
    c.score = MOE_SCORE_SIGMOID;
    c.switch_coef = 0.7f;
    run_case("switch-sigmoid", c);
}

static void test_aux_z(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_RELU);
    c.z_coef = 0.5f;
    c.temperature = 1.5f;
    run_case("z-loss", c);
}

static void test_aux_var(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_RELU);
    c.var_coef = 2.0f;
    c.renormalize = 1;
    run_case("var-loss", c);
}

static void test_aux_cv_noisy(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_RELU);
    c.cv_coef = 0.5f;
    c.noisy = 1;
    c.renormalize = 1;
    run_case("cv-noisy", c);
    c = base(4, 1, MOE_ACT_RELU);
    c.cv_coef = 0.5f;
    run_case("cv-clean", c);
}

static void test_noisy_all_aux(void **s) {
    (void)s;
    moe_layer_config c = base(8, 2, MOE_ACT_GELU);
    c.noisy = 1;
    c.temperature = 0.8f;
    c.capacity_factor = 0.75f;
    c.switch_coef = 0.3f;
    c.z_coef = 0.2f;
    c.var_coef = 1.0f;
    c.cv_coef = 0.4f;
    c.shared_d_ff = 4;
    run_case("noisy-all-aux", c);
}

static void test_round_robin_aux(void **s) {
    (void)s;
    moe_layer_config c = base(4, 2, MOE_ACT_RELU);
    c.routing = MOE_ROUTE_ROUND_ROBIN;
    c.switch_coef = 0.5f;
    c.z_coef = 0.5f;
    run_case("round-robin", c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_before_topk_renorm),
        cmocka_unit_test(test_topk_before_softmax),
        cmocka_unit_test(test_sigmoid_k1),
        cmocka_unit_test(test_sigmoid_k2_renorm),
        cmocka_unit_test(test_k4_of_8),
        cmocka_unit_test(test_capacity_drops),
        cmocka_unit_test(test_dropless),
        cmocka_unit_test(test_shared_expert),
        cmocka_unit_test(test_aux_switch),
        cmocka_unit_test(test_aux_z),
        cmocka_unit_test(test_aux_var),
        cmocka_unit_test(test_aux_cv_noisy),
        cmocka_unit_test(test_noisy_all_aux),
        cmocka_unit_test(test_round_robin_aux),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
