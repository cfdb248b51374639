/* Declares and updates the trainer's metric families. Label values are
 * formatted once; updates are a lookup and a store under the registry lock,
 * cheap next to a training step. */
#include "train/train_metrics.h"

#include "moe/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct family {
    size_t offset; /* of the moe_metric * in train_metrics */
    const char *name;
    moe_metric_type type;
    const char *labels;
    const char *help;
} family;

#define F(member, name, type, labels, help)                                                        \
    { offsetof(train_metrics, member), name, type, labels, help }
static const family families[] = {
    F(step, "train_step", MOE_METRIC_GAUGE, NULL, "Optimizer steps done."),
    F(epoch, "train_epoch", MOE_METRIC_GAUGE, NULL, "Passes over the training tokens."),
    F(loss, "train_loss", MOE_METRIC_GAUGE, NULL, "Training loss of the last step (ce + aux)."),
    F(ce, "train_ce", MOE_METRIC_GAUGE, NULL, "Cross-entropy part of the training loss."),
    F(aux, "train_aux", MOE_METRIC_GAUGE, NULL, "Weighted auxiliary losses of the last step."),
    F(grad_norm, "grad_norm", MOE_METRIC_GAUGE, NULL, "Global gradient norm before clipping."),
    F(lr, "learning_rate", MOE_METRIC_GAUGE, NULL, "Learning rate of the last step."),
    F(temperature, "router_temperature", MOE_METRIC_GAUGE, NULL, "Router softmax temperature."),
    F(loss_var, "loss_variance", MOE_METRIC_GAUGE, NULL,
      "Variance of the training loss over the last obs.loss_window steps."),
    F(tok_s, "tokens_per_second", MOE_METRIC_GAUGE, NULL, "Training tokens per second."),
    F(ex_s, "examples_per_second", MOE_METRIC_GAUGE, NULL, "Training sequences per second."),
    F(rss, "memory_rss_bytes", MOE_METRIC_GAUGE, NULL, "Resident memory of the process."),
    F(arena, "arena_bytes", MOE_METRIC_GAUGE, NULL, "Bytes held by the step arena."),
    F(tokens, "tokens_total", MOE_METRIC_COUNTER, NULL, "Training tokens seen."),
    F(step_seconds, "step_seconds", MOE_METRIC_HISTOGRAM, NULL, "Wall time of one step."),
    F(fraction, "expert_fraction", MOE_METRIC_GAUGE, "layer,expert",
      "Share of kept (token, slot) pairs each expert got in the last step."),
    F(pairs, "expert_pairs_total", MOE_METRIC_COUNTER, "layer,expert",
      "Kept (token, slot) pairs routed to each expert."),
    F(cv, "load_cv", MOE_METRIC_GAUGE, "layer", "Coefficient of variation of pairs per expert."),
    F(max_mean, "load_max_over_mean", MOE_METRIC_GAUGE, "layer", "Busiest expert's pairs / mean."),
    F(dropped, "dropped_pairs", MOE_METRIC_GAUGE, "layer", "Pairs over capacity in the last step."),
    F(entropy, "router_entropy", MOE_METRIC_GAUGE, "layer", "Mean router entropy (nats)."),
    F(aux_loss, "aux_loss", MOE_METRIC_GAUGE, "layer,loss", "Each auxiliary loss, unweighted."),
    F(router_grad, "router_grad_norm", MOE_METRIC_GAUGE, "layer",
      "Norm of the router weight gradient of the last step."),
    F(alerts, "alerts_total", MOE_METRIC_COUNTER, "alert", "Alerts raised, per kind."),
    F(alert_active, "alert_active", MOE_METRIC_GAUGE, "alert", "Conditions firing now, per kind."),
    F(loss_term, "loss_term", MOE_METRIC_GAUGE, "term",
      "Each auxiliary term of a seed family's loss, unweighted."),
    F(val_loss, "val_loss", MOE_METRIC_GAUGE, NULL, "Mean validation cross-entropy."),
    F(val_ppl, "val_perplexity", MOE_METRIC_GAUGE, NULL, "exp(val_loss)."),
    F(val_acc, "val_accuracy", MOE_METRIC_GAUGE, NULL,
      "Validation accuracy: sequences (classify) or masked tokens (mlm)."),
    F(val_f1, "val_macro_f1", MOE_METRIC_GAUGE, NULL, "Validation macro-F1 (classify)."),
};
#undef F

static const double step_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

moe_status train_metrics_init(train_metrics *tm, moe_registry *reg, const moe_model *m) {
    memset(tm, 0, sizeof *tm);
    tm->reg = reg;
    tm->n_layers = moe_model_moe_layers(m);
    tm->n_experts = moe_model_config_of(m)->moe.n_experts;
    tm->layer_label = calloc((size_t)tm->n_layers + 1, sizeof *tm->layer_label);
    tm->expert_label = calloc((size_t)tm->n_experts + 1, sizeof *tm->expert_label);
    if (!tm->layer_label || !tm->expert_label) {
        train_metrics_free(tm);
        return moe_error(MOE_ERR_NOMEM, "metrics: out of memory");
    }
    for (int i = 0; i < tm->n_layers; i++)
        snprintf(tm->layer_label[i], sizeof tm->layer_label[i], "%d",
                 moe_model_moe_layer_index(m, i));
    for (int e = 0; e < tm->n_experts; e++)
        snprintf(tm->expert_label[e], sizeof tm->expert_label[e], "%d", e);
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        const family *f = &families[i];
        int hist = f->type == MOE_METRIC_HISTOGRAM;
        moe_metric **slot = (moe_metric **)((char *)tm + f->offset);
        moe_status st = moe_registry_declare(
            reg, f->name, f->type, f->help, f->labels, hist ? step_buckets : NULL,
            hist ? (int)(sizeof step_buckets / sizeof step_buckets[0]) : 0, slot);
        if (st != MOE_OK) {
            train_metrics_free(tm);
            return st;
        }
    }
    /* alert series exist from the start, so a scrape shows 0, not nothing */
    for (int k = 0; k < ALERT_KINDS; k++) {
        const char *lv[] = {alert_names[k]};
        moe_metric_add(tm->alerts, lv, 0);
        moe_metric_set(tm->alert_active, lv, 0);
    }
    return MOE_OK;
}

void train_metrics_free(train_metrics *tm) {
    free(tm->layer_label);
    free(tm->expert_label);
    tm->layer_label = NULL;
    tm->expert_label = NULL;
}

static void layer_step(train_metrics *tm, int i, const moe_layer_stats *s, const layer_balance *b,
                       double router_grad) {
    const char *l1[] = {tm->layer_label[i]};
    moe_metric_set(tm->cv, l1, b->cv);
    moe_metric_set(tm->max_mean, l1, b->max_over_mean);
    moe_metric_set(tm->dropped, l1, s->n_dropped);
    moe_metric_set(tm->entropy, l1, s->router_entropy);
    moe_metric_set(tm->router_grad, l1, router_grad);
    const char *names[] = {"switch", "z", "var", "cv"};
    const double values[] = {s->aux_switch, s->aux_z, s->aux_var, s->aux_cv};
    for (int a = 0; a < 4; a++) {
        const char *la[] = {tm->layer_label[i], names[a]};
        moe_metric_set(tm->aux_loss, la, values[a]);
    }
    for (int e = 0; e < tm->n_experts; e++) {
        const char *le[] = {tm->layer_label[i], tm->expert_label[e]};
        moe_metric_set(tm->fraction, le, b->share[e]);
        moe_metric_add(tm->pairs, le, s->expert_tokens[e]);
    }
}

/* Resident set size from /proc/self/statm (0 where it cannot be read). */
static double rss_bytes(void) {
    long pages = 0, resident = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    if (!fp) return 0;
    int got = fscanf(fp, "%ld %ld", &pages, &resident);
    fclose(fp);
    return got == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : 0;
}

void train_metrics_step(train_metrics *tm, const moe_train_progress *p, const step_measure *sm,
                        const moe_model *m) {
    moe_metric_set(tm->step, NULL, (double)p->step);
    moe_metric_set(tm->epoch, NULL, sm->epoch);
    moe_metric_set(tm->loss, NULL, p->loss);
    moe_metric_set(tm->ce, NULL, p->ce);
    moe_metric_set(tm->aux, NULL, p->aux);
    moe_metric_set(tm->grad_norm, NULL, p->grad_norm);
    moe_metric_set(tm->lr, NULL, p->lr);
    moe_metric_set(tm->temperature, NULL, sm->temperature);
    moe_metric_set(tm->loss_var, NULL, sm->loss_variance);
    moe_metric_set(tm->tok_s, NULL, p->tokens_per_s);
    moe_metric_set(tm->ex_s, NULL, sm->examples_per_s);
    moe_metric_set(tm->rss, NULL, rss_bytes());
    moe_metric_set(tm->arena, NULL, (double)sm->arena_bytes);
    moe_metric_add(tm->tokens, NULL, (double)sm->tokens);
    moe_metric_observe(tm->step_seconds, NULL, sm->seconds);
    for (int i = 0; i < tm->n_layers; i++) {
        const moe_layer_stats *s = moe_model_layer_stats(m, i);
        if (s) layer_step(tm, i, s, &sm->balance[i], sm->router_grad[i]);
    }
    const char *const *names;
    const double *values;
    int n = moe_model_loss_parts(m, &names, &values);
    for (int i = 0; i < n; i++) {
        const char *lt[] = {names[i]};
        moe_metric_set(tm->loss_term, lt, values[i]);
    }
}

void train_metrics_alert(train_metrics *tm, const alert_event *ev) {
    const char *lv[] = {alert_names[ev->kind]};
    moe_metric_add(tm->alerts, lv, 1);
}

void train_metrics_active(train_metrics *tm, const alert_state *as) {
    for (int k = 0; k < ALERT_KINDS; k++) {
        const char *lk[] = {alert_names[k]};
        moe_metric_set(tm->alert_active, lk, as->active[k]);
    }
}

void train_metrics_eval(train_metrics *tm, double val_loss, double accuracy, double macro_f1) {
    moe_metric_set(tm->val_loss, NULL, val_loss);
    moe_metric_set(tm->val_ppl, NULL, exp(val_loss));
    if (!isnan(accuracy)) moe_metric_set(tm->val_acc, NULL, accuracy);
    if (!isnan(macro_f1)) moe_metric_set(tm->val_f1, NULL, macro_f1);
}
