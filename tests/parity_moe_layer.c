/* Parity of the MoE layer with a plain PyTorch implementation
 * (scripts/ref/moe_layer.py): out, the aux values, kept counts, dx and every
 * weight gradient of loss = sum(out * dout) + aux_total, over 14 configs
 * (E 2..16, k 1..4, softmax/sigmoid, top-k before/after softmax, capacity
 * 1.0 / 0.5 / dropless, renormalisation, relu/gelu/silu/swiglu, biases, a
 * shared expert, round robin, aux losses). Float build: atol 2e-5, rtol 2e-4
 * on tensors; aux values rtol 1e-4. */
#include "test_util.h"
#include "moe_layer_buf.h"

#include <math.h>
#include <stdio.h>

#define ATOL 2e-5
#define RTOL 2e-4

static const char *g_path;

enum {
    F_T,
    F_D,
    F_E,
    F_K,
    F_F,
    F_ACT,
    F_BIAS,
    F_SIGMOID,
    F_TOPK_BEFORE,
    F_RENORM,
    F_TEMP,
    F_CF,
    F_SHARED,
    F_SWITCH,
    F_DIVK,
    F_Z,
    F_VAR,
    F_CV,
    F_RR,
    F_COUNT
};

static moe_layer_config config_from(const double *v) {
    moe_layer_config c = layer_cfg((int)v[F_D], (int)v[F_E], (int)v[F_K], (int)v[F_F],
                                   (moe_activation)(int)v[F_ACT]);
    c.expert_bias = (int)v[F_BIAS];
    c.score = v[F_SIGMOID] != 0 ? MOE_SCORE_SIGMOID : MOE_SCORE_SOFTMAX;
    c.topk_before_softmax = (int)v[F_TOPK_BEFORE];
    c.renormalize = (int)v[F_RENORM];
    c.temperature = (float)v[F_TEMP];
    c.capacity_factor = (float)v[F_CF];
    c.shared_d_ff = (int)v[F_SHARED];
    c.switch_coef = (float)v[F_SWITCH];
    c.switch_divide_by_k = (int)v[F_DIVK];
    c.z_coef = (float)v[F_Z];
    c.var_coef = (float)v[F_VAR];
    c.cv_coef = (float)v[F_CV];
    c.routing = v[F_RR] != 0 ? MOE_ROUTE_ROUND_ROBIN : MOE_ROUTE_TOPK;
    return c;
}

static const ref_tensor *get(const ref_file *f, int i, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "c%d.%s", i, name);
    const ref_tensor *t = ref_get(f, key);
    assert_non_null(t);
    return t;
}

/* name and pointer of every tensor in a params struct */
#define N_TENSORS 10
static void tensor_list(const moe_layer_params *p, moe_real *ptr[N_TENSORS]) {
    moe_real *v[N_TENSORS] = {p->gate, p->w1, p->w3,        p->w2,        p->b1,
                              p->b3,   p->b2, p->shared_w1, p->shared_w3, p->shared_w2};
    memcpy(ptr, v, sizeof v);
}
static const char *tensor_names[N_TENSORS] = {"gate", "w1", "w3",        "w2",        "b1",
                                              "b3",   "b2", "shared_w1", "shared_w3", "shared_w2"};

static long check_config(const ref_file *f, int i) {
    const ref_tensor *ct = get(f, i, "cfg");
    assert_int_equal(ct->numel, F_COUNT);
    moe_layer_config cfg = config_from(ct->data);
    const int T = (int)ct->data[F_T], D = cfg.d_model, E = cfg.n_experts;
    const size_t TD = (size_t)T * D;
    assert_int_equal(moe_layer_config_check(&cfg), MOE_OK);
    layer_buf b;
    assert_int_equal(layer_buf_init(&b, &cfg), 0);
    moe_real *pp[N_TENSORS], *gp[N_TENSORS];
    tensor_list(&b.p, pp);
    tensor_list(&b.g, gp);
    for (int n = 0; n < N_TENSORS; n++)
        if (pp[n]) ref_to_real(pp[n], get(f, i, tensor_names[n]));
    moe_real *x = malloc(sizeof(moe_real) * TD), *dout = malloc(sizeof(moe_real) * TD);
    moe_real *out = malloc(sizeof(moe_real) * TD), *dx = malloc(sizeof(moe_real) * TD);
    ref_to_real(x, get(f, i, "x"));
    ref_to_real(dout, get(f, i, "dout"));

    moe_arena arena;
    moe_arena_init(&arena);
    moe_layer_cache *cache;
    moe_layer_stats *st;
    assert_int_equal(moe_layer_forward(&cfg, &b.p, out, x, T, 0, NULL, &arena, &cache, &st),
                     MOE_OK);
    assert_int_equal(moe_layer_backward(&cfg, &b.p, &b.g, dx, dout, cache, 1, &arena), MOE_OK);

    char what[96];
    long bad = 0;
    snprintf(what, sizeof what, "config %d out", i);
    bad += ref_compare(what, out, get(f, i, "out")->data, (long)TD, ATOL, RTOL);
    snprintf(what, sizeof what, "config %d dx", i);
    bad += ref_compare(what, dx, get(f, i, "dx")->data, (long)TD, ATOL, RTOL);
    for (int n = 0; n < N_TENSORS; n++) {
        if (!gp[n]) continue;
        char key[32];
        snprintf(key, sizeof key, "d_%s", tensor_names[n]);
        const ref_tensor *want = get(f, i, key);
        snprintf(what, sizeof what, "config %d %s", i, key);
        bad += ref_compare(what, gp[n], want->data, (long)want->numel, ATOL, RTOL);
    }
    const double *aux = get(f, i, "aux")->data;
    const double got[5] = {st->aux_switch, st->aux_z, st->aux_var, st->aux_cv, st->aux_total};
    for (int a = 0; a < 5; a++) {
        if (!(fabs(got[a] - aux[a]) <= 1e-6 + 1e-4 * fabs(aux[a]))) {
            fprintf(stderr, "config %d aux[%d]: got %.8g want %.8g\n", i, a, got[a], aux[a]);
            bad++;
        }
    }
    const double *kept = get(f, i, "kept")->data;
    for (int e = 0; e < E; e++) bad += st->expert_tokens[e] != (int)kept[e];
    snprintf(what, sizeof what, "c%d.n_dropped", i);
    bad += st->n_dropped != (int)ref_scalar(f, what);
    free(x);
    free(dout);
    free(out);
    free(dx);
    layer_buf_free(&b);
    moe_arena_free(&arena);
    return bad;
}

static void test_parity(void **state) {
    (void)state;
    ref_file f;
    assert_int_equal(ref_load(&f, g_path), 0);
    int n = (int)ref_scalar(&f, "n_configs");
    assert_true(n >= 12);
    long bad = 0;
    int dropped_configs = 0;
    for (int i = 0; i < n; i++) {
        long b = check_config(&f, i);
        if (b) fprintf(stderr, "config %d: %ld mismatches\n", i, b);
        bad += b;
        char key[32];
        snprintf(key, sizeof key, "c%d.n_dropped", i);
        dropped_configs += ref_scalar(&f, key) > 0;
    }
    assert_true(dropped_configs >= 2); /* capacity drops are exercised */
    ref_free(&f);
    assert_int_equal(bad, 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s REFERENCE.bin (written by scripts/ref/moe_layer.py)\n", argv[0]);
        return 2;
    }
    g_path = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parity)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
