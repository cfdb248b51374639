/* The classification report as a cJSON object (moe_classify_report_json;
 * fields in include/moe/metrics.h and docs/eval.md). */
#include "moe/metrics.h"

#include <cjson/cJSON.h>

/* Every add reports success, so one out-of-memory anywhere fails the whole. */
static int add_number(cJSON *o, const char *key, double v) {
    return cJSON_AddNumberToObject(o, key, v) != NULL;
}

static int add_class(cJSON *list, const moe_class_scores *s, const char *label) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(list, o)) {
        cJSON_Delete(o);
        return 0;
    }
    int ok = !label || cJSON_AddStringToObject(o, "label", label) != NULL;
    ok &= add_number(o, "precision", s->precision);
    ok &= add_number(o, "recall", s->recall);
    ok &= add_number(o, "f1", s->f1);
    ok &= add_number(o, "support", (double)s->support);
    return ok;
}

/* [[counts of true class t by predicted class] for each t] */
static int add_confusion(cJSON *root, const moe_confusion *cm) {
    cJSON *rows = cJSON_AddArrayToObject(root, "confusion");
    int ok = rows != NULL;
    const int C = cm->n_classes;
    for (int t = 0; t < C && ok; t++) {
        cJSON *row = cJSON_CreateArray();
        ok = row && cJSON_AddItemToArray(rows, row);
        if (!ok) cJSON_Delete(row);
        for (int p = 0; p < C && ok; p++) {
            cJSON *n = cJSON_CreateNumber((double)cm->counts[(size_t)t * (size_t)C + (size_t)p]);
            ok = n && cJSON_AddItemToArray(row, n);
            if (!ok) cJSON_Delete(n);
        }
    }
    return ok;
}

moe_status moe_classify_report_json(const moe_confusion *cm, const char *const *class_names,
                                    cJSON **out) {
    *out = NULL;
    moe_classify_scores s;
    moe_status st = moe_classify_report(cm, &s);
    if (st != MOE_OK) return st;
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    ok = ok && add_number(root, "total", (double)s.total);
    ok = ok && add_number(root, "accuracy", s.accuracy);
    ok = ok && add_number(root, "macro_precision", s.macro_precision);
    ok = ok && add_number(root, "macro_recall", s.macro_recall);
    ok = ok && add_number(root, "macro_f1", s.macro_f1);
    ok = ok && add_number(root, "weighted_precision", s.weighted_precision);
    ok = ok && add_number(root, "weighted_recall", s.weighted_recall);
    ok = ok && add_number(root, "weighted_f1", s.weighted_f1);
    cJSON *per_class = ok ? cJSON_AddArrayToObject(root, "per_class") : NULL;
    ok = per_class != NULL;
    for (int k = 0; k < s.n_classes && ok; k++)
        ok = add_class(per_class, &s.per_class[k], class_names ? class_names[k] : NULL);
    ok = ok && add_confusion(root, cm);
    moe_classify_scores_free(&s);
    if (!ok) {
        cJSON_Delete(root);
        return moe_error(MOE_ERR_NOMEM, "classification report JSON: out of memory");
    }
    *out = root;
    return MOE_OK;
}
