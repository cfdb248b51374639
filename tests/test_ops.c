/* Op behaviours the gradient and parity checks do not cover: dropout
 * statistics and determinism, fully masked attention rows, cross-entropy
 * with nothing counted, softmax range, races in the scatter/reduce paths. */
#include "test_util.h"

#include "core/real_math.h"
#include "ops/ops.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static moe_real *rnd(long n, unsigned long long seed) {
    moe_real *x = malloc((size_t)n * sizeof *x);
    fill_uniform(x, n, -1, 1, seed);
    return x;
}

static void test_dropout_statistics(void **state) {
    (void)state;
    const long N = 100000;
    const float p = 0.25f;
    moe_real *x = rnd(N, 1), *y = malloc(N * sizeof *y), *m = malloc(N * sizeof *m);
    moe_rng rng;
    moe_rng_seed(&rng, 5);
    dropout_forward(y, m, x, p, N, &rng);
    long kept = 0;
    for (long i = 0; i < N; i++) {
        if (m[i] != 0) {
            kept++;
            assert_true(fabsf(m[i] - 1 / (1 - p)) < 1e-6f);
            assert_true(fabsf(y[i] - x[i] / (1 - p)) < 1e-6f);
        } else {
            assert_true(y[i] == 0);
        }
    }
    /* binomial sd is 0.0014; 0.01 is seven of them */
    assert_true(fabs((double)kept / N - (1 - p)) < 0.01);
    free(x), free(y), free(m);
}

static void test_dropout_deterministic(void **state) {
    (void)state;
    const long N = 50000;
    moe_real *x = rnd(N, 2), *m1 = malloc(N * sizeof *m1), *m2 = malloc(N * sizeof *m2);
    moe_real *y = malloc(N * sizeof *y);
    moe_rng a, b;
    moe_rng_seed(&a, 11);
    moe_rng_seed(&b, 11);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dropout_forward(y, m1, x, 0.5f, N, &a);
    omp_set_num_threads(threads > 1 ? threads : 2);
    dropout_forward(y, m2, x, 0.5f, N, &b); /* same seed, other thread count */
    omp_set_num_threads(threads);
    assert_memory_equal(m1, m2, N * sizeof *m1);
    assert_memory_equal(a.s, b.s, sizeof a.s); /* same RNG consumption */
    dropout_forward(y, m2, x, 0.5f, N, &a);    /* the stream moved on */
    assert_true(memcmp(m1, m2, N * sizeof *m1) != 0);
    free(x), free(m1), free(m2), free(y);
}

static void test_dropout_p0_identity(void **state) {
    (void)state;
    const long N = 1000;
    moe_real *x = rnd(N, 3), *y = malloc(N * sizeof *y), *m = malloc(N * sizeof *m);
    moe_rng rng;
    moe_rng_seed(&rng, 1);
    dropout_forward(y, m, x, 0.0f, N, &rng);
    assert_memory_equal(x, y, N * sizeof *x);
    for (long i = 0; i < N; i++) assert_true(m[i] == 1);
    free(x), free(y), free(m);
}

/* The causal backward skips the masked triangle; on causal probabilities it
 * must match the full backward (T spans several 64-row blocks, not a
 * multiple of them; grouped heads). Tolerance 1e-5 absolute (only the GEMM
 * blocking of the sums differs). */
static void test_attention_causal_backward_matches_full(void **state) {
    (void)state;
    enum { B = 2, T = 150, H = 4, KVH = 2, hd = 8 };
    long nq = (long)B * T * H * hd, nkv = (long)B * T * KVH * hd, na = (long)B * H * T * T;
    moe_real *q = rnd(nq, 11), *k = rnd(nkv, 12), *v = rnd(nkv, 13), *g = rnd(nq, 14);
    moe_real *out = malloc(nq * sizeof *out), *att = malloc(na * sizeof *att);
    moe_real *datt = malloc(na * sizeof *datt), *d[2][3];
    attention_forward(out, att, q, k, v, NULL, B, T, H, KVH, hd, H * hd, KVH * hd, 1);
    for (int causal = 0; causal < 2; causal++) {
        d[causal][0] = malloc(nq * sizeof(moe_real));
        d[causal][1] = malloc(nkv * sizeof(moe_real));
        d[causal][2] = malloc(nkv * sizeof(moe_real));
        attention_backward(d[causal][0], d[causal][1], d[causal][2], datt, g, q, k, v, att, B, T, H,
                           KVH, hd, H * hd, KVH * hd, causal);
    }
    for (int w = 0; w < 3; w++)
        for (long i = 0; i < (w ? nkv : nq); i++)
            assert_true(fabs((double)d[0][w][i] - d[1][w][i]) < 1e-5);
    for (int c = 0; c < 2; c++)
        for (int w = 0; w < 3; w++) free(d[c][w]);
    free(q), free(k), free(v), free(g), free(out), free(att), free(datt);
}

/* The vectorisable exp behind SiLU/SwiGLU: within 2 float ulp (2.4e-7
 * relative) of exp on [-87, 88], clamped outside, NaN kept; so the sigmoid
 * saturates to 0 and 1. */
static void test_exp_simd_accuracy(void **state) {
    (void)state;
    for (double x = -87; x <= 88; x += 1e-3) {
        float f = (float)x;
        double e = exp((double)f);
        assert_true(fabs(real_exp_simd(f) - e) <= 2.4e-7 * e);
    }
    assert_true(real_exp_simd(-1000.0f) > 0 && real_exp_simd(-1000.0f) < 1e-37f);
    assert_true(real_exp_simd(1000.0f) > 1e38f && isfinite(real_exp_simd(1000.0f)));
    assert_true(isnan(real_exp_simd(NAN)));
    moe_real x[2] = {-200, 200}, y[2];
    silu_forward(y, x, 2);
    assert_true(fabs(y[0]) < 1e-30 && y[1] == 200);
}

static void test_attention_fully_masked_rows(void **state) {
    (void)state;
    enum { B = 2, T = 4, H = 2, hd = 8 };
    /* batch 0: token 0 is padding, so causal row 0 sees nothing;
     * batch 1: all padding, every row masked */
    const uint8_t pad[B * T] = {0, 1, 1, 1, 0, 0, 0, 0};
    long n = (long)B * T * H * hd, na = (long)B * H * T * T;
    moe_real *q = rnd(n, 4), *k = rnd(n, 5), *v = rnd(n, 6), *g = rnd(n, 7);
    moe_real *out = malloc(n * sizeof *out), *att = malloc(na * sizeof *att);
    moe_real *datt = malloc(na * sizeof *datt), *dq = malloc(n * sizeof *dq);
    moe_real *dk = malloc(n * sizeof *dk), *dv = malloc(n * sizeof *dv);
    attention_forward(out, att, q, k, v, pad, B, T, H, H, hd, H * hd, H * hd, 1);
    attention_backward(dq, dk, dv, datt, g, q, k, v, att, B, T, H, H, hd, H * hd, H * hd, 1);
    for (long i = 0; i < n; i++) {
        assert_true(isfinite(out[i]) && isfinite(dq[i]) && isfinite(dk[i]) && isfinite(dv[i]));
        int b = (int)(i / (T * H * hd)), t = (int)(i / (H * hd) % T);
        if (b == 1 || t == 0) assert_true(out[i] == 0 && dq[i] == 0);
        if (b == 1 || t == 0) assert_true(dk[i] == 0 && dv[i] == 0); /* padded keys */
    }
    for (int h = 0; h < H; h++) { /* a live row still sums to 1 over live keys */
        const moe_real *row = att + ((long)h * T + 3) * T;
        assert_true(row[0] == 0 && fabs(row[1] + row[2] + row[3] - 1) < 1e-6);
    }
    free(q), free(k), free(v), free(g), free(out), free(att), free(datt), free(dq), free(dk);
    free(dv);
}

static void test_crossentropy_all_ignored(void **state) {
    (void)state;
    enum { N = 3, V = 4 };
    const int32_t t[N] = {-1, -1, -1};
    moe_real *x = rnd(N * V, 8), probs[N * V], d[N * V];
    int count = 99;
    double loss = crossentropy_forward(probs, x, t, N, V, -1, &count);
    assert_int_equal(count, 0);
    assert_true(loss == 0);
    crossentropy_backward(d, probs, t, N, V, -1, count, 1.0f);
    for (int i = 0; i < N * V; i++) assert_true(d[i] == 0);
    /* a target out of range poisons the loss instead of reading past the row */
    const int32_t bad[N] = {1, 7, -1};
    loss = crossentropy_forward(probs, x, bad, N, V, -1, &count);
    assert_true(isnan(loss));
    free(x);
}

static void test_softmax_rows_large_values(void **state) {
    (void)state;
    moe_real x[6] = {1000, 1001, 999, -5, 0, 5};
    softmax_rows(x, 2, 3);
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int j = 0; j < 3; j++) {
            assert_true(isfinite(x[r * 3 + j]) && x[r * 3 + j] > 0);
            s += x[r * 3 + j];
        }
        assert_true(fabs(s - 1) < 1e-6);
    }
    assert_true(fabs(x[1] - 1 / (1 + exp(-1.0) + exp(-2.0))) < 1e-6);
}

/* Scatter and column reductions must be race-free and exact in order. */
static void test_reductions_match_naive(void **state) {
    (void)state;
    enum { N = 333, C = 70, V = 5 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = i % 3 == 0 ? 2 : i % V; /* many repeats */
    moe_real *g = rnd((long)N * C, 9), *x = rnd((long)N * C, 10), *w = rnd(C, 11);
    moe_real *dt = calloc((size_t)V * C, sizeof *dt);
    embedding_backward(dt, g, ids, N, C);
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int n = 0; n < N; n++)
            if (ids[n] == 2) s += g[(long)n * C + c];
        assert_true(fabs(dt[2 * C + c] - s) < 1e-4);
    }
    moe_real *y = malloc((size_t)N * C * sizeof *y), *dx = malloc((size_t)N * C * sizeof *dx);
    moe_real mean[N], rstd[N], dw[C] = {0}, db[C] = {0};
    layernorm_forward(y, mean, rstd, x, w, NULL, N, C, 1e-5f);
    layernorm_backward(dx, dw, db, g, x, w, mean, rstd, N, C);
    for (int c = 0; c < C; c++) {
        double sw = 0, sb = 0;
        for (int n = 0; n < N; n++) {
            sw += (double)g[(long)n * C + c] * (x[(long)n * C + c] - mean[n]) * rstd[n];
            sb += g[(long)n * C + c];
        }
        assert_true(fabs(dw[c] - sw) < 1e-4 && fabs(db[c] - sb) < 1e-4);
    }
    free(g), free(x), free(w), free(dt), free(y), free(dx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropout_statistics),
        cmocka_unit_test(test_dropout_deterministic),
        cmocka_unit_test(test_dropout_p0_identity),
        cmocka_unit_test(test_exp_simd_accuracy),
        cmocka_unit_test(test_attention_fully_masked_rows),
        cmocka_unit_test(test_attention_causal_backward_matches_full),
        cmocka_unit_test(test_crossentropy_all_ignored),
        cmocka_unit_test(test_softmax_rows_large_values),
        cmocka_unit_test(test_reductions_match_naive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
