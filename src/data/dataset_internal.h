/* Shared by the dense data set loaders (src/data/idx.c, fashion_mnist.c,
 * csv_*.c, dataset*.c): a whole unsplit set with its names, the readers
 * behind it, the split and the normalisation. */
#ifndef MOE_DATASET_INTERNAL_H
#define MOE_DATASET_INTERNAL_H

#include "moe/dataset.h"

#include <stddef.h>
#include <stdint.h>

/* --- IDX files (LeCun's MNIST format): a big-endian header, then the
 * unsigned bytes. */
typedef struct idx_array {
    uint8_t *data;    /* dims[0] x ... x dims[ndims - 1] bytes */
    int ndims;        /* 1 (labels) or 3 (images) */
    uint32_t dims[3]; /* dims[0]: items */
} idx_array;

/* Reads path (gzip'd or plain) holding unsigned bytes in ndims dimensions;
 * `fix` says what to do about a bad file (it ends each error message). */
moe_status idx_read(const char *path, int ndims, const char *fix, idx_array *a);

/* --- A loaded set before the split: every example, and its names. */
typedef struct dataset_full {
    moe_dataset all;      /* for Fashion-MNIST: the training file's examples */
    moe_dataset test;     /* Fashion-MNIST's t10k; empty (n 0) for tables */
    char **class_names;   /* [all.n_classes] */
    char **feature_names; /* tables: [all.dim]; NULL for images */
} dataset_full;

moe_status fashion_mnist_load(dataset_full *f, const char *dir);
moe_status csv_table_load(dataset_full *f, const moe_data_config *cfg);
void dataset_full_free(dataset_full *f);

/* A set's arrays for n examples of dim numbers (soft, weights when asked);
 * an empty set still gets one-row arrays. */
moe_status dataset_alloc(moe_dataset *d, int n, int dim, int n_classes, int with_soft,
                         int with_weights);
void dataset_clear(moe_dataset *d);
/* n malloc'd strings (NULL entries allowed) and the array */
void names_free(char **names, int n);

/* --- Split: which[i] = 0 train, 1 val, 2 test for each example, per class
 * (labels [n] in [0, n_classes)): its examples shuffled with a generator
 * seeded from seed and the class, the first round(n_c test) to test, the
 * next round(n_c val) to val, the rest to train. */
enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST };
moe_status dataset_split_assign(const int32_t *labels, int n, int n_classes, double val,
                                double test, uint64_t seed, uint8_t *which);
/* The examples of `all` with which[i] == part, in their order, into out. */
moe_status dataset_subset(moe_dataset *out, const moe_dataset *all, const uint8_t *which, int part);

/* --- Normalisation: x is [n, groups * per]; each group (an image channel,
 * a table feature) gets its own mean and standard deviation. */
moe_status dataset_norm_stats(const moe_dataset *train, int groups, float **mean, float **std);
void dataset_norm_apply(moe_dataset *d, int groups, const float *mean, const float *std);

#endif
