/* Stratified, seeded train/val/test split of a labelled set. Each class's
 * examples are shuffled (Fisher-Yates, xoshiro seeded from the seed and the
 * class), then dealt: the first round(n_c test) to test, the next
 * round(n_c val) to val, the rest to train. So every class keeps its share
 * in every split to within one example, the result depends only on the
 * labels and the seed, and a class's split does not change when another
 * class gains or loses examples. Splits keep the examples' file order. */
#include "dataset_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

moe_status dataset_split_assign(const int32_t *labels, int n, int n_classes, double val,
                                double test, uint64_t seed, uint8_t *which) {
    /* members grouped by class (a counting sort), each class in file order */
    int *members = malloc((n > 0 ? (size_t)n : 1) * sizeof *members);
    int *start = calloc((size_t)n_classes + 1, sizeof *start);
    if (!members || !start) {
        free(members);
        free(start);
        return moe_error(MOE_ERR_NOMEM, "data set split: out of memory");
    }
    for (int i = 0; i < n; i++) start[labels[i] + 1]++;
    for (int c = 0; c < n_classes; c++) start[c + 1] += start[c];
    for (int i = 0; i < n; i++) members[start[labels[i]]++] = i;
    for (int c = n_classes; c > 0; c--) start[c] = start[c - 1]; /* undo the fill's advance */
    start[0] = 0;
    for (int c = 0; c < n_classes; c++) {
        int *mem = members + start[c], m = start[c + 1] - start[c];
        moe_rng rng;
        moe_rng_seed(&rng, seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(c + 1)));
        for (int i = m - 1; i > 0; i--) {
            int j = (int)moe_rng_below(&rng, (uint32_t)i + 1);
            int t = mem[i];
            mem[i] = mem[j];
            mem[j] = t;
        }
        int n_test = (int)llround(m * test), n_val = (int)llround(m * val);
        if (n_test + n_val > m) n_val = m - n_test; /* rounding both up on a tiny class */
        for (int i = 0; i < m; i++)
            which[mem[i]] = i < n_test ? SPLIT_TEST : i < n_test + n_val ? SPLIT_VAL : SPLIT_TRAIN;
    }
    free(start);
    free(members);
    return MOE_OK;
}

moe_status dataset_subset(moe_dataset *out, const moe_dataset *all, const uint8_t *which,
                          int part) {
    int m = 0;
    for (int i = 0; i < all->n; i++) m += which[i] == part;
    moe_status st =
        dataset_alloc(out, m, all->dim, all->n_classes, all->soft != NULL, all->weights != NULL);
    if (st != MOE_OK) return st;
    size_t dim = (size_t)all->dim, k = (size_t)all->n_classes;
    for (int i = 0, j = 0; i < all->n; i++) {
        if (which[i] != part) continue;
        memcpy(out->x + (size_t)j * dim, all->x + (size_t)i * dim, dim * sizeof *out->x);
        out->labels[j] = all->labels[i];
        if (all->soft)
            memcpy(out->soft + (size_t)j * k, all->soft + (size_t)i * k, k * sizeof *out->soft);
        if (all->weights) out->weights[j] = all->weights[i];
        j++;
    }
    return MOE_OK;
}
