/* Core: RNG determinism and ranges, arena alignment and folding, errors. */
#include "test_util.h"

#include <math.h>
#include <string.h>

static void test_rng_same_seed_same_stream(void **state) {
    (void)state;
    moe_rng a, b;
    moe_rng_seed(&a, 42);
    moe_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) assert_int_equal(moe_rng_u64(&a), moe_rng_u64(&b));
    moe_rng_seed(&b, 43);
    assert_true(moe_rng_u64(&a) != moe_rng_u64(&b));
}

static void test_rng_ranges_and_moments(void **state) {
    (void)state;
    moe_rng r;
    moe_rng_seed(&r, 7);
    double sum = 0, sum2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = moe_rng_uniform(&r);
        assert_true(u >= 0.0f && u < 1.0f);
        assert_true(moe_rng_below(&r, 10) < 10);
        double z = moe_rng_normal(&r);
        sum += z;
        sum2 += z * z;
    }
    assert_true(fabs(sum / n) < 0.01);
    assert_true(fabs(sum2 / n - 1.0) < 0.02);
}

static void test_arena_aligns_and_folds(void **state) {
    (void)state;
    moe_arena a;
    moe_arena_init(&a);
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 10; i++) {
            char *p = moe_arena_alloc(&a, 300000 + (size_t)i);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % 64, 0);
            memset(p, i, 300000);
        }
        assert_int_equal(moe_arena_reset(&a), MOE_OK);
        assert_int_equal(moe_arena_blocks(&a), 1); /* folded: later steps never malloc */
    }
    assert_true(a.high_water >= 3000000);
    moe_arena_free(&a);
}

/* Scratch released after each "layer" is reused by the next, also when the
 * first step had to add chunks after the mark; the peak is one layer. */
static void test_arena_release_reuses_scratch(void **state) {
    (void)state;
    moe_arena a;
    moe_arena_init(&a);
    for (int step = 0; step < 3; step++) {
        char *keep = moe_arena_alloc(&a, 1000);
        assert_non_null(keep);
        memset(keep, 7, 1000);
        size_t used = a.used;
        char *first = NULL;
        for (int layer = 0; layer < 4; layer++) {
            size_t mark = moe_arena_mark(&a);
            assert_int_equal(mark, used);
            for (int i = 0; i < 5; i++) { /* 5 x 700 kB: new chunks in the first step */
                char *p = moe_arena_alloc(&a, 700000);
                assert_non_null(p);
                assert_int_equal((uintptr_t)p % 64, 0);
                memset(p, layer, 700000);
                if (i == 0 && step > 0) {
                    if (layer == 0) first = p;
                    assert_ptr_equal(p, first); /* same memory every layer */
                }
            }
            moe_arena_release(&a, mark);
            assert_int_equal(a.used, used);
        }
        for (int i = 0; i < 1000; i++) assert_int_equal(keep[i], 7); /* kept data intact */
        assert_true(a.high_water < 1000 + 5 * 700000 + 6 * 64);      /* one layer, not four */
        moe_arena_release(&a, a.used + 1);                           /* bogus mark: ignored */
        assert_int_equal(a.used, used);
        assert_int_equal(moe_arena_reset(&a), MOE_OK);
        assert_int_equal(moe_arena_blocks(&a), 1);
    }
    moe_arena_free(&a);
}

static void test_error_message(void **state) {
    (void)state;
    assert_int_equal(moe_error(MOE_ERR_INVALID, "bad %s", "thing"), MOE_ERR_INVALID);
    assert_string_equal(moe_last_error(), "bad thing");
    assert_string_equal(moe_status_name(MOE_ERR_FORMAT), "malformed file");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_same_seed_same_stream),
        cmocka_unit_test(test_rng_ranges_and_moments),
        cmocka_unit_test(test_arena_aligns_and_folds),
        cmocka_unit_test(test_arena_release_reuses_scratch),
        cmocka_unit_test(test_error_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
