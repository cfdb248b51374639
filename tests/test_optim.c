/* Optimizers, schedules and clipping without a reference: state sizes,
 * clipping thresholds, schedule values at their boundaries. */
#include "test_util.h"
#include "moe/optim.h"

#include <math.h>
#include <string.h>

static void test_slots_per_kind(void **state) {
    (void)state;
    const int want[] = {1, 2, 2, 2, 1, 2, 2}; /* moe_optim_kind order */
    for (int k = MOE_OPT_SGD; k <= MOE_OPT_ADAMAX; k++) {
        assert_int_equal(moe_optim_slots((moe_optim_kind)k), want[k]);
        moe_optim_config cfg = {.kind = (moe_optim_kind)k, .lr = 0.1f};
        moe_optim o;
        assert_int_equal(moe_optim_init(&o, &cfg, 100), MOE_OK);
        assert_int_equal(o.n_slots, want[k]);
        for (int i = 0; i < o.n_slots * 100; i++) assert_true(o.state[i] == 0);
        assert_int_equal(o.step, 0);
        moe_optim_free(&o);
    }
    assert_string_equal(moe_optim_name(MOE_OPT_ADAMW), "adamw");
    moe_optim_config bad = {.kind = (moe_optim_kind)42};
    moe_optim o;
    assert_int_equal(moe_optim_init(&o, &bad, 10), MOE_ERR_INVALID);
}

/* plain SGD without momentum or decay is p -= lr * g */
static void test_sgd_plain_step(void **state) {
    (void)state;
    moe_optim_config cfg = {.kind = MOE_OPT_SGD, .lr = 0.5f};
    moe_optim o;
    assert_int_equal(moe_optim_init(&o, &cfg, 3), MOE_OK);
    moe_real p[3] = {1, 2, 3}, g[3] = {1, -2, 0.5f};
    moe_optim_step(&o, p, g, 0.5f);
    assert_float_equal(p[0], 0.5, 1e-7);
    assert_float_equal(p[1], 3.0, 1e-7);
    assert_float_equal(p[2], 2.75, 1e-7);
    assert_int_equal(o.step, 1);
    moe_optim_free(&o);
}

static void test_clip_small_unchanged_big_scaled(void **state) {
    (void)state;
    moe_real g[4] = {0.3f, 0.4f, 0, 0}; /* norm 0.5 */
    double norm = moe_grad_clip(g, 4, 1.0f);
    assert_float_equal(norm, 0.5, 1e-7);
    assert_true(g[0] == 0.3f && g[1] == 0.4f); /* bit-for-bit untouched */
    moe_real h[4] = {3, 4, 0, 12};             /* norm 13 */
    norm = moe_grad_clip(h, 4, 1.0f);
    assert_float_equal(norm, 13.0, 1e-6);
    double after = sqrt((double)h[0] * h[0] + (double)h[1] * h[1] + (double)h[3] * h[3]);
    assert_float_equal(after, 1.0, 1e-6);
    assert_float_equal(h[0] / h[1], 0.75, 1e-6); /* direction kept */
    moe_real k[2] = {30, 40};                    /* max_norm 0: measure only */
    assert_float_equal(moe_grad_clip(k, 2, 0.0f), 50.0, 1e-6);
    assert_true(k[0] == 30 && k[1] == 40);
}

static void test_schedule_boundaries(void **state) {
    (void)state;
    const float lr = 1e-3f, min_lr = 1e-4f;
    const long total = 100;
    moe_sched_config s = {.kind = MOE_SCHED_COSINE, .warmup_steps = 10, .min_lr = min_lr};
    assert_float_equal(moe_sched_lr(&s, lr, 0, total), lr / 10, 1e-9);
    assert_float_equal(moe_sched_lr(&s, lr, 9, total), lr, 1e-9);  /* warmup end */
    assert_float_equal(moe_sched_lr(&s, lr, 10, total), lr, 1e-9); /* decay starts at lr */
    assert_float_equal(moe_sched_lr(&s, lr, 55, total), 0.5 * (lr + min_lr), 1e-9);
    assert_float_equal(moe_sched_lr(&s, lr, total, total), min_lr, 1e-9);
    assert_float_equal(moe_sched_lr(&s, lr, total + 50, total), min_lr, 1e-9); /* held */
    assert_true(moe_sched_lr(&s, lr, total - 1, total) > min_lr);
    assert_true(moe_sched_lr(&s, lr, total - 1, total) < min_lr * 1.01f);
    s.kind = MOE_SCHED_LINEAR;
    assert_float_equal(moe_sched_lr(&s, lr, 9, total), lr, 1e-9);
    assert_float_equal(moe_sched_lr(&s, lr, 55, total), 0.5 * (lr + min_lr), 1e-9);
    assert_float_equal(moe_sched_lr(&s, lr, total, total), min_lr, 1e-9);
    s.kind = MOE_SCHED_CONSTANT;
    assert_float_equal(moe_sched_lr(&s, lr, 4, total), lr / 2, 1e-9);
    assert_float_equal(moe_sched_lr(&s, lr, total, total), lr, 1e-9);
    moe_sched_config m = {
        .kind = MOE_SCHED_MULTISTEP, .milestones = {20, 50}, .n_milestones = 2, .gamma = 0.1f};
    assert_float_equal(moe_sched_lr(&m, lr, 19, total), lr, 1e-9);
    assert_float_equal(moe_sched_lr(&m, lr, 20, total), lr * 0.1, 1e-10);
    assert_float_equal(moe_sched_lr(&m, lr, 50, total), lr * 0.01, 1e-11);
    /* warmup as long as the run: no division by zero, lr reached at the end */
    moe_sched_config w = {.kind = MOE_SCHED_COSINE, .warmup_steps = 10, .min_lr = min_lr};
    assert_float_equal(moe_sched_lr(&w, lr, 9, 10), lr, 1e-9);
    assert_true(isfinite(moe_sched_lr(&w, lr, 10, 10)));
    assert_string_equal(moe_sched_name(MOE_SCHED_MULTISTEP), "multistep");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_per_kind),
        cmocka_unit_test(test_sgd_plain_step),
        cmocka_unit_test(test_clip_small_unchanged_big_scaled),
        cmocka_unit_test(test_schedule_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
