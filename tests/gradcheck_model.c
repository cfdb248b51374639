/* Finite-difference check of the whole transformer's parameter gradients
 * (double build): every tensor, for a GPT-2-style MoE model, a
 * Mixtral-style one (RoPE, RMSNorm, GQA, untied, top-k before softmax,
 * z-loss), a dense model, and encoders: padded batches with masked-LM
 * targets, post-norm blocks, sinusoidal positions, [CLS] and mean-pooled
 * classifiers. */
#include "test_util.h"

#include "moe/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 6 };

typedef struct ctx {
    moe_model *m;
    int32_t x[B * T], y[B * T], labels[B];
    uint8_t pad[B * T];
    moe_batch batch;
    moe_arena arena;
} ctx;

static double loss_fn(void *p) {
    ctx *c = p;
    double ce = 0, aux = 0;
    moe_arena_reset(&c->arena);
    moe_status st = moe_model_forward_batch(c->m, &c->batch, 1, NULL, &c->arena, &ce, &aux);
    if (st != MOE_OK) fprintf(stderr, "forward: %s\n", moe_last_error());
    assert_int_equal(st, MOE_OK);
    return ce + aux;
}

static moe_model_config base_config(void) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 11;
    c.max_seq_len = T;
    c.n_layer = 2;
    c.d_model = 8;
    c.n_head = 2;
    c.n_kv_head = 2;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.tied_embeddings = 1;
    c.attn_bias = 1;
    c.moe_every = 1;
    c.d_ff = 12;
    c.ffn_act = MOE_ACT_GELU;
    c.moe.n_experts = 4;
    c.moe.top_k = 2;
    c.moe.d_ff = 6;
    c.moe.act = MOE_ACT_SWIGLU;
    c.moe.renormalize = 1;
    c.moe.temperature = 1.0f;
    c.moe.switch_coef = 0.1f;
    c.moe.switch_divide_by_k = 1;
    return c;
}

/* What the batch carries besides tokens. */
enum { LM = 1, LABELS = 2, PADDED = 4 };

static void check_model_with(const moe_model_config *cfg, int what) {
    ctx c;
    assert_int_equal(moe_model_create(&c.m, cfg, 3), MOE_OK);
    moe_arena_init(&c.arena);
    moe_rng r;
    moe_rng_seed(&r, 11);
    for (int i = 0; i < B * T; i++) {
        /* sequence 1 has 4 real tokens and 2 of padding, which is never a target */
        c.pad[i] = !(what & PADDED) || i < T + 4;
        c.x[i] = (int32_t)moe_rng_below(&r, (uint32_t)cfg->vocab_size);
        c.y[i] = i == 3 || !c.pad[i] ? -1 : (int32_t)moe_rng_below(&r, (uint32_t)cfg->vocab_size);
    }
    c.labels[0] = 1;
    c.labels[1] = cfg->n_classes > 2 ? 2 : 0;
    c.batch = (moe_batch){c.x,
                          (what & LM) ? c.y : NULL,
                          (what & LABELS) ? c.labels : NULL,
                          (what & PADDED) ? c.pad : NULL,
                          B,
                          T,
                          NULL,
                          NULL,
                          NULL};
    /* larger weights than the 0.02 init so every path carries signal */
    const moe_param_table *t = moe_model_table(c.m);
    moe_real *p = moe_model_params(c.m);
    for (int i = 0; i < t->count; i++)
        fill_uniform(p + t->tensors[i].offset, (long)t->tensors[i].numel, -0.5, 0.5, 100 + i);
    loss_fn(&c);
    moe_model_zero_grads(c.m);
    assert_int_equal(moe_model_backward(c.m, &c.arena, 1.0f), MOE_OK);
    /* backward leaves the arena's forward state; copy gradients before FD runs */
    moe_real *g = malloc(t->total * sizeof *g);
    memcpy(g, moe_model_grads(c.m), t->total * sizeof *g);
    int failed = 0;
    for (int i = 0; i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        failed +=
            gradcheck(ti->name, p + ti->offset, (long)ti->numel, g + ti->offset, loss_fn, &c, 24);
    }
    assert_int_equal(failed, 0);
    free(g);
    moe_arena_free(&c.arena);
    moe_model_free(c.m);
}

static void check_model(const moe_model_config *cfg) {
    check_model_with(cfg, LM);
}

static void test_gpt_style(void **state) {
    (void)state;
    moe_model_config c = base_config();
    check_model(&c);
}

static void test_mixtral_style(void **state) {
    (void)state;
    moe_model_config c = base_config();
    c.pos = MOE_POS_ROPE;
    c.norm = MOE_NORM_RMSNORM;
    c.n_head = 4;
    c.n_kv_head = 2;
    c.tied_embeddings = 0;
    c.attn_bias = 0;
    c.moe.topk_before_softmax = 1;
    c.moe.z_coef = 0.01f;
    check_model(&c);
}

static void test_dense(void **state) {
    (void)state;
    moe_model_config c = base_config();
    c.moe_every = 0;
    c.ffn_act = MOE_ACT_SWIGLU;
    check_model(&c);
}

/* Masked-LM on a padded batch: bidirectional, pre-norm, learned positions. */
static void test_encoder_mlm_padded(void **state) {
    (void)state;
    moe_model_config c = base_config();
    c.bidirectional = 1;
    c.moe.z_coef = 0.01f;
    check_model_with(&c, LM | PADDED);
}

/* Seed 003's shape: post-norm blocks, sinusoidal positions, a [CLS]
 * classifier, MoE every other block. */
static void test_encoder_post_ln_cls(void **state) {
    (void)state;
    moe_model_config c = base_config();
    c.bidirectional = 1;
    c.post_ln = 1;
    c.pos = MOE_POS_SINUSOIDAL;
    c.moe_every = 2;
    c.n_classes = 3;
    c.pool = MOE_POOL_CLS;
    check_model_with(&c, LABELS | PADDED);
}

/* Mean pooling over real tokens, classification and masked-LM together. */
static void test_encoder_mean_pool_both_heads(void **state) {
    (void)state;
    moe_model_config c = base_config();
    c.bidirectional = 1;
    c.n_classes = 2;
    c.pool = MOE_POOL_MEAN;
    c.norm = MOE_NORM_RMSNORM;
    check_model_with(&c, LM | LABELS | PADDED);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoder_mlm_padded),
        cmocka_unit_test(test_encoder_post_ln_cls),
        cmocka_unit_test(test_encoder_mean_pool_both_heads),
        cmocka_unit_test(test_gpt_style),
        cmocka_unit_test(test_mixtral_style),
        cmocka_unit_test(test_dense),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
