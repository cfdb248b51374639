/* Model behaviour beyond gradients: KV-cache generation equals full
 * recomputation, sliding context, input checks, parameter counts. */
#include "test_util.h"

#include "moe/config.h"
#include "moe/model.h"

#include <stdlib.h>
#include <string.h>

static moe_model *make(const char *const *sets, int n) {
    moe_run_config c;
    moe_config_defaults(&c);
    const char *base[] = {"model.n_layer=2",      "model.d_model=32",  "model.n_head=4",
                          "model.max_seq_len=24", "model.moe.d_ff=16", "model.moe_every=2",
                          "model.d_ff=48",        "train.seq_len=24"};
    for (size_t i = 0; i < sizeof base / sizeof *base; i++)
        assert_int_equal(moe_config_set(&c, base[i]), MOE_OK);
    for (int i = 0; i < n; i++) assert_int_equal(moe_config_set(&c, sets[i]), MOE_OK);
    assert_int_equal(moe_config_validate(&c), MOE_OK);
    moe_model *m;
    assert_int_equal(moe_model_create(&m, &c.model, 9), MOE_OK);
    /* larger weights than the init so greedy choices are not ties */
    const moe_param_table *t = moe_model_table(m);
    fill_uniform(moe_model_params(m), (long)t->total, -0.3, 0.3, 17);
    return m;
}

/* Greedy tokens from the cache must equal the argmax of a full forward over
 * the whole prefix at every step. */
static void check_cache_matches_full(moe_model *m, int n_prompt, int n_new) {
    int32_t *out = malloc((size_t)(n_prompt + n_new) * sizeof *out);
    int32_t prompt[8] = {3, 14, 15, 92, 65, 35, 89, 79};
    moe_sampling greedy = {0, 0, 1};
    moe_rng rng;
    moe_rng_seed(&rng, 1);
    assert_int_equal(moe_model_generate(m, prompt, n_prompt, n_new, &greedy, &rng, out), MOE_OK);
    moe_arena arena;
    moe_arena_init(&arena);
    int V = moe_model_config_of(m)->vocab_size;
    for (int i = n_prompt; i < n_prompt + n_new; i++) {
        moe_arena_reset(&arena);
        assert_int_equal(moe_model_forward(m, out, NULL, 1, i, 0, NULL, &arena, NULL, NULL),
                         MOE_OK);
        const moe_real *last = moe_model_logits(m) + (size_t)(i - 1) * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (last[v] > last[best]) best = v;
        assert_int_equal(out[i], best);
    }
    moe_arena_free(&arena);
    free(out);
}

static void test_cache_learned_positions(void **state) {
    (void)state;
    moe_model *m = make(NULL, 0);
    check_cache_matches_full(m, 8, 16);
    moe_model_free(m);
}

static void test_cache_rope_gqa(void **state) {
    (void)state;
    const char *sets[] = {"model.pos=rope", "model.norm=rmsnorm", "model.n_kv_head=2",
                          "model.tied_embeddings=false", "model.moe.topk_before_softmax=true"};
    moe_model *m = make(sets, 5);
    check_cache_matches_full(m, 5, 19);
    moe_model_free(m);
}

static void test_generation_past_context(void **state) {
    (void)state;
    moe_model *m = make(NULL, 0);
    int32_t prompt[4] = {1, 2, 3, 4}, out[4 + 60];
    moe_sampling s = {0.9f, 20, 0.9f};
    moe_rng r1, r2;
    moe_rng_seed(&r1, 3);
    moe_rng_seed(&r2, 3);
    assert_int_equal(moe_model_generate(m, prompt, 4, 60, &s, &r1, out), MOE_OK);
    int32_t again[64];
    assert_int_equal(moe_model_generate(m, prompt, 4, 60, &s, &r2, again), MOE_OK);
    assert_memory_equal(out, again, sizeof out); /* same seed, same text */
    for (int i = 0; i < 64; i++) assert_true(out[i] >= 0 && out[i] < 256);
    moe_model_free(m);
}

static void test_bad_inputs_rejected(void **state) {
    (void)state;
    moe_model *m = make(NULL, 0);
    moe_arena arena;
    moe_arena_init(&arena);
    int32_t x[30] = {0}, y[30] = {0};
    x[5] = 300;
    assert_int_equal(moe_model_forward(m, x, y, 1, 10, 1, NULL, &arena, NULL, NULL),
                     MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "outside the vocabulary"));
    x[5] = 0;
    assert_int_equal(moe_model_forward(m, x, y, 1, 30, 1, NULL, &arena, NULL, NULL),
                     MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "max_seq_len"));
    assert_int_equal(moe_model_backward(m, &arena, 1), MOE_ERR_INVALID);
    int32_t out[4];
    moe_sampling g = {0, 0, 1};
    assert_int_equal(moe_model_generate(m, x, 0, 3, &g, NULL, out), MOE_ERR_INVALID);
    moe_arena_free(&arena);
    moe_model_free(m);
}

static void test_param_counts(void **state) {
    (void)state;
    moe_model *m = make(NULL, 0); /* layer 1 is MoE: 8 experts, top-2, SwiGLU 16 wide */
    size_t inactive = (size_t)(8 - 2) * 3 * 16 * 32;
    assert_int_equal(moe_model_param_count(m) - moe_model_active_param_count(m), inactive);
    assert_int_equal(moe_model_moe_layers(m), 1);
    assert_int_equal(moe_model_moe_layer_index(m, 0), 1);
    moe_model_free(m);
}

/* One batch of 4 and two accumulated micro-batches of 2 (scale 1/2) give the
 * same gradients when the loss is a per-token mean (aux losses off: they are
 * per-batch statistics). */
static void test_grad_accumulation(void **state) {
    (void)state;
    const char *sets[] = {"model.moe.switch_coef=0", "model.moe_every=1"};
    moe_model *m = make(sets, 2);
    const moe_param_table *t = moe_model_table(m);
    int32_t x[4 * 12], y[4 * 12];
    for (int i = 0; i < 48; i++) {
        x[i] = (i * 37) % 256;
        y[i] = (i * 11 + 5) % 256;
    }
    moe_arena arena;
    moe_arena_init(&arena);
    moe_model_zero_grads(m);
    assert_int_equal(moe_model_forward(m, x, y, 4, 12, 1, NULL, &arena, NULL, NULL), MOE_OK);
    assert_int_equal(moe_model_backward(m, &arena, 1.0f), MOE_OK);
    moe_real *full = malloc(t->total * sizeof *full);
    memcpy(full, moe_model_grads(m), t->total * sizeof *full);
    moe_model_zero_grads(m);
    for (int half = 0; half < 2; half++) {
        moe_arena_reset(&arena);
        assert_int_equal(
            moe_model_forward(m, x + half * 24, y + half * 24, 2, 12, 1, NULL, &arena, NULL, NULL),
            MOE_OK);
        assert_int_equal(moe_model_backward(m, &arena, 0.5f), MOE_OK);
    }
    double *want = malloc(t->total * sizeof *want);
    for (size_t i = 0; i < t->total; i++) want[i] = full[i];
    long bad =
        ref_compare("accumulated grads", moe_model_grads(m), want, (long)t->total, 1e-6, 1e-4);
    free(want);
    assert_int_equal(bad, 0);
    free(full);
    moe_arena_free(&arena);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_learned_positions),
        cmocka_unit_test(test_cache_rope_gqa),
        cmocka_unit_test(test_generation_past_context),
        cmocka_unit_test(test_bad_inputs_rejected),
        cmocka_unit_test(test_param_counts),
        cmocka_unit_test(test_grad_accumulation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
