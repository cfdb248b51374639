/* Finite-difference check (double build) of every DeepMoE parameter
 * gradient through CE + lambda * sum_l L1(g_l) + mu * CE(embedding head):
 * VGG and ResNet, gated and ungated, elementwise and matrix L1, batch norm
 * in training mode (and once with running statistics), dropout with a
 * fixed mask, and the freeze phase (loss = CE, embedding tensors get
 * exactly zero gradient, everything else matches the CE-only FD).
 *
 * ReLU kinks: the gates g = relu(W e) are the only kinks whose crossing
 * would move the loss by more than the tolerance (a whole channel turns
 * on). Each case draws input images until every pre-activation |W e| is at
 * least 1e-4 — a hundred FD steps away from 0 — and asserts that some
 * gates are exactly 0 and some positive, so both sides are exercised.
 * Kinks inside the convs' ReLUs and max pools move the loss by
 * O(eps * slope jump) at most, below the tolerance. */
#include "test_util.h"

#include "models/deepmoe_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 3, CIN = 1, HW = 12, NCLS = 4 };

typedef struct ctx {
    deepmoe *m;
    moe_real x[B * CIN * HW * HW];
    int32_t labels[B];
    moe_batch batch;
    moe_arena arena;
    moe_rng rng;
    int training;
} ctx;

static double loss_fn(void *p) {
    ctx *c = p;
    double ce = 0, aux = 0;
    moe_arena_reset(&c->arena);
    moe_rng_seed(&c->rng, 5); /* the same dropout mask every evaluation */
    moe_status st =
        family_deepmoe.forward(c->m, &c->batch, c->training, &c->rng, &c->arena, &ce, &aux);
    if (st != MOE_OK) fprintf(stderr, "forward: %s\n", moe_last_error());
    assert_int_equal(st, MOE_OK);
    return ce + aux;
}

static moe_model_config small_config(moe_deepmoe_arch arch, int gated, moe_gate_l1 l1) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_DEEPMOE;
    c.n_classes = NCLS;
    c.input = (moe_input_config){CIN, HW, HW, CIN * HW * HW};
    moe_deepmoe_config *d = &c.deepmoe;
    d->arch = arch;
    d->channels[0] = 4;
    d->channels[1] = 6;
    d->n_channels = 2;
    d->gated = gated;
    d->emb_dim = 8;
    d->lambda = 0.05f;
    d->mu = 0.7f;
    d->l1 = l1;
    return c;
}

/* Smallest |pre-activation| over every gate of the last forward, and the
 * counts of zero and positive gates. */
static double gate_margin(const deepmoe *m, int *zero, int *pos) {
    double margin = INFINITY;
    *zero = *pos = 0;
    for (int l = 0; l < m->n_gates; l++)
        for (long i = 0; i < (long)m->B * m->gates[l].C; i++) {
            margin = fmin(margin, fabs((double)m->gpre[l][i]));
            if (m->g[l][i] > 0)
                (*pos)++;
            else
                (*zero)++;
        }
    return margin;
}

enum { TRAIN = 1, FREEZE = 2, DROPOUT = 4 };

static void check(moe_model_config cfg, int what) {
    ctx c;
    memset(&c, 0, sizeof c);
    if (what & DROPOUT) cfg.deepmoe.dropout = 0.3f;
    void *impl;
    assert_int_equal(family_deepmoe.create(&impl, &cfg, 7), MOE_OK);
    c.m = impl;
    c.training = (what & TRAIN) != 0;
    moe_arena_init(&c.arena);
    for (int b = 0; b < B; b++) c.labels[b] = (int32_t)((b * 3 + 1) % NCLS);
    c.batch = (moe_batch){.labels = c.labels, .B = B, .T = 1, .x = c.x};
    /* Larger weights than PyTorch's init (whose embedding e is ~1e-2 and
     * gates ~5e-3) so that every path carries signal; BN scales around 1,
     * shifts around 0, running statistics that are not the identity (for
     * inference mode). */
    const moe_param_table *t = family_deepmoe.table(c.m);
    moe_real *p = family_deepmoe.params(c.m);
    for (int i = 0; i < t->count; i++) {
        const char *name = t->tensors[i].name;
        double lo = -0.5, hi = 0.5;
        if (strstr(name, "running_var") || (strstr(name, "bn") && strstr(name, "weight")) ||
            strstr(name, "shortcut.1.weight"))
            lo = 0.5, hi = 1.5;
        else if (strstr(name, "running_mean") || strstr(name, "bias"))
            lo = -0.2, hi = 0.2;
        fill_uniform(p + t->tensors[i].offset, (long)t->tensors[i].numel, lo, hi, 300 + i);
    }
    family_phase ph = {1.0f, (what & FREEZE) != 0};
    family_deepmoe.set_phase(c.m, &ph);
    /* images whose gates all sit well away from the ReLU kink */
    int zero = 0, pos = 0;
    for (unsigned long long seed = 1;; seed++) {
        assert_true(seed < 200);
        fill_uniform(c.x, B * CIN * HW * HW, -1, 1, seed);
        loss_fn(&c);
        if (!c.m->gated || gate_margin(c.m, &zero, &pos) >= 1e-4) break;
    }
    if (c.m->gated) {
        fprintf(stderr, "gates: %d zero, %d positive\n", zero, pos);
        assert_true(zero > 0 && pos > 0);
    }
    double loss = loss_fn(&c), ce = 0, aux = 0;
    memset(family_deepmoe.grads(c.m), 0, t->total * sizeof(moe_real));
    moe_arena_reset(&c.arena);
    moe_rng_seed(&c.rng, 5);
    assert_int_equal(family_deepmoe.forward(c.m, &c.batch, c.training, &c.rng, &c.arena, &ce, &aux),
                     MOE_OK);
    assert_close(ce + aux, loss, 0);
    if (what & FREEZE) assert_close(aux, 0, 0);
    assert_int_equal(family_deepmoe.backward(c.m, &c.arena, 1.0f), MOE_OK);
    moe_real *g = malloc(t->total * sizeof *g);
    memcpy(g, family_deepmoe.grads(c.m), t->total * sizeof *g);
    int failed = 0, checked = 0;
    for (int i = 0; i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        if (family_deepmoe.is_buffer(c.m, i)) continue;
        if ((what & FREEZE) && family_deepmoe.optimizer_skips(c.m, i)) {
            /* frozen: nothing flows in, whatever the loss does through e */
            for (size_t j = 0; j < ti->numel; j++) assert_true(g[ti->offset + j] == 0);
            continue;
        }
        failed +=
            gradcheck(ti->name, p + ti->offset, (long)ti->numel, g + ti->offset, loss_fn, &c, 24);
        checked++;
    }
    fprintf(stderr, "%d tensors checked\n", checked);
    assert_int_equal(failed, 0);
    free(g);
    moe_arena_free(&c.arena);
    family_deepmoe.destroy(impl);
}

static void test_vgg_gated(void **state) {
    (void)state;
    check(small_config(MOE_DEEPMOE_VGG, 1, MOE_GATE_L1_ELEMENTWISE), TRAIN);
}
static void test_vgg_gated_matrix(void **state) {
    (void)state;
    check(small_config(MOE_DEEPMOE_VGG, 1, MOE_GATE_L1_MATRIX), TRAIN);
}
static void test_vgg_ungated(void **state) {
    (void)state;
    check(small_config(MOE_DEEPMOE_VGG, 0, MOE_GATE_L1_ELEMENTWISE), TRAIN);
}
static void test_vgg_freeze(void **state) {
    (void)state;
    check(small_config(MOE_DEEPMOE_VGG, 1, MOE_GATE_L1_ELEMENTWISE), TRAIN | FREEZE);
}
static void test_vgg_dropout(void **state) {
    (void)state;
    check(small_config(MOE_DEEPMOE_VGG, 1, MOE_GATE_L1_ELEMENTWISE), TRAIN | DROPOUT);
}
static void test_vgg_inference_bn(void **state) {
    (void)state;
    check(small_config(MOE_DEEPMOE_VGG, 1, MOE_GATE_L1_ELEMENTWISE), 0);
}
static void test_resnet_gated(void **state) {
    (void)state;
    check(small_config(MOE_DEEPMOE_RESNET, 1, MOE_GATE_L1_ELEMENTWISE), TRAIN);
}
static void test_resnet_gated_matrix(void **state) {
    (void)state;
    check(small_config(MOE_DEEPMOE_RESNET, 1, MOE_GATE_L1_MATRIX), TRAIN);
}
static void test_resnet_ungated(void **state) {
    (void)state;
    check(small_config(MOE_DEEPMOE_RESNET, 0, MOE_GATE_L1_ELEMENTWISE), TRAIN);
}
static void test_resnet_freeze(void **state) {
    (void)state;
    check(small_config(MOE_DEEPMOE_RESNET, 1, MOE_GATE_L1_MATRIX), TRAIN | FREEZE);
}
/* Three blocks: identity shortcut (block 0 always has one: the stem has its
 * width), then stride-2 1x1 shortcuts, one of them at equal widths. */
static void test_resnet_three_stages(void **state) {
    (void)state;
    moe_model_config c = small_config(MOE_DEEPMOE_RESNET, 1, MOE_GATE_L1_ELEMENTWISE);
    c.deepmoe.channels[1] = 4;
    c.deepmoe.channels[2] = 5;
    c.deepmoe.n_channels = 3;
    check(c, TRAIN);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vgg_gated),           cmocka_unit_test(test_vgg_gated_matrix),
        cmocka_unit_test(test_vgg_ungated),         cmocka_unit_test(test_vgg_freeze),
        cmocka_unit_test(test_vgg_dropout),         cmocka_unit_test(test_vgg_inference_bn),
        cmocka_unit_test(test_resnet_gated),        cmocka_unit_test(test_resnet_gated_matrix),
        cmocka_unit_test(test_resnet_ungated),      cmocka_unit_test(test_resnet_freeze),
        cmocka_unit_test(test_resnet_three_stages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
