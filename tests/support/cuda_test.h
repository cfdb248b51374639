/* What the GPU tests (tests/test_cuda_*.c) share: a context or a skip
 * (exit 77) when this machine has no GPU, uploads and downloads of float
 * arrays in either activation type, and the normalised error of a result
 * against the CPU reference, with NaN/Inf reported separately. */
#ifndef MOE_CUDA_TEST_H
#define MOE_CUDA_TEST_H

#include "ops/cuda/cuda_ops.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The context every test in the file uses; exits 77 (CTest: skipped) when
 * there is no device. Call it from main before cmocka_run_group_tests. */
static moe_cuda *cuda_test_ctx;
static inline void cuda_test_init_or_skip(void) {
    char why[256] = "";
    if (moe_cuda_device_count(why, sizeof why) == 0) {
        printf("SKIP: no CUDA device: %s\n", why);
        exit(77);
    }
    if (moe_cuda_create(&cuda_test_ctx, 0) != MOE_OK) {
        printf("cannot create a CUDA context: %s\n", moe_last_error());
        exit(1);
    }
    char desc[256];
    moe_cuda_describe(cuda_test_ctx, desc, sizeof desc);
    printf("device: %s\n", desc);
}

/* Fresh inputs every run (the fast path must compute the same
 * function on any input); MOE_TEST_SEED repeats a failing run. */
static inline void cuda_test_seed(moe_rng *rng) {
    const char *env = getenv("MOE_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    printf("seed: %llu (MOE_TEST_SEED=%llu repeats this run)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    moe_rng_seed(rng, seed);
}

/* Must succeed; prints the library's message when it does not. */
#define CUDA_OK(call)                                                                              \
    do {                                                                                           \
        moe_status st_ = (call);                                                                   \
        if (st_ != MOE_OK) fail_msg("%s: %s", #call, moe_last_error());                            \
    } while (0)

/* A device copy of host floats [n] stored as dt (bf16 rounds). */
static inline void *cuda_test_upload(const float *host, long n, moe_dtype dt) {
    void *d;
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, &d, (size_t)n * moe_dtype_size(dt)));
    if (dt == MOE_DT_F32) {
        CUDA_OK(moe_cuda_upload(cuda_test_ctx, d, host, (size_t)n * 4));
    } else {
        uint16_t *h = malloc((size_t)n * 2);
        for (long i = 0; i < n; i++) h[i] = moe_bf16_from_float(host[i]);
        CUDA_OK(moe_cuda_upload(cuda_test_ctx, d, h, (size_t)n * 2));
        CUDA_OK(moe_cuda_sync(cuda_test_ctx));
        free(h);
    }
    return d;
}

/* A device buffer of n elements of dt filled with a poison byte pattern
 * (0xff: NaN in both types), so an element a kernel forgot shows as NaN. */
static inline void *cuda_test_poisoned(long n, moe_dtype dt) {
    void *d;
    size_t bytes = (size_t)n * moe_dtype_size(dt);
    unsigned char *h = malloc(bytes ? bytes : 1);
    for (size_t i = 0; i < bytes; i++) h[i] = 0xff;
    CUDA_OK(moe_cuda_alloc(cuda_test_ctx, &d, bytes));
    CUDA_OK(moe_cuda_upload(cuda_test_ctx, d, h, bytes));
    CUDA_OK(moe_cuda_sync(cuda_test_ctx));
    free(h);
    return d;
}

/* Host floats [n] from a device buffer of dt (caller frees). */
static inline float *cuda_test_download(const void *d, long n, moe_dtype dt) {
    float *out = malloc((size_t)(n ? n : 1) * sizeof *out);
    if (dt == MOE_DT_F32) {
        CUDA_OK(moe_cuda_download(cuda_test_ctx, out, d, (size_t)n * 4));
    } else {
        uint16_t *h = malloc((size_t)(n ? n : 1) * 2);
        CUDA_OK(moe_cuda_download(cuda_test_ctx, h, d, (size_t)n * 2));
        for (long i = 0; i < n; i++) out[i] = moe_bf16_to_float(h[i]);
        free(h);
    }
    return out;
}

/* The host values as dt would store them (bf16 rounding), so the CPU
 * reference sees exactly the inputs the GPU sees. */
static inline void cuda_test_round(float *x, long n, moe_dtype dt) {
    if (dt == MOE_DT_BF16)
        for (long i = 0; i < n; i++) x[i] = moe_bf16_to_float(moe_bf16_from_float(x[i]));
}

/* Fresh N(0, scale^2) values, a new draw each call. */
static inline void cuda_test_randn(float *x, long n, float scale, moe_rng *rng) {
    for (long i = 0; i < n; i++) x[i] = moe_rng_normal(rng) * scale;
}

/* Normalised error ||got - want|| / max(||want||, 1e-30). Fails the test on
 * any NaN or Inf in got (the reference is finite) or when the error is over
 * bound. Prints the figure either way, so the log records the margin. */
#define cuda_assert_close(what, got, want, n, bound)                                               \
    cuda_assert_close_at((what), (got), (want), (n), (bound), __FILE__, __LINE__)
static inline void cuda_assert_close_at(const char *what, const float *got, const float *want,
                                        long n, double bound, const char *file, int line) {
    double num = 0, den = 0;
    long bad = -1;
    for (long i = 0; i < n; i++) {
        if (!isfinite(got[i]) && isfinite(want[i])) {
            if (bad < 0) bad = i;
            continue;
        }
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    if (bad >= 0) {
        print_error("%s: element %ld is %g (reference %g): NaN/Inf or never written\n", what, bad,
                    got[bad], want[bad]);
        _fail(file, line);
    }
    double err = sqrt(num) / (den > 1e-60 ? sqrt(den) : 1e-30);
    printf("  %-40s n=%-9ld rel.err %.3e (bound %.1e)\n", what, n, err, bound);
    if (!(err <= bound)) {
        print_error("%s: normalised error %.3e over the bound %.1e\n", what, err, bound);
        _fail(file, line);
    }
}

/* Per-dtype bounds (docs/cuda.md): fp32 kernels against the fp32 CPU
 * reference land near 1e-6; bf16 storage of inputs and outputs near 4e-3. */
static inline double cuda_test_bound(moe_dtype dt, double f32, double bf16) {
    return dt == MOE_DT_F32 ? f32 : bf16;
}

#endif
