/* Responses: every one carries the same security headers; API answers are
 * never cached; errors share one JSON shape. */
#include "serve/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The dashboard loads its script, style and plotly.js from this server
 * only; no inline script runs. plotly.js sets inline styles on its SVG, so
 * style attributes are allowed (styles cannot run code). */
#define CSP                                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "                    \
    "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "         \
    "form-action 'none'; frame-ancestors 'none'"

static void security_headers(struct MHD_Response *resp, const http_request *r) {
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    int api = !strncmp(r->endpoint, "/v1", 3) || !strcmp(r->endpoint, "/metrics") ||
              !strcmp(r->endpoint, "/healthz") || !strcmp(r->endpoint, "unmatched");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, api ? "no-store" : "no-cache");
    if (atomic_load(&r->server->stopping))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

static enum MHD_Result queue(http_request *r, int status, const char *content_type, char *body,
                             size_t len, enum MHD_ResponseMemoryMode mode, const char *allow,
                             const char *www_auth) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    security_headers(resp, r);
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (www_auth) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_auth);
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES) {
        r->status = status;
        r->queued = 1;
    }
    return ok;
}

enum MHD_Result http_reply(http_request *r, int status, const char *content_type, char *body,
                           size_t len, int take) {
    return queue(r, status, content_type, body, len,
                 take ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT, NULL, NULL);
}

enum MHD_Result http_reply_json(http_request *r, int status, char *json) {
    if (!json) return http_reply_error(r, 500, "", NULL, NULL, "out of memory");
    return http_reply(r, status, "application/json", json, strlen(json), 1);
}

static enum MHD_Result reply_error_va(http_request *r, int status, const char *field,
                                      const char *allow, const char *www_auth, const char *fmt,
                                      va_list ap) {
    serve_error e = {.status = status};
    snprintf(e.field, sizeof e.field, "%s", field ? field : "");
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    char *json = serve_error_json(&e);
    if (!json) return MHD_NO;
    return queue(r, status, "application/json", json, strlen(json), MHD_RESPMEM_MUST_FREE, allow,
                 www_auth);
}

enum MHD_Result http_reply_error(http_request *r, int status, const char *field, const char *allow,
                                 const char *www_auth, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ok = reply_error_va(r, status, field, allow, www_auth, fmt, ap);
    va_end(ap);
    return ok;
}

enum MHD_Result http_reply_serve_error(http_request *r, const serve_error *e) {
    int status = e->status >= 400 && e->status <= 599 ? e->status : 500;
    return http_reply_error(r, status, e->field, NULL, NULL, "%s", e->message);
}
