/* Parity with torch.optim (scripts/ref/optim.py): five steps of each
 * optimizer on the same parameters and gradients, the schedules against
 * MultiStepLR / LambdaLR, and clipping against clip_grad_norm_.
 * Tolerances: parameters atol 1e-6, rtol 1e-5; learning rates rtol 1e-6. */
#include "test_util.h"
#include "moe/optim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ref_file ref;
static const char *ref_path;

static int setup(void **state) {
    (void)state;
    return ref_load(&ref, ref_path);
}

static int teardown(void **state) {
    (void)state;
    ref_free(&ref);
    return 0;
}

/* the hyper-parameters the script used: kind, lr, beta1, beta2, eps, wd,
 * momentum, nesterov, alpha, rho */
static float case_config(const char *name, moe_optim_config *cfg) {
    char key[64];
    snprintf(key, sizeof key, "%s/hp", name);
    const ref_tensor *hp = ref_get(&ref, key);
    assert_non_null(hp);
    assert_int_equal(hp->numel, 10);
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = (moe_optim_kind)(int)hp->data[0];
    cfg->lr = (float)hp->data[1];
    cfg->beta1 = (float)hp->data[2];
    cfg->beta2 = (float)hp->data[3];
    cfg->eps = (float)hp->data[4];
    cfg->weight_decay = (float)hp->data[5];
    cfg->momentum = (float)hp->data[6];
    cfg->nesterov = (int)hp->data[7];
    cfg->alpha = (float)hp->data[8];
    cfg->rho = (float)hp->data[9];
    return cfg->lr;
}

static void run_case(const char *name) {
    const ref_tensor *p0 = ref_get(&ref, "params0"), *grads = ref_get(&ref, "grads");
    assert_non_null(p0);
    assert_non_null(grads);
    const long n = (long)p0->numel, steps = (long)grads->dims[0];
    moe_optim_config cfg;
    float lr = case_config(name, &cfg);
    moe_real *p = malloc(sizeof(moe_real) * (size_t)n);
    moe_real *g = malloc(sizeof(moe_real) * (size_t)(n * steps));
    assert_non_null(p);
    assert_non_null(g);
    ref_to_real(p, p0);
    ref_to_real(g, grads);
    moe_optim o;
    assert_int_equal(moe_optim_init(&o, &cfg, (size_t)n), MOE_OK);
    long bad = 0;
    for (long s = 0; s < steps; s++) {
        moe_optim_step(&o, p, g + s * n, lr);
        char key[64], what[96];
        snprintf(key, sizeof key, "%s/step%ld", name, s + 1);
        snprintf(what, sizeof what, "%s params after step %ld", name, s + 1);
        const ref_tensor *want = ref_get(&ref, key);
        assert_non_null(want);
        bad += ref_compare(what, p, want->data, n, 1e-6, 1e-5);
    }
    moe_optim_free(&o);
    free(p);
    free(g);
    assert_int_equal(bad, 0);
}

static void test_sgd(void **state) {
    (void)state;
    run_case("sgd");
}
static void test_sgd_nesterov(void **state) {
    (void)state;
    run_case("sgd_nesterov");
}
static void test_adam(void **state) {
    (void)state;
    run_case("adam");
}
static void test_adamw(void **state) {
    (void)state;
    run_case("adamw");
}
static void test_rmsprop(void **state) {
    (void)state;
    run_case("rmsprop");
}
static void test_adagrad(void **state) {
    (void)state;
    run_case("adagrad");
}
static void test_adadelta(void **state) {
    (void)state;
    run_case("adadelta");
}
static void test_adamax(void **state) {
    (void)state;
    run_case("adamax");
}

static void compare_schedule(const char *key, const moe_sched_config *s, float base_lr,
                             long total) {
    const ref_tensor *want = ref_get(&ref, key);
    assert_non_null(want);
    moe_real got[64];
    assert_true(want->numel <= 64);
    for (long i = 0; i < want->numel; i++) got[i] = moe_sched_lr(s, base_lr, i, total);
    assert_int_equal(ref_compare(key, got, want->data, (long)want->numel, 0, 1e-6), 0);
}

static void test_schedules(void **state) {
    (void)state;
    moe_sched_config s = {
        .kind = MOE_SCHED_MULTISTEP, .milestones = {3, 7, 12}, .n_milestones = 3, .gamma = 0.5f};
    compare_schedule("multistep/lr", &s, 0.1f, 20);
    moe_sched_config c = {.kind = MOE_SCHED_COSINE, .warmup_steps = 5, .min_lr = 0.001f};
    compare_schedule("cosine/lr", &c, 0.01f, 30);
    c.kind = MOE_SCHED_LINEAR;
    compare_schedule("linear/lr", &c, 0.01f, 30);
}

static void compare_clip(const char *name) {
    char key[64];
    snprintf(key, sizeof key, "%s/in", name);
    const ref_tensor *in = ref_get(&ref, key);
    assert_non_null(in);
    snprintf(key, sizeof key, "%s/out", name);
    const ref_tensor *out = ref_get(&ref, key);
    assert_non_null(out);
    snprintf(key, sizeof key, "%s/max_norm", name);
    const double max_norm = ref_scalar(&ref, key);
    snprintf(key, sizeof key, "%s/norm", name);
    const double want_norm = ref_scalar(&ref, key);
    moe_real *g = malloc(sizeof(moe_real) * (size_t)in->numel);
    assert_non_null(g);
    ref_to_real(g, in);
    double norm = moe_grad_clip(g, (size_t)in->numel, (float)max_norm);
    moe_real got_norm = (moe_real)norm;
    assert_int_equal(ref_compare(name, &got_norm, &want_norm, 1, 0, 1e-5), 0);
    assert_int_equal(ref_compare(name, g, out->data, (long)in->numel, 1e-7, 1e-5), 0);
    free(g);
}

static void test_clip(void **state) {
    (void)state;
    compare_clip("clip_big");
    compare_clip("clip_small");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s REF_FILE (written by scripts/ref/optim.py)\n", argv[0]);
        return 2;
    }
    ref_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),       cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_adam),      cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_rmsprop),   cmocka_unit_test(test_adagrad),
        cmocka_unit_test(test_adadelta),  cmocka_unit_test(test_adamax),
        cmocka_unit_test(test_schedules), cmocka_unit_test(test_clip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
