/* Ops against PyTorch (scripts/ref/ops.py): same inputs, float here, float64
 * there; outputs and all gradients must agree within ATOL + RTOL * |want|. */
#include "test_util.h"

#include "ops/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define ATOL 1e-5
#define RTOL 1e-4

static const char *ref_path;
static ref_file rf;

/* Buffers of the current test, freed by teardown. */
static void *bag[64];
static int nbag;

static void *keep(void *p) {
    assert_true(nbag < 64);
    bag[nbag++] = p;
    return p;
}

static long numel(const char *name) {
    const ref_tensor *t = ref_get(&rf, name);
    assert_non_null(t);
    return (long)t->numel;
}

/* A reference tensor as moe_real (owned by the bag). */
static moe_real *get(const char *name) {
    const ref_tensor *t = ref_get(&rf, name);
    assert_non_null(t);
    moe_real *x = keep(malloc((size_t)(t->numel + 1) * sizeof *x));
    ref_to_real(x, t);
    return x;
}

static int32_t *get_int(const char *name) {
    const ref_tensor *t = ref_get(&rf, name);
    assert_non_null(t);
    int32_t *x = keep(malloc((size_t)(t->numel + 1) * sizeof *x));
    ref_to_int(x, t);
    return x;
}

static moe_real *zeros(long n) {
    return keep(calloc((size_t)n + 1, sizeof(moe_real)));
}

static void expect(const char *name, const moe_real *got) {
    const ref_tensor *t = ref_get(&rf, name);
    assert_non_null(t);
    assert_int_equal(ref_compare(name, got, t->data, (long)t->numel, ATOL, RTOL), 0);
}

static int teardown(void **state) {
    (void)state;
    while (nbag) free(bag[--nbag]);
    return 0;
}

static void test_linear(void **state) {
    (void)state;
    int N = 6, C = 16, OC = 12;
    assert_int_equal(numel("linear.w"), OC * C);
    moe_real *x = get("linear.inp"), *w = get("linear.w"), *b = get("linear.b");
    moe_real *y = zeros(N * OC), *dx = zeros(N * C), *dw = zeros(OC * C), *db = zeros(OC);
    matmul_forward(y, x, w, b, N, C, OC);
    expect("linear.out", y);
    matmul_backward(dx, dw, db, get("linear.dout"), x, w, N, C, OC);
    expect("linear.dinp", dx);
    expect("linear.dw", dw);
    expect("linear.db", db);
}

static void test_embedding(void **state) {
    (void)state;
    int N = (int)numel("embedding.ids"), C = 8, V = 10;
    assert_int_equal(numel("embedding.table"), V * C);
    moe_real *table = get("embedding.table"), *y = zeros(N * C), *dt = zeros(V * C);
    int32_t *ids = get_int("embedding.ids");
    embedding_forward(y, ids, table, N, C);
    expect("embedding.out", y);
    embedding_backward(dt, get("embedding.dout"), ids, N, C);
    expect("embedding.dtable", dt);
}

static void test_layernorm(void **state) {
    (void)state;
    int N = 6, C = 16;
    moe_real *x = get("layernorm.inp"), *w = get("layernorm.w"), *b = get("layernorm.b");
    moe_real *y = zeros(N * C), *mean = zeros(N), *rstd = zeros(N);
    moe_real *dx = zeros(N * C), *dw = zeros(C), *db = zeros(C);
    layernorm_forward(y, mean, rstd, x, w, b, N, C, 1e-5f);
    expect("layernorm.out", y);
    layernorm_backward(dx, dw, db, get("layernorm.dout"), x, w, mean, rstd, N, C);
    expect("layernorm.dinp", dx);
    expect("layernorm.dw", dw);
    expect("layernorm.db", db);
}

static void test_rmsnorm(void **state) {
    (void)state;
    int N = 6, C = 16;
    moe_real *x = get("rmsnorm.inp"), *w = get("rmsnorm.w");
    moe_real *y = zeros(N * C), *rstd = zeros(N), *dx = zeros(N * C), *dw = zeros(C);
    rmsnorm_forward(y, rstd, x, w, N, C, 1e-5f);
    expect("rmsnorm.out", y);
    rmsnorm_backward(dx, dw, get("rmsnorm.dout"), x, w, rstd, N, C);
    expect("rmsnorm.dinp", dx);
    expect("rmsnorm.dw", dw);
}

/* In place inside rows wider than H*hd: the extra columns pass through. */
static void test_rope(void **state) {
    (void)state;
    int32_t d[6]; /* B, T, H, hd, row_stride, pos0 */
    ref_to_int(d, ref_get(&rf, "rope.dims"));
    moe_real *x = get("rope.inp"), *g = get("rope.dout");
    rope_forward(x, x, d[0], d[1], d[2], d[3], d[4], d[5], 10000.0f);
    expect("rope.out", x);
    rope_backward(g, g, d[0], d[1], d[2], d[3], d[4], d[5], 10000.0f);
    expect("rope.dinp", g);
}

static void check_attention(const char *p, int has_pad) {
    char name[64];
#define N(s) (snprintf(name, sizeof name, "%s.%s", p, s), name)
    int32_t d[6]; /* B, T, H, KVH, hd, causal */
    ref_to_int(d, ref_get(&rf, N("dims")));
    int B = d[0], T = d[1], H = d[2], KVH = d[3], hd = d[4];
    uint8_t *pad = NULL;
    if (has_pad) {
        int32_t *pi = get_int(N("pad"));
        pad = keep(malloc((size_t)B * T));
        for (int i = 0; i < B * T; i++) pad[i] = (uint8_t)pi[i];
    }
    moe_real *q = get(N("q")), *k = get(N("k")), *v = get(N("v"));
    long nq = (long)B * T * H * hd, nkv = (long)B * T * KVH * hd, na = (long)B * H * T * T;
    moe_real *y = zeros(nq), *att = zeros(na), *datt = zeros(na);
    moe_real *dq = zeros(nq), *dk = zeros(nkv), *dv = zeros(nkv);
    attention_forward(y, att, q, k, v, pad, B, T, H, KVH, hd, H * hd, KVH * hd, d[5]);
    expect(N("out"), y);
    expect(N("att"), att);
    attention_backward(dq, dk, dv, datt, get(N("dout")), q, k, v, att, B, T, H, KVH, hd, H * hd,
                       KVH * hd, d[5]);
    expect(N("dq"), dq);
    expect(N("dk"), dk);
    expect(N("dv"), dv);
#undef N
}

static void test_attention_causal_gqa(void **state) {
    (void)state;
    check_attention("attn_causal_gqa", 0);
}

static void test_attention_padded(void **state) {
    (void)state;
    check_attention("attn_pad", 1);
}

static void test_activations(void **state) {
    (void)state;
    long n = numel("gelu.inp");
    moe_real *y = zeros(n), *dx = zeros(n), *db = zeros(n);
    moe_real *x = get("gelu.inp");
    gelu_forward(y, x, n);
    expect("gelu.out", y);
    gelu_backward(dx, get("gelu.dout"), x, n);
    expect("gelu.dinp", dx);
    x = get("silu.inp");
    silu_forward(y, x, n);
    expect("silu.out", y);
    silu_backward(dx, get("silu.dout"), x, n);
    expect("silu.dinp", dx);
    moe_real *a = get("swiglu.a"), *b = get("swiglu.b");
    swiglu_forward(y, a, b, n);
    expect("swiglu.out", y);
    swiglu_backward(dx, db, get("swiglu.dout"), a, b, n);
    expect("swiglu.da", dx);
    expect("swiglu.db", db);
}

static void test_crossentropy(void **state) {
    (void)state;
    int N = (int)numel("ce.targets"), V = (int)(numel("ce.logits") / N), count = 0;
    moe_real *probs = zeros((long)N * V), *d = zeros((long)N * V);
    int32_t *targets = get_int("ce.targets");
    double loss = crossentropy_forward(probs, get("ce.logits"), targets, N, V, -1, &count);
    assert_int_equal(count, 6);
    assert_true(fabs(loss - ref_scalar(&rf, "ce.loss")) <= ATOL + RTOL * fabs(loss));
    crossentropy_backward(d, probs, targets, N, V, -1, count, 1.0f);
    expect("ce.dlogits", d);
}

static void test_crossentropy_soft(void **state) {
    (void)state;
    int N = (int)numel("ce_soft.w"), V = (int)(numel("ce_soft.logits") / N);
    moe_real *probs = zeros((long)N * V), *d = zeros((long)N * V);
    moe_real *tp = get("ce_soft.tp"), *w = get("ce_soft.w");
    double loss = crossentropy_soft_forward(probs, get("ce_soft.logits"), tp, w, N, V);
    assert_true(fabs(loss - ref_scalar(&rf, "ce_soft.loss")) <= ATOL + RTOL * fabs(loss));
    crossentropy_soft_backward(d, probs, tp, w, N, V, 1.0f);
    expect("ce_soft.dlogits", d);
}

static int setup(void **state) {
    (void)state;
    return ref_load(&rf, ref_path);
}

static int finish(void **state) {
    (void)state;
    ref_free(&rf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: parity_ops REF_FILE (written by scripts/ref/ops.py)\n");
        return 1;
    }
    ref_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_linear, teardown),
        cmocka_unit_test_teardown(test_embedding, teardown),
        cmocka_unit_test_teardown(test_layernorm, teardown),
        cmocka_unit_test_teardown(test_rmsnorm, teardown),
        cmocka_unit_test_teardown(test_rope, teardown),
        cmocka_unit_test_teardown(test_attention_causal_gqa, teardown),
        cmocka_unit_test_teardown(test_attention_padded, teardown),
        cmocka_unit_test_teardown(test_activations, teardown),
        cmocka_unit_test_teardown(test_crossentropy, teardown),
        cmocka_unit_test_teardown(test_crossentropy_soft, teardown),
    };
    return cmocka_run_group_tests(tests, setup, finish);
}
