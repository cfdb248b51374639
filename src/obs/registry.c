/* The metric registry: families (name, type, help, label names, buckets)
 * and their series, updated by the trainer and read by the sinks. One mutex
 * guards it all; lookups are linear (a few hundred series at most). */
#include "obs/registry_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *obs_type_name(moe_metric_type type) {
    switch (type) {
    case MOE_METRIC_COUNTER:
        return "counter";
    case MOE_METRIC_GAUGE:
        return "gauge";
    case MOE_METRIC_HISTOGRAM:
        return "histogram";
    }
    return "unknown";
}

/* [a-zA-Z_][a-zA-Z0-9_]* over the first n bytes: the Prometheus name rule
 * without colons (reserved for recording rules). */
static int valid_name(const char *s, size_t n) {
    if (n == 0 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

moe_status moe_registry_create(moe_registry **out, const char *prefix) {
    if (!out) return moe_error(MOE_ERR_INVALID, "moe_registry_create: out is NULL");
    *out = NULL;
    if (!prefix) prefix = "";
    if (*prefix && !valid_name(prefix, strlen(prefix)))
        return moe_error(MOE_ERR_INVALID,
                         "metric prefix \"%s\": use letters, digits and '_', not starting "
                         "with a digit (e.g. \"moe\")",
                         prefix);
    moe_registry *r = calloc(1, sizeof *r);
    if (!r || !(r->prefix = copy_string(prefix))) {
        free(r);
        return moe_error(MOE_ERR_NOMEM, "metric registry: out of memory");
    }
    if (pthread_mutex_init(&r->lock, NULL) != 0 || pthread_mutex_init(&r->update, NULL) != 0) {
        free(r->prefix);
        free(r);
        return moe_error(MOE_ERR_NOMEM, "metric registry: cannot create its mutex");
    }
    *out = r;
    return MOE_OK;
}

static void free_series(obs_series *s, int n_labels) {
    for (int i = 0; i < n_labels; i++) free(s->label_values[i]);
    free(s->bucket_counts);
}

static void free_metric(moe_metric *m) {
    if (!m) return;
    for (int i = 0; i < m->n_series; i++) free_series(&m->series[i], m->n_labels);
    free(m->series);
    for (int i = 0; i < m->n_labels; i++) free(m->label_names[i]);
    free(m->buckets);
    free(m->help);
    free(m->name);
    free(m);
}

void moe_registry_free(moe_registry *r) {
    if (!r) return;
    for (int i = 0; i < r->n_metrics; i++) free_metric(r->metrics[i]);
    free(r->metrics);
    free(r->prefix);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->update);
    free(r);
}

void moe_registry_update_begin(moe_registry *r) {
    pthread_mutex_lock(&r->update);
}

void moe_registry_update_end(moe_registry *r) {
    pthread_mutex_unlock(&r->update);
}

/* Splits "layer,expert" into m's label names, checking each. */
static moe_status parse_labels(moe_metric *m, const char *labels) {
    const char *p = labels;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (!valid_name(p, n) || (n >= 2 && p[0] == '_' && p[1] == '_'))
            return moe_error(MOE_ERR_INVALID,
                             "metric %s: bad label list \"%s\": label names are letters, "
                             "digits and '_' (not starting with a digit or \"__\"), separated "
                             "by ',' without spaces",
                             m->name, labels);
        if (m->type == MOE_METRIC_HISTOGRAM && n == 2 && !strncmp(p, "le", 2))
            return moe_error(MOE_ERR_INVALID,
                             "metric %s: the label name \"le\" is reserved for histogram "
                             "buckets; rename the label",
                             m->name);
        if (m->n_labels == OBS_MAX_LABELS)
            return moe_error(MOE_ERR_INVALID, "metric %s: labels \"%s\": at most %d labels",
                             m->name, labels, OBS_MAX_LABELS);
        for (int i = 0; i < m->n_labels; i++)
            if (strlen(m->label_names[i]) == n && !strncmp(m->label_names[i], p, n))
                return moe_error(MOE_ERR_INVALID, "metric %s: label \"%s\" appears twice in \"%s\"",
                                 m->name, m->label_names[i], labels);
        char *label = malloc(n + 1);
        if (!label) return moe_error(MOE_ERR_NOMEM, "metric %s: out of memory", m->name);
        memcpy(label, p, n);
        label[n] = '\0';
        m->label_names[m->n_labels++] = label;
        p = end ? end + 1 : NULL;
        if (p && !*p)
            return moe_error(MOE_ERR_INVALID, "metric %s: label list \"%s\" ends with ','", m->name,
                             labels);
    }
    return MOE_OK;
}

static moe_status check_buckets(const moe_metric *m, const double *buckets, int n_buckets) {
    if (m->type != MOE_METRIC_HISTOGRAM) {
        if (buckets || n_buckets)
            return moe_error(MOE_ERR_INVALID,
                             "metric %s: buckets given for a %s; only histograms have buckets "
                             "(pass NULL, 0)",
                             m->name, obs_type_name(m->type));
        return MOE_OK;
    }
    if (n_buckets < 0 || (n_buckets > 0 && !buckets))
        return moe_error(MOE_ERR_INVALID, "metric %s: %d buckets but no bucket array", m->name,
                         n_buckets);
    for (int i = 0; i < n_buckets; i++) {
        if (!isfinite(buckets[i]))
            return moe_error(MOE_ERR_INVALID,
                             "metric %s: bucket %d is %g; bounds must be finite (+Inf is "
                             "implied)",
                             m->name, i, buckets[i]);
        if (i > 0 && !(buckets[i] > buckets[i - 1]))
            return moe_error(MOE_ERR_INVALID,
                             "metric %s: buckets must be strictly increasing, but bucket %d "
                             "(%g) follows %g",
                             m->name, i, buckets[i], buckets[i - 1]);
    }
    return MOE_OK;
}

/* The declaration a repeated moe_registry_declare must match. */
static int same_declaration(const moe_metric *a, const moe_metric *b) {
    if (a->type != b->type || a->n_labels != b->n_labels || a->n_buckets != b->n_buckets) return 0;
    for (int i = 0; i < a->n_labels; i++)
        if (strcmp(a->label_names[i], b->label_names[i])) return 0;
    for (int i = 0; i < a->n_buckets; i++)
        if (a->buckets[i] != b->buckets[i]) return 0;
    return 1;
}

static moe_metric *find_metric(const moe_registry *r, const char *name) {
    for (int i = 0; i < r->n_metrics; i++)
        if (!strcmp(r->metrics[i]->name, name)) return r->metrics[i];
    return NULL;
}

/* Builds the family described by the arguments, unattached. */
static moe_status new_metric(moe_registry *r, const char *name, moe_metric_type type,
                             const char *help, const char *labels, const double *buckets,
                             int n_buckets, moe_metric **out) {
    moe_metric *m = calloc(1, sizeof *m);
    if (!m || !(m->name = copy_string(name)) || !(m->help = copy_string(help))) {
        free_metric(m);
        return moe_error(MOE_ERR_NOMEM, "metric %s: out of memory", name);
    }
    m->registry = r;
    m->type = type;
    moe_status st = parse_labels(m, labels);
    if (st == MOE_OK) st = check_buckets(m, buckets, n_buckets);
    if (st == MOE_OK && n_buckets > 0) {
        m->buckets = malloc((size_t)n_buckets * sizeof *m->buckets);
        if (m->buckets)
            memcpy(m->buckets, buckets, (size_t)n_buckets * sizeof *m->buckets);
        else
            st = moe_error(MOE_ERR_NOMEM, "metric %s: out of memory", name);
    }
    m->n_buckets = m->buckets ? n_buckets : 0;
    if (st != MOE_OK) {
        free_metric(m);
        return st;
    }
    *out = m;
    return MOE_OK;
}

static moe_status add_metric(moe_registry *r, moe_metric *m) {
    if (r->n_metrics == r->cap_metrics) {
        int cap = r->cap_metrics ? 2 * r->cap_metrics : 16;
        moe_metric **bigger = realloc(r->metrics, (size_t)cap * sizeof *bigger);
        if (!bigger) return moe_error(MOE_ERR_NOMEM, "metric %s: out of memory", m->name);
        r->metrics = bigger;
        r->cap_metrics = cap;
    }
    r->metrics[r->n_metrics++] = m;
    return MOE_OK;
}

moe_status moe_registry_declare(moe_registry *r, const char *name, moe_metric_type type,
                                const char *help, const char *labels, const double *buckets,
                                int n_buckets, moe_metric **out) {
    if (!r || !name || !out)
        return moe_error(MOE_ERR_INVALID, "moe_registry_declare: registry, name and out are "
                                          "required");
    *out = NULL;
    if (!valid_name(name, strlen(name)))
        return moe_error(MOE_ERR_INVALID,
                         "metric name \"%s\": use letters, digits and '_', not starting with a "
                         "digit",
                         name);
    if (!strcmp(name, "kind") || !strcmp(name, "step") || !strcmp(name, "time_s"))
        return moe_error(MOE_ERR_INVALID,
                         "metric name \"%s\" is reserved: every metrics.jsonl line starts with "
                         "kind, step and time_s; pick another name",
                         name);
    if (type != MOE_METRIC_COUNTER && type != MOE_METRIC_GAUGE && type != MOE_METRIC_HISTOGRAM)
        return moe_error(MOE_ERR_INVALID, "metric %s: unknown metric type %d", name, (int)type);
    if (!help || !*help)
        return moe_error(MOE_ERR_INVALID,
                         "metric %s: give it a help text (Prometheus lints reject metrics "
                         "without one)",
                         name);
    moe_metric *m = NULL;
    moe_status st = new_metric(r, name, type, help, labels, buckets, n_buckets, &m);
    if (st != MOE_OK) return st;
    pthread_mutex_lock(&r->lock);
    moe_metric *old = find_metric(r, name);
    if (old && same_declaration(old, m)) {
        *out = old;
    } else if (old) {
        st = moe_error(MOE_ERR_INVALID,
                       "metric %s: already declared as a %s with %d label(s)%s; declare it the "
                       "same way everywhere or pick another name",
                       name, obs_type_name(old->type), old->n_labels,
                       old->type == MOE_METRIC_HISTOGRAM ? " or other buckets" : "");
    } else {
        st = add_metric(r, m);
        if (st == MOE_OK) *out = m;
    }
    pthread_mutex_unlock(&r->lock);
    if (*out != m) free_metric(m);
    return st;
}

/* label_values must be NULL for an unlabelled family and hold one non-NULL
 * string per label otherwise (the count itself cannot be checked in C). */
static moe_status check_label_values(const moe_metric *m, const char *const *label_values,
                                     const char *op) {
    if (m->n_labels == 0) {
        if (label_values)
            return moe_error(MOE_ERR_INVALID,
                             "%s %s: the metric has no labels; pass NULL as the label values", op,
                             m->name);
        return MOE_OK;
    }
    if (!label_values)
        return moe_error(MOE_ERR_INVALID,
                         "%s %s: the metric has %d label(s) (%s...); pass a value "
                         "for each",
                         op, m->name, m->n_labels, m->label_names[0]);
    for (int i = 0; i < m->n_labels; i++)
        if (!label_values[i])
            return moe_error(MOE_ERR_INVALID, "%s %s: no value for label %s (NULL)", op, m->name,
                             m->label_names[i]);
    return MOE_OK;
}

/* The series with these label values, or NULL. Caller holds the lock. */
static obs_series *find_series(const moe_metric *m, const char *const *label_values) {
    for (int i = 0; i < m->n_series; i++) {
        obs_series *s = &m->series[i];
        int same = 1;
        for (int l = 0; l < m->n_labels && same; l++)
            same = !strcmp(s->label_values[l], label_values[l]);
        if (same) return s;
    }
    return NULL;
}

/* Finds or creates the series. Caller holds the lock. */
static moe_status get_series(moe_metric *m, const char *const *label_values, obs_series **out) {
    *out = find_series(m, label_values);
    if (*out) return MOE_OK;
    if (m->n_series == m->cap_series) {
        int cap = m->cap_series ? 2 * m->cap_series : 4;
        obs_series *bigger = realloc(m->series, (size_t)cap * sizeof *bigger);
        if (!bigger) return moe_error(MOE_ERR_NOMEM, "metric %s: out of memory", m->name);
        m->series = bigger;
        m->cap_series = cap;
    }
    obs_series s = {0};
    int ok = 1;
    for (int l = 0; l < m->n_labels; l++)
        ok = ok && (s.label_values[l] = copy_string(label_values[l]));
    if (ok && m->type == MOE_METRIC_HISTOGRAM)
        ok = (s.bucket_counts = calloc((size_t)m->n_buckets + 1, sizeof *s.bucket_counts)) != NULL;
    if (!ok) {
        free_series(&s, m->n_labels);
        return moe_error(MOE_ERR_NOMEM, "metric %s: out of memory", m->name);
    }
    m->series[m->n_series] = s;
    *out = &m->series[m->n_series++];
    return MOE_OK;
}

typedef enum { OP_SET, OP_ADD, OP_OBSERVE } update_op;

static void apply(const moe_metric *m, obs_series *s, update_op op, double v) {
    if (op == OP_SET) {
        s->value = v;
    } else if (op == OP_ADD) {
        s->value += v;
    } else {
        int b = 0; /* first bucket whose bound holds v; NaN lands in +Inf */
        while (b < m->n_buckets && !(v <= m->buckets[b])) b++;
        s->bucket_counts[b]++;
        s->count++;
        s->sum += v;
    }
    s->updated = 1;
}

static moe_status update(moe_metric *m, const char *const *label_values, update_op op, double v) {
    static const char *const op_names[] = {"set", "add", "observe"};
    const char *name = op_names[op];
    if (!m) return moe_error(MOE_ERR_INVALID, "%s: the metric is NULL (declare it first)", name);
    if (op == OP_SET && m->type != MOE_METRIC_GAUGE)
        return moe_error(MOE_ERR_INVALID, "set %s: only gauges can be set; this is a %s%s", m->name,
                         obs_type_name(m->type),
                         m->type == MOE_METRIC_COUNTER ? " (use add)" : " (use observe)");
    if (op == OP_ADD && m->type == MOE_METRIC_HISTOGRAM)
        return moe_error(MOE_ERR_INVALID, "add %s: a histogram takes observations (use observe)",
                         m->name);
    if (op == OP_ADD && m->type == MOE_METRIC_COUNTER && !(v >= 0))
        return moe_error(MOE_ERR_INVALID, "add %s: %g to a counter; counters only go up (v >= 0)",
                         m->name, v);
    if (op == OP_OBSERVE && m->type != MOE_METRIC_HISTOGRAM)
        return moe_error(MOE_ERR_INVALID,
                         "observe %s: only histograms take observations; this is "
                         "a %s (use %s)",
                         m->name, obs_type_name(m->type),
                         m->type == MOE_METRIC_COUNTER ? "add" : "set");
    moe_status st = check_label_values(m, label_values, name);
    if (st != MOE_OK) return st;
    pthread_mutex_lock(&m->registry->lock);
    obs_series *s;
    st = get_series(m, label_values, &s);
    if (st == MOE_OK) apply(m, s, op, v);
    pthread_mutex_unlock(&m->registry->lock);
    return st;
}

moe_status moe_metric_set(moe_metric *m, const char *const *label_values, double v) {
    return update(m, label_values, OP_SET, v);
}

moe_status moe_metric_add(moe_metric *m, const char *const *label_values, double v) {
    return update(m, label_values, OP_ADD, v);
}

moe_status moe_metric_observe(moe_metric *m, const char *const *label_values, double v) {
    return update(m, label_values, OP_OBSERVE, v);
}

double moe_metric_value(const moe_metric *m, const char *const *label_values) {
    if (!m || check_label_values(m, label_values, "value of") != MOE_OK) return NAN;
    pthread_mutex_lock(&m->registry->lock);
    const obs_series *s = find_series(m, label_values);
    double v = NAN;
    if (s) v = m->type == MOE_METRIC_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&m->registry->lock);
    return v;
}
