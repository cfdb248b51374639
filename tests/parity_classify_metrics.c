/* Parity with scikit-learn and numpy (scripts/ref/classify_metrics.py):
 * confusion matrices, supports and the majority class exactly; accuracy,
 * per-class and averaged precision / recall / F1 and the baseline's scores
 * to 1e-12; percentiles, min and max bit for bit (numpy.percentile,
 * method "linear"), the mean to 1e-12 relative. */
#include "test_util.h"

#include "moe/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-12

static ref_file ref;
static const char *ref_path;

static int setup(void **state) {
    (void)state;
    return ref_load(&ref, ref_path);
}

static int teardown(void **state) {
    (void)state;
    ref_free(&ref);
    return 0;
}

static const ref_tensor *get(const char *prefix, int i, const char *name) {
    char key[96];
    snprintf(key, sizeof key, "%s%d/%s", prefix, i, name);
    const ref_tensor *t = ref_get(&ref, key);
    assert_non_null(t);
    return t;
}

/* The n values of case i's tensor name. */
static const double *want_of(int i, const char *name, long n) {
    const ref_tensor *t = get("case", i, name);
    assert_int_equal(t->numel, n);
    return t->data;
}

static int32_t *ints_of(const ref_tensor *t) {
    int32_t *v = malloc(sizeof *v * (size_t)(t->numel ? t->numel : 1));
    assert_non_null(v);
    ref_to_int(v, t);
    return v;
}

/* Compares n values with the reference's; returns the number that differ. */
static long against(const char *what, int i, const double *got, const double *want, long n,
                    double tol) {
    char label[96];
    snprintf(label, sizeof label, "%s (case %d)", what, i);
    return ref_compare_f64(label, got, want, n, tol, 0);
}

static long classify_case(int i) {
    const int C = (int)llround(get("case", i, "n_classes")->data[0]);
    const ref_tensor *truth = get("case", i, "true"), *pred = get("case", i, "pred");
    int32_t *y = ints_of(truth), *p = ints_of(pred);
    moe_confusion cm;
    assert_int_equal(moe_confusion_init(&cm, C), MOE_OK);
    assert_int_equal(moe_confusion_add_many(&cm, y, p, (size_t)truth->numel), MOE_OK);
    assert_int_equal(cm.total, truth->numel);
    double *counts = malloc(sizeof *counts * (size_t)C * (size_t)C);
    assert_non_null(counts);
    for (long k = 0; k < (long)C * C; k++) counts[k] = (double)cm.counts[k];
    long bad =
        against("confusion", i, counts, want_of(i, "confusion", (long)C * C), (long)C * C, 0);

    moe_classify_scores s;
    assert_int_equal(moe_classify_report(&cm, &s), MOE_OK);
    double *column = malloc(sizeof *column * (size_t)C);
    assert_non_null(column);
    const char *fields[] = {"precision", "recall", "f1", "support"};
    for (int f = 0; f < 4; f++) {
        for (int k = 0; k < C; k++) {
            const moe_class_scores *c = &s.per_class[k];
            const double v[] = {c->precision, c->recall, c->f1, (double)c->support};
            column[k] = v[f];
        }
        bad += against(fields[f], i, column, want_of(i, fields[f], C), C, f == 3 ? 0 : TOL);
    }
    bad += against("accuracy", i, &s.accuracy, want_of(i, "accuracy", 1), 1, TOL);
    const double macro[] = {s.macro_precision, s.macro_recall, s.macro_f1};
    const double weighted[] = {s.weighted_precision, s.weighted_recall, s.weighted_f1};
    bad += against("macro p/r/f1", i, macro, want_of(i, "macro", 3), 3, TOL);
    bad += against("weighted p/r/f1", i, weighted, want_of(i, "weighted", 3), 3, TOL);
    moe_classify_scores_free(&s);

    moe_baseline b;
    assert_int_equal(moe_majority_baseline(&cm, &b), MOE_OK);
    const double *want = want_of(i, "baseline", 3); /* class, accuracy, macro F1 */
    const double base[] = {b.majority_class, b.accuracy, b.macro_f1};
    bad += against("majority class", i, base, want, 1, 0);
    bad += against("baseline accuracy, macro F1", i, base + 1, want + 1, 2, TOL);
    moe_confusion_free(&cm);
    free(counts);
    free(column);
    free(y);
    free(p);
    return bad;
}

static void test_classification(void **state) {
    (void)state;
    const int n = (int)ref_scalar(&ref, "n_cases");
    assert_true(n > 0);
    long bad = 0;
    for (int i = 0; i < n; i++) bad += classify_case(i);
    assert_int_equal(bad, 0);
}

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long latency_case(int i) {
    const ref_tensor *samples = get("latency", i, "samples"), *q = get("latency", i, "q");
    const ref_tensor *want = get("latency", i, "percentile"), *stats = get("latency", i, "stats");
    const size_t n = (size_t)samples->numel;
    moe_latency l;
    moe_latency_init(&l);
    for (size_t k = 0; k < n; k++) assert_int_equal(moe_latency_add(&l, samples->data[k]), MOE_OK);
    moe_latency_summary s;
    assert_int_equal(moe_latency_summarize(&l, &s), MOE_OK);
    assert_int_equal(s.count, n);

    /* every percentile the script asked numpy for, bit for bit */
    double *sorted = malloc(sizeof *sorted * n), got[32];
    assert_non_null(sorted);
    assert_true(q->numel <= 32);
    memcpy(sorted, samples->data, sizeof *sorted * n);
    qsort(sorted, n, sizeof *sorted, ascending);
    for (long k = 0; k < q->numel; k++) got[k] = moe_percentile(sorted, n, q->data[k]);
    assert_int_equal(want->numel, q->numel);
    long bad = against("percentiles", i, got, want->data, (long)q->numel, 0);
    /* the summary's p50, p90, p99 are among them */
    for (long k = 0; k < q->numel; k++) {
        const double qk = q->data[k];
        const double *p = qk == 50 ? &s.p50 : qk == 90 ? &s.p90 : qk == 99 ? &s.p99 : NULL;
        if (p) bad += against("summary percentile", i, p, &want->data[k], 1, 0);
    }
    assert_int_equal(stats->numel, 3);
    bad += ref_compare_f64("latency mean", &s.mean, &stats->data[0], 1, 0, TOL); /* relative */
    const double extremes[] = {s.min, s.max};
    bad += against("latency min, max", i, extremes, &stats->data[1], 2, 0);
    free(sorted);
    moe_latency_free(&l);
    return bad;
}

static void test_latency(void **state) {
    (void)state;
    const int n = (int)ref_scalar(&ref, "n_latency");
    assert_true(n > 0);
    long bad = 0;
    for (int i = 0; i < n; i++) bad += latency_case(i);
    assert_int_equal(bad, 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s REF_FILE (written by scripts/ref/classify_metrics.py)\n",
                argv[0]);
        return 2;
    }
    ref_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classification),
        cmocka_unit_test(test_latency),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
