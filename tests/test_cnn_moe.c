/* Behaviour of seed 000's cnn_moe family: the default shape's parameter
 * and FLOP counts by hand, the PyTorch-default initialisation and its
 * nearly uniform gate, the temperature set by set_phase, buffers flagged
 * for the optimizer, inference that uses the running statistics (and so
 * is deterministic and independent of the rest of the batch), the
 * auxiliary terms on an exactly uniform gate, routing statistics, and
 * steps that stop allocating once the arena has grown. */
#include "test_util.h"

#include "models/family.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const model_family *f = &family_cnn_moe;

/* Fashion-MNIST's shape with the family's defaults (channels [32, 64]). */
static moe_model_config default_config(void) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_CNN_MOE;
    c.n_classes = 10;
    c.input.channels = 1;
    c.input.height = 28;
    c.input.width = 28;
    c.moe.n_experts = 3;
    c.moe.temperature = 2.0f;
    c.cnn.expert_channels = 128;
    c.cnn.gate_hidden = 256;
    c.cnn.expert_dropout = 0.5f;
    c.cnn.gate_dropout = 0.2f;
    c.cnn.gate_noise = 0.1f;
    c.cnn.diversity_weight = 0.1f;
    c.cnn.balance_weight = 0.5f;
    return c;
}

static moe_model_config small_config(void) {
    moe_model_config c = default_config();
    c.input.height = 12;
    c.input.width = 12;
    c.cnn.channels[0] = 6;
    c.cnn.channels[1] = 8;
    c.cnn.n_channels = 2;
    c.cnn.expert_channels = 10;
    c.cnn.gate_hidden = 16;
    return c;
}

static moe_real *images(int B, const moe_model_config *c, unsigned long long seed) {
    long n = (long)B * c->input.channels * c->input.height * c->input.width;
    moe_real *x = malloc((size_t)n * sizeof *x);
    fill_uniform(x, n, -1, 1, seed);
    return x;
}

static int find(void *m, const char *name) {
    return moe_params_find(f->table(m), name);
}

static moe_real *tensor(void *m, const char *name) {
    int i = find(m, name);
    assert_true(i >= 0);
    return f->params(m) + f->table(m)->tensors[i].offset;
}

/* Counted by hand for 1x28x28, stages 32 and 64, 3 experts of width 128,
 * gate hidden 256, 10 classes. */
static void test_default_shape_counts(void **state) {
    (void)state;
    moe_model_config c = default_config();
    void *m;
    assert_int_equal(f->create(&m, &c, 1), MOE_OK);
    /* conv 32*9+32, bn 4*32; conv 64*32*9+64, bn 4*64; per expert dw 64*9+64,
     * pw 128*64+128, bn 4*128, fc 10*128+10; gate 256*64+256, bn 4*256, 3*256+3 */
    size_t expert = 640 + 8320 + 512 + 1290;
    size_t total = 320 + 128 + 18496 + 256 + 3 * expert + 16640 + 1024 + 771;
    size_t numel = 0;
    for (int i = 0; i < f->table(m)->count; i++) numel += f->table(m)->tensors[i].numel;
    assert_int_equal(numel, total);
    size_t buffers = 2 * (32 + 64 + 3 * 128 + 256);
    /* the gate is soft: every parameter is active (the dispatcher's default) */
    assert_null(f->active_params);
    moe_model *mm;
    assert_int_equal(moe_model_create(&mm, &c, 1), MOE_OK);
    assert_int_equal(moe_model_active_param_count(mm), total - buffers);
    assert_int_equal(moe_model_param_count(mm), total - buffers);
    moe_model_free(mm);
    /* MACs: 32*9*784 + 64*32*9*196 + 3*(64*9*49 + 128*64*49 + 10*128) + 256*64 + 3*256 */
    double macs = 225792.0 + 3612672.0 + 3 * (28224.0 + 401408.0 + 1280.0) + 16384.0 + 768.0;
    assert_close(f->train_flops(m, 1), 6 * macs, 0.5);
    assert_close(f->all_experts_flops(m, 1), f->train_flops(m, 1), 0);
    assert_true(f->train_flops(m, 1) > 0);
    const moe_param_table *t = f->table(m);
    assert_string_equal(t->tensors[f->router_tensor(m, 0)].name, "gate.fc2.weight");
    assert_int_equal(f->n_moe_layers(m), 1);
    assert_null(f->layer_stats(m, 0)); /* no forward yet */
    const moe_real *L = (const moe_real *)1, *G = (const moe_real *)1;
    assert_int_equal(f->expert_outputs(m, &L, &G), 3);
    assert_null(L);
    assert_null(G);
    f->destroy(m);
}

static void test_buffers_flagged(void **state) {
    (void)state;
    moe_model_config c = small_config();
    void *m;
    assert_int_equal(f->create(&m, &c, 1), MOE_OK);
    const moe_param_table *t = f->table(m);
    int n = 0;
    for (int i = 0; i < t->count; i++) {
        int want = strstr(t->tensors[i].name, ".running_mean") != NULL ||
                   strstr(t->tensors[i].name, ".running_var") != NULL;
        assert_int_equal(f->is_buffer(m, i), want);
        assert_int_equal(f->optimizer_skips(m, i), want);
        n += want;
    }
    assert_int_equal(n, 2 * (2 + 3 + 1));
    assert_true(find(m, "features.0.bn.running_mean") >= 0);
    assert_true(find(m, "experts.1.bn.running_var") >= 0);
    assert_true(find(m, "gate.bn.running_var") >= 0);
    assert_false(f->is_buffer(m, -1));
    assert_false(f->is_buffer(m, t->count));
    f->destroy(m);
}

/* kaiming_uniform(a = sqrt 5): |w| <= 1/sqrt(fan_in), spread over the
 * range; batch norms at 1, 0 (running 0, 1); the gate's output layer
 * N(0, 0.01) with zero bias; the same seed, the same weights. */
static void test_init(void **state) {
    (void)state;
    moe_model_config c = default_config();
    void *m, *m2, *m3;
    assert_int_equal(f->create(&m, &c, 7), MOE_OK);
    assert_int_equal(f->create(&m2, &c, 7), MOE_OK);
    assert_int_equal(f->create(&m3, &c, 8), MOE_OK);
    const moe_param_table *t = f->table(m);
    assert_memory_equal(f->params(m), f->params(m2), t->total * sizeof(moe_real));
    assert_memory_not_equal(f->params(m), f->params(m3), t->total * sizeof(moe_real));
    struct {
        const char *name;
        double fan_in;
    } u[] = {
        {"features.0.conv.weight", 9}, {"features.0.conv.bias", 9}, {"features.1.conv.weight", 288},
        {"experts.2.dw.weight", 9},    {"experts.2.dw.bias", 9},    {"experts.0.pw.weight", 64},
        {"experts.0.fc.weight", 128},  {"experts.0.fc.bias", 128},  {"gate.fc1.weight", 64}};
    for (size_t k = 0; k < sizeof u / sizeof u[0]; k++) {
        const moe_tensor_info *ti = &t->tensors[find(m, u[k].name)];
        const moe_real *p = f->params(m) + ti->offset;
        double bound = 1 / sqrt(u[k].fan_in), mx = 0;
        for (size_t j = 0; j < ti->numel; j++) mx = fmax(mx, fabs(p[j]));
        assert_true(mx <= bound);
        if (ti->numel >= 64) assert_true(mx > 0.9 * bound);
    }
    const moe_real *bw = tensor(m, "experts.1.bn.weight"), *bb = tensor(m, "experts.1.bn.bias");
    const moe_real *rm = tensor(m, "gate.bn.running_mean"), *rv = tensor(m, "gate.bn.running_var");
    for (int j = 0; j < 128; j++) assert_true(bw[j] == 1 && bb[j] == 0);
    for (int j = 0; j < 256; j++) assert_true(rm[j] == 0 && rv[j] == 1);
    const moe_real *g2 = tensor(m, "gate.fc2.weight"), *g2b = tensor(m, "gate.fc2.bias");
    double s2 = 0;
    for (int j = 0; j < 3 * 256; j++) s2 += (double)g2[j] * g2[j];
    assert_close(sqrt(s2 / (3 * 256)), 0.01, 0.0015);
    for (int j = 0; j < 3; j++) assert_true(g2b[j] == 0);
    f->destroy(m);
    f->destroy(m2);
    f->destroy(m3);
}

/* The N(0, 0.01) output layer starts every example near 1/E (training
 * mode: batch statistics, dropout on, noise off). */
static void test_gate_uniform_at_init(void **state) {
    (void)state;
    moe_model_config c = default_config();
    c.cnn.gate_noise = 0;
    void *m;
    assert_int_equal(f->create(&m, &c, 3), MOE_OK);
    enum { B = 16 };
    moe_real *x = images(B, &c, 1);
    int32_t y[B] = {0};
    moe_batch b = {.labels = y, .B = B, .T = 1, .x = x};
    moe_arena a;
    moe_arena_init(&a);
    moe_rng rng;
    moe_rng_seed(&rng, 1);
    assert_int_equal(f->forward(m, &b, 1, &rng, &a, NULL, NULL), MOE_OK);
    const moe_real *G;
    assert_int_equal(f->expert_outputs(m, NULL, &G), 3);
    /* logits ~ N(0, 0.01^2 |h|^2) / T with |h|^2 ~ 256 / 2 (BN, ReLU) x 1.25
     * (dropout): about 0.06, so gates within a few hundredths of 1/3 */
    double dev = 0;
    for (int i = 0; i < B * 3; i++) {
        assert_true(fabs(G[i] - 1.0 / 3) < 0.1);
        dev += fabs(G[i] - 1.0 / 3) / (B * 3);
    }
    assert_true(dev < 0.03);
    moe_arena_free(&a);
    f->destroy(m);
    free(x);
}

/* Row i's gates at temperature T are softmax(z_i / T): ln(G_i0 / G_i1) * T
 * does not depend on T, and a higher T spreads the gate (higher entropy).
 * Inference, so no noise. */
static void test_temperature(void **state) {
    (void)state;
    moe_model_config c = small_config();
    c.moe.temperature = 0.5f;
    void *m;
    assert_int_equal(f->create(&m, &c, 3), MOE_OK);
    fill_uniform(tensor(m, "gate.fc2.weight"), 3 * 16, -1, 1, 9); /* a gate with opinions */
    enum { B = 5 };
    moe_real *x = images(B, &c, 2);
    moe_batch b = {.B = B, .T = 1, .x = x};
    moe_arena a;
    moe_arena_init(&a);
    const moe_real *G;
    double ratio[2][B], entropy[2];
    const float T[2] = {0.5f, 4.0f};
    for (int k = 0; k < 2; k++) {
        if (k) f->set_phase(m, &(family_phase){.temperature = T[k]});
        moe_arena_reset(&a);
        assert_int_equal(f->forward(m, &b, 0, NULL, &a, NULL, NULL), MOE_OK);
        f->expert_outputs(m, NULL, &G);
        for (int i = 0; i < B; i++) ratio[k][i] = log(G[i * 3] / G[i * 3 + 1]) * T[k];
        entropy[k] = f->layer_stats(m, 0)->router_entropy;
    }
    for (int i = 0; i < B; i++) assert_close(ratio[0][i], ratio[1][i], 1e-4);
    assert_true(entropy[1] > entropy[0] + 0.1);
    assert_true(entropy[1] <= log(3.0) + 1e-9);
    moe_arena_free(&a);
    f->destroy(m);
    free(x);
}

/* Inference normalises with the running statistics: the same batch gives
 * the same bits twice, an example's logits do not depend on the rest of
 * its batch, the statistics do not move, and they do matter. Training
 * moves them (and needs two examples). */
static void test_inference_uses_running_stats(void **state) {
    (void)state;
    moe_model_config c = small_config();
    void *m;
    assert_int_equal(f->create(&m, &c, 3), MOE_OK);
    enum { B = 4, NC = 10 };
    moe_real *x = images(B, &c, 3);
    int32_t y[B] = {1, 2, 3, 4};
    moe_batch b = {.labels = y, .B = B, .T = 1, .x = x};
    moe_arena a;
    moe_arena_init(&a);
    moe_rng rng;
    moe_rng_seed(&rng, 5);
    /* a few training steps' worth of statistics first */
    for (int s = 0; s < 3; s++) {
        moe_arena_reset(&a);
        assert_int_equal(f->forward(m, &b, 1, &rng, &a, NULL, NULL), MOE_OK);
    }
    const moe_real *rm = tensor(m, "features.1.bn.running_mean");
    assert_true(rm[0] != 0); /* training moved them */
    size_t total = f->table(m)->total;
    moe_real *before = malloc(total * sizeof *before), *l1 = malloc(B * NC * sizeof *l1);
    memcpy(before, f->params(m), total * sizeof *before);
    double ce1, ce2, aux;
    moe_arena_reset(&a);
    assert_int_equal(f->forward(m, &b, 0, NULL, &a, &ce1, &aux), MOE_OK);
    memcpy(l1, f->class_logits(m), B * NC * sizeof *l1);
    moe_arena_reset(&a);
    assert_int_equal(f->forward(m, &b, 0, NULL, &a, &ce2, &aux), MOE_OK);
    assert_memory_equal(l1, f->class_logits(m), B * NC * sizeof *l1);
    assert_true(ce1 == ce2);
    assert_memory_equal(before, f->params(m), total * sizeof *before);
    /* example 2 alone */
    moe_batch one = {.labels = y + 2, .B = 1, .T = 1, .x = x + 2 * 144};
    moe_arena_reset(&a);
    assert_int_equal(f->forward(m, &one, 0, NULL, &a, NULL, NULL), MOE_OK);
    for (int j = 0; j < NC; j++) assert_close(f->class_logits(m)[j], l1[2 * NC + j], 1e-5);
    /* other statistics, other logits */
    tensor(m, "gate.bn.running_var")[0] += 3;
    tensor(m, "experts.0.bn.running_mean")[0] += 1;
    moe_arena_reset(&a);
    assert_int_equal(f->forward(m, &b, 0, NULL, &a, NULL, NULL), MOE_OK);
    assert_memory_not_equal(l1, f->class_logits(m), B * NC * sizeof *l1);
    /* batch norm over one example has no statistics: an error, not NaN */
    moe_arena_reset(&a);
    assert_int_equal(f->forward(m, &one, 1, &rng, &a, NULL, NULL), MOE_ERR_INVALID);
    moe_arena_free(&a);
    f->destroy(m);
    free(x);
    free(before);
    free(l1);
}

/* With the gate's output layer at zero, G = 1/E exactly, so the terms are
 * known: readme diversity B (1 - 1/E) (summed over the batch), balance 0;
 * code entropy -ln(1/E + 1e-6), KL 0, correlation B / E^2, min_gate
 * relu(0.1 - 1/E). */
static void check_uniform_terms(moe_cnn_loss loss, int E) {
    moe_model_config c = small_config();
    c.moe.n_experts = E;
    c.cnn.loss = loss;
    c.cnn.gate_noise = 0;
    void *m;
    assert_int_equal(f->create(&m, &c, 3), MOE_OK);
    memset(tensor(m, "gate.fc2.weight"), 0, (size_t)E * 16 * sizeof(moe_real));
    enum { B = 6 };
    moe_real *x = images(B, &c, 4);
    int32_t y[B] = {0, 1, 2, 3, 4, 5};
    moe_batch b = {.labels = y, .B = B, .T = 1, .x = x};
    moe_arena a;
    moe_arena_init(&a);
    moe_rng rng;
    moe_rng_seed(&rng, 5);
    double ce, aux;
    assert_int_equal(f->forward(m, &b, 1, &rng, &a, &ce, &aux), MOE_OK);
    const char *const *names;
    const double *v;
    int n = f->loss_parts(m, &names, &v);
    double dw = c.cnn.diversity_weight, bw = c.cnn.balance_weight;
    if (loss == MOE_CNN_LOSS_README) {
        assert_int_equal(n, 2);
        assert_string_equal(names[0], "diversity");
        assert_string_equal(names[1], "balance");
        assert_close(v[0], B * (1 - 1.0 / E), 1e-5);
        assert_close(v[1], 0, 1e-12);
        assert_close(aux, dw * v[0] + bw * v[1], 1e-9);
    } else {
        assert_int_equal(n, 4);
        assert_string_equal(names[0], "entropy");
        assert_string_equal(names[1], "balance_kl");
        assert_string_equal(names[2], "correlation");
        assert_string_equal(names[3], "min_gate");
        assert_close(v[0], -log(1.0 / E + 1e-6), 1e-6);
        assert_close(v[1], 0, 1e-9);
        assert_close(v[2], (double)B / (E * E), 1e-6);
        assert_close(v[3], fmax(0, 0.1 - 1.0 / E), 1e-7);
        assert_close(aux, dw * v[0] + bw * v[1] + 0.1 * v[2] + 0.5 * v[3], 1e-9);
    }
    assert_close(f->layer_stats(m, 0)->aux_total, aux, 0);
    moe_arena_free(&a);
    f->destroy(m);
    free(x);
}

static void test_aux_terms_uniform_gate(void **state) {
    (void)state;
    check_uniform_terms(MOE_CNN_LOSS_README, 3);
    check_uniform_terms(MOE_CNN_LOSS_CODE, 3);
    check_uniform_terms(MOE_CNN_LOSS_CODE, 20); /* 1/E < 0.1: min_gate is on */
}

/* One soft-gated layer: each example counts once, for its largest gate. */
static void test_layer_stats(void **state) {
    (void)state;
    moe_model_config c = small_config();
    c.cnn.gate_noise = 0;
    void *m;
    assert_int_equal(f->create(&m, &c, 3), MOE_OK);
    fill_uniform(tensor(m, "gate.fc2.weight"), 3 * 16, -1, 1, 9);
    enum { B = 9 };
    moe_real *x = images(B, &c, 6);
    moe_batch b = {.B = B, .T = 1, .x = x};
    moe_arena a;
    moe_arena_init(&a);
    assert_int_equal(f->forward(m, &b, 0, NULL, &a, NULL, NULL), MOE_OK);
    const moe_layer_stats *s = f->layer_stats(m, 0);
    const moe_real *G;
    f->expert_outputs(m, NULL, &G);
    assert_non_null(s);
    assert_int_equal(s->n_tokens, B);
    assert_int_equal(s->n_pairs, B);
    assert_int_equal(s->top_k, 1);
    assert_int_equal(s->n_dropped, 0);
    int count[3] = {0};
    double mean[3] = {0}, ent = 0;
    for (int i = 0; i < B; i++) {
        int best = 0;
        for (int e = 0; e < 3; e++) {
            if (G[i * 3 + e] > G[i * 3 + best]) best = e;
            mean[e] += G[i * 3 + e] / B;
            ent -= G[i * 3 + e] * log(G[i * 3 + e]) / B;
        }
        assert_int_equal(s->chosen[i], best);
        assert_true(s->gate[i] == G[i * 3 + best]);
        assert_true(s->kept_pair[i] >= 0);
        count[best]++;
    }
    for (int e = 0; e < 3; e++) {
        assert_int_equal(s->expert_tokens[e], count[e]);
        assert_close(s->mean_prob[e], mean[e], 1e-6);
    }
    assert_close(s->router_entropy, ent, 1e-6);
    moe_arena_free(&a);
    f->destroy(m);
    free(x);
}

/* After the first step the arena is one block and later steps (forward
 * and backward, dropout and noise on) allocate nothing more. */
static void test_steps_reuse_arena(void **state) {
    (void)state;
    moe_model_config c = small_config();
    void *m;
    assert_int_equal(f->create(&m, &c, 3), MOE_OK);
    enum { B = 8 };
    moe_real *x = images(B, &c, 7);
    int32_t y[B] = {0, 1, 2, 3, 4, 5, 6, 7};
    moe_batch b = {.labels = y, .B = B, .T = 1, .x = x};
    moe_arena a;
    moe_arena_init(&a);
    moe_rng rng;
    moe_rng_seed(&rng, 5);
    for (int s = 0; s < 3; s++) {
        moe_arena_reset(&a);
        double ce, aux;
        assert_int_equal(f->forward(m, &b, 1, &rng, &a, &ce, &aux), MOE_OK);
        assert_true(isfinite(ce) && isfinite(aux));
        assert_int_equal(f->backward(m, &a, 1.0f), MOE_OK);
        if (s > 0) assert_int_equal(moe_arena_blocks(&a), 1);
    }
    moe_arena_free(&a);
    f->destroy(m);
    free(x);
}

static void test_config_errors(void **state) {
    (void)state;
    void *m = (void *)1;
    moe_model_config c = small_config();
    c.input.height = 0; /* not filled from the data */
    assert_int_equal(f->create(&m, &c, 1), MOE_ERR_INVALID);
    assert_null(m);
    c = small_config();
    c.input.height = c.input.width = 3; /* the second stage would see 1 x 1 */
    assert_int_equal(f->create(&m, &c, 1), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "too small"));
    c = small_config();
    c.n_classes = 0;
    assert_int_equal(f->create(&m, &c, 1), MOE_ERR_INVALID);
    /* a label outside the classes is an error, not a silent NaN */
    c = small_config();
    assert_int_equal(f->create(&m, &c, 1), MOE_OK);
    moe_real *x = images(2, &c, 8);
    int32_t y[2] = {0, 10};
    moe_batch b = {.labels = y, .B = 2, .T = 1, .x = x};
    moe_arena a;
    moe_arena_init(&a);
    assert_int_equal(f->forward(m, &b, 0, NULL, &a, NULL, NULL), MOE_ERR_INVALID);
    /* training with dropout needs an rng */
    y[1] = 1;
    assert_int_equal(f->forward(m, &b, 1, NULL, &a, NULL, NULL), MOE_ERR_INVALID);
    moe_arena_free(&a);
    f->destroy(m);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_shape_counts),
        cmocka_unit_test(test_buffers_flagged),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_gate_uniform_at_init),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_inference_uses_running_stats),
        cmocka_unit_test(test_aux_terms_uniform_gate),
        cmocka_unit_test(test_layer_stats),
        cmocka_unit_test(test_steps_reuse_arena),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
