/* Parity with PyTorch (scripts/ref/cnn_moe.py, a twin built from
 * nn.Conv2d, nn.BatchNorm2d/1d, F.max_pool2d and nn.Linear) of seed 000's
 * cnn_moe family, same initial tensors, dropout and gate noise off, for the
 * readme loss (hard labels) and the code loss (weighted labels): first-step
 * outputs (mixture and expert logits, gates), cross-entropy, each auxiliary
 * term, every parameter gradient, the running statistics after the training
 * forward and the inference-mode logits; then 5 AdamW steps (the optimizer
 * skipping the buffers) whose losses and final tensors must follow
 * torch.optim.AdamW. PyTorch runs in float64, libmoe in float32. */
#include "test_util.h"

#include "models/family.h"
#include "moe/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ref_file ref;

static const ref_tensor *get(const char *variant, const char *what) {
    char key[384];
    snprintf(key, sizeof key, "%s.%s", variant, what);
    const ref_tensor *r = ref_get(&ref, key);
    assert_non_null(r);
    return r;
}

static moe_model_config config_of(const char *variant) {
    const ref_tensor *d = ref_get(&ref, "dims");
    assert_non_null(d);
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_CNN_MOE;
    c.input.channels = (int)d->data[0];
    c.input.height = (int)d->data[1];
    c.input.width = (int)d->data[2];
    c.cnn.channels[0] = (int)d->data[3];
    c.cnn.channels[1] = (int)d->data[4];
    c.cnn.n_channels = 2;
    c.moe.n_experts = (int)d->data[5];
    c.cnn.expert_channels = (int)d->data[6];
    c.cnn.gate_hidden = (int)d->data[7];
    c.n_classes = (int)d->data[8];
    c.moe.temperature = (float)get(variant, "temperature")->data[0];
    c.cnn.loss = strcmp(variant, "code") ? MOE_CNN_LOSS_README : MOE_CNN_LOSS_CODE;
    c.cnn.diversity_weight = 0.1f;
    c.cnn.balance_weight = 0.5f;
    return c;
}

/* Tensors whose exact gradient is 0: a bias followed (through linear maps
 * only) by a batch norm, which subtracts it again. In float32 their
 * gradient is rounding noise, which Adam's normalisation turns into steps
 * of arbitrary sign, so their final values are left out, and so are the
 * final running means, which those biases shift (the mean's update rule is
 * checked after the first step, and the loss never sees the biases). */
static int bias_before_bn(const char *name) {
    return strstr(name, "conv.bias") || strstr(name, "dw.bias") || strstr(name, "pw.bias") ||
           strstr(name, "fc1.bias") || strstr(name, "running_mean");
}

/* "<variant>.<what>.<tensor>" against block for every tensor selected by
 * which (1 parameters, 2 buffers, 3 both); skip_zero_grad leaves out the
 * biases above. */
static long compare(const void *m, const moe_real *block, const char *variant, const char *what,
                    int which, int skip_zero_grad, double atol, double rtol) {
    const model_family *f = &family_cnn_moe;
    const moe_param_table *t = f->table(m);
    char key[160];
    long bad = 0;
    for (int i = 0; i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        int buf = f->is_buffer(m, i);
        if (!(which & (buf ? 2 : 1)) || (skip_zero_grad && bias_before_bn(ti->name))) continue;
        snprintf(key, sizeof key, "%s.%s", what, ti->name);
        const ref_tensor *r = get(variant, key);
        assert_int_equal((size_t)r->numel, ti->numel);
        bad += ref_compare(ti->name, block + ti->offset, r->data, r->numel, atol, rtol);
    }
    return bad;
}

static void run(const char *variant) {
    const model_family *f = &family_cnn_moe;
    moe_model_config cfg = config_of(variant);
    void *m;
    assert_int_equal(f->create(&m, &cfg, 1), MOE_OK);
    const moe_param_table *t = f->table(m);
    moe_real *p = f->params(m), *g = f->grads(m);
    char key[160];
    for (int i = 0; i < t->count; i++) {
        snprintf(key, sizeof key, "init.%s", t->tensors[i].name);
        const ref_tensor *r = get(variant, key);
        assert_int_equal((size_t)r->numel, t->tensors[i].numel);
        ref_to_real(p + t->tensors[i].offset, r);
    }
    int B = (int)ref_scalar(&ref, "B"), steps = (int)ref_scalar(&ref, "steps");
    int NC = cfg.n_classes, E = cfg.moe.n_experts;
    const ref_tensor *xr = get(variant, "x"), *yr = get(variant, "labels");
    long per = xr->numel / steps;
    moe_real *x = malloc((size_t)xr->numel * sizeof *x);
    int32_t *y = malloc((size_t)yr->numel * sizeof *y);
    ref_to_real(x, xr);
    ref_to_int(y, yr);
    moe_real *w = NULL;
    if (!strcmp(variant, "code")) {
        const ref_tensor *wr = get(variant, "weights");
        w = malloc((size_t)wr->numel * sizeof *w);
        ref_to_real(w, wr);
    }
    const double *losses = get(variant, "losses")->data;

    float lr = (float)ref_scalar(&ref, "lr");
    moe_optim_config oc = {.kind = MOE_OPT_ADAMW,
                           .lr = lr,
                           .beta1 = 0.9f,
                           .beta2 = 0.999f,
                           .eps = 1e-8f,
                           .weight_decay = (float)ref_scalar(&ref, "weight_decay")};
    moe_optim opt;
    assert_int_equal(moe_optim_init(&opt, &oc, t->total), MOE_OK);
    moe_real *saved = malloc(t->total * sizeof *saved);
    moe_arena arena;
    moe_arena_init(&arena);
    for (int s = 0; s < steps; s++) {
        moe_batch b = {.labels = y + (long)s * B,
                       .B = B,
                       .T = 1,
                       .x = x + s * per,
                       .weights = w ? w + (long)s * B : NULL};
        double ce, aux;
        moe_arena_reset(&arena);
        memset(g, 0, t->total * sizeof *g);
        assert_int_equal(f->forward(m, &b, 1, NULL, &arena, &ce, &aux), MOE_OK);
        fprintf(stderr, "%s step %d: loss %.7f (ce %.7f aux %.7f) torch %.7f\n", variant, s,
                ce + aux, ce, aux, losses[s]);
        assert_true(fabs(ce + aux - losses[s]) <= 1e-4 * fabs(losses[s]));
        if (s == 0) {
            const moe_real *L, *G;
            assert_int_equal(f->expert_outputs(m, &L, &G), E);
            assert_int_equal(ref_compare("logits", f->class_logits(m), get(variant, "logits")->data,
                                         (long)B * NC, 1e-5, 1e-4),
                             0);
            assert_int_equal(ref_compare("expert logits", L, get(variant, "expert_logits")->data,
                                         (long)E * B * NC, 1e-5, 1e-4),
                             0);
            assert_int_equal(
                ref_compare("gates", G, get(variant, "gates")->data, (long)B * E, 1e-6, 1e-4), 0);
            assert_close(ce, get(variant, "ce")->data[0], 1e-5);
            assert_close(aux, get(variant, "aux")->data[0], 1e-5);
            const char *const *names;
            const double *parts;
            int n = f->loss_parts(m, &names, &parts);
            const ref_tensor *want = get(variant, "parts");
            assert_int_equal(n, want->numel);
            for (int i = 0; i < n; i++) {
                fprintf(stderr, "  %s = %.7f torch %.7f\n", names[i], parts[i], want->data[i]);
                assert_close(parts[i], want->data[i], 1e-5 * (1 + fabs(want->data[i])));
            }
            /* the training forward moved the running statistics */
            assert_int_equal(compare(m, p, variant, "running", 2, 0, 1e-5, 1e-4), 0);
        }
        assert_int_equal(f->backward(m, &arena, 1.0f), MOE_OK);
        if (s == 0) {
            assert_int_equal(compare(m, g, variant, "grad0", 1, 0, 2e-5, 2e-3), 0);
            /* inference: running statistics, deterministic */
            double ce_eval;
            assert_int_equal(f->forward(m, &b, 0, NULL, &arena, &ce_eval, NULL), MOE_OK);
            assert_int_equal(ref_compare("eval logits", f->class_logits(m),
                                         get(variant, "eval_logits")->data, (long)B * NC, 1e-5,
                                         1e-4),
                             0);
        }
        /* the optimizer moves parameters only: buffers keep their values */
        memcpy(saved, p, t->total * sizeof *p);
        moe_optim_step(&opt, p, g, lr);
        for (int i = 0; i < t->count; i++)
            if (f->optimizer_skips(m, i))
                memcpy(p + t->tensors[i].offset, saved + t->tensors[i].offset,
                       t->tensors[i].numel * sizeof *p);
    }
    assert_int_equal(compare(m, p, variant, "final", 3, 1, 1e-4, 1e-3), 0);
    moe_arena_free(&arena);
    moe_optim_free(&opt);
    f->destroy(m);
    free(saved);
    free(x);
    free(y);
    free(w);
}

static void test_readme(void **state) {
    (void)state;
    run("readme");
}

static void test_code_weighted(void **state) {
    (void)state;
    run("code");
}

int main(int argc, char **argv) {
    assert_true(argc > 1);
    if (ref_load(&ref, argv[1]) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readme),
        cmocka_unit_test(test_code_weighted),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    ref_free(&ref);
    return rc;
}
