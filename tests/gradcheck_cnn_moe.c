/* Finite-difference check (double build) of every parameter gradient of
 * seed 000's cnn_moe family through the cross-entropy and all auxiliary
 * terms, in training mode (batch statistics in every batch norm): the
 * readme loss with hard labels, the code loss with weighted labels and
 * with soft targets, and a run with dropout and gate noise on, made
 * deterministic by reseeding the rng before every evaluation. The running
 * statistics must get no gradient. */
#include "test_util.h"

#include "models/family.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 6, CIN = 1, HW = 8, NC = 4 };

typedef struct ctx {
    void *m;
    moe_real x[B * CIN * HW * HW], soft[B * NC], w[B];
    int32_t labels[B];
    moe_batch batch;
    moe_arena arena;
    moe_rng rng;
} ctx;

static double loss_fn(void *p) {
    ctx *c = p;
    double ce = 0, aux = 0;
    moe_arena_reset(&c->arena);
    moe_rng_seed(&c->rng, 7); /* the same dropout masks and gate noise every time */
    moe_status st = family_cnn_moe.forward(c->m, &c->batch, 1, &c->rng, &c->arena, &ce, &aux);
    if (st != MOE_OK) fprintf(stderr, "forward: %s\n", moe_last_error());
    assert_int_equal(st, MOE_OK);
    return ce + aux;
}

static moe_model_config small_config(moe_cnn_loss loss) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_CNN_MOE;
    c.n_classes = NC;
    c.input.channels = CIN;
    c.input.height = HW;
    c.input.width = HW;
    c.moe.n_experts = 3;
    c.moe.temperature = 1.5f;
    c.cnn.channels[0] = 4;
    c.cnn.channels[1] = 6;
    c.cnn.n_channels = 2;
    c.cnn.expert_channels = 5;
    c.cnn.gate_hidden = 7;
    c.cnn.loss = loss;
    c.cnn.diversity_weight = 0.1f;
    c.cnn.balance_weight = 0.5f;
    return c;
}

enum { HARD = 0, WEIGHTED = 1, SOFT = 2 };

static void check(const moe_model_config *cfg, int targets) {
    ctx c;
    const model_family *f = &family_cnn_moe;
    assert_int_equal(f->create(&c.m, cfg, 3), MOE_OK);
    moe_arena_init(&c.arena);
    fill_uniform(c.x, B * CIN * HW * HW, -1, 1, 5);
    fill_uniform(c.w, B, 0.2, 2, 6);
    fill_uniform(c.soft, B * NC, 0.05, 1, 8);
    for (int i = 0; i < B; i++) {
        c.labels[i] = (int32_t)((i * 3 + 1) % NC);
        double s = 0;
        for (int j = 0; j < NC; j++) s += c.soft[i * NC + j];
        for (int j = 0; j < NC; j++) c.soft[i * NC + j] /= (moe_real)s;
    }
    c.batch = (moe_batch){.labels = targets == SOFT ? NULL : c.labels,
                          .B = B,
                          .T = 1,
                          .x = c.x,
                          .soft = targets == SOFT ? c.soft : NULL,
                          .weights = targets != HARD ? c.w : NULL};
    /* larger weights than the init (whose gate starts at N(0, 0.01)) so
     * that every path, the gate's included, carries signal */
    const moe_param_table *t = f->table(c.m);
    moe_real *p = f->params(c.m);
    for (int i = 0; i < t->count; i++)
        if (!f->is_buffer(c.m, i))
            fill_uniform(p + t->tensors[i].offset, (long)t->tensors[i].numel, -0.6, 0.6, 100 + i);
    loss_fn(&c);
    moe_real *g = f->grads(c.m);
    memset(g, 0, t->total * sizeof *g);
    assert_int_equal(f->backward(c.m, &c.arena, 1.0f), MOE_OK);
    moe_real *ga = malloc(t->total * sizeof *ga);
    memcpy(ga, g, t->total * sizeof *ga);
    int failed = 0, buffers = 0;
    for (int i = 0; i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        if (f->is_buffer(c.m, i)) {
            buffers++;
            for (size_t j = 0; j < ti->numel; j++) assert_true(ga[ti->offset + j] == 0);
            continue;
        }
        failed +=
            gradcheck(ti->name, p + ti->offset, (long)ti->numel, ga + ti->offset, loss_fn, &c, 40);
    }
    /* mean and var of every batch norm: stages, experts, gate */
    assert_int_equal(buffers, 2 * (cfg->cnn.n_channels + cfg->moe.n_experts + 1));
    assert_int_equal(failed, 0);
    free(ga);
    moe_arena_free(&c.arena);
    f->destroy(c.m);
}

static void test_readme_loss(void **state) {
    (void)state;
    moe_model_config c = small_config(MOE_CNN_LOSS_README);
    check(&c, HARD);
}

static void test_code_loss_weighted(void **state) {
    (void)state;
    moe_model_config c = small_config(MOE_CNN_LOSS_CODE);
    c.cnn.diversity_weight = 0.3f;
    c.cnn.balance_weight = 2.0f;
    check(&c, WEIGHTED);
}

static void test_code_loss_soft_targets(void **state) {
    (void)state;
    moe_model_config c = small_config(MOE_CNN_LOSS_CODE);
    check(&c, SOFT);
}

/* Dropout in experts and gate and noise on the gate logits, with fixed
 * draws: the masks and noise must enter backward exactly as in forward. */
static void test_dropout_and_noise(void **state) {
    (void)state;
    moe_model_config c = small_config(MOE_CNN_LOSS_README);
    c.cnn.expert_dropout = 0.3f;
    c.cnn.gate_dropout = 0.2f;
    c.cnn.gate_noise = 0.5f;
    check(&c, HARD);
    c.cnn.loss = MOE_CNN_LOSS_CODE;
    check(&c, WEIGHTED);
}

/* One stage and a single expert; odd image sizes (floor pooling). */
static void test_other_shapes(void **state) {
    (void)state;
    moe_model_config c = small_config(MOE_CNN_LOSS_CODE);
    c.cnn.n_channels = 1;
    c.cnn.channels[0] = 3;
    c.moe.n_experts = 1;
    c.input.height = 7;
    c.input.width = 9;
    /* the batch carries 8 x 8 images; 7 x 9 = 63 of their 64 values are read */
    check(&c, HARD);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readme_loss),
        cmocka_unit_test(test_code_loss_weighted),
        cmocka_unit_test(test_code_loss_soft_targets),
        cmocka_unit_test(test_dropout_and_noise),
        cmocka_unit_test(test_other_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
