/* The dense data sets' front: load a source, split it, normalise it with
 * the training split's statistics; gather batches; free. */
#include "dataset_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

moe_status dataset_alloc(moe_dataset *d, int n, int dim, int n_classes, int with_soft,
                         int with_weights) {
    memset(d, 0, sizeof *d);
    d->n = n;
    d->dim = dim;
    d->n_classes = n_classes;
    size_t rows = n > 0 ? (size_t)n : 1; /* an empty split still owns (tiny) arrays */
    d->x = malloc(rows * (size_t)dim * sizeof *d->x);
    d->labels = malloc(rows * sizeof *d->labels);
    if (with_soft) d->soft = malloc(rows * (size_t)n_classes * sizeof *d->soft);
    if (with_weights) d->weights = malloc(rows * sizeof *d->weights);
    if (!d->x || !d->labels || (with_soft && !d->soft) || (with_weights && !d->weights)) {
        dataset_clear(d);
        return moe_error(MOE_ERR_NOMEM, "data set: out of memory for %d examples of %d numbers", n,
                         dim);
    }
    return MOE_OK;
}

void dataset_clear(moe_dataset *d) {
    free(d->x);
    free(d->labels);
    free(d->soft);
    free(d->weights);
    memset(d, 0, sizeof *d);
}

void names_free(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

void dataset_full_free(dataset_full *f) {
    names_free(f->class_names, f->all.n_classes);
    names_free(f->feature_names, f->all.dim);
    dataset_clear(&f->all);
    dataset_clear(&f->test);
    memset(f, 0, sizeof *f);
}

void moe_dataset_splits_free(moe_dataset_splits *s) {
    if (!s) return;
    names_free(s->class_names, s->train.n_classes);
    names_free(s->feature_names, s->train.dim);
    free(s->mean);
    free(s->std);
    dataset_clear(&s->train);
    dataset_clear(&s->val);
    dataset_clear(&s->test);
    memset(s, 0, sizeof *s);
}

static void copy_shape(moe_dataset *to, const moe_dataset *from) {
    to->channels = from->channels;
    to->height = from->height;
    to->width = from->width;
}

/* f's examples into s's splits: images keep the test file as the test
 * split; tables deal out all three. */
static moe_status split_full(moe_dataset_splits *s, dataset_full *f, const moe_data_config *cfg,
                             uint64_t seed, int images) {
    double val = cfg->val_fraction, test = images ? 0 : cfg->test_fraction;
    if (!(val >= 0 && val < 1 && test >= 0 && test < 1 && val + test < 1))
        return moe_error(MOE_ERR_INVALID,
                         "data.val_fraction %g and data.test_fraction %g: each must be in [0, 1) "
                         "and their sum below 1 (train gets the rest)",
                         val, test);
    uint8_t *which = malloc(f->all.n > 0 ? (size_t)f->all.n : 1);
    if (!which) return moe_error(MOE_ERR_NOMEM, "data set split: out of memory");
    moe_status st =
        dataset_split_assign(f->all.labels, f->all.n, f->all.n_classes, val, test, seed, which);
    if (st == MOE_OK) st = dataset_subset(&s->train, &f->all, which, SPLIT_TRAIN);
    if (st == MOE_OK) st = dataset_subset(&s->val, &f->all, which, SPLIT_VAL);
    if (st == MOE_OK && !images) st = dataset_subset(&s->test, &f->all, which, SPLIT_TEST);
    free(which);
    if (st != MOE_OK) return st;
    if (images) { /* the test file's set moves over as it is */
        s->test = f->test;
        memset(&f->test, 0, sizeof f->test);
    }
    copy_shape(&s->train, &f->all);
    copy_shape(&s->val, &f->all);
    copy_shape(&s->test, &f->all);
    if (s->train.n == 0)
        return moe_error(MOE_ERR_INVALID,
                         "data set %s: the training split is empty (%d examples, val_fraction "
                         "%g, test_fraction %g)",
                         cfg->path, f->all.n, val, test);
    return MOE_OK;
}

moe_status moe_dataset_load(moe_dataset_splits *s, const moe_data_config *cfg, uint64_t seed) {
    if (!s || !cfg) return moe_error(MOE_ERR_INVALID, "moe_dataset_load: no splits or config");
    memset(s, 0, sizeof *s);
    dataset_full f;
    int images;
    moe_status st;
    if (strcmp(cfg->source, "fashion-mnist") == 0) {
        images = 1;
        st = fashion_mnist_load(&f, cfg->path);
    } else if (strcmp(cfg->source, "csv") == 0) {
        images = 0;
        st = csv_table_load(&f, cfg);
    } else
        return moe_error(MOE_ERR_INVALID,
                         "data.source \"%s\" is no dense data set (\"fashion-mnist\" or \"csv\")",
                         cfg->source);
    if (st != MOE_OK) return st;
    snprintf(s->source, sizeof s->source, "%s", cfg->source);
    st = split_full(s, &f, cfg, seed, images);
    if (st == MOE_OK) { /* the names move over */
        s->class_names = f.class_names;
        s->feature_names = f.feature_names;
        f.class_names = f.feature_names = NULL;
    }
    dataset_full_free(&f);
    if (st == MOE_OK && cfg->normalize) {
        int groups = images ? s->train.channels : s->train.dim;
        st = dataset_norm_stats(&s->train, groups, &s->mean, &s->std);
        if (st == MOE_OK) {
            dataset_norm_apply(&s->train, groups, s->mean, s->std);
            dataset_norm_apply(&s->val, groups, s->mean, s->std);
            dataset_norm_apply(&s->test, groups, s->mean, s->std);
        }
    }
    if (st != MOE_OK) moe_dataset_splits_free(s);
    return st;
}

void moe_dataset_gather(const moe_dataset *d, const int *idx, int B, float *x, int32_t *labels,
                        float *soft, float *weights) {
    size_t dim = (size_t)d->dim, k = (size_t)d->n_classes;
    for (int b = 0; b < B; b++) {
        size_t i = (size_t)idx[b];
        if (x) memcpy(x + (size_t)b * dim, d->x + i * dim, dim * sizeof *x);
        if (labels) labels[b] = d->labels[i];
        if (soft && d->soft) memcpy(soft + (size_t)b * k, d->soft + i * k, k * sizeof *soft);
        if (weights) weights[b] = d->weights ? d->weights[i] : 1.0f;
    }
}

float moe_dataset_black_value(const moe_dataset_splits *s) {
    if (!s || !s->mean || !s->std) return 0.0f;
    return -s->mean[0] / s->std[0];
}
