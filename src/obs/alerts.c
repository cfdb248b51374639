/* The alert detector. Alerts are edge-triggered: an event when a condition
 * starts, none while it holds, so a long imbalance is one line, not
 * thousands; `active` counts what holds now for the alert_active gauge. */
#include "obs/alerts.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const alert_names[ALERT_KINDS] = {"starved", "imbalance", "no_router_grad",
                                              "loss_spike", "nonfinite"};

/* The shortest decimal that reads back as f, as a double. */
static double decimal_of(float f) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

moe_status alerts_init(alert_state *a, const moe_obs_config *cfg, int n_layers, int n_experts) {
    memset(a, 0, sizeof *a);
    a->cfg = *cfg;
    a->spike_sigma = decimal_of(cfg->spike_sigma);
    a->starve_ratio = decimal_of(cfg->starve_ratio);
    a->imbalance_max = decimal_of(cfg->imbalance_max);
    a->n_layers = n_layers;
    a->n_experts = n_experts;
    size_t le = (size_t)(n_layers > 0 ? n_layers : 1) * (size_t)(n_experts > 0 ? n_experts : 1);
    a->starve_run = calloc(le, sizeof *a->starve_run);
    a->imbalanced = calloc((size_t)(n_layers > 0 ? n_layers : 1), 1);
    a->cv_window = calloc((size_t)(n_layers > 0 ? n_layers : 1) * (size_t)cfg->imbalance_window,
                          sizeof *a->cv_window);
    a->no_grad = calloc((size_t)(n_layers > 0 ? n_layers : 1), 1);
    a->window = calloc((size_t)cfg->loss_window, sizeof *a->window);
    if (!a->starve_run || !a->imbalanced || !a->cv_window || !a->no_grad || !a->window) {
        alerts_free(a);
        return moe_error(MOE_ERR_NOMEM, "alerts: out of memory");
    }
    return MOE_OK;
}

void alerts_free(alert_state *a) {
    free(a->starve_run);
    free(a->imbalanced);
    free(a->cv_window);
    free(a->no_grad);
    free(a->window);
    memset(a, 0, sizeof *a);
}

static void window_stats(const alert_state *a, double *mean, double *var) {
    double s = 0, ss = 0;
    for (int i = 0; i < a->window_n; i++) s += a->window[i];
    *mean = a->window_n ? s / a->window_n : 0;
    for (int i = 0; i < a->window_n; i++) ss += (a->window[i] - *mean) * (a->window[i] - *mean);
    *var = a->window_n > 1 ? ss / (a->window_n - 1) : 0;
}

double alerts_loss_variance(const alert_state *a) {
    double mean, var;
    window_stats(a, &mean, &var);
    return var;
}

/* Fills the next event slot; returns the new count. */
static int emit(alert_event *out, int n, int cap, alert_kind kind, int layer, int expert,
                double value, double threshold, const char *fmt, ...)
    __attribute__((format(printf, 9, 10)));

static int emit(alert_event *out, int n, int cap, alert_kind kind, int layer, int expert,
                double value, double threshold, const char *fmt, ...) {
    if (n >= cap) return n;
    alert_event *e = &out[n];
    e->kind = kind;
    e->layer = layer;
    e->expert = expert;
    e->value = value;
    e->threshold = threshold;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return n + 1;
}

int alerts_loss(alert_state *a, long step, double loss, double grad_norm, alert_event *out,
                int cap) {
    int n = 0;
    if (!isfinite(loss) || !isfinite(grad_norm)) {
        int loss_bad = !isfinite(loss);
        a->active[ALERT_NONFINITE] = 1;
        return emit(out, n, cap, ALERT_NONFINITE, -1, -1, loss_bad ? loss : grad_norm, 0,
                    "step %ld: the %s is %g", step, loss_bad ? "training loss" : "gradient norm",
                    loss_bad ? loss : grad_norm);
    }
    a->active[ALERT_NONFINITE] = 0;
    double mean, var;
    window_stats(a, &mean, &var);
    double limit = mean + a->spike_sigma * sqrt(var);
    int spike = a->spike_sigma > 0 && a->window_n == a->cfg.loss_window && var > 0 && loss > limit;
    if (spike && !a->spiking)
        n = emit(out, n, cap, ALERT_LOSS_SPIKE, -1, -1, loss, limit,
                 "step %ld: loss spike: %.4f is over %.4f (mean %.4f + %g sd of the last %d "
                 "steps)",
                 step, loss, limit, mean, a->spike_sigma, a->window_n);
    a->spiking = spike;
    a->active[ALERT_LOSS_SPIKE] = spike;
    a->window[a->window_pos] = loss;
    a->window_pos = (a->window_pos + 1) % a->cfg.loss_window;
    if (a->window_n < a->cfg.loss_window) a->window_n++;
    return n;
}

/* Recounts active conditions of the per-layer kinds. */
static void recount(alert_state *a) {
    int starved = 0, imb = 0, nog = 0;
    for (int i = 0; i < a->n_layers; i++) {
        imb += a->imbalanced[i];
        nog += a->no_grad[i];
        for (int e = 0; e < a->n_experts; e++)
            starved += a->starve_run[i * a->n_experts + e] >= a->cfg.starve_steps;
    }
    a->active[ALERT_STARVED] = starved;
    a->active[ALERT_IMBALANCE] = imb;
    a->active[ALERT_NO_ROUTER_GRAD] = nog;
}

int alerts_layer(alert_state *a, long step, int i, int layer, const double *share, double cv,
                 double router_grad_norm, alert_event *out, int cap) {
    int n = 0, E = a->n_experts;
    double floor_share = a->starve_ratio / E;
    for (int e = 0; e < E; e++) {
        int *run = &a->starve_run[i * E + e];
        *run = share[e] < floor_share ? *run + 1 : 0;
        if (*run == a->cfg.starve_steps)
            n = emit(out, n, cap, ALERT_STARVED, layer, e, share[e], floor_share,
                     "step %ld: layer %d expert %d starved: under %.2f%% of routed pairs for %d "
                     "steps (now %.2f%%)",
                     step, layer, e, 100 * floor_share, a->cfg.starve_steps, 100 * share[e]);
    }
    /* One step's cv is noisy (a batch's routing); the alert judges the mean
     * over a window, and clears below 0.9 x the bar so a mean hovering at
     * the bar does not flap. */
    int W = a->cfg.imbalance_window;
    double *ring = a->cv_window + (size_t)i * (size_t)W;
    ring[a->cv_pos] = cv;
    int filled = a->cv_n < W ? a->cv_n + 1 : W;
    double mean = 0;
    for (int j = 0; j < filled; j++) mean += ring[j];
    mean /= filled;
    if (i == a->n_layers - 1) {
        a->cv_pos = (a->cv_pos + 1) % W;
        a->cv_n = filled;
    }
    if (filled == W && mean > a->imbalance_max && !a->imbalanced[i]) {
        n = emit(out, n, cap, ALERT_IMBALANCE, layer, -1, mean, a->imbalance_max,
                 "step %ld: layer %d load imbalance: mean cv %.3f over the last %d steps is "
                 "over %.3f",
                 step, layer, mean, W, a->imbalance_max);
        a->imbalanced[i] = 1;
    } else if (a->imbalanced[i] && mean < 0.9 * a->imbalance_max) {
        a->imbalanced[i] = 0;
    }
    int zero = router_grad_norm == 0;
    if (zero && !a->no_grad[i])
        n = emit(out, n, cap, ALERT_NO_ROUTER_GRAD, layer, -1, router_grad_norm, 0,
                 "step %ld: layer %d router received no gradient", step, layer);
    a->no_grad[i] = (unsigned char)zero;
    recount(a);
    return n;
}
