/* DeepMoE against its PyTorch twin (scripts/ref/deepmoe.py), same initial
 * weights, float here and float64 there: for VGG gated (elementwise L1),
 * ResNet gated (matrix and elementwise L1) and VGG ungated, on 28 x 28
 * images: the first training step's logits, CE, gate L1, embedding CE,
 * gates and every parameter gradient, the running statistics after it,
 * inference logits, 5 AdamW losses and the final weights; and a freeze-phase
 * step (loss = CE, embedding tensors exactly zero gradient). */
#include "test_util.h"

#include "models/family.h"
#include "moe/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ref_file ref;

static const ref_tensor *vt(const char *v, const char *what) {
    char key[320];
    snprintf(key, sizeof key, "%s.%s", v, what);
    const ref_tensor *t = ref_get(&ref, key);
    assert_non_null(t);
    return t;
}

static double vscalar(const char *v, const char *what) {
    const ref_tensor *t = vt(v, what);
    assert_int_equal(t->numel, 1);
    return t->data[0];
}

static moe_model_config variant_config(const char *v, int *B) {
    const ref_tensor *c = vt(v, "cfg"), *ch = vt(v, "channels");
    int32_t k[9];
    assert_int_equal(c->numel, 9);
    ref_to_int(k, c);
    moe_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.family = MOE_FAMILY_DEEPMOE;
    moe_deepmoe_config *d = &cfg.deepmoe;
    d->arch = k[0] ? MOE_DEEPMOE_RESNET : MOE_DEEPMOE_VGG;
    d->gated = k[1];
    d->l1 = k[2] ? MOE_GATE_L1_MATRIX : MOE_GATE_L1_ELEMENTWISE;
    d->emb_dim = k[3];
    cfg.input = (moe_input_config){k[4], k[5], k[6], k[4] * k[5] * k[6]};
    cfg.n_classes = k[7];
    *B = k[8];
    d->n_channels = (int)ch->numel;
    ref_to_int(d->channels, ch);
    d->lambda = (float)vscalar(v, "lambda");
    d->mu = (float)vscalar(v, "mu");
    return cfg;
}

/* Tolerance scaled to the tensor: float32 against float64 through a few
 * convs and batch norms. */
static long compare_scaled(const char *what, const moe_real *got, const ref_tensor *want,
                           double rel_atol, double rtol) {
    double mx = 0;
    for (long i = 0; i < want->numel; i++) mx = fmax(mx, fabs(want->data[i]));
    return ref_compare(what, got, want->data, want->numel, 1e-7 + rel_atol * mx, rtol);
}

/* Every tensor of the table against "<v>.<what>.<name>" (params only when
 * params_only). */
static long compare_table(void *m, const moe_real *block, const char *v, const char *what,
                          int params_only, double rel_atol, double rtol) {
    const moe_param_table *t = family_deepmoe.table(m);
    char key[160];
    long bad = 0;
    for (int i = 0; i < t->count; i++) {
        if (params_only && family_deepmoe.is_buffer(m, i)) continue;
        snprintf(key, sizeof key, "%s.%s", what, t->tensors[i].name);
        const ref_tensor *r = vt(v, key);
        assert_int_equal((size_t)r->numel, t->tensors[i].numel);
        bad += compare_scaled(t->tensors[i].name, block + t->tensors[i].offset, r, rel_atol, rtol);
    }
    return bad;
}

static void *make_model(const moe_model_config *cfg, const char *v) {
    void *m;
    assert_int_equal(family_deepmoe.create(&m, cfg, 1), MOE_OK);
    const moe_param_table *t = family_deepmoe.table(m);
    char key[160];
    for (int i = 0; i < t->count; i++) {
        snprintf(key, sizeof key, "init.%s", t->tensors[i].name);
        const ref_tensor *r = vt(v, key);
        assert_int_equal((size_t)r->numel, t->tensors[i].numel);
        ref_to_real(family_deepmoe.params(m) + t->tensors[i].offset, r);
    }
    return m;
}

static void zero_grads(void *m) {
    memset(family_deepmoe.grads(m), 0, family_deepmoe.table(m)->total * sizeof(moe_real));
}

/* Freeze phase: CE only; the embedding network and head get nothing. */
static void check_freeze(const moe_model_config *cfg, const char *v, const moe_batch *b) {
    void *m = make_model(cfg, v);
    moe_arena arena;
    moe_arena_init(&arena);
    family_phase ph = {1.0f, 1};
    family_deepmoe.set_phase(m, &ph);
    double ce, aux;
    zero_grads(m);
    assert_int_equal(family_deepmoe.forward(m, b, 1, NULL, &arena, &ce, &aux), MOE_OK);
    assert_close(aux, 0, 0);
    assert_close(ce, vscalar(v, "freeze.loss"), 1e-5);
    assert_int_equal(family_deepmoe.backward(m, &arena, 1.0f), MOE_OK);
    const moe_param_table *t = family_deepmoe.table(m);
    for (int i = 0; i < t->count; i++)
        if (!family_deepmoe.is_buffer(m, i) && family_deepmoe.optimizer_skips(m, i))
            for (size_t j = 0; j < t->tensors[i].numel; j++)
                assert_true(family_deepmoe.grads(m)[t->tensors[i].offset + j] == 0);
    assert_int_equal(compare_table(m, family_deepmoe.grads(m), v, "freeze.grad", 1, 1e-4, 1e-3), 0);
    moe_arena_free(&arena);
    family_deepmoe.destroy(m);
}

/* The first step's outputs, losses, gates, gradients and statistics. */
static void check_first_step(void *m, const char *v, double ce, double aux, int B) {
    const ref_tensor *lg = vt(v, "logits0");
    assert_int_equal(compare_scaled("logits0", family_deepmoe.class_logits(m), lg, 1e-5, 1e-4), 0);
    assert_close(ce, vscalar(v, "ce0"), 1e-5);
    assert_close(aux, vscalar(v, "aux0"), 1e-5 + 1e-5 * fabs(vscalar(v, "aux0")));
    const char *const *names;
    const double *vals;
    int np = family_deepmoe.loss_parts(m, &names, &vals);
    if (np) {
        assert_int_equal(np, 2);
        assert_string_equal(names[0], "gate_l1");
        assert_string_equal(names[1], "embedding_ce");
        double l1 = vscalar(v, "gate_l1_0");
        assert_close(vals[0], l1, 1e-6 + 1e-4 * l1);
        assert_close(vals[1], vscalar(v, "emb_ce0"), 1e-5);
    }
    int L = family_deepmoe.channel_gates(m, 0, NULL, NULL, NULL);
    for (int l = 0; l < L; l++) {
        const moe_real *g;
        int C;
        char key[32];
        family_deepmoe.channel_gates(m, l, &g, &C, NULL);
        snprintf(key, sizeof key, "gates0.%d", l);
        const ref_tensor *r = vt(v, key);
        assert_int_equal(r->numel, (long)B * C);
        assert_int_equal(compare_scaled(key, g, r, 1e-5, 1e-4), 0);
    }
    assert_int_equal(compare_table(m, family_deepmoe.grads(m), v, "grad0", 1, 1e-4, 1e-3), 0);
    /* running statistics after one training forward */
    const moe_param_table *t = family_deepmoe.table(m);
    char key[160];
    for (int i = 0; i < t->count; i++) {
        if (!family_deepmoe.is_buffer(m, i)) continue;
        snprintf(key, sizeof key, "stats0.%s", t->tensors[i].name);
        assert_int_equal(compare_scaled(key, family_deepmoe.params(m) + t->tensors[i].offset,
                                        vt(v, key), 1e-6, 1e-5),
                         0);
    }
}

static void run_variant(const char *v) {
    int B;
    moe_model_config cfg = variant_config(v, &B);
    int steps = (int)ref_scalar(&ref, "steps");
    const ref_tensor *xr = vt(v, "x"), *yr = vt(v, "y"), *losses = vt(v, "losses");
    long img = (long)cfg.input.channels * cfg.input.height * cfg.input.width;
    assert_int_equal(xr->numel, (long)steps * B * img);
    moe_real *x = malloc((size_t)xr->numel * sizeof *x);
    int32_t *y = malloc((size_t)yr->numel * sizeof *y);
    ref_to_real(x, xr);
    ref_to_int(y, yr);
    moe_batch b0 = {.labels = y, .B = B, .T = 1, .x = x};
    if (cfg.deepmoe.gated) check_freeze(&cfg, v, &b0);

    void *m = make_model(&cfg, v);
    const moe_param_table *t = family_deepmoe.table(m);
    float lr = (float)ref_scalar(&ref, "lr");
    moe_optim_config oc = {.kind = MOE_OPT_ADAMW,
                           .lr = lr,
                           .beta1 = 0.9f,
                           .beta2 = 0.999f,
                           .eps = 1e-8f,
                           .weight_decay = (float)ref_scalar(&ref, "weight_decay")};
    moe_optim opt;
    assert_int_equal(moe_optim_init(&opt, &oc, t->total), MOE_OK);
    moe_real *keep = malloc(t->total * sizeof *keep);
    moe_arena arena, eval_arena;
    moe_arena_init(&arena);
    moe_arena_init(&eval_arena);
    for (int s = 0; s < steps; s++) {
        double ce, aux;
        moe_batch b = {.labels = y + (long)s * B, .B = B, .T = 1, .x = x + (long)s * B * img};
        moe_arena_reset(&arena);
        zero_grads(m);
        assert_int_equal(family_deepmoe.forward(m, &b, 1, NULL, &arena, &ce, &aux), MOE_OK);
        assert_int_equal(family_deepmoe.backward(m, &arena, 1.0f), MOE_OK);
        fprintf(stderr, "%s step %d: loss %.7f (ce %.7f aux %.7f) torch %.7f\n", v, s, ce + aux, ce,
                aux, losses->data[s]);
        if (s == 0) {
            check_first_step(m, v, ce, aux, B);
            double e_ce, e_aux;
            assert_int_equal(family_deepmoe.forward(m, &b0, 0, NULL, &eval_arena, &e_ce, &e_aux),
                             MOE_OK);
            assert_int_equal(compare_scaled("eval_logits0", family_deepmoe.class_logits(m),
                                            vt(v, "eval_logits0"), 1e-5, 1e-4),
                             0);
        }
        assert_true(fabs(ce + aux - losses->data[s]) <= 1e-4 * fabs(losses->data[s]));
        /* the optimizer skips buffers (running statistics): put them back */
        memcpy(keep, family_deepmoe.params(m), t->total * sizeof *keep);
        moe_optim_step(&opt, family_deepmoe.params(m), family_deepmoe.grads(m), lr);
        for (int i = 0; i < t->count; i++)
            if (family_deepmoe.optimizer_skips(m, i))
                memcpy(family_deepmoe.params(m) + t->tensors[i].offset, keep + t->tensors[i].offset,
                       t->tensors[i].numel * sizeof *keep);
    }
    assert_int_equal(compare_table(m, family_deepmoe.params(m), v, "final", 0, 1e-4, 1e-3), 0);
    moe_arena_free(&arena);
    moe_arena_free(&eval_arena);
    moe_optim_free(&opt);
    family_deepmoe.destroy(m);
    free(keep);
    free(x);
    free(y);
}

static void test_vgg(void **state) {
    (void)state;
    run_variant("vgg");
}
static void test_resnet(void **state) {
    (void)state;
    run_variant("resnet");
}
static void test_resnet_elem(void **state) {
    (void)state;
    run_variant("resnet_elem");
}
static void test_vgg_plain(void **state) {
    (void)state;
    run_variant("vgg_plain");
}

int main(int argc, char **argv) {
    assert_true(argc > 1);
    if (ref_load(&ref, argv[1]) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vgg),
        cmocka_unit_test(test_resnet),
        cmocka_unit_test(test_resnet_elem),
        cmocka_unit_test(test_vgg_plain),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ref_free(&ref);
    return rc;
}
