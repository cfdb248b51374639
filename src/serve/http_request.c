/* One request's life: headers (route, key, content type and length are
 * checked before any body byte is read), the body (kept only up to
 * --max-body), the handler, and at the end the audit line and metrics. */
#include "serve/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

static void remote_address(struct MHD_Connection *c, char *out, size_t cap) {
    snprintf(out, cap, "-");
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!info || !info->client_addr) return;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) /* an IPv4 client of "::": log it as IPv4 */
            inet_ntop(AF_INET, a6->s6_addr + 12, out, (socklen_t)cap);
        else
            inet_ntop(AF_INET6, a6, out, (socklen_t)cap);
    }
}

static http_request *request_new(moe_server *s, struct MHD_Connection *c, const char *method) {
    http_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->server = s;
    r->conn = c;
    r->t0 = serve_now();
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->endpoint, sizeof r->endpoint, "unmatched");
    remote_address(c, r->remote, sizeof r->remote);
    pthread_mutex_init(&r->lock, NULL);
    atomic_fetch_add(&s->inflight, 1);
    moe_metric_add(s->metrics.inflight, NULL, 1);
    return r;
}

/* "application/json", any case, optionally with parameters. */
static int is_json(const char *content_type) {
    if (!content_type) return 0;
    size_t n = strcspn(content_type, "; \t");
    return n == 16 && !strncasecmp(content_type, "application/json", 16);
}

/* 1 when the headers announce a body: a Content-Length other than 0, or
 * any Transfer-Encoding (chunked). */
static int announces_body(struct MHD_Connection *c) {
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return 1;
    const char *length =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return length && length[strspn(length, "0")] != '\0';
}

/* Everything the headers decide, before the body: 1 to go on, 0 when an
 * answer is queued (or the connection should be dropped). */
static int check_headers(moe_server *s, http_request *r, const char *url) {
    char allow[64];
    int found =
        http_route_find(r->method, url, &r->route, r->param, sizeof r->param, allow, sizeof allow);
    if (r->route) snprintf(r->endpoint, sizeof r->endpoint, "%s", r->route->pattern);
    if (found == 405) {
        /* a known path: labelled with its pattern ("unmatched" is for unknown ones) */
        snprintf(r->endpoint, sizeof r->endpoint, "%s", http_route_path_pattern(url));
        http_reply_error(r, 405, "", allow, NULL, "%s is not allowed here; use %s", r->method,
                         allow);
        return 0;
    }
    if (found == 404 && r->route) {
        http_reply_error(r, 404, "id", NULL, NULL,
                         "'%.64s' is not a job id (1..63 of A-Z a-z 0-9 _ . -)", r->param);
        return 0;
    }
    if (found == 404) {
        http_reply_error(r, 404, "", NULL, NULL, "no endpoint %s %.128s; /openapi.json lists them",
                         r->method, url);
        return 0;
    }
    if (atomic_load(&s->stopping) && !http_route_serves_while_stopping(r->route)) {
        http_reply_error(r, 503, "", NULL, NULL, "the server is shutting down; retry elsewhere");
        return 0;
    }
    if (!http_authorize(s, r)) return 0;
    /* a route without a JSON body keeps none: refused before it is read,
     * so anonymous clients cannot park --max-body on every connection */
    if (!r->route->json_body && announces_body(r->conn)) {
        http_reply_error(r, 413, "", NULL, NULL,
                         "%s %s takes no body; send the request without one", r->method,
                         r->route->pattern);
        return 0;
    }
    const char *length =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(length, &end, 10);
        if (errno == ERANGE || n > s->limits.max_body_bytes) {
            http_reply_error(r, 413, "", NULL, NULL,
                             "the body (%s bytes) is larger than the limit, %zu bytes", length,
                             s->limits.max_body_bytes);
            return 0;
        }
    }
    if (r->route->json_body && !is_json(MHD_lookup_connection_value(
                                   r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        http_reply_error(r, 415, "Content-Type", NULL, NULL,
                         "send the body as JSON with \"Content-Type: application/json\"");
        return 0;
    }
    return 1;
}

/* Keeps up to max_body_bytes (nothing for a route without a JSON body,
 * whose announced body was refused already); past that, drops what comes
 * and remembers (a body without Content-Length, chunked: libmicrohttpd 0.9
 * cannot queue an answer before the body ends, so the 413 comes then, with
 * nothing more kept). */
static int take_body(http_request *r, const char *data, size_t n) {
    size_t max = r->route->json_body ? r->server->limits.max_body_bytes : 0;
    if (r->too_big || n > max - r->body_len) {
        r->too_big = 1;
        return 1;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + n + 1) cap *= 2;
        if (cap > max + 1) cap = max + 1;
        char *b = realloc(r->body, cap);
        if (!b) return 0;
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 1;
}

/* Runs r's handler. Headers that passed before the shutdown may bring
 * their body after it began: then the handler does not run (jobs and
 * models are being closed). The count lets moe_serve_stop wait for the
 * handlers that saw the server running before it closes them; checking
 * stopping after counting (both sequentially consistent) means either
 * the handler sees stopping or moe_serve_stop sees the handler. */
static enum MHD_Result run_handler(moe_server *s, http_request *r) {
    atomic_fetch_add(&s->handlers, 1);
    enum MHD_Result res;
    if (atomic_load(&s->stopping) && !http_route_serves_while_stopping(r->route))
        res = http_reply_error(r, 503, "", NULL, NULL,
                               "the server is shutting down; retry elsewhere");
    else
        res = r->route->handle(s, r);
    atomic_fetch_sub(&s->handlers, 1);
    return res;
}

enum MHD_Result http_access(void *cls, struct MHD_Connection *c, const char *url,
                            const char *method, const char *version, const char *upload_data,
                            size_t *upload_data_size, void **req_cls) {
    (void)version;
    moe_server *s = cls;
    http_request *r = *req_cls;
    if (!r) {
        r = request_new(s, c, method);
        if (!r) return MHD_NO;
        *req_cls = r;
        if (!check_headers(s, r, url)) return r->queued ? MHD_YES : MHD_NO;
        return MHD_YES; /* called again with the body, then once more without */
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->queued) return MHD_YES; /* answered early: the rest is dropped */
        return take_body(r, upload_data, n) ? MHD_YES : MHD_NO;
    }
    if (r->queued) return MHD_YES;
    if (r->pending) return http_async_finish(r); /* resumed by the worker */
    if (r->too_big)
        return http_reply_error(r, 413, "", NULL, NULL,
                                "the body is larger than the limit, %zu bytes",
                                s->limits.max_body_bytes);
    return run_handler(s, r);
}

void http_async_done(void *user) {
    http_request *r = user;
    pthread_mutex_lock(&r->lock);
    r->done = 1;
    int resume = r->suspended;
    r->suspended = 0;
    struct MHD_Connection *c = r->conn;
    pthread_mutex_unlock(&r->lock);
    /* after this, r may be answered and freed by an HTTP thread */
    if (resume) MHD_resume_connection(c);
}

enum MHD_Result http_async_wait(http_request *r, moe_status st, const serve_error *err) {
    if (st != MOE_OK) {
        r->pending = 0;
        return http_reply_serve_error(r, err);
    }
    pthread_mutex_lock(&r->lock);
    int done = r->done;
    if (!done) {
        MHD_suspend_connection(r->conn);
        r->suspended = 1;
    }
    pthread_mutex_unlock(&r->lock);
    return done ? http_async_finish(r) : MHD_YES;
}

enum MHD_Result http_async_finish(http_request *r) {
    pthread_mutex_lock(&r->lock);
    int done = r->done;
    pthread_mutex_unlock(&r->lock);
    if (!done) return MHD_YES; /* not ours yet (a spurious call) */
    r->pending = 0;
    r->tokens = r->reply.tokens;
    snprintf(r->detail, sizeof r->detail, "%s", r->reply.detail);
    char *body = r->reply.body;
    r->reply.body = NULL;
    if (!body) return http_reply_error(r, 500, "", NULL, NULL, "the model worker gave no answer");
    int status = r->reply.status >= 200 && r->reply.status <= 599 ? r->reply.status : 500;
    return http_reply(r, status, "application/json", body, strlen(body), 1);
}

void http_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                    enum MHD_RequestTerminationCode toe) {
    (void)c;
    moe_server *s = cls;
    http_request *r = *req_cls;
    if (!r) return;
    *req_cls = NULL;
    double seconds = serve_now() - r->t0;
    /* a request dropped before any answer (client gone, timeout) is logged
     * as 499, nginx's "client closed request" */
    int status = r->queued ? r->status : 499;
    char detail[128];
    snprintf(detail, sizeof detail, "%s%s%s", r->detail,
             toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && r->detail[0] ? "; " : "",
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK      ? ""
             : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
             : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT    ? "client closed"
                                                             : "not completed");
    serve_audit_write(s->audit, r->key_id, r->method, r->endpoint, status, r->tokens,
                      seconds * 1000.0, r->remote, detail);
    http_metrics_request_done(&s->metrics, r->endpoint, r->method, status, seconds);
    free(r->reply.body);
    free(r->body);
    pthread_mutex_destroy(&r->lock);
    free(r);
    moe_metric_add(s->metrics.inflight, NULL, -1);
    atomic_fetch_sub(&s->inflight, 1);
}
