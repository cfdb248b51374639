/* Finite-difference check (double build) of every parameter gradient of the
 * family mlp_moe through its full loss: task cross-entropy + cv^2 (smooth
 * load in noisy training) + parameter diversity + output diversity + JS,
 * all on. Noisy training reseeds the rng before every evaluation, so the
 * noise is the same in each; top-k is piecewise constant, and the random
 * weights keep every routing decision far from a tie. Cases: top-1 and
 * top-2, renormalisation on and off, soft targets with row weights, hard
 * labels with an ignored row, eval (no noise, hard load), k == E. */
#include "test_util.h"

#include "models/family.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 8, F = 5, H = 6, C = 4 };

typedef struct ctx {
    void *m;
    moe_batch batch;
    int training;
    moe_arena arena;
} ctx;

static double loss_fn(void *p) {
    ctx *c = p;
    double task = 0, aux = 0;
    moe_rng rng;
    moe_rng_seed(&rng, 77); /* the same noise in every evaluation */
    moe_arena_reset(&c->arena);
    moe_status st =
        family_mlp_moe.forward(c->m, &c->batch, c->training, &rng, &c->arena, &task, &aux);
    if (st != MOE_OK) fprintf(stderr, "forward: %s\n", moe_last_error());
    assert_int_equal(st, MOE_OK);
    return task + aux;
}

static moe_model_config base_config(int E, int k, int renorm) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_MLP_MOE;
    c.input.features = F;
    c.n_classes = C;
    c.mlp.hidden = H;
    c.moe.n_experts = E;
    c.moe.top_k = k;
    c.moe.noisy = 1;
    c.moe.renormalize = renorm;
    c.moe.temperature = 1.0f;
    c.moe.cv_coef = 0.3f;
    c.mlp.param_div_weight = 0.5f;
    c.mlp.output_div_weight = 0.7f;
    c.mlp.js_weight = 0.9f;
    return c;
}

enum { SOFT_WEIGHTED = 0, HARD = 1 };

static void check(const moe_model_config *cfg, int targets, int training) {
    ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(family_mlp_moe.create(&c.m, cfg, 5), MOE_OK);
    moe_arena_init(&c.arena);
    c.training = training;
    moe_real x[B * F], soft[B * C], w[B];
    int32_t labels[B];
    fill_uniform(x, B * F, -1, 1, 1);
    fill_uniform(w, B, 0.2, 2, 2);
    fill_uniform(soft, B * C, 0.05, 1, 3);
    for (int r = 0; r < B; r++) {
        double s = 0;
        for (int j = 0; j < C; j++) s += soft[r * C + j];
        for (int j = 0; j < C; j++) soft[r * C + j] /= s;
        labels[r] = r == 2 ? -1 : (r * 3) % C;
    }
    c.batch.B = B;
    c.batch.T = 1;
    c.batch.x = x;
    if (targets == HARD) {
        c.batch.labels = labels;
    } else {
        c.batch.soft = soft;
        c.batch.weights = w;
    }
    /* a router that is not at its zero start, so routing depends on x */
    const moe_param_table *t = family_mlp_moe.table(c.m);
    moe_real *p = family_mlp_moe.params(c.m);
    for (int i = 0; i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        if (!strncmp(ti->name, "gate.", 5))
            fill_uniform(p + ti->offset, (long)ti->numel, -1, 1, 100 + i);
    }
    loss_fn(&c);
    moe_real *g = family_mlp_moe.grads(c.m);
    memset(g, 0, t->total * sizeof *g);
    assert_int_equal(family_mlp_moe.backward(c.m, &c.arena, 1.0f), MOE_OK);
    moe_real *g0 = malloc(t->total * sizeof *g0);
    assert_non_null(g0);
    memcpy(g0, g, t->total * sizeof *g0);
    int failed = 0;
    for (int i = 0; i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        failed +=
            gradcheck(ti->name, p + ti->offset, (long)ti->numel, g0 + ti->offset, loss_fn, &c, 30);
    }
    assert_int_equal(failed, 0);
    free(g0);
    moe_arena_free(&c.arena);
    family_mlp_moe.destroy(c.m);
}

static void test_top2_renorm_soft(void **state) {
    (void)state;
    moe_model_config c = base_config(4, 2, 1);
    check(&c, SOFT_WEIGHTED, 1);
}

static void test_top2_plain_hard(void **state) {
    (void)state;
    moe_model_config c = base_config(4, 2, 0);
    check(&c, HARD, 1);
}

/* top-1 renormalised: only the smooth load reaches the router */
static void test_top1_renorm_soft(void **state) {
    (void)state;
    moe_model_config c = base_config(3, 1, 1);
    check(&c, SOFT_WEIGHTED, 1);
}

static void test_top1_plain_hard(void **state) {
    (void)state;
    moe_model_config c = base_config(3, 1, 0);
    check(&c, HARD, 1);
}

static void test_eval_no_noise(void **state) {
    (void)state;
    moe_model_config c = base_config(4, 2, 0);
    check(&c, SOFT_WEIGHTED, 0);
}

static void test_k_equals_e(void **state) {
    (void)state;
    moe_model_config c = base_config(3, 3, 1);
    check(&c, SOFT_WEIGHTED, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top2_renorm_soft), cmocka_unit_test(test_top2_plain_hard),
        cmocka_unit_test(test_top1_renorm_soft), cmocka_unit_test(test_top1_plain_hard),
        cmocka_unit_test(test_eval_no_noise),    cmocka_unit_test(test_k_equals_e),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
