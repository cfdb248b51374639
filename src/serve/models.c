/* The served models: loading every checkpoint of the models folder (and
 * the operator's NAME=CKPT extras), their metrics, the per-model queues
 * requests are submitted to, GET /v1/models, and shutdown. Names clients
 * send are only ever looked up in the loaded list, never used as paths. */
#include "serve/models_internal.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static moe_status declare_metrics(serve_metrics *m, moe_registry *reg) {
    static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128};
    static const double sec_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    memset(m, 0, sizeof *m);
    if (!reg) return MOE_OK;
    moe_status st = moe_registry_declare(reg, "serve_tokens_total", MOE_METRIC_COUNTER,
                                         "Tokens (or feature rows) served, generated included.",
                                         "model", NULL, 0, &m->tokens);
    if (!st)
        st = moe_registry_declare(reg, "serve_tokens_per_second", MOE_METRIC_GAUGE,
                                  "Tokens served per second over the last 10 s.", "model", NULL, 0,
                                  &m->tokens_per_s);
    if (!st)
        st = moe_registry_declare(reg, "serve_queue_depth", MOE_METRIC_GAUGE,
                                  "Requests waiting for the model's worker.", "model", NULL, 0,
                                  &m->queue_depth);
    if (!st)
        st = moe_registry_declare(reg, "serve_batch_size", MOE_METRIC_HISTOGRAM,
                                  "Requests merged into one forward.", "model", batch_buckets,
                                  (int)(sizeof batch_buckets / sizeof *batch_buckets),
                                  &m->batch_size);
    if (!st)
        st = moe_registry_declare(reg, "serve_forward_seconds", MOE_METRIC_HISTOGRAM,
                                  "Time of one batched forward (or one generation).", "model",
                                  sec_buckets, (int)(sizeof sec_buckets / sizeof *sec_buckets),
                                  &m->forward_s);
    if (!st)
        st = moe_registry_declare(reg, "serve_expert_pairs_total", MOE_METRIC_COUNTER,
                                  "Served (token, expert) pairs kept, per MoE layer and expert.",
                                  "model,layer,expert", NULL, 0, &m->expert_pairs);
    if (!st)
        st = moe_registry_declare(reg, "serve_fallback_total", MOE_METRIC_COUNTER,
                                  "Served tokens whose router scores were not finite, sent to "
                                  "the fallback expert (per MoE layer crossing).",
                                  "model", NULL, 0, &m->fallback);
    if (!st)
        st = moe_registry_declare(reg, "serve_errors_total", MOE_METRIC_COUNTER,
                                  "Requests a model's worker answered with an error.", "model",
                                  NULL, 0, &m->errors);
    return st;
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(serve_model *const *)a)->name, (*(serve_model *const *)b)->name);
}

static moe_status add_model(serve_models *ms, const char *name, const char *path, int fallback) {
    if (!serve_name_valid(name))
        return moe_error(MOE_ERR_INVALID,
                         "model name \"%s\": use 1-63 characters of [A-Za-z0-9_.-], the first "
                         "one alphanumeric",
                         name);
    for (int i = 0; i < ms->n; i++)
        if (strcmp(ms->m[i]->name, name) == 0)
            return moe_error(MOE_ERR_INVALID, "model name \"%s\" is given twice", name);
    char ckpt[PATH_MAX];
    if (!serve_checkpoint_dir(path, ckpt, sizeof ckpt))
        return moe_error(MOE_ERR_IO,
                         "model %s: %s holds no checkpoint (config.json and model.safetensors, "
                         "or checkpoints/best of a run directory)",
                         name, path);
    serve_model **grown = realloc(ms->m, (size_t)(ms->n + 1) * sizeof *grown);
    if (!grown) return moe_error(MOE_ERR_NOMEM, "serve: out of memory");
    ms->m = grown;
    serve_model *sm = NULL;
    moe_status st = serve_model_load(&sm, name, ckpt, fallback);
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", moe_last_error());
        serve_model_free(sm);
        return moe_error(st, "model %s (%s): %s", name, ckpt, msg);
    }
    ms->m[ms->n++] = sm;
    return MOE_OK;
}

static moe_status scan_dir(serve_models *ms, const char *dir, int fallback) {
    DIR *d = opendir(dir);
    if (!d) return moe_error(MOE_ERR_IO, "--models %s: cannot open the folder", dir);
    moe_status st = MOE_OK;
    const struct dirent *e;
    while (!st && (e = readdir(d))) {
        /* hidden entries, "." and ".." and odd names are not models */
        if (!serve_name_valid(e->d_name)) continue;
        char path[PATH_MAX], ckpt[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (!serve_checkpoint_dir(path, ckpt, sizeof ckpt)) continue; /* not a checkpoint */
        st = add_model(ms, e->d_name, path, fallback);
    }
    closedir(d);
    return st;
}

void serve_models_close(serve_models *ms) {
    if (!ms) return;
    for (int i = 0; i < ms->n; i++) {
        serve_model *sm = ms->m[i];
        if (sm->running) {
            pthread_mutex_lock(&sm->mu);
            sm->stopping = 1;
            pthread_cond_broadcast(&sm->cv);
            pthread_mutex_unlock(&sm->mu);
        }
    }
    for (int i = 0; i < ms->n; i++) {
        serve_model *sm = ms->m[i];
        if (sm->running) pthread_join(sm->thread, NULL); /* drains its queue first */
        serve_model_free(sm);
    }
    free(ms->m);
    free(ms);
}

moe_status serve_models_open(serve_models **out, const char *models_dir, const char *const *extra,
                             int n_extra, const serve_limits *lim, int fallback_expert,
                             moe_registry *reg) {
    *out = NULL;
    serve_models *ms = calloc(1, sizeof *ms);
    if (!ms) return moe_error(MOE_ERR_NOMEM, "serve: out of memory");
    moe_status st = declare_metrics(&ms->metrics, reg);
    if (!st && models_dir) st = scan_dir(ms, models_dir, fallback_expert);
    for (int i = 0; !st && i < n_extra; i++) {
        const char *eq = strchr(extra[i], '=');
        if (!eq || eq == extra[i] || !eq[1]) {
            st = moe_error(MOE_ERR_INVALID, "--model %s: use NAME=CHECKPOINT", extra[i]);
            break;
        }
        char name[SERVE_NAME_MAX + 1];
        size_t n = (size_t)(eq - extra[i]);
        snprintf(name, sizeof name, "%.*s", (int)(n < SERVE_NAME_MAX ? n : SERVE_NAME_MAX),
                 extra[i]);
        st = add_model(ms, n < SERVE_NAME_MAX ? name : extra[i], eq + 1, fallback_expert);
    }
    if (st) {
        serve_models_close(ms);
        return st;
    }
    if (ms->n > 1) qsort(ms->m, (size_t)ms->n, sizeof *ms->m, by_name);
    for (int i = 0; i < ms->n; i++) {
        serve_model *sm = ms->m[i];
        sm->lim = *lim;
        sm->metrics = &ms->metrics;
        if (pthread_create(&sm->thread, NULL, serve_worker_main, sm) != 0) {
            serve_models_close(ms);
            return moe_error(MOE_ERR_IO, "serve: cannot start the worker of model %s", sm->name);
        }
        sm->running = 1;
        if (ms->metrics.queue_depth) {
            const char *lv[] = {sm->name};
            moe_metric_set(ms->metrics.queue_depth, lv, 0);
            moe_metric_set(ms->metrics.tokens_per_s, lv, 0);
        }
    }
    *out = ms;
    return MOE_OK;
}

serve_model *serve_models_find(serve_models *ms, const char *name) {
    if (!ms || !name) return NULL;
    for (int i = 0; i < ms->n; i++)
        if (strcmp(ms->m[i]->name, name) == 0) return ms->m[i];
    return NULL;
}

int serve_models_queue_depth(serve_models *ms) {
    int total = 0;
    for (int i = 0; ms && i < ms->n; i++) {
        pthread_mutex_lock(&ms->m[i]->mu);
        total += ms->m[i]->depth;
        pthread_mutex_unlock(&ms->m[i]->mu);
    }
    return total;
}

static cJSON *model_json(const serve_model *sm) {
    const moe_model_config *c = sm->mc;
    const int routed = moe_model_moe_layers(sm->model) > 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", sm->name);
    cJSON_AddStringToObject(o, "family", sm->family);
    cJSON_AddStringToObject(o, "task", serve_task_name(sm->task));
    cJSON_AddNumberToObject(o, "params", (double)moe_model_param_count(sm->model));
    cJSON_AddNumberToObject(o, "active_params", (double)moe_model_active_param_count(sm->model));
    cJSON_AddNumberToObject(o, "n_experts", routed || !sm->transformer ? c->moe.n_experts : 0);
    cJSON_AddNumberToObject(o, "top_k", routed ? c->moe.top_k : 0);
    cJSON_AddNumberToObject(o, "n_classes", sm->n_classes);
    cJSON *names = cJSON_AddArrayToObject(o, "class_names");
    for (int i = 0; i < sm->n_classes; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        cJSON_AddItemToArray(names, cJSON_CreateString(sm->class_names ? sm->class_names[i] : idx));
    }
    if (sm->transformer) {
        cJSON_AddNumberToObject(o, "max_seq_len", c->max_seq_len);
        cJSON_AddStringToObject(o, "input", "text");
        cJSON_AddNullToObject(o, "n_features");
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    } else {
        cJSON_AddNullToObject(o, "max_seq_len");
        cJSON_AddStringToObject(o, "input", "rows");
        cJSON_AddNumberToObject(o, "n_features", sm->n_features);
        cJSON_AddNullToObject(o, "vocab_size");
        /* false: the run's data (for its normalisation) was not found: send
         * rows already standardised with the training split's mean/std */
        cJSON_AddBoolToObject(o, "rows_normalized_by_server", sm->rows_normalized);
    }
    cJSON_AddBoolToObject(o, "generate", sm->can_generate);
    cJSON_AddBoolToObject(o, "trace", sm->transformer && routed);
    cJSON_AddNumberToObject(o, "fallback_expert", c->moe.fallback_expert);
    return o;
}

char *serve_models_list_json(serve_models *ms) {
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; ms && i < ms->n; i++) cJSON_AddItemToArray(arr, model_json(ms->m[i]));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Queues job unless the model is stopping or its queue is full. */
static moe_status enqueue(serve_model *m, serve_job *job, serve_error *err) {
    pthread_mutex_lock(&m->mu);
    if (m->stopping) {
        pthread_mutex_unlock(&m->mu);
        return serve_fail(err, 503, "model", "model %s is shutting down: try again later", m->name);
    }
    if (m->depth >= m->lim.max_queue) {
        pthread_mutex_unlock(&m->mu);
        return serve_fail(err, 503, "model",
                          "model %s has %d requests waiting (the limit): try "
                          "again later",
                          m->name, m->lim.max_queue);
    }
    if (m->tail)
        m->tail->next = job;
    else
        m->head = job;
    m->tail = job;
    ++m->depth;
    /* published under mu, as the worker does: set after unlocking, an older
     * depth could land last and stay on an idle model */
    if (m->metrics->queue_depth) {
        const char *lv[] = {m->name};
        moe_metric_set(m->metrics->queue_depth, lv, m->depth);
    }
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return MOE_OK;
}

static serve_job *new_job(serve_reply *reply, serve_done_fn done, void *user, serve_error *err) {
    serve_job *job = calloc(1, sizeof *job);
    if (!job) {
        serve_fail(err, 503, "", "out of memory: try again later");
        return NULL;
    }
    job->reply = reply;
    job->done = done;
    job->user = user;
    return job;
}

/* On MOE_OK the request's contents move into the queue and *rq is zeroed
 * (freeing it again is harmless); the struct itself stays the caller's. */
moe_status serve_infer_submit(serve_model *m, serve_infer_request *rq, serve_reply *reply,
                              serve_done_fn done, void *user, serve_error *err) {
    serve_job *job = new_job(reply, done, user, err);
    if (!job) return MOE_ERR_NOMEM;
    job->infer = *rq;
    moe_status st = enqueue(m, job, err);
    if (st) {
        free(job); /* the contents are still rq's */
        return st;
    }
    memset(rq, 0, sizeof *rq);
    return MOE_OK;
}

moe_status serve_generate_submit(serve_model *m, serve_generate_request *rq, serve_reply *reply,
                                 serve_done_fn done, void *user, serve_error *err) {
    serve_job *job = new_job(reply, done, user, err);
    if (!job) return MOE_ERR_NOMEM;
    job->generate = 1;
    job->gen = *rq;
    moe_status st = enqueue(m, job, err);
    if (st) {
        free(job);
        return st;
    }
    memset(rq, 0, sizeof *rq);
    return MOE_OK;
}
