/* Parity of the family mlp_moe with a PyTorch twin of seed 002's model
 * (scripts/ref/mlp_moe.py, float64): the task loss, each auxiliary term,
 * p_hat, log p_hat, the gates, the experts' log-outputs and every parameter
 * gradient of the total loss, over cases covering E 1..5, k 1..3, noisy
 * training (the same eps on both sides), eval, renormalisation on/off,
 * temperature, soft targets with and without row weights, hard labels with
 * an ignored row, and the zero-initialised gate; for three cases the total
 * loss along 5 Adam steps (lr 5e-3). Float build: values atol 1e-5, rtol
 * 1e-4; gradients atol 2e-5, rtol 2e-4; Adam losses rtol 1e-4. */
#include "test_util.h"

#include "models/mlp_moe_internal.h"
#include "moe/optim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_path;

enum {
    F_B,
    F_F,
    F_H,
    F_C,
    F_E,
    F_K,
    F_NOISY,
    F_RENORM,
    F_TRAINING,
    F_HARD,
    F_WEIGHTS,
    F_TEMP,
    F_CV,
    F_PD,
    F_OD,
    F_JS,
    F_ADAM,
    F_COUNT
};

static moe_model_config config_from(const double *v) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_MLP_MOE;
    c.input.features = (int)v[F_F];
    c.n_classes = (int)v[F_C];
    c.mlp.hidden = (int)v[F_H];
    c.moe.n_experts = (int)v[F_E];
    c.moe.top_k = (int)v[F_K];
    c.moe.noisy = (int)v[F_NOISY];
    c.moe.renormalize = (int)v[F_RENORM];
    c.moe.temperature = (float)v[F_TEMP];
    c.moe.cv_coef = (float)v[F_CV];
    c.mlp.param_div_weight = (float)v[F_PD];
    c.mlp.output_div_weight = (float)v[F_OD];
    c.mlp.js_weight = (float)v[F_JS];
    return c;
}

static const ref_tensor *get(const ref_file *f, int i, const char *name) {
    char key[256];
    snprintf(key, sizeof key, "c%d.%s", i, name);
    const ref_tensor *t = ref_get(f, key);
    assert_non_null(t);
    return t;
}

static void load_params(mlp_moe *m, const ref_file *f, int i) {
    char key[128];
    for (int t = 0; t < m->table.count; t++) {
        const moe_tensor_info *ti = &m->table.tensors[t];
        snprintf(key, sizeof key, "p.%s", ti->name);
        const ref_tensor *r = get(f, i, key);
        assert_int_equal(r->numel, (int64_t)ti->numel);
        ref_to_real(m->params + ti->offset, r);
    }
}

typedef struct inputs {
    moe_real *x, *soft, *weights, *eps;
    int32_t *labels;
    moe_batch b;
} inputs;

static moe_real *real_of(const ref_tensor *t) {
    moe_real *p = malloc(sizeof(moe_real) * (size_t)t->numel);
    assert_non_null(p);
    ref_to_real(p, t);
    return p;
}

static void load_inputs(inputs *in, const ref_file *f, int i, const double *cfg) {
    memset(in, 0, sizeof *in);
    const int B = (int)cfg[F_B];
    in->x = real_of(get(f, i, "x"));
    in->eps = real_of(get(f, i, "eps"));
    if (cfg[F_HARD] != 0) {
        const ref_tensor *t = get(f, i, "labels");
        in->labels = malloc(sizeof(int32_t) * (size_t)t->numel);
        assert_non_null(in->labels);
        ref_to_int(in->labels, t);
    } else {
        in->soft = real_of(get(f, i, "soft"));
    }
    if (cfg[F_WEIGHTS] != 0) in->weights = real_of(get(f, i, "weights"));
    in->b.B = B;
    in->b.T = 1;
    in->b.x = in->x;
    in->b.soft = in->soft;
    in->b.labels = in->labels;
    in->b.weights = in->weights;
}

static void free_inputs(inputs *in) {
    free(in->x);
    free(in->soft);
    free(in->weights);
    free(in->eps);
    free(in->labels);
}

static long compare(const ref_file *f, int i, const char *name, const moe_real *got, double atol,
                    double rtol) {
    char what[288];
    const ref_tensor *want = get(f, i, name);
    snprintf(what, sizeof what, "case %d %s", i, name);
    return ref_compare(what, got, want->data, (long)want->numel, atol, rtol);
}

static long compare_scalar(const ref_file *f, int i, const char *name, double got) {
    double want = get(f, i, name)->data[0];
    char what[288];
    snprintf(what, sizeof what, "case %d %s", i, name);
    return ref_compare_f64(what, &got, &want, 1, 1e-5, 1e-4);
}

/* Total loss at each of S Adam steps from the case's initial parameters,
 * each forward with that step's eps. */
static long check_adam(mlp_moe *m, const ref_file *f, int i, inputs *in, int training, int S) {
    load_params(m, f, i);
    const ref_tensor *eps_s = get(f, i, "adam_eps");
    moe_real *eps = real_of(eps_s);
    const size_t BE = (size_t)in->b.B * m->E;
    moe_optim_config oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = MOE_OPT_ADAM;
    oc.lr = 5e-3f;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.999f;
    oc.eps = 1e-8f;
    moe_optim opt;
    assert_int_equal(moe_optim_init(&opt, &oc, m->table.total), MOE_OK);
    moe_arena arena;
    moe_arena_init(&arena);
    double got[16];
    assert_true(S <= 16);
    for (int s = 0; s < S; s++) {
        double task, aux;
        moe_arena_reset(&arena);
        memset(m->grads, 0, sizeof(moe_real) * m->table.total);
        assert_int_equal(mlp_moe_forward_eps(m, &in->b, training, eps + (size_t)s * BE, NULL,
                                             &arena, &task, &aux),
                         MOE_OK);
        got[s] = task + aux;
        assert_int_equal(family_mlp_moe.backward(m, &arena, 1.0f), MOE_OK);
        moe_optim_step(&opt, m->params, m->grads, oc.lr);
    }
    char what[64];
    snprintf(what, sizeof what, "case %d adam_loss", i);
    long bad = ref_compare_f64(what, got, get(f, i, "adam_loss")->data, S, 1e-5, 1e-4);
    moe_optim_free(&opt);
    moe_arena_free(&arena);
    free(eps);
    return bad;
}

static long check_case(const ref_file *f, int i) {
    const ref_tensor *ct = get(f, i, "cfg");
    assert_int_equal(ct->numel, F_COUNT);
    const double *cfg = ct->data;
    moe_model_config mc = config_from(cfg);
    void *impl;
    assert_int_equal(family_mlp_moe.create(&impl, &mc, 1), MOE_OK);
    mlp_moe *m = impl;
    load_params(m, f, i);
    inputs in;
    load_inputs(&in, f, i, cfg);
    const int training = (int)cfg[F_TRAINING];

    moe_arena arena;
    moe_arena_init(&arena);
    double task, aux;
    assert_int_equal(mlp_moe_forward_eps(m, &in.b, training, in.eps, NULL, &arena, &task, &aux),
                     MOE_OK);
    long bad = 0;
    bad += compare_scalar(f, i, "task", task);
    bad += compare_scalar(f, i, "aux", aux);
    const char *const *names;
    const double *values;
    int n = family_mlp_moe.loss_parts(m, &names, &values);
    assert_int_equal(n, 4);
    for (int p = 0; p < n; p++) bad += compare_scalar(f, i, names[p], values[p]);
    bad += compare(f, i, "phat", m->last->phat, 1e-5, 1e-4);
    bad += compare(f, i, "logphat", family_mlp_moe.class_logits(m), 1e-5, 1e-4);
    const moe_real *scores, *gates;
    assert_int_equal(family_mlp_moe.expert_outputs(m, &scores, &gates), m->E);
    bad += compare(f, i, "gates", gates, 1e-5, 1e-4);
    bad += compare(f, i, "logy", scores, 1e-5, 1e-4);

    memset(m->grads, 0, sizeof(moe_real) * m->table.total);
    assert_int_equal(family_mlp_moe.backward(m, &arena, 1.0f), MOE_OK);
    char key[128];
    for (int t = 0; t < m->table.count; t++) {
        const moe_tensor_info *ti = &m->table.tensors[t];
        snprintf(key, sizeof key, "g.%s", ti->name);
        bad += compare(f, i, key, m->grads + ti->offset, 2e-5, 2e-4);
    }
    if (cfg[F_ADAM] > 0) bad += check_adam(m, f, i, &in, training, (int)cfg[F_ADAM]);

    moe_arena_free(&arena);
    free_inputs(&in);
    family_mlp_moe.destroy(impl);
    return bad;
}

static void test_parity(void **state) {
    (void)state;
    ref_file f;
    assert_int_equal(ref_load(&f, g_path), 0);
    int n = (int)ref_scalar(&f, "n_cases");
    assert_true(n > 0);
    long bad = 0;
    for (int i = 0; i < n; i++) bad += check_case(&f, i);
    ref_free(&f);
    assert_int_equal(bad, 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s REF_FILE (written by scripts/ref/mlp_moe.py)\n", argv[0]);
        return 2;
    }
    g_path = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parity)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
