/* GPU: cuBLAS GEMM, the linear layer and casts against the CPU reference
 * (ops.h), in fp32 and bf16, on fresh random inputs. Skips without a GPU. */
#include "cuda_test.h"
#include "ops/ops.h"

#include <string.h>

static moe_rng rng;

static void check_gemm(moe_dtype dt, int ta, int tb, int M, int N, int K) {
    float *A = malloc((size_t)M * K * 4), *B = malloc((size_t)K * N * 4);
    float *C = malloc((size_t)M * N * 4);
    cuda_test_randn(A, (long)M * K, 1, &rng);
    cuda_test_randn(B, (long)K * N, 1, &rng);
    cuda_test_randn(C, (long)M * N, 1, &rng);
    cuda_test_round(A, (long)M * K, dt);
    cuda_test_round(B, (long)K * N, dt);
    int lda = ta ? M : K, ldb = tb ? K : N;
    void *dA = cuda_test_upload(A, (long)M * K, dt), *dB = cuda_test_upload(B, (long)K * N, dt);
    float *dC = cuda_test_upload(C, (long)M * N, MOE_DT_F32);
    CUDA_OK(moe_cuda_gemm(cuda_test_ctx, ta, tb, M, N, K, 0.5f, dA, lda, dB, ldb, dt, 1.0f, dC,
                          MOE_DT_F32, N));
    gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C, N);
    float *got = cuda_test_download(dC, (long)M * N, MOE_DT_F32);
    char what[80];
    snprintf(what, sizeof what, "gemm %s ta=%d tb=%d %dx%dx%d", moe_dtype_name(dt), ta, tb, M, N,
             K);
    /* fp32 output both ways: only accumulation order differs */
    cuda_assert_close(what, got, C, (long)M * N, cuda_test_bound(dt, 1e-5, 1e-5));
    free(A), free(B), free(C), free(got);
    moe_cuda_free(cuda_test_ctx, dA), moe_cuda_free(cuda_test_ctx, dB);
    moe_cuda_free(cuda_test_ctx, dC);
}

static void test_gemm(void **state) {
    (void)state;
    for (int dt = 0; dt < 2; dt++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) check_gemm((moe_dtype)dt, ta, tb, 67, 129, 45);
}

static void check_matmul(moe_dtype dt, int N, int C, int OC) {
    long nx = (long)N * C, nw = (long)OC * C, ny = (long)N * OC;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(OC * 4), *dy = malloc(ny * 4);
    float *y = malloc(ny * 4), *dx = malloc(nx * 4), *dw = malloc(nw * 4), *db = malloc(OC * 4);
    cuda_test_randn(x, nx, 1, &rng);
    cuda_test_randn(w, nw, 0.1f, &rng);
    cuda_test_randn(b, OC, 1, &rng);
    cuda_test_randn(dy, ny, 1, &rng);
    cuda_test_randn(dw, nw, 1, &rng); /* parameter grads add: start non-zero */
    cuda_test_randn(db, OC, 1, &rng);
    cuda_test_round(x, nx, dt), cuda_test_round(w, nw, dt), cuda_test_round(dy, ny, dt);
    void *gx = cuda_test_upload(x, nx, dt), *gw = cuda_test_upload(w, nw, dt);
    void *gdy = cuda_test_upload(dy, ny, dt), *gy = cuda_test_poisoned(ny, dt);
    void *gdx = cuda_test_poisoned(nx, dt);
    float *gb = cuda_test_upload(b, OC, MOE_DT_F32), *gdw = cuda_test_upload(dw, nw, MOE_DT_F32);
    float *gdb = cuda_test_upload(db, OC, MOE_DT_F32);
    CUDA_OK(moe_cuda_matmul_forward(cuda_test_ctx, dt, gy, gx, gw, gb, N, C, OC));
    CUDA_OK(moe_cuda_matmul_backward(cuda_test_ctx, dt, gdx, gdw, gdb, gdy, gx, gw, N, C, OC));
    matmul_forward(y, x, w, b, N, C, OC);
    matmul_backward(dx, dw, db, dy, x, w, N, C, OC);
    float *hy = cuda_test_download(gy, ny, dt), *hdx = cuda_test_download(gdx, nx, dt);
    float *hdw = cuda_test_download(gdw, nw, MOE_DT_F32), *hdb = cuda_test_download(gdb, OC, 0);
    double bound = cuda_test_bound(dt, 1e-5, 1e-2); /* bf16 outputs: one rounding */
    cuda_assert_close("matmul out", hy, y, ny, bound);
    cuda_assert_close("matmul dinp", hdx, dx, nx, bound);
    cuda_assert_close("matmul dweight (+=)", hdw, dw, nw, 1e-5);
    cuda_assert_close("matmul dbias (+=)", hdb, db, OC, 1e-5);
    void *bufs[] = {gx, gw, gdy, gy, gdx, gb, gdw, gdb};
    for (int i = 0; i < 8; i++) moe_cuda_free(cuda_test_ctx, bufs[i]);
    float *hs[] = {x, w, b, dy, y, dx, dw, db, hy, hdx, hdw, hdb};
    for (int i = 0; i < 12; i++) free(hs[i]);
}

static void test_matmul(void **state) {
    (void)state;
    check_matmul(MOE_DT_F32, 100, 72, 136);
    check_matmul(MOE_DT_BF16, 100, 72, 136);
    check_matmul(MOE_DT_BF16, 1, 8, 3);
}

static void expect_invalid(moe_status st, const char *what) {
    if (st != MOE_ERR_INVALID) fail_msg("%s: status %d, expected MOE_ERR_INVALID", what, (int)st);
    printf("  %s: %s\n", what, moe_last_error());
}

/* Empty and degenerate shapes: OC = 0 launches nothing (a 0-block grid is a
 * CUDA error), C = 0 gives out = bias and dinp = 0 through cuBLAS with
 * k = 0 and leading dimension 0; bad arguments are MOE_ERR_INVALID. */
static void test_matmul_edges(void **state) {
    (void)state;
    moe_cuda *c = cuda_test_ctx;
    const int N = 3, C = 4, OC = 2;
    float b[2] = {1.5f, -2.25f}, ones[12];
    for (int i = 0; i < 12; i++) ones[i] = 1.0f;
    for (int dt = 0; dt < 2; dt++) {
        float *gb = cuda_test_upload(b, OC, MOE_DT_F32);
        void *gx = cuda_test_upload(ones, (long)N * C, (moe_dtype)dt);
        void *gw = cuda_test_upload(ones, (long)OC * C, (moe_dtype)dt);
        void *gdy = cuda_test_upload(ones, (long)N * OC, (moe_dtype)dt);
        float *gdb = cuda_test_upload(b, OC, MOE_DT_F32), *gdw = cuda_test_upload(ones, 8, 0);
        /* OC = 0 with a bias and every gradient: nothing to do */
        CUDA_OK(moe_cuda_matmul_forward(c, (moe_dtype)dt, gdy, gx, gw, gb, N, C, 0));
        void *gdx = cuda_test_poisoned((long)N * C, (moe_dtype)dt);
        CUDA_OK(moe_cuda_matmul_backward(c, (moe_dtype)dt, gdx, gdw, gdb, gdy, gx, gw, N, C, 0));
        float *hdx = cuda_test_download(gdx, (long)N * C, (moe_dtype)dt), zeros[12] = {0};
        cuda_assert_close("matmul OC=0: dinp = 0", hdx, zeros, (long)N * C, 0);
        /* C = 0: out = bias on every row; dbias still adds the column sums */
        void *gy = cuda_test_poisoned((long)N * OC, (moe_dtype)dt);
        CUDA_OK(moe_cuda_matmul_forward(c, (moe_dtype)dt, gy, gx, gw, gb, N, 0, OC));
        CUDA_OK(moe_cuda_matmul_backward(c, (moe_dtype)dt, NULL, NULL, gdb, gdy, gx, gw, N, 0, OC));
        float *hy = cuda_test_download(gy, (long)N * OC, (moe_dtype)dt);
        float *hdb = cuda_test_download(gdb, OC, MOE_DT_F32);
        float want[6], wdb[2] = {b[0] + N, b[1] + N};
        for (int i = 0; i < N * OC; i++) want[i] = b[i % OC];
        cuda_test_round(want, N * OC, (moe_dtype)dt);
        cuda_assert_close("matmul C=0: out = bias", hy, want, (long)N * OC, 0);
        cuda_assert_close("matmul C=0: dbias += column sums", hdb, wdb, OC, 0);
        free(hdx), free(hy), free(hdb);
        void *bufs[] = {gb, gx, gw, gdy, gdb, gdw, gdx, gy};
        for (int i = 0; i < 8; i++) moe_cuda_free(c, bufs[i]);
    }
    float dummy[4] = {0};
    void *d = dummy; /* never dereferenced: the checks come first */
    expect_invalid(moe_cuda_matmul_forward(c, MOE_DT_F32, d, d, d, NULL, -1, 4, 4),
                   "matmul_forward N<0");
    expect_invalid(moe_cuda_matmul_backward(c, MOE_DT_F32, NULL, NULL, dummy, d, d, d, 4, 4, -1),
                   "matmul_backward OC<0");
    expect_invalid(moe_cuda_gemm(c, 0, 0, 4, 4, 4, 1, d, 3, d, 4, MOE_DT_F32, 0, d, MOE_DT_F32, 4),
                   "gemm lda < K");
    expect_invalid(
        moe_cuda_gemm(c, 1, 0, 4, 4, 4, 1, d, 4, d, 4, MOE_DT_F32, 0, NULL, MOE_DT_F32, 4),
        "gemm C NULL");
    expect_invalid(moe_cuda_gemm(c, 0, 0, 4, 5, 4, 1, d, 4, d, 5, MOE_DT_F32, 0, d, MOE_DT_F32, 4),
                   "gemm ldc < N");
    CUDA_OK(moe_cuda_sync(c)); /* nothing was launched: the context still works */
}

static void test_cast_roundtrip(void **state) {
    (void)state;
    long n = 100003;
    float *x = malloc(n * 4);
    cuda_test_randn(x, n, 3, &rng);
    x[0] = NAN, x[1] = INFINITY, x[2] = -0.0f, x[3] = 1e-40f;
    float *gx = cuda_test_upload(x, n, MOE_DT_F32);
    void *gb = cuda_test_poisoned(n, MOE_DT_BF16);
    CUDA_OK(moe_cuda_cast(cuda_test_ctx, gb, MOE_DT_BF16, gx, MOE_DT_F32, n));
    float *got = cuda_test_download(gb, n, MOE_DT_BF16);
    /* the device's rounding equals the host's, bit for bit */
    for (long i = 0; i < n; i++) {
        float want = moe_bf16_to_float(moe_bf16_from_float(x[i]));
        if (isnan(want))
            assert_true(isnan(got[i]));
        else
            assert_memory_equal(&got[i], &want, 4);
    }
    free(x), free(got);
    moe_cuda_free(cuda_test_ctx, gx), moe_cuda_free(cuda_test_ctx, gb);
}

int main(void) {
    cuda_test_init_or_skip();
    cuda_test_seed(&rng);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_edges),
        cmocka_unit_test(test_cast_roundtrip),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    moe_cuda_destroy(cuda_test_ctx);
    return rc;
}
