/* The encoder: padding never counts. A sequence alone and the same sequence
 * padded inside a longer batch give the same outputs, losses, routing
 * statistics, auxiliary losses and gradients. Plus the encoder's errors. */
#include "test_util.h"

#include "moe/moe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static moe_model *make_encoder(const char *pool, int post_ln) {
    moe_run_config c;
    moe_config_defaults(&c);
    char pool_set[64], post_set[64];
    snprintf(pool_set, sizeof pool_set, "model.pool=%s", pool);
    snprintf(post_set, sizeof post_set, "model.post_ln=%s", post_ln ? "true" : "false");
    const char *sets[] = {"train.task=classify",
                          "data.source=spam",
                          "model.n_layer=2",
                          "model.d_model=32",
                          "model.n_head=4",
                          "model.max_seq_len=12",
                          "model.moe.d_ff=16",
                          "model.moe_every=1",
                          "model.d_ff=48",
                          "train.seq_len=12",
                          "model.bidirectional=true",
                          "model.n_classes=3",
                          "model.moe.z_coef=0.01",
                          pool_set,
                          post_set,
                          "model.pos=sinusoidal"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        assert_int_equal(moe_config_set(&c, sets[i]), MOE_OK);
    assert_int_equal(moe_config_validate(&c), MOE_OK);
    moe_model *m;
    assert_int_equal(moe_model_create(&m, &c.model, 5), MOE_OK);
    const moe_param_table *t = moe_model_table(m);
    fill_uniform(moe_model_params(m), (long)t->total, -0.3, 0.3, 21);
    return m;
}

typedef struct outcome {
    double loss, aux;
    moe_real cls[3];
    moe_real *logits; /* [5, V] real positions */
    moe_real *grads;
    int expert_tokens[8];
    int n_tokens;
} outcome;

/* One forward + backward of `real` tokens inside a [1, T] batch whose tail
 * is padding (T == real: no padding, no mask). */
static outcome run(moe_model *m, int real, int T) {
    int32_t x[12], y[12], label = 2;
    uint8_t pad[12];
    for (int t = 0; t < T; t++) {
        pad[t] = t < real;
        x[t] = t < real ? (int32_t)(17 * t + 3) % 256 : 0; /* padding id: anything */
        y[t] = t < real && t % 2 ? (int32_t)(31 * t + 7) % 256 : -1;
    }
    moe_batch b = {x, y, &label, T > real ? pad : NULL, 1, T, NULL, NULL, NULL};
    moe_arena arena;
    moe_arena_init(&arena);
    outcome o;
    memset(&o, 0, sizeof o);
    moe_model_zero_grads(m);
    assert_int_equal(moe_model_forward_batch(m, &b, 1, NULL, &arena, &o.loss, &o.aux), MOE_OK);
    int V = moe_model_config_of(m)->vocab_size;
    o.logits = malloc((size_t)real * V * sizeof *o.logits);
    memcpy(o.logits, moe_model_logits(m), (size_t)real * V * sizeof *o.logits);
    memcpy(o.cls, moe_model_class_logits(m), sizeof o.cls);
    const moe_layer_stats *s = moe_model_layer_stats(m, 1);
    o.n_tokens = s->n_tokens;
    memcpy(o.expert_tokens, s->expert_tokens, 8 * sizeof(int));
    assert_int_equal(moe_model_backward(m, &arena, 1.0f), MOE_OK);
    size_t n = moe_model_table(m)->total;
    o.grads = malloc(n * sizeof *o.grads);
    memcpy(o.grads, moe_model_grads(m), n * sizeof *o.grads);
    moe_arena_free(&arena);
    return o;
}

static void check_padding_invariance(const char *pool, int post_ln) {
    moe_model *m = make_encoder(pool, post_ln);
    outcome a = run(m, 5, 5), b = run(m, 5, 12);
    int V = moe_model_config_of(m)->vocab_size;
    assert_float_equal(a.loss, b.loss, 1e-5);
    assert_float_equal(a.aux, b.aux, 1e-6);
    assert_true(a.aux > 0);
    assert_int_equal(b.n_tokens, 5); /* routing saw the real tokens only */
    for (int e = 0; e < 8; e++) assert_int_equal(a.expert_tokens[e], b.expert_tokens[e]);
    for (int i = 0; i < 3; i++) assert_float_equal(a.cls[i], b.cls[i], 1e-5);
    for (long i = 0; i < 5L * V; i++) assert_float_equal(a.logits[i], b.logits[i], 1e-4);
    size_t n = moe_model_table(m)->total;
    long bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += fabs(a.grads[i] - b.grads[i]) > 1e-5 + 1e-4 * fabs(a.grads[i]);
    assert_int_equal(bad, 0);
    free(a.logits);
    free(b.logits);
    free(a.grads);
    free(b.grads);
    moe_model_free(m);
}

static void test_padding_never_counts_cls(void **state) {
    (void)state;
    check_padding_invariance("cls", 0);
}

static void test_padding_never_counts_mean_post_ln(void **state) {
    (void)state;
    check_padding_invariance("mean", 1);
}

static void test_encoder_errors(void **state) {
    (void)state;
    moe_model *m = make_encoder("cls", 0);
    int32_t x[4] = {1, 2, 3, 4}, out[8], bad_label = 3;
    moe_arena arena;
    moe_arena_init(&arena);
    moe_batch b = {x, NULL, &bad_label, NULL, 1, 4, NULL, NULL, NULL};
    assert_int_equal(moe_model_forward_batch(m, &b, 0, NULL, &arena, NULL, NULL), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "label 3"));
    moe_sampling g = {0, 0, 1};
    assert_int_equal(moe_model_generate(m, x, 4, 2, &g, NULL, out), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "encoder"));
    moe_model_free(m);
    /* a decoder refuses a padding mask */
    moe_run_config c;
    moe_config_defaults(&c);
    const char *sets[] = {"model.n_layer=1",   "model.d_model=16",    "model.n_head=2",
                          "model.n_kv_head=2", "model.max_seq_len=8", "train.seq_len=8"};
    for (size_t i = 0; i < 6; i++) assert_int_equal(moe_config_set(&c, sets[i]), MOE_OK);
    assert_int_equal(moe_model_create(&m, &c.model, 1), MOE_OK);
    uint8_t pad[4] = {1, 1, 0, 0};
    moe_batch d = {x, NULL, NULL, pad, 1, 4, NULL, NULL, NULL};
    assert_int_equal(moe_model_forward_batch(m, &d, 0, NULL, &arena, NULL, NULL), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "bidirectional"));
    moe_arena_free(&arena);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_padding_never_counts_cls),
        cmocka_unit_test(test_padding_never_counts_mean_post_ln),
        cmocka_unit_test(test_encoder_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
