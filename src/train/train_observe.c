/* The trainer's observer: metric registry, alerts, routing probes, reports. */
#include "train/train_observe.h"

#include "io/fsutil.h"
#include "moe/report.h"
#include "train/run_dir.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void raise_alert(train_observer *o, long step, const alert_event *ev);
static void warn_frozen_router(train_observer *o, long step);

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* model_info.json: sizes and costs the report's summary needs mid-run. */
static moe_status write_model_info(const train_observer *o, const moe_model *m) {
    const moe_run_config *c = o->cfg;
    int T = c->train.seq_len;
    cJSON *j = cJSON_CreateObject();
    if (!j) return moe_error(MOE_ERR_NOMEM, "model_info.json: out of memory");
    cJSON_AddStringToObject(j, "name", c->name);
    cJSON_AddStringToObject(j, "family", moe_model_family_name(m));
    /* the seed families count per example (an image, a table row) */
    cJSON_AddStringToObject(j, "unit", o->task->dense ? "example" : "token");
    cJSON_AddNumberToObject(j, "params", (double)moe_model_param_count(m));
    cJSON_AddNumberToObject(j, "active_params", (double)moe_model_active_param_count(m));
    cJSON_AddNumberToObject(j, "flops_per_token_active", moe_model_train_flops_per_token(m, T) / 3);
    cJSON_AddNumberToObject(j, "flops_per_token_dense",
                            moe_model_all_experts_flops_per_token(m, T) / 3);
    cJSON_AddNumberToObject(j, "train_flops_per_token", moe_model_train_flops_per_token(m, T));
    cJSON_AddNumberToObject(j, "n_experts", c->model.moe.n_experts);
    cJSON_AddNumberToObject(j, "top_k", c->model.moe.top_k);
    cJSON *layers = cJSON_AddArrayToObject(j, "moe_layers"); /* model block indices */
    for (int i = 0; i < moe_model_moe_layers(m); i++)
        cJSON_AddItemToArray(layers, cJSON_CreateNumber(moe_model_moe_layer_index(m, i)));
    cJSON_AddNumberToObject(j, "n_layer", c->model.n_layer);
    cJSON_AddNumberToObject(j, "d_model", c->model.d_model);
    cJSON_AddNumberToObject(j, "seq_len", T);
    cJSON_AddNumberToObject(j, "batch_size", c->train.batch_size);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (!s) return moe_error(MOE_ERR_NOMEM, "model_info.json: out of memory");
    moe_status st = run_dir_write_text(o->run_dir, "model_info.json", s);
    free(s);
    return st;
}

static moe_status find_router_weights(train_observer *o, const moe_model *m) {
    const moe_param_table *t = moe_model_table(m);
    o->gate_at = calloc((size_t)o->n_layers + 1, sizeof *o->gate_at);
    o->router_grad = calloc((size_t)o->n_layers + 1, sizeof *o->router_grad);
    o->share =
        calloc(((size_t)o->n_layers + 1) * (size_t)o->cfg->model.moe.n_experts, sizeof *o->share);
    o->balance = calloc((size_t)o->n_layers + 1, sizeof *o->balance);
    if (!o->gate_at || !o->router_grad || !o->share || !o->balance)
        return moe_error(MOE_ERR_NOMEM, "train: out of memory");
    for (int i = 0; i < o->n_layers; i++) {
        int k = moe_model_router_tensor(m, i);
        if (k < 0) return moe_error(MOE_ERR_INVALID, "train: MoE layer %d has no router weight", i);
        o->gate_at[i] = (long)t->tensors[k].offset;
        o->gate_numel = t->tensors[k].numel;
    }
    return MOE_OK;
}

moe_status observer_init(train_observer *o, const moe_run_config *cfg, const moe_train_opts *opts,
                         const char *run_dir, const moe_model *m, const train_task *task,
                         long long tokens_seen, double t0) {
    memset(o, 0, sizeof *o);
    o->cfg = cfg;
    o->opts = opts;
    o->run_dir = run_dir;
    o->task = task;
    o->t0 = t0;
    o->n_layers = moe_model_moe_layers(m);
    o->reg = opts->registry;
    moe_status st = MOE_OK;
    if (!o->reg) {
        st = moe_registry_create(&o->reg, "moe");
        if (st != MOE_OK) return st;
        o->own_reg = 1;
    }
    if ((st = train_metrics_init(&o->tm, o->reg, m)) != MOE_OK) return st;
    moe_metric_add(o->tm.tokens, NULL, (double)tokens_seen); /* a resumed run counts on */
    st = alerts_init(&o->alerts, &cfg->obs, o->n_layers, cfg->model.moe.n_experts);
    if (st != MOE_OK) return st;
    if ((st = find_router_weights(o, m)) != MOE_OK) return st;
    if (task->kind == MOE_TASK_LM &&
        (st = moe_corpus_topics(&task->corpus, &cfg->data, &o->topics)) != MOE_OK)
        return st;
    if ((st = write_model_info(o, m)) != MOE_OK) return st;
    char *path = fs_printf("%s/metrics.jsonl", run_dir);
    if (!path) return MOE_ERR_NOMEM;
    o->log = fopen(path, "a");
    st = o->log ? MOE_OK : moe_error(MOE_ERR_IO, "cannot open %s for writing", path);
    free(path);
    if (st == MOE_OK && tokens_seen == 0) warn_frozen_router(o, 0);
    return st;
}

/* Top-1 routing whose one weight is normalised to 1 (renormalised, or a
 * softmax over the chosen expert alone) passes the task loss no gradient to
 * the router: only auxiliary losses train it (seed 002's and seed 003's
 * configs). Said once at the start, as a no_router_grad alert; the
 * per-step alert catches a router whose gradient is exactly zero. */
static void warn_frozen_router(train_observer *o, long step) {
    const moe_model_config *m = &o->cfg->model;
    const moe_layer_config *e = &m->moe;
    int routed = m->family == MOE_FAMILY_MLP_MOE ||
                 (m->family == MOE_FAMILY_TRANSFORMER && m->moe_every > 0);
    if (!routed || e->top_k != 1 || e->score != MOE_SCORE_SOFTMAX ||
        !(e->renormalize || e->topk_before_softmax))
        return;
    alert_event ev = {.kind = ALERT_NO_ROUTER_GRAD, .layer = -1, .expert = -1, .value = 0};
    snprintf(ev.message, sizeof ev.message,
             "model.moe.top_k = 1 with %s: every gate weight is exactly 1, so the task loss "
             "gives the router no gradient (only auxiliary losses train it); use top_k >= 2 "
             "or set renormalize and topk_before_softmax to false",
             e->topk_before_softmax ? "topk_before_softmax" : "renormalize");
    raise_alert(o, step, &ev);
}

void observer_free(train_observer *o) {
    if (o->log) fclose(o->log);
    train_metrics_free(&o->tm);
    alerts_free(&o->alerts);
    if (o->own_reg) moe_registry_free(o->reg);
    free(o->gate_at);
    free(o->router_grad);
    free(o->share);
    free(o->balance);
    memset(o, 0, sizeof *o);
}

void observer_router_grads(train_observer *o, moe_model *m) {
    const moe_real *g = moe_model_grads(m);
    for (int i = 0; i < o->n_layers; i++) {
        double ss = 0;
        for (size_t j = 0; j < o->gate_numel; j++) {
            double v = g[o->gate_at[i] + (long)j];
            ss += v * v;
        }
        o->router_grad[i] = sqrt(ss);
    }
}

void observer_router_grads_unmeasured(train_observer *o) {
    for (int i = 0; i < o->n_layers; i++) o->router_grad[i] = NAN;
}

/* {"kind":"alert",...} in metrics.jsonl, the counter, the caller's callback. */
static void raise_alert(train_observer *o, long step, const alert_event *ev) {
    o->alerts_raised++;
    train_metrics_alert(&o->tm, ev);
    train_metrics_active(&o->tm, &o->alerts);
    cJSON *j = cJSON_CreateObject();
    if (j) {
        cJSON_AddStringToObject(j, "kind", "alert");
        cJSON_AddNumberToObject(j, "step", (double)step);
        cJSON_AddNumberToObject(j, "time_s", now_s() - o->t0);
        cJSON_AddStringToObject(j, "alert", alert_names[ev->kind]);
        if (ev->layer >= 0) cJSON_AddNumberToObject(j, "layer", ev->layer);
        if (ev->expert >= 0) cJSON_AddNumberToObject(j, "expert", ev->expert);
        if (isfinite(ev->value))
            cJSON_AddNumberToObject(j, "value", ev->value);
        else
            cJSON_AddNullToObject(j, "value");
        cJSON_AddNumberToObject(j, "threshold", ev->threshold);
        cJSON_AddStringToObject(j, "message", ev->message);
        char *s = cJSON_PrintUnformatted(j);
        if (s) fprintf(o->log, "%s\n", s);
        fflush(o->log);
        free(s);
        cJSON_Delete(j);
    }
    if (o->opts->alert) o->opts->alert(ev->message, o->opts->user);
}

/* Each MoE layer's load in the last step; the progress record gets the mean
 * cv and the worst max/mean. */
static void measure_balance(train_observer *o, moe_train_progress *p, const moe_model *m) {
    const int E = o->cfg->model.moe.n_experts;
    p->balance_cv = 0;
    p->max_over_mean = 0;
    for (int i = 0; i < o->n_layers; i++) {
        const moe_layer_stats *s = moe_model_layer_stats(m, i);
        layer_balance *b = &o->balance[i];
        double *share = o->share + (size_t)i * E;
        int kept = s->n_pairs - s->n_dropped;
        for (int e = 0; e < E; e++) share[e] = kept ? (double)s->expert_tokens[e] / kept : 0;
        moe_routing_balance(s, E, &b->cv, &b->max_over_mean);
        b->share = share;
        p->balance_cv += b->cv / o->n_layers;
        if (b->max_over_mean > p->max_over_mean) p->max_over_mean = b->max_over_mean;
    }
}

moe_status observer_step(train_observer *o, moe_train_progress *p, const step_measure *sm,
                         const moe_model *m, int log) {
    measure_balance(o, p, m);
    alert_event ev[16];
    int n = alerts_loss(&o->alerts, p->step, p->loss, p->grad_norm, ev, 16);
    for (int k = 0; k < n; k++) raise_alert(o, p->step, &ev[k]);
    for (int i = 0; i < o->n_layers; i++) {
        n = alerts_layer(&o->alerts, p->step, i, moe_model_moe_layer_index(m, i),
                         o->balance[i].share, o->balance[i].cv, o->router_grad[i], ev, 16);
        for (int k = 0; k < n; k++) raise_alert(o, p->step, &ev[k]);
    }
    step_measure full = *sm;
    full.loss_variance = alerts_loss_variance(&o->alerts);
    full.router_grad = o->router_grad;
    full.balance = o->balance;
    moe_registry_update_begin(o->reg); /* a scrape sees the whole step or none of it */
    train_metrics_step(&o->tm, p, &full, m);
    train_metrics_active(&o->tm, &o->alerts);
    moe_registry_update_end(o->reg);
    p->alerts = o->alerts_raised;
    if (!log) return MOE_OK;
    return moe_registry_write_jsonl(o->reg, o->log, "train", p->step, now_s() - o->t0);
}

void observer_nonfinite(train_observer *o, long step, double loss, double grad_norm) {
    alert_event ev;
    if (alerts_loss(&o->alerts, step, loss, grad_norm, &ev, 1) == 1) raise_alert(o, step, &ev);
}

void observer_refresh_report(train_observer *o) {
    if (o->report_off) return;
    if (moe_report_write(o->run_dir, NULL) != MOE_OK) {
        /* the run goes on without it; the CLI says why at the end */
        snprintf(o->report_error, sizeof o->report_error, "%s", moe_last_error());
        o->report_off = 1;
    }
}

/* routing.json: topics of a byte corpus, or classes of labelled text. */
static moe_status probe(train_observer *o, moe_model *m, moe_arena *arena, long step, char **json) {
    const moe_obs_config *oc = &o->cfg->obs;
    const train_task *t = o->task;
    if (t->kind == MOE_TASK_LM)
        return moe_routing_probe(m, &t->corpus, &o->topics, o->cfg->train.seq_len,
                                 oc->probe_windows, oc->probe_sample, arena, step, json);
    return moe_routing_probe_text(m, &t->text, t->tok, o->cfg->train.seq_len, oc->probe_windows,
                                  oc->probe_sample, arena, step, json);
}

/* The dense task's analyses of the split it evaluated last, as one object:
 * {"expert_analysis": {...}, "gate_sparsity": {...}} (either may be absent);
 * NULL when there are none. */
static cJSON *task_analysis(const train_observer *o) {
    const train_task *t = o->task;
    if (!t->dense || (t->analysis.n_experts == 0 && t->gates.n_layers == 0)) return NULL;
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    if (t->analysis.n_experts > 0)
        cJSON_AddItemToObject(j, "expert_analysis",
                              moe_expert_analysis_json(&t->analysis, t->class_names));
    if (t->gates.n_layers > 0)
        cJSON_AddItemToObject(j, "gate_sparsity", moe_gate_sparsity_json(&t->gates));
    return j;
}

/* analysis.jsonl: one line per analysis (every obs.analysis_every epochs or
 * steps, and the final evaluation), with the step, epoch and split. */
static moe_status write_analysis(train_observer *o, const moe_train_progress *p, int final,
                                 const char *split) {
    const moe_run_config *c = o->cfg;
    long every = c->obs.analysis_every;
    long at = c->train.epochs > 0 ? (long)floor(p->epoch + 1e-9) : p->step;
    int due = final || (every > 0 && at > 0 && at % every == 0 && at != o->last_analysis);
    cJSON *j = due ? task_analysis(o) : NULL;
    if (!j) return MOE_OK;
    o->last_analysis = at;
    cJSON_AddNumberToObject(j, "step", (double)p->step);
    cJSON_AddNumberToObject(j, "epoch", p->epoch);
    cJSON_AddStringToObject(j, "split", split);
    char *line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!line) return moe_error(MOE_ERR_NOMEM, "analysis.jsonl: out of memory");
    char *path = fs_printf("%s/analysis.jsonl", o->run_dir);
    FILE *f = path ? fopen(path, "a") : NULL;
    int ok = f && fprintf(f, "%s\n", line) > 0;
    ok = f && fclose(f) == 0 && ok;
    moe_status st =
        ok ? MOE_OK : moe_error(MOE_ERR_IO, "cannot append to %s (disk full?)", path ? path : "");
    free(path);
    free(line);
    return st;
}

/* routing.json of a dense task with experts: {"step", "distribution":
 * {"experts": [[each expert's probability of the example's class]],
 * "labels": [class names]}} for the first validation examples. */
static moe_status write_distribution(train_observer *o, long step) {
    const train_task *t = o->task;
    int E = t->analysis.n_experts;
    if (E == 0 || t->probe_n == 0) return MOE_OK;
    cJSON *j = cJSON_CreateObject();
    cJSON *d = cJSON_AddObjectToObject(j, "distribution");
    cJSON *rows = cJSON_AddArrayToObject(d, "experts"),
          *labels = cJSON_AddArrayToObject(d, "labels");
    for (int i = 0; labels && i < t->probe_n; i++) {
        cJSON *row = cJSON_CreateFloatArray(t->probe + (size_t)i * E, E);
        cJSON_AddItemToArray(rows, row);
        int y = t->probe_label[i];
        cJSON_AddItemToArray(labels, t->class_names ? cJSON_CreateString(t->class_names[y])
                                                    : cJSON_CreateNumber(y));
    }
    cJSON_AddNumberToObject(j, "step", (double)step);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return moe_error(MOE_ERR_NOMEM, "routing.json: out of memory");
    moe_status st = run_dir_write_text(o->run_dir, "routing.json", s);
    free(s);
    return st;
}

cJSON *observer_test_analysis(train_observer *o, const moe_train_progress *p) {
    if (!o->task->dense) return NULL;
    write_analysis(o, p, 1, "test"); /* best effort: results.json carries it anyway */
    return task_analysis(o);
}

moe_status observer_eval(train_observer *o, const moe_train_progress *p, moe_model *m,
                         moe_arena *arena, int final) {
    train_metrics_eval(&o->tm, p->val_loss, p->val_accuracy, p->val_macro_f1);
    moe_status st = moe_registry_write_jsonl(o->reg, o->log, "eval", p->step, now_s() - o->t0);
    if (st != MOE_OK) return st;
    if ((st = write_analysis(o, p, final, "val")) != MOE_OK) return st;
    if (o->task->dense && (st = write_distribution(o, p->step)) != MOE_OK) return st;
    const moe_obs_config *oc = &o->cfg->obs;
    if (o->n_layers > 0 && !o->task->dense) {
        char *json = NULL;
        st = probe(o, m, arena, p->step, &json);
        if (st == MOE_OK) st = run_dir_write_text(o->run_dir, "routing.json", json);
        free(json);
        if (st != MOE_OK) return st;
    }
    o->evals++;
    if (!final && oc->report_every > 0 && o->evals % oc->report_every == 0)
        observer_refresh_report(o);
    return MOE_OK;
}
