/* The experts x classes matrices of seed 000's expert analysis. */
#include "moe/analysis.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

moe_status moe_expert_analysis_init(moe_expert_analysis *a, int n_experts, int n_classes) {
    memset(a, 0, sizeof *a);
    if (n_experts < 1 || n_classes < 1)
        return moe_error(MOE_ERR_INVALID, "expert analysis: %d experts, %d classes", n_experts,
                         n_classes);
    size_t ec = (size_t)n_experts * n_classes;
    a->n_experts = n_experts;
    a->n_classes = n_classes;
    a->right = calloc(ec, sizeof *a->right);
    a->gate = calloc(ec, sizeof *a->gate);
    a->support = calloc((size_t)n_classes, sizeof *a->support);
    if (!a->right || !a->gate || !a->support) {
        moe_expert_analysis_free(a);
        return moe_error(MOE_ERR_NOMEM, "expert analysis: out of memory");
    }
    return MOE_OK;
}

void moe_expert_analysis_free(moe_expert_analysis *a) {
    free(a->right);
    free(a->gate);
    free(a->support);
    memset(a, 0, sizeof *a);
}

static int argmax(const moe_real *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

void moe_expert_analysis_add(moe_expert_analysis *a, const moe_real *scores, const moe_real *gates,
                             const int32_t *labels, int B) {
    const int E = a->n_experts, C = a->n_classes;
    for (int b = 0; b < B; b++) {
        int y = labels[b];
        if (y < 0 || y >= C) continue;
        a->support[y]++;
        for (int e = 0; e < E; e++) {
            const moe_real *s = scores + ((size_t)e * B + b) * C;
            a->right[(size_t)e * C + y] += argmax(s, C) == y;
            a->gate[(size_t)e * C + y] += gates[(size_t)b * E + e];
        }
    }
}

static cJSON *matrix(const moe_expert_analysis *a, int gate) {
    cJSON *rows = cJSON_CreateArray();
    for (int e = 0; rows && e < a->n_experts; e++) {
        cJSON *row = cJSON_CreateArray();
        if (!row || !cJSON_AddItemToArray(rows, row)) return cJSON_Delete(rows), NULL;
        for (int c = 0; c < a->n_classes; c++) {
            size_t i = (size_t)e * a->n_classes + c;
            double n = (double)a->support[c];
            double v = n > 0 ? (gate ? a->gate[i] : (double)a->right[i]) / n : 0;
            cJSON_AddItemToArray(row, cJSON_CreateNumber(v));
        }
    }
    return rows;
}

/* Each expert's classes ordered by its own accuracy, best first. */
static cJSON *top_classes(const moe_expert_analysis *a) {
    const int C = a->n_classes;
    cJSON *all = cJSON_CreateArray();
    int *order = malloc((size_t)C * sizeof *order);
    for (int e = 0; all && order && e < a->n_experts; e++) {
        const int64_t *r = a->right + (size_t)e * C;
        for (int c = 0; c < C; c++) order[c] = c;
        for (int i = 1; i < C; i++) /* insertion sort by accuracy, C is small */
            for (int j = i; j > 0; j--) {
                double aj = a->support[order[j]] ? (double)r[order[j]] / a->support[order[j]] : 0;
                double ap = a->support[order[j - 1]]
                                ? (double)r[order[j - 1]] / a->support[order[j - 1]]
                                : 0;
                if (aj <= ap) break;
                int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        cJSON_AddItemToArray(all, cJSON_CreateIntArray(order, C));
    }
    free(order);
    return all;
}

cJSON *moe_expert_analysis_json(const moe_expert_analysis *a, const char *const *class_names) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON *classes = cJSON_AddArrayToObject(o, "classes");
    for (int c = 0; classes && c < a->n_classes; c++)
        cJSON_AddItemToArray(classes, class_names ? cJSON_CreateString(class_names[c])
                                                  : cJSON_CreateNumber(c));
    cJSON_AddItemToObject(o, "accuracy", matrix(a, 0));
    cJSON_AddItemToObject(o, "gate", matrix(a, 1));
    cJSON *sup = cJSON_AddArrayToObject(o, "support");
    for (int c = 0; sup && c < a->n_classes; c++)
        cJSON_AddItemToArray(sup, cJSON_CreateNumber((double)a->support[c]));
    cJSON_AddItemToObject(o, "top_classes", top_classes(a));
    return o;
}
