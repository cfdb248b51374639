/* The JSON-lines sink (metrics.jsonl): one object per call with the series
 * updated since the previous call, built with cJSON. docs/monitoring.md has
 * the format. */
#include "obs/registry_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* JSON has no NaN or Inf. */
static cJSON *number_or_null(double v) {
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* Adds item to an object under key, or to an array when key is NULL.
 * 0 when out of memory (item freed). */
static int attach(cJSON *parent, const char *key, cJSON *item) {
    if (!item) return 0;
    int ok = key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item);
    if (!ok) cJSON_Delete(item);
    return ok;
}

/* {"le":[bounds],"counts":[per bucket, last +Inf],"sum":s,"count":n} */
static cJSON *histogram_json(const moe_metric *m, const obs_series *s) {
    cJSON *h = cJSON_CreateObject();
    if (!h) return NULL;
    cJSON *le = cJSON_AddArrayToObject(h, "le");
    cJSON *counts = cJSON_AddArrayToObject(h, "counts");
    int ok = le && counts;
    for (int b = 0; ok && b < m->n_buckets; b++)
        ok = attach(le, NULL, cJSON_CreateNumber(m->buckets[b]));
    for (int b = 0; ok && b <= m->n_buckets; b++)
        ok = attach(counts, NULL, cJSON_CreateNumber((double)s->bucket_counts[b]));
    ok = ok && attach(h, "sum", number_or_null(s->sum)) &&
         attach(h, "count", cJSON_CreateNumber((double)s->count));
    if (!ok) {
        cJSON_Delete(h);
        return NULL;
    }
    return h;
}

static cJSON *series_json(const moe_metric *m, const obs_series *s) {
    return m->type == MOE_METRIC_HISTOGRAM ? histogram_json(m, s) : number_or_null(s->value);
}

/* Puts a series under its label values, nested in label order:
 * {"1":{"0":v}} for layer 1, expert 0. */
static int attach_labelled(cJSON *family, const moe_metric *m, const obs_series *s) {
    cJSON *parent = family;
    for (int l = 0; l + 1 < m->n_labels; l++) {
        cJSON *child = cJSON_GetObjectItemCaseSensitive(parent, s->label_values[l]);
        if (!child) child = cJSON_AddObjectToObject(parent, s->label_values[l]);
        if (!child) return 0;
        parent = child;
    }
    return attach(parent, s->label_values[m->n_labels - 1], series_json(m, s));
}

/* The family's updated series: a value for an unlabelled family, nested
 * objects for a labelled one; NULL when out of memory. */
static cJSON *family_json(const moe_metric *m) {
    if (m->n_labels == 0) return series_json(m, &m->series[0]);
    cJSON *family = cJSON_CreateObject();
    for (int i = 0; family && i < m->n_series; i++) {
        if (m->series[i].updated && !attach_labelled(family, m, &m->series[i])) {
            cJSON_Delete(family);
            family = NULL;
        }
    }
    return family;
}

static int family_updated(const moe_metric *m) {
    for (int i = 0; i < m->n_series; i++)
        if (m->series[i].updated) return 1;
    return 0;
}

static void mark_written(moe_registry *r) {
    for (int i = 0; i < r->n_metrics; i++)
        for (int j = 0; j < r->metrics[i]->n_series; j++) r->metrics[i]->series[j].updated = 0;
}

/* The whole line as text; NULL when out of memory. Caller holds the lock. */
static char *line_text(const moe_registry *r, const char *kind, long step, double time_s) {
    cJSON *line = cJSON_CreateObject();
    int ok = line && attach(line, "kind", cJSON_CreateString(kind)) &&
             attach(line, "step", cJSON_CreateNumber((double)step)) &&
             attach(line, "time_s", number_or_null(time_s));
    for (int i = 0; ok && i < r->n_metrics; i++) {
        const moe_metric *m = r->metrics[i];
        if (family_updated(m)) ok = attach(line, m->name, family_json(m));
    }
    char *text = ok ? cJSON_PrintUnformatted(line) : NULL;
    cJSON_Delete(line);
    return text;
}

moe_status moe_registry_write_jsonl(moe_registry *r, FILE *fp, const char *kind, long step,
                                    double time_s) {
    if (!r || !fp || !kind)
        return moe_error(MOE_ERR_INVALID, "moe_registry_write_jsonl: registry, file and kind are "
                                          "required");
    /* Held through the write, so an update made meanwhile is not marked
     * written without being in the line. */
    pthread_mutex_lock(&r->lock);
    char *text = line_text(r, kind, step, time_s);
    if (!text) {
        pthread_mutex_unlock(&r->lock);
        return moe_error(MOE_ERR_NOMEM, "metrics JSON line (%s, step %ld): out of memory", kind,
                         step);
    }
    errno = 0;
    int written = fputs(text, fp) >= 0 && fputc('\n', fp) != EOF && fflush(fp) == 0;
    int write_errno = errno;
    if (written) mark_written(r); /* else the next line carries them again */
    pthread_mutex_unlock(&r->lock);
    free(text);
    if (!written)
        return moe_error(MOE_ERR_IO,
                         "metrics JSON line (%s, step %ld): cannot write: %s; check the disk "
                         "(free space, permissions) of the run folder",
                         kind, step, write_errno ? strerror(write_errno) : "write error");
    return MOE_OK;
}
