/* Training alerts: conditions a user wants to hear about while training
 * runs (docs/monitoring.md): a starved expert, load imbalance over the bar,
 * a router with no gradient, a loss spike, a NaN/Inf. The detector only
 * looks at numbers; the trainer logs the events it returns. Internal. */
#ifndef MOE_OBS_ALERTS_H
#define MOE_OBS_ALERTS_H

#include "moe/config.h"

typedef enum alert_kind {
    ALERT_STARVED,
    ALERT_IMBALANCE,
    ALERT_NO_ROUTER_GRAD,
    ALERT_LOSS_SPIKE,
    ALERT_NONFINITE,
    ALERT_KINDS
} alert_kind;

/* "starved", "imbalance", "no_router_grad", "loss_spike", "nonfinite" */
extern const char *const alert_names[ALERT_KINDS];

typedef struct alert_event {
    alert_kind kind;
    int layer;  /* model block index, -1 when not about a layer */
    int expert; /* -1 when not about an expert */
    double value, threshold;
    char message[256];
} alert_event;

typedef struct alert_state {
    moe_obs_config cfg;
    /* the float thresholds of cfg as the decimals the user wrote (0.2, not
     * 0.20000000298...), so logs and reports show them as given */
    double spike_sigma, starve_ratio, imbalance_max;
    int n_layers, n_experts;
    int *starve_run;           /* [L, E] steps in a row below the starvation share */
    unsigned char *imbalanced; /* [L] mean load cv over the bar now */
    double *cv_window;         /* [L, imbalance_window] recent load cvs, a ring per layer */
    int cv_n, cv_pos;          /* filled entries, next slot (the same for every layer) */
    unsigned char *no_grad;    /* [L] router gradient zero now */
    double *window;            /* [loss_window] recent losses, a ring */
    int window_n, window_pos;
    int spiking;
    int active[ALERT_KINDS]; /* conditions holding now, per kind */
} alert_state;

moe_status alerts_init(alert_state *a, const moe_obs_config *cfg, int n_layers, int n_experts);
void alerts_free(alert_state *a);

/* One step's loss and gradient norm. Events go to out (at most cap); returns
 * how many. A spike is judged against the window before this loss joins it. */
int alerts_loss(alert_state *a, long step, double loss, double grad_norm, alert_event *out,
                int cap);
/* One step of MoE layer i (model block `layer`): each expert's share of kept
 * pairs [E], the load cv and the router weight gradient's norm. Call it for
 * every layer, in order, each step: the cv window advances after the last. */
int alerts_layer(alert_state *a, long step, int i, int layer, const double *share, double cv,
                 double router_grad_norm, alert_event *out, int cap);

/* Variance of the losses in the window (0 with fewer than two). */
double alerts_loss_variance(const alert_state *a);

#endif
