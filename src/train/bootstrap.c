/* Bootstrap intervals of a classifier's metrics (`moe bootstrap`): the
 * model answers every example of a split once; then `resamples` times the
 * split's examples are drawn with replacement and accuracy, macro-F1 and
 * the mean cross-entropy are recomputed from those answers. The interval is
 * the 2.5th..97.5th percentile of the resampled values (the percentile
 * bootstrap; numpy.percentile's linear method). The model is not retrained:
 * the intervals say how much the split's sampling moves each metric. */
#include "moe/metrics.h"
#include "train/task.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct answers {
    int n, C;
    int32_t *label, *pred;
    double *loss, *weight; /* per-example cross-entropy against the (soft) target, row weight */
} answers;

static void answers_free(answers *a) {
    free(a->label);
    free(a->pred);
    free(a->loss);
    free(a->weight);
}

/* Cross-entropy of one row of class scores (log-softmax) against the
 * target: a class id, or a distribution. */
static double row_ce(const moe_real *s, int C, int label, const moe_real *soft) {
    double mx = s[0], z = 0;
    for (int c = 1; c < C; c++) mx = s[c] > mx ? s[c] : mx;
    for (int c = 0; c < C; c++) z += exp(s[c] - mx);
    double lse = mx + log(fmax(z, 1.0)); /* z >= 1: the largest score's term is 1 */
    if (!soft) return lse - s[label];
    double ce = 0;
    for (int c = 0; c < C; c++) ce -= soft[c] * (s[c] - lse);
    return ce;
}

static moe_status collect(train_task *t, moe_model *m, int split, answers *a) {
    const moe_dataset *d = split == 2 ? &t->ds.test : &t->ds.val;
    const int C = d->n_classes;
    a->n = d->n;
    a->C = C;
    a->label = malloc((size_t)d->n * sizeof *a->label);
    a->pred = malloc((size_t)d->n * sizeof *a->pred);
    a->loss = malloc((size_t)d->n * sizeof *a->loss);
    a->weight = malloc((size_t)d->n * sizeof *a->weight);
    if (!a->label || !a->pred || !a->loss || !a->weight)
        return moe_error(MOE_ERR_NOMEM, "bootstrap: out of memory");
    moe_arena arena;
    moe_arena_init(&arena);
    moe_status st = MOE_OK;
    for (int i0 = 0; i0 < d->n && st == MOE_OK; i0 += t->eval_B) {
        int B = d->n - i0 < t->eval_B ? d->n - i0 : t->eval_B;
        int idx[B];
        for (int b = 0; b < B; b++) idx[b] = i0 + b;
        moe_dataset_gather(d, idx, B, t->fx, t->labels, d->soft ? t->fsoft : NULL, t->fw);
        moe_batch batch = {.B = B, .T = 1, .x = t->fx};
        moe_arena_reset(&arena);
        st = moe_model_forward_batch(m, &batch, 0, NULL, &arena, NULL, NULL);
        const moe_real *lg = moe_model_class_logits(m);
        for (int b = 0; st == MOE_OK && b < B; b++) {
            const moe_real *s = lg + (size_t)b * C;
            int best = 0;
            for (int c = 1; c < C; c++) best = s[c] > s[best] ? c : best;
            a->label[i0 + b] = t->labels[b];
            a->pred[i0 + b] = best;
            a->loss[i0 + b] = row_ce(s, C, t->labels[b], d->soft ? t->fsoft + (size_t)b * C : NULL);
            a->weight[i0 + b] = d->weights ? t->fw[b] : 1;
        }
    }
    moe_arena_free(&arena);
    return st;
}

/* Accuracy, macro-F1 and weighted mean loss of the examples idx[0..n). */
static moe_status score(const answers *a, const int *idx, moe_confusion *cm, double out[3]) {
    memset(cm->counts, 0, (size_t)a->C * a->C * sizeof *cm->counts);
    cm->total = 0;
    double loss = 0, w = 0;
    for (int i = 0; i < a->n; i++) {
        int k = idx ? idx[i] : i;
        moe_confusion_add(cm, a->label[k], a->pred[k]);
        loss += a->weight[k] * a->loss[k];
        w += a->weight[k];
    }
    moe_classify_scores sc;
    moe_status st = moe_classify_report(cm, &sc);
    if (st != MOE_OK) return st;
    out[0] = sc.accuracy;
    out[1] = sc.macro_f1;
    out[2] = w > 0 ? loss / w : NAN;
    moe_classify_scores_free(&sc);
    return MOE_OK;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static cJSON *interval(double point, double *v, int R) {
    qsort(v, (size_t)R, sizeof *v, cmp_double);
    double mean = 0;
    for (int r = 0; r < R; r++) mean += v[r] / R;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "value", point);
    cJSON_AddNumberToObject(o, "bootstrap_mean", mean);
    cJSON_AddNumberToObject(o, "ci95_low", moe_percentile(v, (size_t)R, 2.5));
    cJSON_AddNumberToObject(o, "ci95_high", moe_percentile(v, (size_t)R, 97.5));
    return o;
}

moe_status moe_bootstrap(const moe_run_config *cfg, moe_model *m, int test_split, int resamples,
                         uint64_t seed, char **json) {
    *json = NULL;
    if (resamples < 2) return moe_error(MOE_ERR_INVALID, "bootstrap: resamples must be >= 2");
    moe_run_config c = *cfg;
    c.model = *moe_model_config_of(m);
    train_task t;
    moe_model_set_phase(m, moe_model_final_temperature(&c.model), 0);
    moe_status st = task_init(&t, &c);
    if (st == MOE_OK && !t.dense)
        st = moe_error(MOE_ERR_INVALID,
                       "bootstrap: needs a seed-family classifier (images or a "
                       "table); this checkpoint is a %s",
                       moe_model_family_name(m));
    answers a = {0};
    moe_confusion cm = {0};
    double *vals = NULL;
    int *idx = NULL;
    if (st == MOE_OK) st = collect(&t, m, test_split ? 2 : 1, &a);
    if (st == MOE_OK) st = moe_confusion_init(&cm, a.C);
    double point[3];
    if (st == MOE_OK) st = score(&a, NULL, &cm, point);
    if (st == MOE_OK) {
        vals = malloc((size_t)3 * resamples * sizeof *vals);
        idx = malloc((size_t)a.n * sizeof *idx);
        if (!vals || !idx) st = moe_error(MOE_ERR_NOMEM, "bootstrap: out of memory");
    }
    moe_rng rng;
    moe_rng_seed(&rng, seed);
    for (int r = 0; st == MOE_OK && r < resamples; r++) {
        for (int i = 0; i < a.n; i++) idx[i] = (int)moe_rng_below(&rng, (uint32_t)a.n);
        double s[3];
        st = score(&a, idx, &cm, s);
        for (int k = 0; k < 3; k++) vals[(size_t)k * resamples + r] = s[k];
    }
    if (st == MOE_OK) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "split", test_split ? "test" : "val");
        cJSON_AddNumberToObject(o, "examples", a.n);
        cJSON_AddNumberToObject(o, "resamples", resamples);
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        const char *names[3] = {"accuracy", "macro_f1", "loss"};
        for (int k = 0; k < 3; k++)
            cJSON_AddItemToObject(o, names[k],
                                  interval(point[k], vals + (size_t)k * resamples, resamples));
        *json = cJSON_Print(o);
        cJSON_Delete(o);
        if (!*json) st = moe_error(MOE_ERR_NOMEM, "bootstrap: out of memory");
    }
    free(vals);
    free(idx);
    moe_confusion_free(&cm);
    answers_free(&a);
    task_free(&t);
    return st;
}
