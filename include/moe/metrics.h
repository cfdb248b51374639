/* Evaluation metrics: a confusion matrix and the classification scores
 * drawn from it (accuracy, per-class and averaged precision / recall / F1,
 * with scikit-learn's conventions), the majority-class baseline, and
 * latency statistics (percentiles as numpy.percentile's default).
 * docs/eval.md defines every number. */
#ifndef MOE_METRICS_H
#define MOE_METRICS_H

#include "moe/core.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON; /* <cjson/cJSON.h>; only moe_classify_report_json needs it */

/* --- Confusion matrix: counts[t * n_classes + p] is the number of samples
 * of true class t predicted as p (rows true, columns predicted, as
 * sklearn.metrics.confusion_matrix). */
typedef struct moe_confusion {
    int n_classes;   /* C, classes 0 .. C-1 */
    int64_t *counts; /* [C, C], true x predicted */
    int64_t total;   /* samples added */
} moe_confusion;

/* All counts zero. n_classes >= 1. */
moe_status moe_confusion_init(moe_confusion *cm, int n_classes);
/* Counts one sample; MOE_ERR_INVALID (matrix unchanged) when a class is
 * outside 0 .. C-1. */
moe_status moe_confusion_add(moe_confusion *cm, int true_class, int predicted_class);
/* Counts n samples; all are checked first, so on MOE_ERR_INVALID none is
 * counted. */
moe_status moe_confusion_add_many(moe_confusion *cm, const int32_t *true_classes,
                                  const int32_t *predicted_classes, size_t n);
void moe_confusion_free(moe_confusion *cm);

/* --- Scores of a confusion matrix. Divisions by zero give 0 (sklearn's
 * zero_division=0): a class never predicted has precision 0, a class with
 * no support has recall 0, a class neither present nor predicted has F1 0.
 * Averages run over all C classes, absent ones included (sklearn with
 * labels=range(C)). */
typedef struct moe_class_scores {
    double precision;  /* tp / predicted */
    double recall;     /* tp / support */
    double f1;         /* 2 tp / (support + predicted) = 2PR / (P + R) */
    int64_t support;   /* samples of this true class (row sum) */
    int64_t predicted; /* samples predicted as this class (column sum) */
} moe_class_scores;

typedef struct moe_classify_scores {
    int n_classes;
    int64_t total;          /* samples */
    double accuracy;        /* correct / total */
    double macro_precision; /* unweighted means over the C classes */
    double macro_recall;
    double macro_f1;
    double weighted_precision; /* means weighted by support */
    double weighted_recall;    /* (equals accuracy) */
    double weighted_f1;
    moe_class_scores *per_class; /* [C], malloc'd; moe_classify_scores_free */
} moe_classify_scores;

/* MOE_ERR_INVALID when the matrix holds no samples. */
moe_status moe_classify_report(const moe_confusion *cm, moe_classify_scores *out);
void moe_classify_scores_free(moe_classify_scores *s);

/* The report as a JSON object (*out; the caller cJSON_Delete()s it):
 * {"total", "accuracy", "macro_precision", "macro_recall", "macro_f1",
 *  "weighted_precision", "weighted_recall", "weighted_f1",
 *  "per_class": [{"label"?, "precision", "recall", "f1", "support"}],
 *  "confusion": [[counts of true class 0 by predicted class], ...]}.
 * class_names: C strings (each entry's "label"), or NULL for none. */
moe_status moe_classify_report_json(const moe_confusion *cm, const char *const *class_names,
                                    struct cJSON **out);

/* --- Majority-class baseline: always predict the most frequent true class
 * (the lowest index on a tie, as sklearn's DummyClassifier
 * strategy="most_frequent"); the scores a model has to beat. */
typedef struct moe_baseline {
    int majority_class;
    double accuracy; /* support of that class / total */
    double macro_f1; /* its F1 / C: every other class scores 0 */
} moe_baseline;

/* MOE_ERR_INVALID when the matrix holds no samples. */
moe_status moe_majority_baseline(const moe_confusion *cm, moe_baseline *out);

/* --- Latency: samples in seconds, summarised. */
typedef struct moe_latency {
    double *samples; /* in the order added */
    size_t n, cap;
} moe_latency;

typedef struct moe_latency_summary {
    size_t count;
    double mean, min, max;
    double p50, p90, p99; /* moe_percentile of the samples at 50, 90, 99 */
} moe_latency_summary;

void moe_latency_init(moe_latency *l);
/* MOE_ERR_INVALID for a NaN, infinite or negative sample (not kept). */
moe_status moe_latency_add(moe_latency *l, double seconds);
/* MOE_ERR_INVALID when there are no samples. The samples keep their order. */
moe_status moe_latency_summarize(const moe_latency *l, moe_latency_summary *out);
void moe_latency_free(moe_latency *l);

/* The q-th percentile (0 <= q <= 100) of n ascending values, bit for bit
 * numpy.percentile(x, q) with its default method="linear": position
 * h = (n - 1) * (q / 100), i = floor(h), g = h - i; x[i] + (x[i+1] - x[i]) * g,
 * computed as x[i+1] - (x[i+1] - x[i]) * (1 - g) when g >= 0.5; x[n-1] when
 * h >= n - 1. NAN when n is 0 or q is outside [0, 100]. */
double moe_percentile(const double *sorted, size_t n, double q);

#ifdef __cplusplus
}
#endif
#endif
