/* Latency samples and their summary: mean, min, max and percentiles
 * computed exactly as numpy.percentile's default "linear" method
 * (include/moe/metrics.h, docs/eval.md). */
#include "moe/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void moe_latency_init(moe_latency *l) {
    memset(l, 0, sizeof *l);
}

void moe_latency_free(moe_latency *l) {
    free(l->samples);
    memset(l, 0, sizeof *l);
}

moe_status moe_latency_add(moe_latency *l, double seconds) {
    if (!(isfinite(seconds) && seconds >= 0))
        return moe_error(MOE_ERR_INVALID,
                         "latency: sample %g s is not a finite, non-negative time; measure with "
                         "a monotonic clock",
                         seconds);
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        double *grown = realloc(l->samples, cap * sizeof *grown);
        if (!grown) return moe_error(MOE_ERR_NOMEM, "latency: out of memory for %zu samples", cap);
        l->samples = grown;
        l->cap = cap;
    }
    l->samples[l->n++] = seconds;
    return MOE_OK;
}

/* numpy's _lerp: from the nearer end, so g = 1 gives b exactly */
static double lerp(double a, double b, double g) {
    double diff = b - a;
    return g >= 0.5 ? b - diff * (1 - g) : a + diff * g;
}

double moe_percentile(const double *sorted, size_t n, double q) {
    if (n == 0 || !(q >= 0 && q <= 100)) return NAN;
    /* numpy divides q by 100 first, then multiplies: same rounding here */
    double h = (double)(n - 1) * (q / 100);
    if (h >= (double)(n - 1)) return sorted[n - 1];
    double below = floor(h);
    size_t i = (size_t)below;
    return lerp(sorted[i], sorted[i + 1], h - below);
}

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

moe_status moe_latency_summarize(const moe_latency *l, moe_latency_summary *out) {
    memset(out, 0, sizeof *out);
    if (l->n == 0)
        return moe_error(MOE_ERR_INVALID,
                         "latency summary: no samples; add some (moe_latency_add) first");
    double *sorted = malloc(l->n * sizeof *sorted);
    if (!sorted) return moe_error(MOE_ERR_NOMEM, "latency summary: out of memory");
    memcpy(sorted, l->samples, l->n * sizeof *sorted);
    qsort(sorted, l->n, sizeof *sorted, ascending);
    double sum = 0;
    for (size_t i = 0; i < l->n; i++) sum += sorted[i];
    out->count = l->n;
    out->mean = sum / (double)l->n;
    out->min = sorted[0];
    out->max = sorted[l->n - 1];
    out->p50 = moe_percentile(sorted, l->n, 50);
    out->p90 = moe_percentile(sorted, l->n, 90);
    out->p99 = moe_percentile(sorted, l->n, 99);
    free(sorted);
    return MOE_OK;
}
