/* Classification scores, the majority baseline and latency statistics on
 * small cases computed by hand (docs/eval.md); parity_classify_metrics.c
 * checks random cases against scikit-learn and numpy. */
#include "test_util.h"

#include "moe/metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#define EPS 1e-12

/* A confusion matrix of n (true, predicted) pairs. */
static void fill(moe_confusion *cm, int C, const int32_t *truth, const int32_t *pred, size_t n) {
    assert_int_equal(moe_confusion_init(cm, C), MOE_OK);
    assert_int_equal(moe_confusion_add_many(cm, truth, pred, n), MOE_OK);
}

static void expect_class(const moe_classify_scores *s, int k, double p, double r, double f1,
                         int64_t support, int64_t predicted) {
    assert_close(s->per_class[k].precision, p, EPS);
    assert_close(s->per_class[k].recall, r, EPS);
    assert_close(s->per_class[k].f1, f1, EPS);
    assert_int_equal(s->per_class[k].support, support);
    assert_int_equal(s->per_class[k].predicted, predicted);
}

static void test_perfect(void **state) {
    (void)state;
    const int32_t y[] = {0, 1, 2, 2, 1, 0, 0};
    moe_confusion cm;
    fill(&cm, 3, y, y, 7);
    assert_int_equal(cm.total, 7);
    const int64_t want[9] = {3, 0, 0, 0, 2, 0, 0, 0, 2};
    assert_memory_equal(cm.counts, want, sizeof want);
    moe_classify_scores s;
    assert_int_equal(moe_classify_report(&cm, &s), MOE_OK);
    assert_close(s.accuracy, 1, 0);
    expect_class(&s, 0, 1, 1, 1, 3, 3);
    expect_class(&s, 1, 1, 1, 1, 2, 2);
    expect_class(&s, 2, 1, 1, 1, 2, 2);
    assert_close(s.macro_precision, 1, 0);
    assert_close(s.macro_recall, 1, 0);
    assert_close(s.macro_f1, 1, 0);
    assert_close(s.weighted_f1, 1, 0);
    moe_classify_scores_free(&s);
    moe_confusion_free(&cm);
}

static void test_all_wrong(void **state) {
    (void)state;
    const int32_t y[] = {0, 0, 1}, p[] = {1, 1, 0};
    moe_confusion cm;
    fill(&cm, 2, y, p, 3);
    moe_classify_scores s;
    assert_int_equal(moe_classify_report(&cm, &s), MOE_OK);
    assert_close(s.accuracy, 0, 0);
    expect_class(&s, 0, 0, 0, 0, 2, 1);
    expect_class(&s, 1, 0, 0, 0, 1, 2);
    assert_close(s.macro_f1, 0, 0);
    assert_close(s.weighted_f1, 0, 0);
    moe_classify_scores_free(&s);
    moe_confusion_free(&cm);
}

/* Binary, unbalanced: rows [5 0] [2 1]. */
static void test_two_classes(void **state) {
    (void)state;
    const int32_t y[] = {0, 0, 0, 0, 0, 1, 1, 1}, p[] = {0, 0, 0, 0, 0, 1, 0, 0};
    moe_confusion cm;
    fill(&cm, 2, y, p, 8);
    const int64_t want[4] = {5, 0, 2, 1};
    assert_memory_equal(cm.counts, want, sizeof want);
    moe_classify_scores s;
    assert_int_equal(moe_classify_report(&cm, &s), MOE_OK);
    assert_close(s.accuracy, 0.75, EPS);
    expect_class(&s, 0, 5.0 / 7, 1, 5.0 / 6, 5, 7);
    expect_class(&s, 1, 1, 1.0 / 3, 0.5, 3, 1);
    assert_close(s.macro_precision, 6.0 / 7, EPS);
    assert_close(s.macro_recall, 2.0 / 3, EPS);
    assert_close(s.macro_f1, 2.0 / 3, EPS);
    assert_close(s.weighted_precision, 23.0 / 28, EPS);
    assert_close(s.weighted_recall, s.accuracy, EPS);
    assert_close(s.weighted_f1, 17.0 / 24, EPS);
    moe_classify_scores_free(&s);
    moe_baseline b;
    assert_int_equal(moe_majority_baseline(&cm, &b), MOE_OK);
    assert_int_equal(b.majority_class, 0);
    assert_close(b.accuracy, 5.0 / 8, EPS);
    assert_close(b.macro_f1, 5.0 / 13, EPS); /* F1 of class 0: 10/13, over 2 classes */
    moe_confusion_free(&cm);
}

/* C = 3, class 2 never predicted: precision 0 (zero_division=0). */
static void test_class_never_predicted(void **state) {
    (void)state;
    const int32_t y[] = {0, 0, 1, 1, 2, 2}, p[] = {0, 0, 1, 0, 1, 1};
    moe_confusion cm;
    fill(&cm, 3, y, p, 6);
    moe_classify_scores s;
    assert_int_equal(moe_classify_report(&cm, &s), MOE_OK);
    assert_close(s.accuracy, 0.5, EPS);
    expect_class(&s, 0, 2.0 / 3, 1, 0.8, 2, 3);
    expect_class(&s, 1, 1.0 / 3, 0.5, 0.4, 2, 3);
    expect_class(&s, 2, 0, 0, 0, 2, 0);
    assert_close(s.macro_precision, 1.0 / 3, EPS);
    assert_close(s.macro_recall, 0.5, EPS);
    assert_close(s.macro_f1, 0.4, EPS);
    assert_close(s.weighted_f1, 0.4, EPS);
    moe_classify_scores_free(&s);
    moe_confusion_free(&cm);
}

/* Class 2 predicted once but absent from the truth: recall 0, and it still
 * counts in the macro mean; a class absent from both scores 0 too. */
static void test_class_absent(void **state) {
    (void)state;
    const int32_t y[] = {0, 0, 1, 1}, p[] = {0, 2, 1, 1};
    moe_confusion cm;
    fill(&cm, 3, y, p, 4);
    moe_classify_scores s;
    assert_int_equal(moe_classify_report(&cm, &s), MOE_OK);
    assert_close(s.accuracy, 0.75, EPS);
    expect_class(&s, 0, 1, 0.5, 2.0 / 3, 2, 1);
    expect_class(&s, 1, 1, 1, 1, 2, 2);
    expect_class(&s, 2, 0, 0, 0, 0, 1);
    assert_close(s.macro_precision, 2.0 / 3, EPS);
    assert_close(s.macro_recall, 0.5, EPS);
    assert_close(s.macro_f1, 5.0 / 9, EPS);
    assert_close(s.weighted_f1, 5.0 / 6, EPS);
    moe_classify_scores_free(&s);
    moe_confusion_free(&cm);

    const int32_t y2[] = {0, 1};
    fill(&cm, 3, y2, y2, 2);
    assert_int_equal(moe_classify_report(&cm, &s), MOE_OK);
    expect_class(&s, 2, 0, 0, 0, 0, 0);
    assert_close(s.accuracy, 1, 0);
    assert_close(s.macro_f1, 2.0 / 3, EPS);
    assert_close(s.weighted_f1, 1, EPS);
    moe_classify_scores_free(&s);
    moe_confusion_free(&cm);
}

static void test_baseline_ties(void **state) {
    (void)state;
    moe_confusion cm;
    const int32_t tie_first[] = {2, 0, 1, 0, 1}; /* supports 2, 2, 1 */
    fill(&cm, 3, tie_first, tie_first, 5);
    moe_baseline b;
    assert_int_equal(moe_majority_baseline(&cm, &b), MOE_OK);
    assert_int_equal(b.majority_class, 0);
    assert_close(b.accuracy, 0.4, EPS);
    assert_close(b.macro_f1, (4.0 / 7) / 3, EPS); /* 2*2 / (2 + 5) */
    moe_confusion_free(&cm);
    const int32_t tie_later[] = {1, 2, 0, 2, 1, 2, 1}; /* supports 1, 3, 3 */
    fill(&cm, 3, tie_later, tie_later, 7);
    assert_int_equal(moe_majority_baseline(&cm, &b), MOE_OK);
    assert_int_equal(b.majority_class, 1);
    assert_close(b.accuracy, 3.0 / 7, EPS);
    assert_close(b.macro_f1, 0.6 / 3, EPS); /* 2*3 / (3 + 7) */
    moe_confusion_free(&cm);
}

static void test_bad_input(void **state) {
    (void)state;
    moe_confusion cm;
    assert_int_equal(moe_confusion_init(&cm, 0), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "n_classes"));
    assert_int_equal(moe_confusion_init(&cm, 2), MOE_OK);
    moe_classify_scores s;
    assert_int_equal(moe_classify_report(&cm, &s), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "no samples"));
    assert_null(s.per_class);
    moe_baseline b;
    assert_int_equal(moe_majority_baseline(&cm, &b), MOE_ERR_INVALID);
    assert_int_equal(moe_confusion_add(&cm, 2, 0), MOE_ERR_INVALID);
    assert_int_equal(moe_confusion_add(&cm, 0, -1), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "0..1"));
    const int32_t y[] = {0, 1, 1}, p[] = {1, 5, 0};
    assert_int_equal(moe_confusion_add_many(&cm, y, p, 3), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "sample 1"));
    assert_int_equal(cm.total, 0); /* nothing counted, not even sample 0 */
    for (int i = 0; i < 4; i++) assert_int_equal(cm.counts[i], 0);
    assert_int_equal(moe_confusion_add(&cm, 1, 0), MOE_OK);
    assert_int_equal(cm.counts[2], 1);
    assert_int_equal(cm.total, 1);
    moe_confusion_free(&cm);
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void test_json(void **state) {
    (void)state;
    const int32_t y[] = {0, 0, 1, 1, 2, 2}, p[] = {0, 0, 1, 0, 1, 1};
    moe_confusion cm;
    fill(&cm, 3, y, p, 6);
    const char *names[] = {"law", "history", "wisdom"};
    cJSON *j = NULL;
    assert_int_equal(moe_classify_report_json(&cm, names, &j), MOE_OK);
    assert_non_null(j);
    assert_close(num(j, "total"), 6, 0);
    assert_close(num(j, "accuracy"), 0.5, EPS);
    assert_close(num(j, "macro_precision"), 1.0 / 3, EPS);
    assert_close(num(j, "macro_recall"), 0.5, EPS);
    assert_close(num(j, "macro_f1"), 0.4, EPS);
    assert_close(num(j, "weighted_precision"), 1.0 / 3, EPS);
    assert_close(num(j, "weighted_recall"), 0.5, EPS);
    assert_close(num(j, "weighted_f1"), 0.4, EPS);
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(j, "per_class");
    assert_int_equal(cJSON_GetArraySize(per), 3);
    const double want[3][4] = {{2.0 / 3, 1, 0.8, 2}, {1.0 / 3, 0.5, 0.4, 2}, {0, 0, 0, 2}};
    for (int k = 0; k < 3; k++) {
        const cJSON *c = cJSON_GetArrayItem(per, k);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "label")),
                            names[k]);
        assert_close(num(c, "precision"), want[k][0], EPS);
        assert_close(num(c, "recall"), want[k][1], EPS);
        assert_close(num(c, "f1"), want[k][2], EPS);
        assert_close(num(c, "support"), want[k][3], 0);
    }
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(j, "confusion");
    assert_int_equal(cJSON_GetArraySize(conf), 3);
    const double rows[3][3] = {{2, 0, 0}, {1, 1, 0}, {0, 2, 0}};
    for (int t = 0; t < 3; t++) {
        const cJSON *row = cJSON_GetArrayItem(conf, t);
        assert_int_equal(cJSON_GetArraySize(row), 3);
        for (int q = 0; q < 3; q++)
            assert_close(cJSON_GetArrayItem(row, q)->valuedouble, rows[t][q], 0);
    }
    cJSON_Delete(j);

    /* without names: no "label" keys */
    assert_int_equal(moe_classify_report_json(&cm, NULL, &j), MOE_OK);
    per = cJSON_GetObjectItemCaseSensitive(j, "per_class");
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(per, 0), "label"));
    assert_close(num(cJSON_GetArrayItem(per, 1), "f1"), 0.4, EPS);
    cJSON_Delete(j);
    moe_confusion_free(&cm);

    /* no samples: an error and no object */
    assert_int_equal(moe_confusion_init(&cm, 2), MOE_OK);
    j = (cJSON *)&cm; /* anything but NULL */
    assert_int_equal(moe_classify_report_json(&cm, NULL, &j), MOE_ERR_INVALID);
    assert_null(j);
    moe_confusion_free(&cm);
}

static void test_latency(void **state) {
    (void)state;
    moe_latency l;
    moe_latency_init(&l);
    moe_latency_summary s;
    assert_int_equal(moe_latency_summarize(&l, &s), MOE_ERR_INVALID);
    const double samples[] = {4, 1, 3, 2, 10};
    for (int i = 0; i < 5; i++) assert_int_equal(moe_latency_add(&l, samples[i]), MOE_OK);
    assert_int_equal(moe_latency_add(&l, NAN), MOE_ERR_INVALID);
    assert_int_equal(moe_latency_add(&l, INFINITY), MOE_ERR_INVALID);
    assert_int_equal(moe_latency_add(&l, -1e-3), MOE_ERR_INVALID);
    assert_int_equal(l.n, 5);
    assert_int_equal(moe_latency_summarize(&l, &s), MOE_OK);
    assert_int_equal(s.count, 5);
    assert_close(s.mean, 4, EPS);
    assert_close(s.min, 1, 0);
    assert_close(s.max, 10, 0);
    /* sorted 1 2 3 4 10: p50 at h = 2; p90 at 3.6: 4 + 6 * 0.6; p99 at 3.96 */
    assert_close(s.p50, 3, 0);
    assert_close(s.p90, 7.6, EPS);
    assert_close(s.p99, 9.76, EPS);
    assert_memory_equal(l.samples, samples, sizeof samples); /* order kept */
    moe_latency_free(&l);

    /* many samples: the buffer grows; 0..999 gives p = q * 9.99 */
    moe_latency_init(&l);
    for (int i = 999; i >= 0; i--) assert_int_equal(moe_latency_add(&l, i), MOE_OK);
    assert_int_equal(moe_latency_summarize(&l, &s), MOE_OK);
    assert_close(s.mean, 499.5, EPS);
    assert_close(s.p50, 499.5, EPS);
    assert_close(s.p90, 899.1, 1e-9);
    assert_close(s.p99, 989.01, 1e-9);
    moe_latency_free(&l);
}

static void test_percentile_edges(void **state) {
    (void)state;
    const double x[] = {1, 2, 4, 8};
    assert_close(moe_percentile(x, 4, 0), 1, 0);
    assert_close(moe_percentile(x, 4, 100), 8, 0);
    assert_close(moe_percentile(x, 4, 50), 3, 0);
    assert_close(moe_percentile(x, 4, 25), 1.75, 0); /* h = 0.75, from the top */
    assert_close(moe_percentile(x, 4, 75), 5, 0);    /* h = 2.25 */
    assert_close(moe_percentile(x, 1, 37), 1, 0);    /* one value: itself */
    assert_true(isnan(moe_percentile(x, 0, 50)));
    assert_true(isnan(moe_percentile(x, 4, -1)));
    assert_true(isnan(moe_percentile(x, 4, 100.5)));
    assert_true(isnan(moe_percentile(x, 4, NAN)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perfect),      cmocka_unit_test(test_all_wrong),
        cmocka_unit_test(test_two_classes),  cmocka_unit_test(test_class_never_predicted),
        cmocka_unit_test(test_class_absent), cmocka_unit_test(test_baseline_ties),
        cmocka_unit_test(test_bad_input),    cmocka_unit_test(test_json),
        cmocka_unit_test(test_latency),      cmocka_unit_test(test_percentile_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
