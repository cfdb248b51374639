/* The trainer's metrics in the registry (docs/monitoring.md lists them):
 * declared once, updated every step and evaluation, written to
 * metrics.jsonl on log steps and served to Prometheus on scrapes. */
#ifndef MOE_TRAIN_TRAIN_METRICS_H
#define MOE_TRAIN_TRAIN_METRICS_H

#include "moe/obs.h"
#include "moe/train.h"
#include "obs/alerts.h"

typedef struct train_metrics {
    moe_registry *reg;
    int n_layers, n_experts;
    char (*layer_label)[16];  /* [L] model block index of each MoE layer */
    char (*expert_label)[16]; /* [E] "0", "1", ... */
    moe_metric *step, *epoch, *loss, *ce, *aux, *grad_norm, *lr, *temperature, *loss_var;
    moe_metric *tok_s, *ex_s, *rss, *arena, *tokens, *step_seconds;
    moe_metric *fraction, *pairs, *cv, *max_mean, *dropped, *entropy, *aux_loss, *router_grad;
    moe_metric *alerts, *alert_active, *val_loss, *val_ppl, *val_acc, *val_f1, *loss_term;
} train_metrics;

/* Declares every family in reg. */
moe_status train_metrics_init(train_metrics *tm, moe_registry *reg, const moe_model *m);
void train_metrics_free(train_metrics *tm);

/* One MoE layer's load in the last step, computed once per step. */
typedef struct layer_balance {
    double cv;            /* coefficient of variation of pairs per expert */
    double max_over_mean; /* busiest expert / mean */
    const double *share;  /* [E] each expert's share of the kept pairs */
} layer_balance;

/* What one optimizer step measured, beyond the progress record. */
typedef struct step_measure {
    double seconds;               /* wall time of the step */
    double epoch;                 /* tokens seen / training tokens */
    double examples_per_s;        /* sequences per second */
    double loss_variance;         /* over the alert window */
    double temperature;           /* router temperature */
    long tokens;                  /* tokens in this step */
    size_t arena_bytes;           /* step arena size */
    const double *router_grad;    /* [L] router weight gradient norms */
    const layer_balance *balance; /* [L] */
} step_measure;

/* Sets the run and per-layer metrics from the step just taken. */
void train_metrics_step(train_metrics *tm, const moe_train_progress *p, const step_measure *sm,
                        const moe_model *m);
/* Counts an alert. */
void train_metrics_alert(train_metrics *tm, const alert_event *ev);
/* alert_active: the conditions holding now. */
void train_metrics_active(train_metrics *tm, const alert_state *as);
/* accuracy and macro_f1: NAN when the task has none (not set then). */
void train_metrics_eval(train_metrics *tm, double val_loss, double accuracy, double macro_f1);

#endif
