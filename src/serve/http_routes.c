/* The routing table: exact method and path, one "{id}" path parameter that
 * must be a valid name (so "..", "%2e%2e" or "a/b" never reach the jobs
 * code or the file system). /openapi.json documents exactly these routes
 * (tests/cli/serve_openapi.sh compares them). */
#include "serve/http.h"

#include <stdio.h>
#include <string.h>

static const http_route routes[] = {
    {"POST", "/v1/infer", HTTP_AUTH_INFER, 1, http_h_infer, "score inputs with a model"},
    {"POST", "/v1/generate", HTTP_AUTH_INFER, 1, http_h_generate, "continue a prompt"},
    {"GET", "/v1/models", HTTP_AUTH_INFER, 0, http_h_models, "the served models"},
    {"POST", "/v1/train", HTTP_AUTH_TRAIN, 1, http_h_train, "start a training job"},
    {"GET", "/v1/jobs", HTTP_AUTH_INFER, 0, http_h_jobs_list, "every training job"},
    {"GET", "/v1/jobs/{id}", HTTP_AUTH_INFER, 0, http_h_job_get, "one job with its history"},
    {"DELETE", "/v1/jobs/{id}", HTTP_AUTH_TRAIN, 0, http_h_job_cancel, "cancel a job"},
    {"POST", "/v1/jobs/{id}/resume", HTTP_AUTH_TRAIN, 0, http_h_job_resume,
     "resume an interrupted or cancelled job"},
    {"GET", "/healthz", HTTP_AUTH_NONE, 0, http_h_healthz, "liveness and load"},
    {"GET", "/metrics", HTTP_AUTH_METRICS, 0, http_h_metrics, "Prometheus metrics"},
    {"GET", "/openapi.json", HTTP_AUTH_NONE, 0, http_h_openapi, "this API, for machines"},
    {"GET", "/", HTTP_AUTH_NONE, 0, http_h_dashboard, "the dashboard"},
    {"GET", "/static/dashboard.js", HTTP_AUTH_NONE, 0, http_h_static, "the dashboard's script"},
    {"GET", "/static/dashboard.css", HTTP_AUTH_NONE, 0, http_h_static, "the dashboard's style"},
    {"GET", "/static/plotly.min.js", HTTP_AUTH_NONE, 0, http_h_static, "plotly.js"},
    {"GET", "/static/favicon.svg", HTTP_AUTH_NONE, 0, http_h_static, "the dashboard's icon"},
};

const http_route *serve_http_routes(int *n) {
    *n = (int)(sizeof routes / sizeof routes[0]);
    return routes;
}

int http_route_serves_while_stopping(const http_route *route) {
    return route->handle == http_h_healthz || route->handle == http_h_metrics;
}

/* 1 when url has pattern's shape; the {id} segment goes to param. */
static int path_matches(const char *pattern, const char *url, char *param, size_t param_cap) {
    const char *p = pattern, *u = url;
    while (*p && *u) {
        if (!strncmp(p, "{id}", 4)) {
            size_t n = strcspn(u, "/");
            if (n == 0) return 0;
            snprintf(param, param_cap, "%.*s", (int)n, u);
            p += 4;
            u += n;
            continue;
        }
        if (*p != *u) return 0;
        p++, u++;
    }
    return !*p && !*u;
}

const char *http_route_path_pattern(const char *url) {
    int n;
    const http_route *t = serve_http_routes(&n);
    char seg[256];
    for (int i = 0; i < n; i++)
        if (path_matches(t[i].pattern, url, seg, sizeof seg)) return t[i].pattern;
    return NULL;
}

int http_route_find(const char *method, const char *url, const http_route **route, char *param,
                    size_t param_cap, char *allow, size_t allow_cap) {
    int n;
    const http_route *t = serve_http_routes(&n);
    *route = NULL;
    allow[0] = '\0';
    char seg[256];
    for (int i = 0; i < n; i++) {
        if (!path_matches(t[i].pattern, url, seg, sizeof seg)) continue;
        if (strcmp(t[i].method, method)) {
            size_t used = strlen(allow);
            snprintf(allow + used, allow_cap - used, "%s%s", used ? ", " : "", t[i].method);
            continue;
        }
        *route = &t[i];
        snprintf(param, param_cap, "%s", strstr(t[i].pattern, "{id}") ? seg : "");
        if (strstr(t[i].pattern, "{id}") && !serve_name_valid(seg)) return 404;
        return 200;
    }
    return allow[0] ? 405 : 404;
}
