/* POST /v1/generate: one request, batch 1, in the model's worker:
 * moe_model_generate with the request's sampling and seed (the same seed
 * gives the same text), then, when asked, the routing trace of the
 * generated tokens from one forward over the final sequence (its last
 * max_seq_len tokens). Decoders only. */
#include "serve/models_internal.h"

#include "io/utf8.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The prompt's ids, checked against the model; 0 when it may run. */
static int prompt_ids(serve_model *sm, serve_job *job, int32_t **ids, int *n) {
    const serve_generate_request *r = &job->gen;
    const int V = sm->mc->vocab_size, L = sm->mc->max_seq_len;
    const char *field = r->prompt ? "prompt" : "prompt_tokens";
    int np = r->prompt ? (int)strlen(r->prompt) : r->n_prompt_tokens;
    if (r->prompt && V < 256) {
        serve_reply_error(sm, job->reply, 400, "prompt",
                          "model %s is not byte-level: send prompt_tokens", sm->name);
        return -1;
    }
    if (np > L) {
        serve_reply_error(sm, job->reply, 400, field,
                          "%d tokens but model %s reads at most %d (max_seq_len): shorten it", np,
                          sm->name, L);
        return -1;
    }
    if (r->top_k > V) {
        serve_reply_error(sm, job->reply, 400, "top_k",
                          "%d is more than the %d tokens of model %s: use 0 (all) .. %d", r->top_k,
                          V, sm->name, V);
        return -1;
    }
    *ids = malloc((size_t)(np + r->max_tokens) * sizeof **ids);
    if (!*ids) {
        serve_reply_error(sm, job->reply, 503, "", "out of memory: try again later");
        return -1;
    }
    for (int i = 0; i < np; i++) {
        int32_t id = r->prompt ? (uint8_t)r->prompt[i] : r->prompt_tokens[i];
        if (id >= V) {
            char f[48];
            snprintf(f, sizeof f, "prompt_tokens[%d]", i);
            serve_reply_error(sm, job->reply, 400, f,
                              "token id %d is not below the vocabulary size %d of model %s",
                              (int)id, V, sm->name);
            free(*ids);
            *ids = NULL;
            return -1;
        }
        (*ids)[i] = id;
    }
    *n = np;
    return 0;
}

static cJSON *trace_of(serve_model *sm, const int32_t *ids, int total, int n_new, long *fallback) {
    const int L = sm->mc->max_seq_len;
    const int start = total > L ? total - L : 0, T = total - start;
    moe_arena_reset(&sm->arena);
    moe_batch b = {.tokens = ids + start, .B = 1, .T = T};
    if (moe_model_forward_batch(sm->model, &b, 0, NULL, &sm->arena, NULL, NULL)) return NULL;
    const int from = total - n_new > start ? total - n_new : start;
    *fallback = serve_count_routing(sm, from - start, total - from);
    cJSON *tr = cJSON_CreateObject();
    cJSON_AddItemToObject(
        tr, "tokens",
        moe_routing_trace_json(sm->model, NULL, ids + from, total - from, from - start));
    return tr;
}

void serve_generate_one(serve_model *sm, serve_job *job) {
    const serve_generate_request *r = &job->gen;
    if (!sm->decoder) {
        serve_reply_error(sm, job->reply, 400, "model",
                          "model %s is a %s %s model: only decoders (task lm) generate", sm->name,
                          sm->family, serve_task_name(sm->task));
        return;
    }
    if (!sm->can_generate) {
        serve_reply_error(sm, job->reply, 400, "model",
                          "model %s is a post-norm decoder (model.post_ln): generation needs a "
                          "pre-norm one; /v1/infer scores its text",
                          sm->name);
        return;
    }
    if (r->trace && moe_model_moe_layers(sm->model) == 0) {
        serve_reply_error(sm, job->reply, 400, "trace",
                          "model %s has no MoE layers to trace: leave trace out", sm->name);
        return;
    }
    int32_t *ids = NULL;
    int np = 0;
    if (prompt_ids(sm, job, &ids, &np)) return;
    const int n_new = r->max_tokens;
    moe_sampling s = {r->temperature, r->top_k, r->top_p};
    moe_rng rng;
    moe_rng_seed(&rng, r->seed);
    double t0 = serve_now();
    moe_status st = moe_model_generate(sm->model, ids, np, n_new, &s, &rng, ids);
    const char *lv[] = {sm->name};
    if (sm->metrics->forward_s) moe_metric_observe(sm->metrics->forward_s, lv, serve_now() - t0);
    if (sm->metrics->batch_size) moe_metric_observe(sm->metrics->batch_size, lv, 1);
    if (st) {
        serve_reply_error(sm, job->reply, 500, "", "generation with model %s failed: %s", sm->name,
                          moe_last_error());
        free(ids);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", sm->name);
    unsigned char *bytes = malloc((size_t)n_new + 1);
    for (int i = 0; bytes && i < n_new; i++) bytes[i] = (unsigned char)ids[np + i];
    char *text = bytes ? utf8_sanitize(bytes, (size_t)n_new) : NULL;
    cJSON_AddStringToObject(o, "text", text ? text : "");
    free(text);
    free(bytes);
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    for (int i = 0; i < n_new; i++) cJSON_AddItemToArray(toks, cJSON_CreateNumber(ids[np + i]));
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", np);
    cJSON_AddNumberToObject(u, "completion_tokens", n_new);
    long fallback = 0;
    if (r->trace) {
        cJSON *tr = trace_of(sm, ids, np + n_new, n_new, &fallback);
        if (!tr) { /* asked for: an answer without it would pass for one with none */
            serve_reply_error(sm, job->reply, 500, "",
                              "model %s generated, but its routing trace failed: %s; retry, or "
                              "leave trace out",
                              sm->name, moe_last_error());
            cJSON_Delete(o);
            free(ids);
            return;
        }
        cJSON_AddItemToObject(o, "trace", tr);
    }
    if (serve_has_nonfinite(o)) {
        serve_reply_error(sm, job->reply, 500, "",
                          "model %s gave non-finite outputs for this prompt (NaN or infinite "
                          "weights or router scores); serve it with --fallback-expert E to send "
                          "such tokens to one expert",
                          sm->name);
        cJSON_Delete(o);
        free(ids);
        return;
    }
    serve_reply_json(job->reply, o);
    job->reply->tokens = np + n_new;
    if (fallback > 0)
        snprintf(job->reply->detail, sizeof job->reply->detail, "fallback=%ld", fallback);
    else
        job->reply->detail[0] = 0;
    serve_rate_add(sm, np + n_new);
    free(ids);
}
