/* The HTTP layer's Prometheus metrics. Label values come from the routing
 * table and a fixed list of methods, never from raw client input, so a
 * scanner cannot grow the series without bound. */
#include "serve/http.h"

#include <stdio.h>
#include <string.h>

moe_status http_metrics_declare(http_metrics *m, moe_registry *reg) {
    static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,  0.5,    1,     2.5,  5,     10,   30};
    moe_status st = moe_registry_declare(reg, "serve_requests_total", MOE_METRIC_COUNTER,
                                         "HTTP requests answered, by endpoint, method and status",
                                         "endpoint,method,status", NULL, 0, &m->requests);
    if (st == MOE_OK)
        st = moe_registry_declare(reg, "serve_request_seconds", MOE_METRIC_HISTOGRAM,
                                  "Time from a request's first byte to its answer, by endpoint",
                                  "endpoint", buckets, (int)(sizeof buckets / sizeof buckets[0]),
                                  &m->seconds);
    if (st == MOE_OK)
        st = moe_registry_declare(reg, "serve_inflight_requests", MOE_METRIC_GAUGE,
                                  "HTTP requests received and not yet answered", NULL, NULL, 0,
                                  &m->inflight);
    if (st == MOE_OK)
        st = moe_registry_declare(reg, "serve_auth_failures_total", MOE_METRIC_COUNTER,
                                  "Requests refused for a missing or invalid API key (401) or "
                                  "a key without the scope (403)",
                                  NULL, NULL, 0, &m->auth_failures);
    if (st == MOE_OK) st = moe_metric_set(m->inflight, NULL, 0);
    if (st == MOE_OK) st = moe_metric_add(m->auth_failures, NULL, 0);
    return st;
}

static const char *method_label(const char *method) {
    static const char *known[] = {"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(method, known[i])) return known[i];
    return "other";
}

void http_metrics_request_done(const http_metrics *m, const char *endpoint, const char *method,
                               int status, double seconds) {
    char code[16];
    snprintf(code, sizeof code, "%d", status);
    const char *labels[] = {endpoint, method_label(method), code};
    moe_metric_add(m->requests, labels, 1);
    moe_metric_observe(m->seconds, labels, seconds);
}
