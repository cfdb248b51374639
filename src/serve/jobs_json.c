/* A job as JSON: the object GET /v1/jobs/{id} answers and job.json holds,
 * and the way back (job.json -> job) when a server restarts. */
#include "serve/jobs_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const job_state_names[JOB_N_STATES] = {"queued", "running",   "completed",
                                                   "failed", "cancelled", "interrupted"};

int job_state_parse(const char *s) {
    for (int i = 0; s && i < JOB_N_STATES; i++)
        if (strcmp(s, job_state_names[i]) == 0) return i;
    return -1;
}

void job_time_iso(time_t t, char *buf, size_t cap) {
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

time_t job_time_parse(const char *s) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

/* The metrics object's keys, in job_metric's order. */
static const char *const metric_keys[] = {
    "train_loss", "ce",           "aux_loss",     "lr",
    "grad_norm",  "tokens_per_s", "balance_cv",   "max_over_mean",
    "val_loss",   "val_ppl",      "val_accuracy", "val_macro_f1"};
_Static_assert(sizeof metric_keys / sizeof metric_keys[0] == JOB_N_METRICS, "one key per metric");

/* Finite numbers only: NaN means "not measured", which JSON says by leaving it out. */
static void add_number(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
}

static void add_time(cJSON *o, const char *key, time_t t) {
    char buf[32];
    if (t == 0) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    job_time_iso(t, buf, sizeof buf);
    cJSON_AddStringToObject(o, key, buf);
}

static void add_text(cJSON *o, const char *key, const char *s) {
    if (s && s[0])
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNullToObject(o, key);
}

int job_resumable(const struct serve_jobs *js, const job *j) {
    return (j->state == JOB_INTERRUPTED || j->state == JOB_CANCELLED) &&
           job_has_checkpoint(js, j->id);
}

static cJSON *history_json(const job *j) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < j->n_history; i++) {
        const job_point *p = &j->history[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)p->step);
        add_number(o, "loss", p->loss);
        add_number(o, "aux", p->aux);
        add_number(o, "lr", p->lr);
        add_number(o, "val_loss", p->val_loss);
        add_number(o, "val_accuracy", p->val_accuracy);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *experts_json(const job *j) {
    cJSON *o = cJSON_CreateObject(), *layers = cJSON_AddArrayToObject(o, "layers");
    cJSON *index = cJSON_AddArrayToObject(o, "layer_index");
    for (int l = 0; l < j->n_layers; l++) {
        cJSON *row = cJSON_CreateArray();
        for (int e = 0; e < j->n_experts; e++) {
            double v = j->shares[(size_t)l * j->n_experts + e];
            cJSON_AddItemToArray(row, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
        }
        cJSON_AddItemToArray(layers, row);
        cJSON_AddItemToArray(index, cJSON_CreateNumber(j->layer_index[l]));
    }
    return o;
}

cJSON *job_to_json(const struct serve_jobs *js, const job *j, int history, int config) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "name", j->name);
    cJSON_AddStringToObject(o, "state", job_state_names[j->state]);
    cJSON_AddBoolToObject(o, "resumable", job_resumable(js, j));
    char rel[128];
    snprintf(rel, sizeof rel, "jobs/%s/run/checkpoints/latest", j->id);
    add_text(o, "checkpoint", job_has_checkpoint(js, j->id) ? rel : NULL);
    snprintf(rel, sizeof rel, "jobs/%s/run", j->id);
    cJSON_AddStringToObject(o, "run_dir", rel);
    add_time(o, "created", j->created);
    add_time(o, "started", j->started);
    add_time(o, "finished", j->finished);
    add_text(o, "key_id", j->key_id);
    add_text(o, "error", j->error);
    add_text(o, "stop_reason", j->stop_reason);
    cJSON_AddBoolToObject(o, "stopping",
                          j->stop && (j->state == JOB_QUEUED || j->state == JOB_RUNNING));
    cJSON *p = cJSON_AddObjectToObject(o, "progress");
    cJSON_AddNumberToObject(p, "step", (double)j->step);
    cJSON_AddNumberToObject(p, "total_steps", (double)j->total_steps);
    cJSON_AddNumberToObject(p, "epoch", isfinite(j->epoch) ? j->epoch : 0);
    cJSON_AddNumberToObject(p, "elapsed_s", isfinite(j->elapsed_s) ? j->elapsed_s : 0);
    cJSON_AddNumberToObject(p, "eta_s", isfinite(j->eta_s) ? j->eta_s : 0);
    cJSON *m = cJSON_AddObjectToObject(o, "metrics");
    for (int i = 0; i < JOB_N_METRICS; i++) add_number(m, metric_keys[i], j->metrics[i]);
    if (history) cJSON_AddItemToObject(o, "history", history_json(j));
    cJSON_AddItemToObject(o, "experts", experts_json(j));
    if (config && j->config) cJSON_AddItemToObject(o, "config", cJSON_Duplicate(j->config, 1));
    return o;
}

/* ---- history ---- */

/* Every other training point, keeping the newest, and every evaluation
 * (a point with a val_loss); from then on one training report in twice as
 * many is kept, so the training gaps stay even over the whole run. An
 * evaluation that shares its step with a training point counts in the
 * alternation, so the training points around it keep their spacing. The
 * curve stays bounded all the same: when keeping every evaluation would
 * leave more than 3/4 of the points (evaluations about as frequent as the
 * kept training reports), every other point goes, evaluations too. */
static void history_thin(job *j) {
    char keep[JOB_HISTORY_MAX];
    const int n_in = j->n_history < JOB_HISTORY_MAX ? j->n_history : JOB_HISTORY_MAX;
    int kept = 0;
    for (int pass = 0; pass < 2; pass++) {
        const int keep_evals = pass == 0;
        int parity = 0; /* counted from the newest point back: the newest stays */
        kept = 0;
        for (int i = n_in - 1; i >= 0; i--) {
            const int eval = isfinite(j->history[i].val_loss);
            keep[i] = (keep_evals && eval) || parity == 0;
            kept += keep[i];
            if (!(keep_evals && eval && !isfinite(j->history[i].loss))) parity ^= 1;
        }
        if (kept <= JOB_HISTORY_MAX * 3 / 4) break;
    }
    int n = 0;
    for (int i = 0; i < n_in; i++)
        if (keep[i]) j->history[n++] = j->history[i];
    j->n_history = n;
    /* capped: evaluations pushed at every step thin again and again */
    const int stride = j->history_stride > 0 ? j->history_stride : 1;
    j->history_stride = stride < (1 << 24) ? stride * 2 : stride;
}

static job_point *history_push(job *j) {
    if (j->n_history >= JOB_HISTORY_MAX) history_thin(j);
    if (j->n_history == j->cap_history) {
        int cap = j->cap_history ? j->cap_history * 2 : 64;
        if (cap > JOB_HISTORY_MAX) cap = JOB_HISTORY_MAX;
        job_point *h = realloc(j->history, (size_t)cap * sizeof *h);
        if (!h) return NULL;
        j->history = h;
        j->cap_history = cap;
    }
    job_point *p = &j->history[j->n_history++];
    p->loss = p->aux = p->lr = p->val_loss = p->val_accuracy = NAN;
    return p;
}

void job_history_add(job *j, const moe_train_progress *p) {
    job_point *last = j->n_history ? &j->history[j->n_history - 1] : NULL;
    job_point *pt = NULL;
    if (last && last->step == p->step) {
        pt = last; /* an evaluation joins its step's training point */
    } else if (p->is_eval) {
        pt = history_push(j); /* evaluations are rare: always kept */
    } else {
        if (j->n_history >= JOB_HISTORY_MAX) history_thin(j); /* before the stride is used */
        int stride = j->history_stride > 0 ? j->history_stride : 1;
        if (last && ++j->history_skipped < stride) return;
        pt = history_push(j);
    }
    if (!pt) return; /* out of memory: the curve misses a point */
    if (!p->is_eval) j->history_skipped = 0;
    pt->step = p->step;
    if (p->is_eval) {
        pt->val_loss = p->val_loss;
        pt->val_accuracy = p->val_accuracy;
    } else {
        pt->loss = p->loss;
        pt->aux = p->aux;
        pt->lr = p->lr;
    }
}

/* ---- job.json -> job ---- */

static double number_or_nan(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void copy_text(char *dst, size_t cap, const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(dst, cap, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static time_t time_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? job_time_parse(v->valuestring) : 0;
}

static moe_status read_history(job *j, const cJSON *a) {
    const cJSON *it;
    cJSON_ArrayForEach(it, a) {
        if (!cJSON_IsObject(it) || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(it, "step")))
            continue;
        job_point *p = history_push(j);
        if (!p) return moe_error(MOE_ERR_NOMEM, "job.json: out of memory");
        p->step = (long)number_or_nan(it, "step");
        p->loss = number_or_nan(it, "loss");
        p->aux = number_or_nan(it, "aux");
        p->lr = number_or_nan(it, "lr");
        p->val_loss = number_or_nan(it, "val_loss");
        p->val_accuracy = number_or_nan(it, "val_accuracy");
    }
    return MOE_OK;
}

static moe_status read_experts(job *j, const cJSON *o) {
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(o, "layers");
    const cJSON *index = cJSON_GetObjectItemCaseSensitive(o, "layer_index");
    int L = cJSON_IsArray(layers) ? cJSON_GetArraySize(layers) : 0;
    int E = L ? cJSON_GetArraySize(cJSON_GetArrayItem(layers, 0)) : 0;
    if (L <= 0 || E <= 0 || L > 4096 || E > 4096) return MOE_OK;
    j->shares = malloc((size_t)L * (size_t)E * sizeof *j->shares);
    j->layer_index = malloc((size_t)L * sizeof *j->layer_index);
    if (!j->shares || !j->layer_index) return moe_error(MOE_ERR_NOMEM, "job.json: out of memory");
    j->cap_shares = (size_t)L * E;
    j->cap_layers = L;
    for (int l = 0; l < L; l++) {
        const cJSON *row = cJSON_GetArrayItem(layers, l), *ix = cJSON_GetArrayItem(index, l);
        j->layer_index[l] = cJSON_IsNumber(ix) ? ix->valueint : l;
        for (int e = 0; e < E; e++) {
            const cJSON *v = cJSON_GetArrayItem(row, e);
            j->shares[(size_t)l * E + e] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        }
    }
    j->n_layers = L;
    j->n_experts = E;
    return MOE_OK;
}

moe_status job_from_json(job *j, const cJSON *o) {
    if (!cJSON_IsObject(o)) return moe_error(MOE_ERR_FORMAT, "not a JSON object");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(o, "state");
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(o, "config");
    if (!cJSON_IsString(id) || !serve_name_valid(id->valuestring) ||
        strlen(id->valuestring) >= sizeof j->id)
        return moe_error(MOE_ERR_FORMAT, "\"id\" is missing or not a job id");
    int s = cJSON_IsString(state) ? job_state_parse(state->valuestring) : -1;
    if (s < 0) return moe_error(MOE_ERR_FORMAT, "\"state\" is missing or unknown");
    if (!cJSON_IsObject(config)) return moe_error(MOE_ERR_FORMAT, "\"config\" is missing");
    snprintf(j->id, sizeof j->id, "%s", id->valuestring);
    j->state = (job_state)s;
    copy_text(j->name, sizeof j->name, o, "name");
    if (!serve_name_valid(j->name)) snprintf(j->name, sizeof j->name, "job");
    copy_text(j->key_id, sizeof j->key_id, o, "key_id");
    copy_text(j->error, sizeof j->error, o, "error");
    copy_text(j->stop_reason, sizeof j->stop_reason, o, "stop_reason");
    j->created = time_of(o, "created");
    j->started = time_of(o, "started");
    j->finished = time_of(o, "finished");
    if (!(j->config = cJSON_Duplicate(config, 1)))
        return moe_error(MOE_ERR_NOMEM, "job.json: out of memory");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "progress");
    double step = number_or_nan(p, "step"), total = number_or_nan(p, "total_steps");
    j->step = isfinite(step) ? (long)step : 0;
    j->total_steps = isfinite(total) ? (long)total : 0;
    j->epoch = number_or_nan(p, "epoch");
    j->elapsed_s = number_or_nan(p, "elapsed_s");
    j->eta_s = number_or_nan(p, "eta_s");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metrics");
    for (int i = 0; i < JOB_N_METRICS; i++) j->metrics[i] = number_or_nan(m, metric_keys[i]);
    moe_status st = read_history(j, cJSON_GetObjectItemCaseSensitive(o, "history"));
    if (st == MOE_OK) st = read_experts(j, cJSON_GetObjectItemCaseSensitive(o, "experts"));
    return st;
}

void job_free_fields(job *j) {
    cJSON_Delete(j->config);
    free(j->history);
    free(j->shares);
    free(j->layer_index);
    j->config = NULL;
    j->history = NULL;
    j->shares = NULL;
    j->layer_index = NULL;
    j->n_history = j->cap_history = j->n_layers = j->n_experts = 0;
    j->cap_shares = 0;
    j->cap_layers = 0;
}
