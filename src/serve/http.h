/* The HTTP layer of moe serve (http_*.c): the server object, one request's
 * state, the routing table, responses and metrics. The other parts of the
 * server only see serve.h. */
#ifndef MOE_SERVE_HTTP_H
#define MOE_SERVE_HTTP_H

#include "moe/serve.h"
#include "serve/serve.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

/* audit.c: the first write failure's message, handed out once (the CLI
 * prints it; the server keeps running without an audit trail). */
int serve_audit_take_error(serve_audit *a, char *msg, size_t cap);

/* Who may call a route. */
typedef enum http_auth {
    HTTP_AUTH_NONE,    /* anyone: health, docs, dashboard */
    HTTP_AUTH_INFER,   /* any key */
    HTTP_AUTH_TRAIN,   /* a train-scope key */
    HTTP_AUTH_METRICS, /* any key, or anyone with --public-metrics */
} http_auth;

typedef struct http_request http_request;

/* One row of the routing table: method and path match exactly, except a
 * "{id}" segment, which matches one path segment that is a valid name. */
typedef struct http_route {
    const char *method;
    const char *pattern;
    http_auth auth;
    int json_body; /* 1: a JSON body (Content-Type checked, size limited); 0: none (a body
                      announced is 413, nothing is kept) */
    enum MHD_Result (*handle)(moe_server *s, http_request *r); /* queues or suspends */
    const char *summary; /* one line for --list-routes and the docs test */
} http_route;

/* The table (http_routes.c), in the order /openapi.json lists it. */
const http_route *serve_http_routes(int *n);

/* The server's metrics (http_metrics.c). */
typedef struct http_metrics {
    moe_metric *requests;      /* serve_requests_total{endpoint,method,status} */
    moe_metric *seconds;       /* serve_request_seconds{endpoint} */
    moe_metric *inflight;      /* serve_inflight_requests */
    moe_metric *auth_failures; /* serve_auth_failures_total */
} http_metrics;

moe_status http_metrics_declare(http_metrics *m, moe_registry *reg);
void http_metrics_request_done(const http_metrics *m, const char *endpoint, const char *method,
                               int status, double seconds);

/* Static files: the embedded dashboard and OpenAPI document, plotly.js
 * read once at start (http_assets.c). */
typedef struct http_asset {
    const unsigned char *data;
    size_t len;
    const char *content_type;
} http_asset;

struct moe_server {
    moe_serve_options opt;
    serve_limits limits;
    serve_keys *keys;
    serve_audit *audit;
    serve_models *models;
    serve_jobs *jobs;
    moe_registry *registry;
    http_metrics metrics;
    int n_models;
    struct MHD_Daemon *daemon;
    int port;
    atomic_int stopping;   /* shutdown began: /healthz says so, new requests get 503, and no
                              handler touches jobs or models any more */
    atomic_int handlers;   /* route handlers running now: jobs and models are closed at 0 */
    atomic_int inflight;   /* requests between their first byte and their completion */
    unsigned char *plotly; /* plotly.min.js, or NULL when not found */
    size_t plotly_len;
    char plotly_error[512]; /* why not, with the paths tried: for the operator only */
};

/* One HTTP request, from its headers to its completion (http_request.c). */
struct http_request {
    moe_server *server;
    struct MHD_Connection *conn;
    const http_route *route;
    char method[16];
    char endpoint[64]; /* the route pattern, "unmatched" when none: audit and metric label */
    char param[256];   /* the {id} segment, decoded */
    char key_id[SERVE_NAME_MAX];
    char remote[64];
    double t0;  /* monotonic seconds at the first byte */
    char *body; /* the JSON body received so far */
    size_t body_len, body_cap;
    int too_big; /* the body passed max_body_bytes: what came is dropped, 413 */
    int queued;  /* a response has been queued */
    /* the answer */
    int status;
    long tokens;
    char detail[96];
    /* an inference answered by a model worker (suspended meanwhile) */
    pthread_mutex_t lock;
    int pending, done, suspended;
    serve_reply reply;
};

/* Responses (http_respond.c). Each queues the answer on r's connection
 * with the security headers and records the status. */
enum MHD_Result http_reply(http_request *r, int status, const char *content_type, char *body,
                           size_t len, int take);
enum MHD_Result http_reply_json(http_request *r, int status, char *json);
/* {"error": {...}}; allow (405) and www_auth (401) add their headers. */
enum MHD_Result http_reply_error(http_request *r, int status, const char *field, const char *allow,
                                 const char *www_auth, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
enum MHD_Result http_reply_serve_error(http_request *r, const serve_error *e);

/* The access handler and completion callback libmicrohttpd calls
 * (http_request.c). */
enum MHD_Result http_access(void *cls, struct MHD_Connection *c, const char *url,
                            const char *method, const char *version, const char *upload_data,
                            size_t *upload_data_size, void **req_cls);
void http_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                    enum MHD_RequestTerminationCode toe);

/* Whether the route still answers while the server stops (/healthz says
 * "stopping", /metrics shows the drain); the others get 503. */
int http_route_serves_while_stopping(const http_route *route);

/* Finds the route of method and url: MHD_HTTP_OK with *route (and the {id}
 * in param), 404 (no such path, or an {id} that is not a valid name), or
 * 405 with the path's methods in allow ("GET, DELETE"). */
int http_route_find(const char *method, const char *url, const http_route **route, char *param,
                    size_t param_cap, char *allow, size_t allow_cap);
/* The pattern of the first route whose path has url's shape, whatever its
 * method ("/v1/jobs/{id}" for "PUT /v1/jobs/x"), or NULL: a 405's label. */
const char *http_route_path_pattern(const char *url);

/* Route handlers that answer later: the request waits suspended until the
 * model worker calls http_async_done. */
void http_async_done(void *user);
/* After a submit (st): suspends r until http_async_done, or answers now
 * when the worker was faster or the submit failed (err). */
enum MHD_Result http_async_wait(http_request *r, moe_status st, const serve_error *err);
/* Queues the worker's reply. */
enum MHD_Result http_async_finish(http_request *r);

/* Checks the key r presents against r->route's auth; 1 when allowed (key
 * id in r->key_id), else 0 after queueing 401 or 403 (http_auth.c). */
int http_authorize(moe_server *s, http_request *r);

/* The handlers the table points at: the API (http_api.c) and the pages
 * around it (http_pages.c). */
#define HTTP_HANDLER(name) enum MHD_Result name(moe_server *s, http_request *r)
HTTP_HANDLER(http_h_infer);
HTTP_HANDLER(http_h_generate);
HTTP_HANDLER(http_h_train);
HTTP_HANDLER(http_h_jobs_list);
HTTP_HANDLER(http_h_job_get);
HTTP_HANDLER(http_h_job_cancel);
HTTP_HANDLER(http_h_job_resume);
HTTP_HANDLER(http_h_models);
HTTP_HANDLER(http_h_healthz);
HTTP_HANDLER(http_h_metrics);
HTTP_HANDLER(http_h_openapi);
HTTP_HANDLER(http_h_dashboard);
HTTP_HANDLER(http_h_static);

/* Static assets (http_assets.c). */
moe_status http_assets_load(moe_server *s);
void http_assets_free(moe_server *s);
int http_asset_get(const moe_server *s, const char *name, http_asset *out);

#endif
