/* The public C API, used the way an application would: only <moe/moe.h>.
 * Builds a model from a config, runs the MoE layer alone on caller buffers,
 * trains a few steps, generates, saves and loads a checkpoint. */
#include "moe/moe.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static moe_run_config small_config(void) {
    moe_run_config c;
    moe_config_defaults(&c);
    const char *sets[] = {
        "model.n_layer=2",      "model.d_model=32",   "model.n_head=4",
        "model.max_seq_len=16", "model.moe.d_ff=32",  "model.moe.n_experts=4",
        "train.seq_len=16",     "train.batch_size=2", "train.sched.warmup_steps=0"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        assert_int_equal(moe_config_set(&c, sets[i]), MOE_OK);
    assert_int_equal(moe_config_validate(&c), MOE_OK);
    return c;
}

/* The MoE layer alone: the caller owns every buffer. */
static void test_layer_on_caller_buffers(void **state) {
    (void)state;
    enum { T = 10, D = 8, E = 4, F = 6 };
    moe_layer_config cfg = {.d_model = D,
                            .n_experts = E,
                            .top_k = 2,
                            .d_ff = F,
                            .act = MOE_ACT_SWIGLU,
                            .renormalize = 1,
                            .temperature = 1,
                            .switch_coef = 0.01f,
                            .switch_divide_by_k = 1};
    assert_int_equal(moe_layer_config_check(&cfg), MOE_OK);
    static moe_real gate[E * D], w1[E * F * D], w3[E * F * D], w2[E * D * F];
    static moe_real ggate[E * D], gw1[E * F * D], gw3[E * F * D], gw2[E * D * F];
    moe_layer_params p = {.gate = gate, .w1 = w1, .w3 = w3, .w2 = w2};
    moe_layer_params g = {.gate = ggate, .w1 = gw1, .w3 = gw3, .w2 = gw2};
    assert_int_equal(moe_layer_param_count(&cfg), sizeof gate / sizeof *gate + 3 * E * F * D);
    moe_rng r;
    moe_rng_seed(&r, 5);
    moe_real *all[] = {gate, w1, w3, w2};
    size_t sizes[] = {E * D, E * F * D, E * F * D, E * D * F};
    for (int i = 0; i < 4; i++)
        for (size_t j = 0; j < sizes[i]; j++) all[i][j] = 0.3f * moe_rng_normal(&r);
    moe_real x[T * D], out[T * D], dout[T * D], dx[T * D];
    for (int i = 0; i < T * D; i++) {
        x[i] = moe_rng_normal(&r);
        dout[i] = moe_rng_normal(&r);
    }
    moe_arena arena;
    moe_arena_init(&arena);
    moe_layer_cache *cache;
    moe_layer_stats *stats;
    assert_int_equal(moe_layer_forward(&cfg, &p, out, x, T, 1, &r, &arena, &cache, &stats), MOE_OK);
    int kept = 0;
    for (int e = 0; e < E; e++) kept += stats->expert_tokens[e];
    assert_int_equal(kept, T * 2);
    assert_true(stats->aux_total > 0);
    assert_int_equal(moe_layer_backward(&cfg, &p, &g, dx, dout, cache, 1, &arena), MOE_OK);
    double norm = 0;
    for (int i = 0; i < T * D; i++) norm += dx[i] * dx[i];
    assert_true(norm > 0 && isfinite(norm));
    moe_arena_free(&arena);
}

/* Build, train on one batch (the loss must fall), generate, save, load. */
static void test_model_train_generate_save_load(void **state) {
    (void)state;
    moe_run_config c = small_config();
    moe_model *m;
    assert_int_equal(moe_model_create(&m, &c.model, 42), MOE_OK);
    size_t n = moe_model_table(m)->total;
    moe_optim opt;
    c.train.optim.lr = 1e-2f;
    assert_int_equal(moe_optim_init(&opt, &c.train.optim, n), MOE_OK);
    int32_t x[32], y[32];
    for (int i = 0; i < 32; i++) {
        x[i] = 'a' + i % 7;
        y[i] = 'a' + (i + 1) % 7;
    }
    moe_arena arena;
    moe_arena_init(&arena);
    double first = 0, last = 0;
    for (int step = 0; step < 30; step++) { /* one training step */
        double ce, aux;
        moe_arena_reset(&arena);
        moe_model_zero_grads(m);
        assert_int_equal(moe_model_forward(m, x, y, 2, 16, 1, NULL, &arena, &ce, &aux), MOE_OK);
        assert_int_equal(moe_model_backward(m, &arena, 1.0f), MOE_OK);
        moe_grad_clip(moe_model_grads(m), n, 1.0f);
        moe_optim_step(&opt, moe_model_params(m), moe_model_grads(m), c.train.optim.lr);
        if (step == 0) first = ce + aux;
        last = ce + aux;
    }
    assert_true(last < 0.5 * first);

    int32_t out[16];
    moe_sampling greedy = {0, 0, 1};
    moe_rng rng;
    moe_rng_seed(&rng, 1);
    assert_int_equal(moe_model_generate(m, x, 4, 12, &greedy, &rng, out), MOE_OK);
    assert_int_equal(out[4], 'a' + 4); /* it learned the cycle */

    char dir[] = "/tmp/moe-api-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ckpt[64];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", dir);
    char *json = moe_model_config_to_json(&c.model);
    assert_int_equal(
        moe_checkpoint_save(ckpt, json, moe_model_table(m), moe_model_params(m), &opt, NULL),
        MOE_OK);
    free(json);
    char *back = NULL;
    assert_int_equal(moe_checkpoint_read_config(ckpt, &back), MOE_OK);
    moe_model_config mc;
    assert_int_equal(moe_model_config_from_json(&mc, back, ckpt), MOE_OK);
    free(back);
    moe_model *m2;
    assert_int_equal(moe_model_create(&m2, &mc, 7), MOE_OK);
    assert_int_equal(
        moe_checkpoint_load(ckpt, moe_model_table(m2), moe_model_params(m2), NULL, NULL), MOE_OK);
    assert_memory_equal(moe_model_params(m), moe_model_params(m2), n * sizeof(moe_real));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    moe_arena_free(&arena);
    moe_optim_free(&opt);
    moe_model_free(m);
    moe_model_free(m2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_on_caller_buffers),
        cmocka_unit_test(test_model_train_generate_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
