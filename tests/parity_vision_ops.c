/* Vision ops against PyTorch (scripts/ref/vision_ops.py): the same inputs,
 * float here and float64 there; outputs, saved statistics, running
 * statistics and every gradient must agree within ATOL + RTOL * |want|,
 * max-pool indices exactly. */
#include "test_util.h"

#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>

#define ATOL 1e-5
#define RTOL 1e-5

static const char *ref_path;
static ref_file rf;

static void *bag[64];
static int nbag;

static void *keep(void *p) {
    assert_true(nbag < 64);
    bag[nbag++] = p;
    return p;
}

static char name_buf[128];

/* "prefix.field" */
static const char *nm(const char *prefix, const char *field) {
    snprintf(name_buf, sizeof name_buf, "%s.%s", prefix, field);
    return name_buf;
}

static moe_real *get(const char *prefix, const char *field) {
    const ref_tensor *t = ref_get(&rf, nm(prefix, field));
    assert_non_null(t);
    moe_real *x = keep(malloc((size_t)(t->numel + 1) * sizeof *x));
    ref_to_real(x, t);
    return x;
}

/* Integer dims into d (at most n). */
static void get_dims(const char *prefix, int32_t *d, int n) {
    const ref_tensor *t = ref_get(&rf, nm(prefix, "dims"));
    assert_non_null(t);
    assert_int_equal(t->numel, n);
    ref_to_int(d, t);
}

static moe_real *zeros(long n) {
    return keep(calloc((size_t)n + 1, sizeof(moe_real)));
}

static void expect(const char *prefix, const char *field, const moe_real *got, long n) {
    const ref_tensor *t = ref_get(&rf, nm(prefix, field));
    assert_non_null(t);
    assert_int_equal(t->numel, n);
    assert_int_equal(ref_compare(name_buf, got, t->data, n, ATOL, RTOL), 0);
}

static int teardown(void **state) {
    (void)state;
    while (nbag) free(bag[--nbag]);
    return 0;
}

static void test_conv2d(void **state) {
    (void)state;
    int count = (int)ref_scalar(&rf, "conv.count");
    assert_true(count > 0);
    for (int i = 0; i < count; i++) {
        char p[32];
        snprintf(p, sizeof p, "conv%d", i);
        int32_t d[11];
        get_dims(p, d, 11);
        int N = d[0], C = d[1], H = d[2], W = d[3], OC = d[4], KH = d[5], KW = d[6], s = d[7];
        int pad = d[8], g = d[9], has_b = d[10];
        long no = (long)N * OC * conv2d_out_size(H, KH, s, pad) * conv2d_out_size(W, KW, s, pad);
        long ni = (long)N * C * H * W, nw = (long)OC * (C / g) * KH * KW;
        moe_real *x = get(p, "inp"), *w = get(p, "w"), *b = has_b ? get(p, "b") : NULL;
        moe_real *y = zeros(no), *dx = zeros(ni), *dw = zeros(nw), *db = zeros(OC);
        moe_real *scratch = zeros((long)conv2d_scratch_elems(C, H, W, OC, KH, KW, s, pad, g));
        conv2d_forward(y, scratch, x, w, b, N, C, H, W, OC, KH, KW, s, pad, g);
        expect(p, "out", y, no);
        conv2d_backward(dx, dw, has_b ? db : NULL, scratch, get(p, "dout"), x, w, N, C, H, W, OC,
                        KH, KW, s, pad, g);
        expect(p, "dinp", dx, ni);
        expect(p, "dw", dw, nw);
        if (has_b) expect(p, "db", db, OC);
        teardown(NULL);
    }
}

static void test_pool2d(void **state) {
    (void)state;
    int count = (int)ref_scalar(&rf, "pool.count");
    assert_true(count > 0);
    for (int i = 0; i < count; i++) {
        char p[32];
        int32_t d[7];
        snprintf(p, sizeof p, "maxpool%d", i);
        get_dims(p, d, 7);
        int N = d[0], C = d[1], H = d[2], W = d[3], K = d[4], s = d[5], pad = d[6];
        long ni = (long)N * C * H * W;
        long no = (long)N * C * conv2d_out_size(H, K, s, pad) * conv2d_out_size(W, K, s, pad);
        moe_real *y = zeros(no), *dx = zeros(ni);
        int32_t *am = keep(malloc((size_t)no * sizeof *am));
        int32_t *want_am = keep(malloc((size_t)no * sizeof *want_am));
        const ref_tensor *t = ref_get(&rf, nm(p, "argmax"));
        assert_non_null(t);
        assert_int_equal(t->numel, no);
        ref_to_int(want_am, t);
        maxpool2d_forward(y, am, get(p, "inp"), N, C, H, W, K, s, pad);
        expect(p, "out", y, no);
        for (long j = 0; j < no; j++) assert_int_equal(am[j], want_am[j]);
        maxpool2d_backward(dx, get(p, "dout"), am, N, C, H, W, K, s, pad);
        expect(p, "dinp", dx, ni);

        snprintf(p, sizeof p, "avgpool%d", i);
        avgpool2d_forward(y, get(p, "inp"), N, C, H, W, K, s, pad);
        expect(p, "out", y, no);
        avgpool2d_backward(dx, get(p, "dout"), N, C, H, W, K, s, pad);
        expect(p, "dinp", dx, ni);
        teardown(NULL);
    }
    int32_t d[3];
    get_dims("gap", d, 3);
    int N = d[0], C = d[1], S = d[2];
    moe_real *y = zeros((long)N * C), *dx = zeros((long)N * C * S);
    global_avgpool_forward(y, get("gap", "inp"), N, C, S);
    expect("gap", "out", y, (long)N * C);
    global_avgpool_backward(dx, get("gap", "dout"), N, C, S);
    expect("gap", "dinp", dx, (long)N * C * S);
}

static void check_batchnorm(const char *p) {
    char q[32];
    int32_t d[3];
    get_dims(p, d, 3);
    int N = d[0], C = d[1], S = d[2];
    long n = (long)N * C * S;
    moe_real *w = get(p, "w"), *b = get(p, "b"), *rm = get(p, "rm0"), *rv = get(p, "rv0");
    moe_real *y = zeros(n), *dx = zeros(n), *dw = zeros(C), *db = zeros(C);
    moe_real *mean = zeros(C), *rstd = zeros(C);

    snprintf(q, sizeof q, "%s.train", p);
    moe_real *x = get(q, "inp");
    batchnorm_forward(y, mean, rstd, rm, rv, x, w, b, N, C, S, 1, 0.1f, 1e-5f);
    expect(q, "out", y, n);
    expect(q, "mean", mean, C);
    expect(q, "rstd", rstd, C);
    expect(q, "rm", rm, C);
    expect(q, "rv", rv, C);
    batchnorm_backward(dx, dw, db, get(q, "dout"), x, w, mean, rstd, N, C, S, 1);
    expect(q, "dinp", dx, n);
    expect(q, "dw", dw, C);
    expect(q, "db", db, C);

    /* eval with the statistics before the training step */
    snprintf(q, sizeof q, "%s.eval", p);
    rm = get(p, "rm0"), rv = get(p, "rv0"), x = get(q, "inp");
    for (int c = 0; c < C; c++) dw[c] = db[c] = 0;
    batchnorm_forward(y, mean, rstd, rm, rv, x, w, b, N, C, S, 0, 0.1f, 1e-5f);
    expect(q, "out", y, n);
    expect(p, "rm0", rm, C); /* untouched */
    expect(p, "rv0", rv, C);
    batchnorm_backward(dx, dw, db, get(q, "dout"), x, w, mean, rstd, N, C, S, 0);
    expect(q, "dinp", dx, n);
    expect(q, "dw", dw, C);
    expect(q, "db", db, C);
}

static void test_batchnorm1d(void **state) {
    (void)state;
    check_batchnorm("bn1d");
}

static void test_batchnorm2d(void **state) {
    (void)state;
    check_batchnorm("bn2d");
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
        fprintf(stderr,
                "usage: parity_vision_ops REF_FILE (written by scripts/ref/vision_ops.py)\n");
        return 1;
    }
    ref_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_conv2d, teardown),
        cmocka_unit_test_teardown(test_pool2d, teardown),
        cmocka_unit_test_teardown(test_batchnorm1d, teardown),
        cmocka_unit_test_teardown(test_batchnorm2d, teardown),
    };
    return cmocka_run_group_tests(tests, setup, finish);
}
