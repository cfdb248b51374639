/* Observability: a metric registry (counters, gauges, histograms with
 * labels) that the trainer, the evaluator and the server write to, and the
 * sinks that read it: JSON lines (metrics.jsonl), the Prometheus text
 * exposition, and an HTTP endpoint serving /metrics. docs/monitoring.md
 * lists every metric and the file formats. */
#ifndef MOE_OBS_H
#define MOE_OBS_H

#include "moe/core.h"

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum moe_metric_type {
    MOE_METRIC_COUNTER,  /* only goes up */
    MOE_METRIC_GAUGE,    /* any value */
    MOE_METRIC_HISTOGRAM /* observations counted into fixed buckets */
} moe_metric_type;

typedef struct moe_registry moe_registry;
typedef struct moe_metric moe_metric; /* one family: a name, a type, label names */

/* prefix goes before every name in the Prometheus exposition ("moe" gives
 * moe_train_loss; NULL or "" for none); the JSON sink writes names without
 * it. */
moe_status moe_registry_create(moe_registry **r, const char *prefix);
void moe_registry_free(moe_registry *r);

/* Declares a family. name: [a-zA-Z_][a-zA-Z0-9_]*, not kind, step or time_s
 * (the JSON line's own keys); counters should end in _total (it is not
 * added, and promtool's lint fails without it). help: required, non-empty.
 * labels: comma-separated label names without spaces ("layer,expert"), or
 * NULL for none (at most 4; "le" is not allowed on a histogram). buckets:
 * the finite, strictly increasing upper bounds of a histogram (+Inf is
 * implied), NULL otherwise. Declaring an existing name with the same type,
 * labels (and buckets) returns it; otherwise MOE_ERR_INVALID. Every misuse
 * here and below gives MOE_ERR_INVALID with a message. Thread-safe: one
 * mutex in the registry guards all of it. */
moe_status moe_registry_declare(moe_registry *r, const char *name, moe_metric_type type,
                                const char *help, const char *labels, const double *buckets,
                                int n_buckets, moe_metric **out);

/* Updates the series with these label values (one string per label name,
 * NULL when the family has no labels); the series is created on first use.
 * set: gauges only; add: counters (v >= 0, so not NaN) and gauges; observe:
 * histograms (a NaN observation counts in the +Inf bucket). Non-finite
 * values are kept (Prometheus writes NaN, +Inf; JSON null). */
moe_status moe_metric_set(moe_metric *m, const char *const *label_values, double v);
moe_status moe_metric_add(moe_metric *m, const char *const *label_values, double v);
moe_status moe_metric_observe(moe_metric *m, const char *const *label_values, double v);

/* Current value of a series (counter/gauge; a histogram gives its count),
 * NAN when the series does not exist. */
double moe_metric_value(const moe_metric *m, const char *const *label_values);

/* Groups updates so that a rendering of the exposition sees all of them or
 * none (one training step's expert shares, say). Not nested; the JSON sink
 * is written by the updating thread itself, outside a group. */
void moe_registry_update_begin(moe_registry *r);
void moe_registry_update_end(moe_registry *r);

/* The whole registry in the Prometheus text exposition format 0.0.4
 * (# HELP, # TYPE, one line per series; histograms as _bucket{le=..},
 * _sum, _count), families in declaration order, series in creation order;
 * a family without series yet is its # HELP and # TYPE lines only. *out is
 * malloc'd, NUL-terminated. */
moe_status moe_registry_render_prometheus(moe_registry *r, char **out);

/* Appends one JSON object and a newline to fp, then flushes:
 *   {"kind":kind,"step":step,"time_s":time_s, <name>: <value>, ...}
 * with every family updated since the previous moe_registry_write_jsonl, in
 * declaration order (then marks them written). Unlabelled families are a
 * number; labelled ones nest objects keyed by label value in label order,
 * e.g. "expert_fraction":{"1":{"0":0.12,"1":0.13}}, holding the series
 * updated since the previous line; a histogram is
 * {"le":[bounds..],"counts":[per bucket, not cumulative, last is +Inf],
 * "sum":s,"count":n}. NaN and Inf become null. A failed write (MOE_ERR_IO,
 * with the reason) marks nothing written. */
moe_status moe_registry_write_jsonl(moe_registry *r, FILE *fp, const char *kind, long step,
                                    double time_s);

/* Serves GET /metrics (the exposition above) on port (0: any free port;
 * the one chosen is in *bound_port, which may be NULL) at 127.0.0.1, or on
 * every interface (IPv4) when all_interfaces is set, from a thread of its
 * own (libmicrohttpd). Other paths answer 404, other methods 405. A port in
 * use gives MOE_ERR_IO. The registry must outlive the server: stop it (which
 * waits for a scrape in progress) before moe_registry_free. */
typedef struct moe_metrics_server moe_metrics_server;
moe_status moe_metrics_server_start(moe_metrics_server **s, moe_registry *r, int port,
                                    int all_interfaces, int *bound_port);
void moe_metrics_server_stop(moe_metrics_server *s);

#ifdef __cplusplus
}
#endif
#endif
