/* The registry in the Prometheus text exposition format 0.0.4. A family
 * with no series yet is written as its # HELP and # TYPE lines only. */
#include "obs/registry_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shortest of %.15g, %.16g, %.17g that reads back as v: integers print
 * as integers, 0.1 as 0.1, and every double round-trips. */
static void format_number(char buf[32], double v) {
    if (isnan(v)) {
        strcpy(buf, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(buf, 32, "%.*g", precision, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* HELP text escapes backslash and newline; label values also '"'. */
static void put_escaped(FILE *f, const char *s, int escape_quote) {
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else if (escape_quote && *s == '"')
            fputs("\\\"", f);
        else
            fputc(*s, f);
    }
}

static void put_name(FILE *f, const moe_registry *r, const moe_metric *m, const char *suffix) {
    fprintf(f, "%s%s%s%s", r->prefix, *r->prefix ? "_" : "", m->name, suffix);
}

/* {l1="v1",l2="v2"[,le="bound"]}, or nothing for no labels at all. */
static void put_labels(FILE *f, const moe_metric *m, const obs_series *s, const char *le) {
    if (m->n_labels == 0 && !le) return;
    fputc('{', f);
    for (int i = 0; i < m->n_labels; i++) {
        fprintf(f, "%s%s=\"", i ? "," : "", m->label_names[i]);
        put_escaped(f, s->label_values[i], 1);
        fputc('"', f);
    }
    if (le) fprintf(f, "%sle=\"%s\"", m->n_labels ? "," : "", le);
    fputc('}', f);
}

static void put_series(FILE *f, const moe_registry *r, const moe_metric *m, const obs_series *s) {
    char number[32];
    if (m->type != MOE_METRIC_HISTOGRAM) {
        put_name(f, r, m, "");
        put_labels(f, m, s, NULL);
        format_number(number, s->value);
        fprintf(f, " %s\n", number);
        return;
    }
    uint64_t cumulative = 0;
    for (int b = 0; b <= m->n_buckets; b++) {
        cumulative += s->bucket_counts[b];
        format_number(number, b < m->n_buckets ? m->buckets[b] : INFINITY);
        put_name(f, r, m, "_bucket");
        put_labels(f, m, s, number);
        fprintf(f, " %" PRIu64 "\n", cumulative);
    }
    put_name(f, r, m, "_sum");
    put_labels(f, m, s, NULL);
    format_number(number, s->sum);
    fprintf(f, " %s\n", number);
    put_name(f, r, m, "_count");
    put_labels(f, m, s, NULL);
    fprintf(f, " %" PRIu64 "\n", s->count);
}

static void put_family(FILE *f, const moe_registry *r, const moe_metric *m) {
    fputs("# HELP ", f);
    put_name(f, r, m, " ");
    put_escaped(f, m->help, 0);
    fputs("\n# TYPE ", f);
    put_name(f, r, m, " ");
    fprintf(f, "%s\n", obs_type_name(m->type));
    for (int i = 0; i < m->n_series; i++) put_series(f, r, m, &m->series[i]);
}

moe_status moe_registry_render_prometheus(moe_registry *r, char **out) {
    if (!r || !out)
        return moe_error(MOE_ERR_INVALID, "moe_registry_render_prometheus: registry and out are "
                                          "required");
    *out = NULL;
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return moe_error(MOE_ERR_NOMEM, "Prometheus exposition: out of memory");
    pthread_mutex_lock(&r->update);
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->n_metrics; i++) put_family(f, r, r->metrics[i]);
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_unlock(&r->update);
    int failed = ferror(f);
    if (fclose(f) != 0 || failed) {
        free(text);
        return moe_error(MOE_ERR_NOMEM, "Prometheus exposition: out of memory");
    }
    *out = text;
    return MOE_OK;
}
