/* What the workers share when they answer: error and JSON replies, the
 * served-routing and tokens/s metrics, the non-finite check. */
#include "serve/models_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *serve_task_name(moe_task_kind t) {
    switch (t) {
    case MOE_TASK_LM:
        return "lm";
    case MOE_TASK_MLM:
        return "mlm";
    case MOE_TASK_CLASSIFY:
        return "classify";
    case MOE_TASK_DISTRIBUTION:
        return "distribution";
    }
    return "unknown";
}

void serve_reply_error(serve_model *sm, serve_reply *r, int status, const char *field,
                       const char *fmt, ...) {
    serve_error e;
    e.status = status;
    snprintf(e.field, sizeof e.field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    free(r->body);
    r->status = status;
    r->body = serve_error_json(&e);
    r->tokens = 0;
    r->detail[0] = 0;
    if (sm->metrics->errors) {
        const char *lv[] = {sm->name};
        moe_metric_add(sm->metrics->errors, lv, 1);
    }
}

void serve_reply_json(serve_reply *r, cJSON *o) {
    free(r->body);
    r->status = 200;
    r->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
}

long serve_count_routing(serve_model *sm, long row0, int n) {
    long fallback = 0;
    const serve_metrics *mt = sm->metrics;
    for (int i = 0; i < moe_model_moe_layers(sm->model); i++) {
        const moe_layer_stats *s = moe_model_layer_stats(sm->model, i);
        if (!s || !s->chosen) continue;
        const int E = sm->mc->moe.n_experts, k = s->top_k;
        long *pairs = calloc((size_t)E, sizeof *pairs);
        if (!pairs) continue;
        for (long t = row0; t < row0 + n; t++) {
            for (int j = 0; j < k; j++) {
                size_t p = (size_t)t * k + j;
                if (moe_routing_pair_served(s, t, j) && s->chosen[p] >= 0 && s->chosen[p] < E)
                    pairs[s->chosen[p]]++;
            }
            if (s->fallback) fallback += s->fallback[t];
        }
        if (mt->expert_pairs) {
            char layer[16], expert[16];
            snprintf(layer, sizeof layer, "%d", moe_model_moe_layer_index(sm->model, i));
            for (int e = 0; e < E; e++) {
                if (!pairs[e]) continue;
                snprintf(expert, sizeof expert, "%d", e);
                const char *lv[] = {sm->name, layer, expert};
                moe_metric_add(mt->expert_pairs, lv, (double)pairs[e]);
            }
        }
        free(pairs);
    }
    if (fallback && mt->fallback) {
        const char *lv[] = {sm->name};
        moe_metric_add(mt->fallback, lv, (double)fallback);
    }
    return fallback;
}

void serve_rate_add(serve_model *sm, long n) {
    const long sec = (long)serve_now();
    const int slot = (int)(sec % SERVE_RATE_WINDOW);
    if (sm->rate_second[slot] != sec) {
        sm->rate_second[slot] = sec;
        sm->rate_tokens[slot] = 0;
    }
    sm->rate_tokens[slot] += n;
    if (n > 0 && sm->metrics->tokens) {
        const char *lv[] = {sm->name};
        moe_metric_add(sm->metrics->tokens, lv, (double)n);
    }
    if (!sm->metrics->tokens_per_s) return;
    long total = 0;
    for (int i = 0; i < SERVE_RATE_WINDOW; i++)
        if (sec - sm->rate_second[i] < SERVE_RATE_WINDOW) total += sm->rate_tokens[i];
    const char *lv[] = {sm->name};
    moe_metric_set(sm->metrics->tokens_per_s, lv, (double)total / SERVE_RATE_WINDOW);
}

int serve_has_nonfinite(const cJSON *j) {
    if (cJSON_IsNumber(j)) return !isfinite(j->valuedouble);
    for (const cJSON *c = j->child; c; c = c->next)
        if (serve_has_nonfinite(c)) return 1;
    return 0;
}
