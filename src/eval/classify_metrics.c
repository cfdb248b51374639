/* Confusion matrix, the classification scores drawn from it and the
 * majority-class baseline (include/moe/metrics.h, docs/eval.md). Scores
 * follow sklearn.metrics with zero_division=0 and labels=range(C). */
#include "moe/metrics.h"

#include <stdlib.h>
#include <string.h>

moe_status moe_confusion_init(moe_confusion *cm, int n_classes) {
    memset(cm, 0, sizeof *cm);
    if (n_classes < 1)
        return moe_error(MOE_ERR_INVALID,
                         "confusion matrix: n_classes is %d; it needs at least one class",
                         n_classes);
    cm->counts = calloc((size_t)n_classes * (size_t)n_classes, sizeof *cm->counts);
    if (!cm->counts)
        return moe_error(MOE_ERR_NOMEM, "confusion matrix: out of memory for %d x %d counts",
                         n_classes, n_classes);
    cm->n_classes = n_classes;
    return MOE_OK;
}

void moe_confusion_free(moe_confusion *cm) {
    free(cm->counts);
    memset(cm, 0, sizeof *cm);
}

static moe_status check_pair(const moe_confusion *cm, long t, long p, size_t at) {
    const long C = cm->n_classes;
    if (t >= 0 && t < C && p >= 0 && p < C) return MOE_OK;
    return moe_error(MOE_ERR_INVALID,
                     "confusion matrix: sample %zu has true class %ld and predicted class %ld; "
                     "both must be in 0..%ld (n_classes %ld): check the labels and the model's "
                     "number of classes",
                     at, t, p, C - 1, C);
}

moe_status moe_confusion_add(moe_confusion *cm, int true_class, int predicted_class) {
    moe_status st = check_pair(cm, true_class, predicted_class, 0);
    if (st != MOE_OK) return st;
    cm->counts[(size_t)true_class * (size_t)cm->n_classes + (size_t)predicted_class]++;
    cm->total++;
    return MOE_OK;
}

moe_status moe_confusion_add_many(moe_confusion *cm, const int32_t *true_classes,
                                  const int32_t *predicted_classes, size_t n) {
    for (size_t i = 0; i < n; i++) {
        moe_status st = check_pair(cm, true_classes[i], predicted_classes[i], i);
        if (st != MOE_OK) return st;
    }
    for (size_t i = 0; i < n; i++)
        cm->counts[(size_t)true_classes[i] * (size_t)cm->n_classes +
                   (size_t)predicted_classes[i]]++;
    cm->total += (int64_t)n;
    return MOE_OK;
}

/* sklearn's _prf_divide with zero_division=0 */
static double ratio_or_zero(int64_t num, int64_t den) {
    return den ? (double)num / (double)den : 0.0;
}

static moe_status need_samples(const moe_confusion *cm, const char *what) {
    if (cm->total > 0) return MOE_OK;
    return moe_error(MOE_ERR_INVALID,
                     "%s: the confusion matrix holds no samples; add predictions "
                     "(moe_confusion_add) before asking for scores",
                     what);
}

moe_status moe_classify_report(const moe_confusion *cm, moe_classify_scores *out) {
    memset(out, 0, sizeof *out);
    moe_status st = need_samples(cm, "classification report");
    if (st != MOE_OK) return st;
    const int C = cm->n_classes;
    out->per_class = calloc((size_t)C, sizeof *out->per_class);
    if (!out->per_class)
        return moe_error(MOE_ERR_NOMEM, "classification report: out of memory for %d classes", C);
    out->n_classes = C;
    out->total = cm->total;
    int64_t correct = 0;
    for (int t = 0; t < C; t++)
        for (int p = 0; p < C; p++) {
            int64_t n = cm->counts[(size_t)t * (size_t)C + (size_t)p];
            out->per_class[t].support += n;
            out->per_class[p].predicted += n;
            if (t == p) correct += n;
        }
    double sum_p = 0, sum_r = 0, sum_f = 0, wsum_p = 0, wsum_r = 0, wsum_f = 0;
    for (int k = 0; k < C; k++) {
        moe_class_scores *s = &out->per_class[k];
        int64_t tp = cm->counts[(size_t)k * (size_t)C + (size_t)k];
        s->precision = ratio_or_zero(tp, s->predicted);
        s->recall = ratio_or_zero(tp, s->support);
        /* 2PR/(P+R) from the counts: one rounding instead of four */
        s->f1 = ratio_or_zero(2 * tp, s->support + s->predicted);
        sum_p += s->precision;
        sum_r += s->recall;
        sum_f += s->f1;
        wsum_p += s->precision * (double)s->support;
        wsum_r += s->recall * (double)s->support;
        wsum_f += s->f1 * (double)s->support;
    }
    out->accuracy = (double)correct / (double)cm->total;
    out->macro_precision = sum_p / C;
    out->macro_recall = sum_r / C;
    out->macro_f1 = sum_f / C;
    out->weighted_precision = wsum_p / (double)cm->total;
    out->weighted_recall = wsum_r / (double)cm->total;
    out->weighted_f1 = wsum_f / (double)cm->total;
    return MOE_OK;
}

void moe_classify_scores_free(moe_classify_scores *s) {
    free(s->per_class);
    memset(s, 0, sizeof *s);
}

static int64_t row_sum(const moe_confusion *cm, int t) {
    const int64_t *row = cm->counts + (size_t)t * (size_t)cm->n_classes;
    int64_t sum = 0;
    for (int p = 0; p < cm->n_classes; p++) sum += row[p];
    return sum;
}

moe_status moe_majority_baseline(const moe_confusion *cm, moe_baseline *out) {
    memset(out, 0, sizeof *out);
    moe_status st = need_samples(cm, "majority baseline");
    if (st != MOE_OK) return st;
    const int C = cm->n_classes;
    int64_t best_support = -1;
    for (int t = 0; t < C; t++) {
        int64_t support = row_sum(cm, t);
        if (support > best_support) { /* strict: the lowest index wins a tie */
            best_support = support;
            out->majority_class = t;
        }
    }
    /* The baseline's own confusion matrix (every sample in the majority
     * column), scored like any model's. */
    moe_confusion always;
    st = moe_confusion_init(&always, C);
    if (st != MOE_OK) return st;
    for (int t = 0; t < C; t++)
        always.counts[(size_t)t * (size_t)C + (size_t)out->majority_class] = row_sum(cm, t);
    always.total = cm->total;
    moe_classify_scores s;
    st = moe_classify_report(&always, &s);
    if (st == MOE_OK) {
        out->accuracy = s.accuracy;
        out->macro_f1 = s.macro_f1;
    }
    moe_classify_scores_free(&s);
    moe_confusion_free(&always);
    return st;
}
