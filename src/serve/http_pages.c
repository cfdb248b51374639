/* Everything around the API: health, metrics, the OpenAPI document and the
 * dashboard's files. */
#include "serve/http.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#define PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* While stopping, jobs and models may be closing or gone: the load reads
 * 0 then (run_handler counts this handler, so they stay while it runs
 * when stopping was not set). */
HTTP_HANDLER(http_h_healthz) {
    int stopping = atomic_load(&s->stopping);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", stopping ? "stopping" : "ok");
    cJSON_AddNumberToObject(o, "models", s->n_models);
    cJSON_AddNumberToObject(o, "queue_depth", stopping ? 0 : serve_models_queue_depth(s->models));
    cJSON_AddNumberToObject(o, "jobs_running", stopping ? 0 : serve_jobs_running(s->jobs));
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return http_reply_json(r, stopping ? 503 : 200, json);
}

HTTP_HANDLER(http_h_metrics) {
    char *text = NULL;
    if (moe_registry_render_prometheus(s->registry, &text) != MOE_OK)
        return http_reply_error(r, 500, "", NULL, NULL, "cannot render the metrics: %s",
                                moe_last_error());
    return http_reply(r, 200, PROMETHEUS_CONTENT_TYPE, text, strlen(text), 1);
}

/* Only plotly.min.js can be missing; where it was looked for (install and
 * source paths) is for the operator, who saw it at start, not for anyone
 * asking without a key. */
static enum MHD_Result asset(moe_server *s, http_request *r, const char *name) {
    http_asset a;
    if (!http_asset_get(s, name, &a))
        return http_reply_error(r, 404, "", NULL, NULL,
                                "%s is not installed on this server; the dashboard works without "
                                "its charts",
                                name);
    return http_reply(r, 200, a.content_type, (char *)a.data, a.len, 0);
}

HTTP_HANDLER(http_h_openapi) {
    return asset(s, r, "openapi.json");
}
HTTP_HANDLER(http_h_dashboard) {
    return asset(s, r, "dashboard.html");
}
HTTP_HANDLER(http_h_static) {
    return asset(s, r, r->route->pattern + strlen("/static/"));
}
