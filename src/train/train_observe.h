/* What the training loop reports, in one place: the metric registry and
 * its JSON-lines log, alerts, routing probes (routing.json), model_info.json
 * and report.html refreshes. The loop calls it at fixed points; it never
 * changes training. Internal to the trainer. */
#ifndef MOE_TRAIN_TRAIN_OBSERVE_H
#define MOE_TRAIN_TRAIN_OBSERVE_H

#include "train/task.h"
#include "train/train_metrics.h"

#include <stdio.h>

struct cJSON;

typedef struct train_observer {
    const moe_run_config *cfg;
    const moe_train_opts *opts;
    const char *run_dir;
    FILE *log; /* metrics.jsonl, appended */
    moe_registry *reg;
    int own_reg; /* reg was created here (none was passed in opts) */
    train_metrics tm;
    alert_state alerts;
    const train_task *task; /* its data feeds the routing probes */
    moe_topics topics;      /* lm on the Bible: its divisions */
    int n_layers;
    long *gate_at;          /* [L] offset of each router weight in the parameter block */
    size_t gate_numel;      /* elements of one router weight */
    double *router_grad;    /* [L] norms of the last step */
    double *share;          /* [L, E] each expert's share of the last step's pairs */
    layer_balance *balance; /* [L] the last step's load per layer */
    int evals;              /* evaluations done by this process */
    long alerts_raised;
    double t0;          /* process start (monotonic seconds) */
    int report_off;     /* a refresh failed: no more tries this run */
    long last_analysis; /* epoch (or step) of the last analysis.jsonl line */
    char report_error[512];
} train_observer;

moe_status observer_init(train_observer *o, const moe_run_config *cfg, const moe_train_opts *opts,
                         const char *run_dir, const moe_model *m, const train_task *task,
                         long long tokens_seen, double t0);
void observer_free(train_observer *o);

/* After backward, before clipping: the router gradients' norms. */
void observer_router_grads(train_observer *o, moe_model *m);
/* A step that ran on the GPU: router gradient norms unknown (NaN, which
 * raises no alert). */
void observer_router_grads_unmeasured(train_observer *o);
/* After an optimizer step: load balance (into p too), metrics, alerts; a
 * metrics.jsonl line when log. */
moe_status observer_step(train_observer *o, moe_train_progress *p, const step_measure *sm,
                         const moe_model *m, int log);
/* A NaN/Inf loss or gradient norm: the alert, before training stops. */
void observer_nonfinite(train_observer *o, long step, double loss, double grad_norm);
/* After an evaluation: metrics, the eval line, routing.json, and every
 * obs.report_every evaluations report.html (not when final: the trainer
 * writes the last report after results.json). */
moe_status observer_eval(train_observer *o, const moe_train_progress *p, moe_model *m,
                         moe_arena *arena, int final);
/* Dense tasks, after the test split: its expert analysis / gate sparsity
 * (an analysis.jsonl line, and the object returned for results.json;
 * NULL when the model has neither). */
struct cJSON *observer_test_analysis(train_observer *o, const moe_train_progress *p);
/* Rewrites report.html; after a failure (plotly.js missing, say) it stops
 * trying and keeps the reason in report_error. */
void observer_refresh_report(train_observer *o);

#endif
