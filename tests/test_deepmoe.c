/* DeepMoE behaviour: gates are >= 0 with some exactly 0; channel_gates
 * counts, widths and FLOPs per channel against hand-computed values; the
 * ungated baseline has no gates; buffers and the freeze phase's frozen
 * tensors are flagged; loss parts, FLOPs, parameter counts and the init
 * against their definitions; inference uses the running statistics;
 * backward adds; the arena stops growing after the first step. */
#include "test_util.h"

#include "models/family.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const model_family *F = &family_deepmoe;

static moe_model_config config(moe_deepmoe_arch arch, int gated, int h, int n_stages) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_DEEPMOE;
    c.n_classes = 10;
    c.input = (moe_input_config){1, h, h, h * h};
    c.deepmoe = (moe_deepmoe_config){
        .arch = arch, .gated = gated, .emb_dim = 128, .lambda = 0.01f, .mu = 1.0f};
    for (int s = 0; s < n_stages; s++) c.deepmoe.channels[s] = 4 + 2 * s;
    c.deepmoe.n_channels = n_stages; /* 0: the defaults [32, 64, 128] */
    return c;
}

typedef struct run {
    void *m;
    moe_real *x;
    int32_t *y;
    moe_batch b;
    moe_arena arena;
    double ce, aux;
} run;

/* Fashion-MNIST-like images: uniform [0, 1). */
static void setup(run *r, const moe_model_config *c, int B, uint64_t seed) {
    assert_int_equal(F->create(&r->m, c, seed), MOE_OK);
    long n = (long)B * c->input.channels * c->input.height * c->input.width;
    r->x = malloc((size_t)n * sizeof *r->x);
    r->y = malloc((size_t)B * sizeof *r->y);
    fill_uniform(r->x, n, 0, 1, seed + 1);
    for (int b = 0; b < B; b++) r->y[b] = (int32_t)((b * 7 + 3) % c->n_classes);
    r->b = (moe_batch){.labels = r->y, .B = B, .T = 1, .x = r->x};
    moe_arena_init(&r->arena);
}

static void forward(run *r, int training) {
    moe_arena_reset(&r->arena);
    assert_int_equal(F->forward(r->m, &r->b, training, NULL, &r->arena, &r->ce, &r->aux), MOE_OK);
}

static void teardown(run *r) {
    moe_arena_free(&r->arena);
    F->destroy(r->m);
    free(r->x);
    free(r->y);
}

static int has_prefix(const char *s, const char *p) {
    return strncmp(s, p, strlen(p)) == 0;
}

/* At PyTorch's init on [0, 1) images, relu(W e) leaves a fair share of
 * gates on (the measured share is printed), every gate is >= 0, some are
 * exactly 0 and some channels are on for some images and off for others. */
static void test_gates_nonnegative_some_zero(void **state) {
    (void)state;
    moe_model_config c = config(MOE_DEEPMOE_VGG, 1, 28, 0);
    run r;
    setup(&r, &c, 32, 5);
    forward(&r, 1);
    int L = F->channel_gates(r.m, 0, NULL, NULL, NULL);
    long zero = 0, total = 0, mixed = 0;
    double sum = 0;
    for (int l = 0; l < L; l++) {
        const moe_real *g;
        int C;
        F->channel_gates(r.m, l, &g, &C, NULL);
        assert_non_null(g);
        for (int ch = 0; ch < C; ch++) {
            int on = 0, off = 0;
            for (int b = 0; b < 32; b++) {
                moe_real v = g[(long)b * C + ch];
                assert_true(v >= 0);
                if (v == 0)
                    off++;
                else
                    on++;
                sum += v;
            }
            zero += off;
            total += on + off;
            mixed += on && off;
        }
    }
    double share = 1.0 - (double)zero / (double)total;
    fprintf(stderr, "init: %.1f%% of gates on, mean gate %.2g, %ld channels mixed\n", 100 * share,
            sum / (double)total, mixed);
    assert_true(zero > 0);
    assert_true(share > 0.2 && share < 0.8);
    assert_true(mixed > 0);
    teardown(&r);
}

/* Gated convs: VGG 2 per stage, ResNet the stem and 2 per block, with
 * C_l and 2 * C_in * 9 * OH * OW per channel as computed by hand. */
static void test_channel_gates_count(void **state) {
    (void)state;
    static const int vgg[][3] = {{1, 32, 28},  {32, 32, 28}, {32, 64, 14},
                                 {64, 64, 14}, {64, 128, 7}, {128, 128, 7}};
    static const int res[][3] = {{1, 32, 28},  {32, 32, 28}, {32, 32, 28}, {32, 64, 14},
                                 {64, 64, 14}, {64, 128, 7}, {128, 128, 7}};
    for (int arch = 0; arch < 2; arch++)
        for (int wide = 0; wide < 2; wide++) {
            moe_model_config c = config(arch ? MOE_DEEPMOE_RESNET : MOE_DEEPMOE_VGG, 1, 28, 0);
            c.deepmoe.wide = wide;
            const int(*want)[3] = arch ? res : vgg;
            int n = arch ? 7 : 6, k = wide ? 2 : 1;
            void *m;
            assert_int_equal(F->create(&m, &c, 1), MOE_OK);
            assert_int_equal(F->channel_gates(m, 0, NULL, NULL, NULL), n);
            for (int l = 0; l < n; l++) {
                const moe_real *g = (const moe_real *)1;
                int C;
                double fpc;
                assert_int_equal(F->channel_gates(m, l, &g, &C, &fpc), n);
                assert_null(g); /* no forward yet */
                int cin = want[l][0] == 1 ? 1 : want[l][0] * k;
                assert_int_equal(C, want[l][1] * k);
                assert_close(fpc, 2.0 * cin * 9 * want[l][2] * want[l][2], 0);
            }
            F->destroy(m);
        }
}

static void test_ungated_has_no_gates(void **state) {
    (void)state;
    for (int arch = 0; arch < 2; arch++) {
        moe_model_config c = config(arch ? MOE_DEEPMOE_RESNET : MOE_DEEPMOE_VGG, 0, 12, 2);
        run r;
        setup(&r, &c, 4, 3);
        const moe_param_table *t = F->table(r.m);
        for (int i = 0; i < t->count; i++) {
            assert_false(has_prefix(t->tensors[i].name, "gates."));
            assert_false(has_prefix(t->tensors[i].name, "embedding."));
        }
        forward(&r, 1);
        assert_int_equal(F->channel_gates(r.m, 0, NULL, NULL, NULL), 0);
        assert_int_equal(F->loss_parts(r.m, NULL, NULL), 0);
        assert_close(r.aux, 0, 0);
        teardown(&r);
    }
}

/* Running statistics are buffers the optimizer skips; the parameter count
 * leaves them out. VGG [4] on 1x8x8, 10 classes, ungated: convs 36 + 144,
 * BN 2 x 8, classifier 40 + 10 = 246 parameters; 16 buffer values. */
static void test_buffers_flagged(void **state) {
    (void)state;
    moe_model_config c = config(MOE_DEEPMOE_VGG, 0, 8, 1);
    void *m;
    assert_int_equal(F->create(&m, &c, 1), MOE_OK);
    const moe_param_table *t = F->table(m);
    int buffers = 0;
    size_t numel = 0;
    for (int i = 0; i < t->count; i++) {
        int want = strstr(t->tensors[i].name, ".running_") != NULL;
        assert_int_equal(F->is_buffer(m, i), want);
        assert_int_equal(F->optimizer_skips(m, i), want);
        buffers += want;
        numel += t->tensors[i].numel;
    }
    assert_int_equal(buffers, 4);
    assert_null(F->active_params); /* dense: every parameter, the dispatcher's default */
    moe_model *mm;
    assert_int_equal(moe_model_create(&mm, &c, 1), MOE_OK);
    assert_int_equal(moe_model_active_param_count(mm), 246);
    moe_model_free(mm);
    assert_int_equal(numel, 246 + 16);
    F->destroy(m);
    /* gated ResNet: every BN's two statistics, shortcut BNs included */
    c = config(MOE_DEEPMOE_RESNET, 1, 12, 2);
    assert_int_equal(F->create(&m, &c, 1), MOE_OK);
    t = F->table(m);
    buffers = 0;
    for (int i = 0; i < t->count; i++) buffers += F->is_buffer(m, i);
    assert_int_equal(buffers, 2 * 6); /* stem, 2 + 2 convs, 1 shortcut */
    F->destroy(m);
}

/* Freeze phase: every embedding tensor (convs and head) is skipped and gets
 * no gradient; gates, convs and the classifier keep training; aux = 0. */
static void test_freeze_phase(void **state) {
    (void)state;
    moe_model_config c = config(MOE_DEEPMOE_RESNET, 1, 12, 2);
    c.deepmoe.emb_dim = 16;
    run r;
    setup(&r, &c, 6, 9);
    const moe_param_table *t = F->table(r.m);
    family_phase frozen = {1.0f, 1}, normal = {1.0f, 0};
    F->set_phase(r.m, &frozen);
    int n_emb = 0;
    for (int i = 0; i < t->count; i++) {
        int emb = has_prefix(t->tensors[i].name, "embedding.");
        n_emb += emb;
        assert_int_equal(F->optimizer_skips(r.m, i), emb || F->is_buffer(r.m, i));
    }
    assert_int_equal(n_emb, 8); /* 3 convs and the head, weight and bias */
    forward(&r, 1);
    assert_close(r.aux, 0, 0);
    const double *parts;
    assert_int_equal(F->loss_parts(r.m, NULL, &parts), 2);
    assert_true(parts[0] > 0 && parts[1] > 0); /* still measured */
    memset(F->grads(r.m), 0, t->total * sizeof(moe_real));
    assert_int_equal(F->backward(r.m, &r.arena, 1.0f), MOE_OK);
    for (int i = 0; i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        double norm = 0;
        for (size_t j = 0; j < ti->numel; j++) norm += fabs(F->grads(r.m)[ti->offset + j]);
        if (has_prefix(ti->name, "embedding.") || F->is_buffer(r.m, i))
            assert_true(norm == 0);
        else if (has_prefix(ti->name, "gates.") || strstr(ti->name, "conv") ||
                 has_prefix(ti->name, "classifier."))
            assert_true(norm > 0);
    }
    F->set_phase(r.m, &normal);
    for (int i = 0; i < t->count; i++)
        assert_int_equal(F->optimizer_skips(r.m, i), F->is_buffer(r.m, i));
    forward(&r, 1);
    assert_true(r.aux > 0);
    teardown(&r);
}

/* aux = lambda * gate_l1 + mu * embedding_ce, gate_l1 recomputed from the
 * gates: elementwise sum |g| / B per layer, matrix max_c sum_b |g|. */
static void test_loss_parts(void **state) {
    (void)state;
    for (int matrix = 0; matrix < 2; matrix++) {
        moe_model_config c = config(MOE_DEEPMOE_VGG, 1, 12, 2);
        c.deepmoe.l1 = matrix ? MOE_GATE_L1_MATRIX : MOE_GATE_L1_ELEMENTWISE;
        c.deepmoe.lambda = 0.3f;
        c.deepmoe.mu = 0.6f;
        int B = 5;
        run r;
        setup(&r, &c, B, 4);
        forward(&r, 1);
        const char *const *names;
        const double *v;
        assert_int_equal(F->loss_parts(r.m, &names, &v), 2);
        assert_string_equal(names[0], "gate_l1");
        assert_string_equal(names[1], "embedding_ce");
        double l1 = 0;
        int L = F->channel_gates(r.m, 0, NULL, NULL, NULL);
        for (int l = 0; l < L; l++) {
            const moe_real *g;
            int C;
            F->channel_gates(r.m, l, &g, &C, NULL);
            double best = 0, total = 0;
            for (int ch = 0; ch < C; ch++) {
                double col = 0;
                for (int b = 0; b < B; b++) col += fabs(g[b * C + ch]);
                best = fmax(best, col);
                total += col;
            }
            l1 += matrix ? best : total / B;
        }
        assert_close(v[0], l1, 1e-6 * l1);
        assert_true(v[1] > 0);
        assert_close(r.aux, 0.3f * v[0] + 0.6f * v[1], 1e-6);
        teardown(&r);
    }
}

/* Forward FLOPs per example for VGG [4] on 1x8x8, emb_dim 5, 10 classes:
 * embedding 1->32 (4x4) 9216, 32->64 (2x2) 147456, 64->5 (1x1) 5760;
 * convs 1->4 (8x8) 4608, 4->4 18432; gates 2 x 2*5*4; head 2*5*10;
 * classifier 2*4*10. Training is 3x, dense equals executed. */
static void test_flops(void **state) {
    (void)state;
    moe_model_config c = config(MOE_DEEPMOE_VGG, 1, 8, 1);
    c.deepmoe.emb_dim = 5;
    void *m;
    assert_int_equal(F->create(&m, &c, 1), MOE_OK);
    double fwd = 9216 + 147456 + 5760 + 4608 + 18432 + 2 * 40 + 100 + 80;
    assert_close(F->train_flops(m, 1), 3 * fwd, 0);
    assert_close(F->all_experts_flops(m, 1), 3 * fwd, 0);
    F->destroy(m);
}

/* PyTorch's default init: |w| <= 1/sqrt(fan_in), BN 1/0, statistics 0/1;
 * the same seed gives the same weights. */
static void test_init(void **state) {
    (void)state;
    moe_model_config c = config(MOE_DEEPMOE_RESNET, 1, 12, 2);
    void *a, *b;
    assert_int_equal(F->create(&a, &c, 42), MOE_OK);
    assert_int_equal(F->create(&b, &c, 42), MOE_OK);
    const moe_param_table *t = F->table(a);
    assert_memory_equal(F->params(a), F->params(b), t->total * sizeof(moe_real));
    for (int i = 0; i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        const moe_real *p = F->params(a) + ti->offset;
        const char *n = ti->name;
        int bn = strstr(n, ".bn") || strstr(n, "shortcut.1");
        double lo = INFINITY, hi = -INFINITY;
        for (size_t j = 0; j < ti->numel; j++) lo = fmin(lo, p[j]), hi = fmax(hi, p[j]);
        if (strstr(n, "running_var") || (bn && strstr(n, ".weight"))) {
            assert_true(lo == 1 && hi == 1);
        } else if (strstr(n, "running_mean") || (bn && strstr(n, ".bias"))) {
            assert_true(lo == 0 && hi == 0);
        } else {
            /* fan_in: a weight's row length; a bias shares its weight's */
            const moe_tensor_info *w = ti->ndim == 1 ? ti - 1 : ti;
            double bound = 1.0 / sqrt((double)(w->numel / w->shape[0]));
            assert_true(lo >= -bound && hi <= bound && hi > lo);
        }
    }
    F->destroy(a);
    F->destroy(b);
}

/* Inference reads the running statistics and leaves them alone; training
 * moves them. */
static void test_inference_uses_running_stats(void **state) {
    (void)state;
    moe_model_config c = config(MOE_DEEPMOE_VGG, 1, 12, 2);
    run r;
    setup(&r, &c, 4, 2);
    const moe_param_table *t = F->table(r.m);
    size_t bytes = t->total * sizeof(moe_real);
    moe_real *before = malloc(bytes), *l1 = malloc(40 * sizeof *l1);
    memcpy(before, F->params(r.m), bytes);
    forward(&r, 0);
    memcpy(l1, F->class_logits(r.m), 40 * sizeof *l1);
    assert_memory_equal(before, F->params(r.m), bytes);
    forward(&r, 0);
    assert_memory_equal(l1, F->class_logits(r.m), 40 * sizeof *l1);
    int rm = moe_params_find(t, "features.3.bn.running_mean");
    assert_true(rm >= 0);
    for (size_t j = 0; j < t->tensors[rm].numel; j++) /* some channel is gated on */
        F->params(r.m)[t->tensors[rm].offset + j] -= 5.0f;
    forward(&r, 0);
    assert_true(memcmp(l1, F->class_logits(r.m), 40 * sizeof *l1) != 0);
    memcpy(before, F->params(r.m), bytes);
    forward(&r, 1);
    assert_true(memcmp(before + t->tensors[rm].offset, F->params(r.m) + t->tensors[rm].offset,
                       t->tensors[rm].numel * sizeof(moe_real)) != 0);
    free(before);
    free(l1);
    teardown(&r);
}

/* Gradients add: backward at scale 1 then 0.5 is 1.5 x one backward. */
static void test_backward_adds(void **state) {
    (void)state;
    moe_model_config c = config(MOE_DEEPMOE_RESNET, 1, 12, 2);
    run r;
    setup(&r, &c, 4, 6);
    size_t n = F->table(r.m)->total;
    forward(&r, 1);
    memset(F->grads(r.m), 0, n * sizeof(moe_real));
    assert_int_equal(F->backward(r.m, &r.arena, 1.0f), MOE_OK);
    moe_real *once = malloc(n * sizeof *once);
    memcpy(once, F->grads(r.m), n * sizeof *once);
    assert_int_equal(F->backward(r.m, &r.arena, 0.5f), MOE_OK);
    for (size_t i = 0; i < n; i++)
        assert_close(F->grads(r.m)[i], 1.5 * once[i], 1e-6 + 1e-5 * fabs(once[i]));
    free(once);
    teardown(&r);
}

/* After the first step the arena is one block and stays one. */
static void test_arena_settles(void **state) {
    (void)state;
    moe_model_config c = config(MOE_DEEPMOE_VGG, 1, 28, 2);
    run r;
    setup(&r, &c, 8, 1);
    for (int s = 0; s < 3; s++) {
        forward(&r, 1);
        assert_int_equal(F->backward(r.m, &r.arena, 1.0f), MOE_OK);
        if (s > 0) assert_int_equal(moe_arena_blocks(&r.arena), 1);
    }
    teardown(&r);
}

/* Dropout needs an rng in training and changes the logits; inference
 * ignores it. No labels: outputs only, and backward refuses. */
static void test_dropout_and_no_labels(void **state) {
    (void)state;
    moe_model_config c = config(MOE_DEEPMOE_VGG, 1, 12, 2);
    c.deepmoe.dropout = 0.5f;
    run r;
    setup(&r, &c, 4, 8);
    moe_arena_reset(&r.arena);
    assert_int_equal(F->forward(r.m, &r.b, 1, NULL, &r.arena, &r.ce, &r.aux), MOE_ERR_INVALID);
    moe_rng rng;
    moe_rng_seed(&rng, 1);
    moe_real a[40], b[40];
    forward(&r, 0);
    memcpy(a, F->class_logits(r.m), sizeof a);
    forward(&r, 0);
    memcpy(b, F->class_logits(r.m), sizeof b);
    assert_memory_equal(a, b, sizeof a);
    moe_arena_reset(&r.arena);
    assert_int_equal(F->forward(r.m, &r.b, 1, &rng, &r.arena, &r.ce, &r.aux), MOE_OK);
    r.b.labels = NULL;
    forward(&r, 0);
    assert_close(r.ce, 0, 0);
    assert_close(r.aux, 0, 0);
    assert_int_equal(F->backward(r.m, &r.arena, 1.0f), MOE_ERR_INVALID);
    teardown(&r);
}

static void test_config_errors(void **state) {
    (void)state;
    void *m = NULL;
    moe_model_config c = config(MOE_DEEPMOE_VGG, 1, 28, 6); /* 28 -> 14 -> 7 -> 3 -> 1 -> ? */
    assert_int_equal(F->create(&m, &c, 1), MOE_ERR_INVALID);
    assert_null(m);
    c = config(MOE_DEEPMOE_VGG, 1, 28, 0);
    c.input.height = 0;
    assert_int_equal(F->create(&m, &c, 1), MOE_ERR_INVALID);
    c = config(MOE_DEEPMOE_VGG, 1, 28, 0);
    c.deepmoe.emb_dim = 0;
    assert_int_equal(F->create(&m, &c, 1), MOE_ERR_INVALID);
    c.deepmoe.gated = 0; /* the baseline has no embedding */
    assert_int_equal(F->create(&m, &c, 1), MOE_OK);
    F->destroy(m);
    c = config(MOE_DEEPMOE_RESNET, 1, 28, 0);
    c.n_classes = 0;
    assert_int_equal(F->create(&m, &c, 1), MOE_ERR_INVALID);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gates_nonnegative_some_zero),
        cmocka_unit_test(test_channel_gates_count),
        cmocka_unit_test(test_ungated_has_no_gates),
        cmocka_unit_test(test_buffers_flagged),
        cmocka_unit_test(test_freeze_phase),
        cmocka_unit_test(test_loss_parts),
        cmocka_unit_test(test_flops),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_inference_uses_running_stats),
        cmocka_unit_test(test_backward_adds),
        cmocka_unit_test(test_arena_settles),
        cmocka_unit_test(test_dropout_and_no_labels),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
