/* Dense-feature data sets for the seed model families (cnn_moe, deepmoe,
 * mlp_moe): Fashion-MNIST images from Debian's dataset-fashion-mnist idx
 * files, and CSV tables (a class column, or probability columns as soft
 * labels, and an optional weight column). One loader for both
 * (data.source "fashion-mnist" | "csv"), stratified train/val/test splits,
 * normalisation with the training split's statistics, batch gathering and
 * image augmentation (docs/data.md). */
#ifndef MOE_DATASET_H
#define MOE_DATASET_H

#include "moe/config.h"
#include "moe/core.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where the loader looks when data.path is "" (source fashion-mnist). */
#define MOE_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct moe_dataset {
    int n;                       /* examples */
    int dim;                     /* numbers per example (channels*height*width for images) */
    int channels, height, width; /* images; 0 for tables */
    int n_classes;
    float *x;        /* [n, dim] (normalised when data.normalize) */
    int32_t *labels; /* [n] class ids (soft labels: the argmax) */
    float *soft;     /* [n, n_classes] target distributions (rows sum to 1), or NULL */
    float *weights;  /* [n] per-row weights, or NULL */
} moe_dataset;

typedef struct moe_dataset_splits {
    moe_dataset train, val, test;
    char **class_names;   /* [n_classes] ("T-shirt/top", ... for Fashion-MNIST; the table's
                             class names or probability column names) */
    char **feature_names; /* tables: [dim]; NULL for images */
    float *mean, *std;    /* normalisation used (per channel for images, per feature for
                             tables), NULL when off */
    char source[32];
} moe_dataset_splits;

/* Loads what cfg names (source "fashion-mnist": cfg->path or the default
 * MOE_FASHION_MNIST_DIR, idx files gzip'd or not; "csv": cfg->path).
 * Train/val split of the training set by cfg->val_fraction, stratified by
 * class, deterministic from seed; Fashion-MNIST's test set (t10k) is the
 * test split (test_fraction is not used); a table is split train/val/test
 * (test_fraction) stratified. Normalisation statistics come from the
 * training split only. On failure s is left empty (nothing to free). */
moe_status moe_dataset_load(moe_dataset_splits *s, const moe_data_config *cfg, uint64_t seed);
void moe_dataset_splits_free(moe_dataset_splits *s);

/* Copies examples idx[0..B) (each in [0, d->n)) into x [B, dim], labels
 * [B], soft [B, n_classes] (if the set has soft labels and soft != NULL),
 * weights [B] (1 when the set has none; if weights != NULL). x and labels
 * may be NULL too. */
void moe_dataset_gather(const moe_dataset *d, const int *idx, int B, float *x, int32_t *labels,
                        float *soft, float *weights);

/* In place on a batch of images [B, C, H, W]: random crop after
 * zero-padding by pad pixels (pad 0 = none) and, when flip, a horizontal
 * flip with probability 1/2; the padding takes the value fill, which should
 * be the value a black pixel has after normalisation
 * (moe_dataset_black_value). Per image it draws the crop's row offset, then
 * its column offset (each uniform in [0, 2 pad], when pad > 0), then the
 * flip (when flip). */
void moe_image_augment(float *x, int B, int C, int H, int W, int pad, int flip, float fill,
                       moe_rng *rng);

/* The value of a black (0) pixel of channel 0 after the splits'
 * normalisation: -mean/std, or 0 when normalisation is off. */
float moe_dataset_black_value(const moe_dataset_splits *s);

#ifdef __cplusplus
}
#endif
#endif
