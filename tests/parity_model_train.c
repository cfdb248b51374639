/* Parity with PyTorch (scripts/ref/model_train.py, twin in twin_gpt.py): a
 * 2-layer MoE transformer in three decoder variants (GPT-2 style; Mixtral
 * style with RoPE, RMSNorm, GQA, untied head, top-k before softmax; mixed
 * dense/MoE with top-1) and three encoders on padded batches (masked-LM;
 * post-norm, sinusoidal, [CLS] classifier; mean-pooled classifier with
 * masked-LM), same initial weights: first-step gradients, 10 AdamW losses
 * and the final weights. PyTorch runs in float64, libmoe in float32. */
#include "test_util.h"

#include "moe/model.h"
#include "moe/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ref_path;
static ref_file ref;

/* Mirrors twin_gpt.default_config plus the variant's overrides. */
static moe_model_config variant_config(const char *name, int T) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 256;
    c.max_seq_len = T;
    c.n_layer = 2;
    c.d_model = 32;
    c.n_head = 4;
    c.n_kv_head = 4;
    c.pos = MOE_POS_LEARNED;
    c.rope_theta = 10000.0f;
    c.norm = MOE_NORM_LAYERNORM;
    c.norm_eps = 1e-5f;
    c.tied_embeddings = 1;
    c.attn_bias = 1;
    c.moe_every = 1;
    c.d_ff = 64;
    c.ffn_act = MOE_ACT_GELU;
    moe_layer_config *e = &c.moe;
    e->n_experts = 4;
    e->top_k = 2;
    e->d_ff = 32;
    e->act = MOE_ACT_SWIGLU;
    e->score = MOE_SCORE_SOFTMAX;
    e->renormalize = 1;
    e->temperature = 1.0f;
    e->routing = MOE_ROUTE_TOPK;
    e->switch_coef = 0.01f;
    e->switch_divide_by_k = 1;
    if (!strcmp(name, "mixtral")) {
        c.pos = MOE_POS_ROPE;
        c.norm = MOE_NORM_RMSNORM;
        c.n_kv_head = 2;
        c.tied_embeddings = 0;
        c.attn_bias = 0;
        e->topk_before_softmax = 1;
        e->n_experts = 8;
    } else if (!strcmp(name, "alt")) {
        c.moe_every = 2;
        c.ffn_act = MOE_ACT_SWIGLU;
        e->act = MOE_ACT_GELU;
        e->top_k = 1;
        e->renormalize = 0;
        e->switch_divide_by_k = 0;
    } else if (!strncmp(name, "enc_", 4)) {
        c.bidirectional = 1;
        if (!strcmp(name, "enc_cls_post")) {
            c.post_ln = 1;
            c.pos = MOE_POS_SINUSOIDAL;
            c.n_classes = 2;
            c.pool = MOE_POOL_CLS;
            c.moe_every = 2;
        } else if (!strcmp(name, "enc_mean_both")) {
            c.norm = MOE_NORM_RMSNORM;
            c.n_classes = 3;
            c.pool = MOE_POOL_MEAN;
        }
    }
    return c;
}

/* Loads "<variant>.<what>.<tensor>" for every tensor of the table. */
static void load_tensors(const moe_param_table *t, moe_real *block, const char *variant,
                         const char *what) {
    char key[256];
    for (int i = 0; i < t->count; i++) {
        snprintf(key, sizeof key, "%s.%s.%s", variant, what, t->tensors[i].name);
        const ref_tensor *r = ref_get(&ref, key);
        assert_non_null(r);
        assert_int_equal((size_t)r->numel, t->tensors[i].numel);
        ref_to_real(block + t->tensors[i].offset, r);
    }
}

/* The key part of the qkv bias has an exactly zero gradient (softmax ignores
 * a constant added to every score of a row), so after Adam's normalisation it
 * is rounding noise in both float32 and float64; skip_key_bias leaves that
 * slice out of the final-weight comparison. */
static long compare_tensors(const moe_param_table *t, const moe_real *block, const char *variant,
                            const char *what, double atol, double rtol, const moe_model_config *c) {
    char key[256];
    long bad = 0;
    int k0 = 0, k1 = 0;
    if (c) {
        int hd = c->d_model / c->n_head;
        k0 = c->n_head * hd;
        k1 = k0 + c->n_kv_head * hd;
    }
    for (int i = 0; i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        snprintf(key, sizeof key, "%s.%s.%s", variant, what, ti->name);
        const ref_tensor *r = ref_get(&ref, key);
        assert_non_null(r);
        const moe_real *got = block + ti->offset;
        if (c && strstr(ti->name, "qkv_proj.bias")) {
            bad += ref_compare(key, got, r->data, k0, atol, rtol);
            bad += ref_compare(key, got + k1, r->data + k1, r->numel - k1, atol, rtol);
        } else {
            bad += ref_compare(key, got, r->data, r->numel, atol, rtol);
        }
    }
    return bad;
}

/* "<variant>.<what>"; NULL when absent and not required. */
static const ref_tensor *variant_tensor(const char *variant, const char *what, int required) {
    char key[64];
    snprintf(key, sizeof key, "%s.%s", variant, what);
    for (int i = 0; i < ref.n; i++)
        if (!strcmp(ref.t[i].name, key)) return &ref.t[i];
    assert_false(required);
    return NULL;
}

static int32_t *ints_of(const ref_tensor *r) {
    if (!r) return NULL;
    int32_t *v = malloc((size_t)r->numel * sizeof *v);
    ref_to_int(v, r);
    return v;
}

static void run_variant(const char *name) {
    int B = (int)ref_scalar(&ref, "B"), T = (int)ref_scalar(&ref, "T");
    int steps = (int)ref_scalar(&ref, "steps");
    float lr = (float)ref_scalar(&ref, "lr");
    moe_model_config cfg = variant_config(name, T);
    moe_model *m;
    assert_int_equal(moe_model_create(&m, &cfg, 1), MOE_OK);
    const moe_param_table *t = moe_model_table(m);
    load_tensors(t, moe_model_params(m), name, "init");

    const ref_tensor *tok = variant_tensor(name, "tokens", 1);
    const ref_tensor *losses = variant_tensor(name, "losses", 1);
    int32_t *x = ints_of(tok), *y = ints_of(variant_tensor(name, "targets", 0));
    int32_t *labels = ints_of(variant_tensor(name, "labels", 0));
    int32_t *pad32 = ints_of(variant_tensor(name, "pad", 0));
    uint8_t *pad = NULL;
    if (pad32) {
        pad = malloc((size_t)tok->numel);
        for (long i = 0; i < tok->numel; i++) pad[i] = (uint8_t)pad32[i];
    }

    moe_optim_config oc = {.kind = MOE_OPT_ADAMW,
                           .lr = lr,
                           .beta1 = 0.9f,
                           .beta2 = 0.95f,
                           .eps = 1e-8f,
                           .weight_decay = 0.1f};
    moe_optim opt;
    assert_int_equal(moe_optim_init(&opt, &oc, t->total), MOE_OK);
    moe_arena arena;
    moe_arena_init(&arena);
    for (int s = 0; s < steps; s++) {
        double ce, aux;
        moe_arena_reset(&arena);
        moe_model_zero_grads(m);
        size_t at = (size_t)s * B * T;
        moe_batch batch = {x + at,
                           y ? y + at : NULL,
                           labels ? labels + (size_t)s * B : NULL,
                           pad ? pad + at : NULL,
                           B,
                           T,
                           NULL,
                           NULL,
                           NULL};
        assert_int_equal(moe_model_forward_batch(m, &batch, 1, NULL, &arena, &ce, &aux), MOE_OK);
        assert_int_equal(moe_model_backward(m, &arena, 1.0f), MOE_OK);
        if (s == 0)
            fprintf(stderr, "%s step 0: loss %.7f (ce %.7f aux %.7f) torch %.7f\n", name, ce + aux,
                    ce, aux, losses->data[0]);
        if (s == 0) /* gradients: float32 against float64 */
            assert_int_equal(
                compare_tensors(t, moe_model_grads(m), name, "grad0", 2e-5, 2e-3, NULL), 0);
        double want = losses->data[s], got = ce + aux;
        fprintf(stderr, "%s step %d: loss %.7f torch %.7f\n", name, s, got, want);
        /* the loss curves must agree to 1e-4 relative over the 10 steps */
        assert_true(fabs(got - want) <= 1e-4 * fabs(want));
        moe_optim_step(&opt, moe_model_params(m), moe_model_grads(m), lr);
    }
    assert_int_equal(compare_tensors(t, moe_model_params(m), name, "final", 1e-4, 1e-3, &cfg), 0);
    moe_arena_free(&arena);
    moe_optim_free(&opt);
    moe_model_free(m);
    free(x);
    free(y);
    free(labels);
    free(pad32);
    free(pad);
}

static void test_gpt(void **state) {
    (void)state;
    run_variant("gpt");
}
static void test_mixtral(void **state) {
    (void)state;
    run_variant("mixtral");
}
static void test_alt(void **state) {
    (void)state;
    run_variant("alt");
}
static void test_enc_mlm(void **state) {
    (void)state;
    run_variant("enc_mlm");
}
static void test_enc_cls_post(void **state) {
    (void)state;
    run_variant("enc_cls_post");
}
static void test_enc_mean_both(void **state) {
    (void)state;
    run_variant("enc_mean_both");
}

int main(int argc, char **argv) {
    assert_true(argc > 1);
    ref_path = argv[1];
    if (ref_load(&ref, ref_path) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt),          cmocka_unit_test(test_mixtral),
        cmocka_unit_test(test_alt),          cmocka_unit_test(test_enc_mlm),
        cmocka_unit_test(test_enc_cls_post), cmocka_unit_test(test_enc_mean_both),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ref_free(&ref);
    return rc;
}
