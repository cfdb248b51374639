/* The metric registry's data, shared by the registry and its sinks
 * (Prometheus text, JSON lines). Internal to libmoe. */
#ifndef MOE_OBS_REGISTRY_INTERNAL_H
#define MOE_OBS_REGISTRY_INTERNAL_H

#include "moe/obs.h"

#include <pthread.h>
#include <stdint.h>

#define OBS_MAX_LABELS 4

/* One labelled instance of a family. */
typedef struct obs_series {
    char *label_values[OBS_MAX_LABELS]; /* the family's n_labels values */
    double value;                       /* counter or gauge */
    double sum;                         /* histogram: sum of observations */
    uint64_t count;                     /* histogram: number of observations */
    uint64_t *bucket_counts;            /* histogram: n_buckets + 1, not cumulative; last +Inf */
    int updated;                        /* changed since the last JSON line */
} obs_series;

struct moe_metric {
    moe_registry *registry;
    char *name;
    char *help;
    moe_metric_type type;
    int n_labels;
    char *label_names[OBS_MAX_LABELS];
    double *buckets; /* histogram upper bounds, strictly increasing, +Inf implied */
    int n_buckets;
    obs_series *series; /* in creation order */
    int n_series, cap_series;
};

struct moe_registry {
    /* Guards everything below and every family's series: the HTTP thread
     * renders while the trainer updates. */
    pthread_mutex_t lock;
    /* Held by a writer across a group of updates (moe_registry_update_begin)
     * and by the exposition while it renders, so a scrape never sees half a
     * step: e.g. expert shares from two different steps. */
    pthread_mutex_t update;
    char *prefix;         /* "" for none */
    moe_metric **metrics; /* in declaration order */
    int n_metrics, cap_metrics;
};

/* "counter", "gauge", "histogram": the Prometheus TYPE word. */
const char *obs_type_name(moe_metric_type type);

#endif
