/* Masked-LM corruption: rates, the 80/10/10 split, all-[MASK] mode, padding
 * and special tokens left alone, at least one position per batch. */
#include "test_util.h"

#include "moe/moe.h"

#include <stdlib.h>

enum { N = 200000, REGULAR = 1000, MASK_ID = 1003, PAD_ID = 1002 };

static void test_bert_rates(void **state) {
    (void)state;
    int32_t *tok = malloc(N * sizeof *tok), *orig = malloc(N * sizeof *orig),
            *tgt = malloc(N * sizeof *tgt);
    uint8_t *pad = malloc(N);
    moe_rng rng;
    moe_rng_seed(&rng, 3);
    for (long i = 0; i < N; i++) {
        pad[i] = i % 4 != 3; /* a quarter is padding */
        orig[i] = tok[i] = pad[i] ? (i % 97 == 0 ? 1001 : (int32_t)(i % REGULAR)) : PAD_ID;
    }
    long chosen = moe_mlm_mask(tok, tgt, pad, N, 0.15f, MOE_MLM_BERT, MASK_ID, REGULAR, &rng);
    long eligible = 0, masked = 0, random = 0, kept = 0, counted = 0;
    for (long i = 0; i < N; i++) {
        int ok = pad[i] && orig[i] < REGULAR;
        eligible += ok;
        if (!ok) { /* padding and specials: untouched, never a target */
            assert_int_equal(tok[i], orig[i]);
            assert_int_equal(tgt[i], -1);
            continue;
        }
        if (tgt[i] < 0) {
            assert_int_equal(tok[i], orig[i]);
            continue;
        }
        counted++;
        assert_int_equal(tgt[i], orig[i]);
        if (tok[i] == MASK_ID)
            masked++;
        else if (tok[i] == orig[i])
            kept++; /* includes the 0.1% of random draws that hit the same token */
        else
            random++;
    }
    assert_int_equal(counted, chosen);
    double rate = (double)chosen / eligible;
    assert_true(rate > 0.145 && rate < 0.155);
    assert_true((double)masked / chosen > 0.79 && (double)masked / chosen < 0.81);
    assert_true((double)random / chosen > 0.09 && (double)random / chosen < 0.11);
    assert_true((double)kept / chosen > 0.09 && (double)kept / chosen < 0.11);
    free(tok);
    free(orig);
    free(tgt);
    free(pad);
}

static void test_all_mask_and_minimum(void **state) {
    (void)state;
    int32_t tok[64], tgt[64];
    moe_rng rng;
    moe_rng_seed(&rng, 5);
    for (int i = 0; i < 64; i++) tok[i] = i;
    long chosen = moe_mlm_mask(tok, tgt, NULL, 64, 0.5f, MOE_MLM_ALL_MASK, MASK_ID, REGULAR, &rng);
    assert_true(chosen > 10);
    for (int i = 0; i < 64; i++) assert_int_equal(tok[i], tgt[i] >= 0 ? MASK_ID : i);
    /* probability 0 still masks one position, so the loss is defined */
    for (int i = 0; i < 64; i++) tok[i] = i;
    assert_int_equal(
        moe_mlm_mask(tok, tgt, NULL, 64, 0.0f, MOE_MLM_ALL_MASK, MASK_ID, REGULAR, &rng), 1);
    /* nothing eligible: nothing chosen */
    uint8_t none[64] = {0};
    assert_int_equal(moe_mlm_mask(tok, tgt, none, 64, 0.5f, MOE_MLM_BERT, MASK_ID, REGULAR, &rng),
                     0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert_rates),
        cmocka_unit_test(test_all_mask_and_minimum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
