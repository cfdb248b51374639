/* GET /metrics over HTTP: a libmicrohttpd daemon with a polling thread of
 * its own renders the registry (under its mutex) on every scrape. */
#include "moe/obs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct moe_metrics_server {
    struct MHD_Daemon *daemon;
    moe_registry *registry;
};

/* Queues a response with body (taken over when mode is MUST_FREE). */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *content_type,
                             char *body, enum MHD_ResponseMemoryMode mode, const char *allow) {
    struct MHD_Response *response = MHD_create_response_from_buffer(strlen(body), body, mode);
    if (!response) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (allow) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result queued = MHD_queue_response(c, status, response);
    MHD_destroy_response(response);
    return queued;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text,
                                  const char *allow) {
    return reply(c, status, "text/plain; charset=utf-8", (char *)text, MHD_RESPMEM_PERSISTENT,
                 allow);
}

/* libmicrohttpd's access handler; answers on the first call, without
 * reading a request body (none of our answers needs one). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **request_state) {
    (void)version, (void)upload_data, (void)upload_data_size, (void)request_state;
    const moe_metrics_server *s = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n",
                          "GET, HEAD");
    if (strcmp(url, "/metrics"))
        return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n", NULL);
    char *text;
    if (moe_registry_render_prometheus(s->registry, &text) != MOE_OK)
        return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render the metrics\n", NULL);
    return reply(c, MHD_HTTP_OK, PROMETHEUS_CONTENT_TYPE, text, MHD_RESPMEM_MUST_FREE, NULL);
}

/* A listening TCP socket of our own, so a busy port gives its errno (the
 * daemon would only fail); libmicrohttpd takes it over and closes it. */
static moe_status open_listener(int port, int all_interfaces, int *fd_out, int *bound_port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return moe_error(MOE_ERR_IO, "metrics server: cannot create a socket: %s", strerror(errno));
    int one = 1; /* a restarted run may rebind while old connections linger */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(all_interfaces ? INADDR_ANY : INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        int err = errno;
        close(fd);
        return moe_error(MOE_ERR_IO,
                         "metrics server: cannot listen on port %d: %s; choose another "
                         "--metrics-port (0 picks a free one)",
                         port, strerror(err));
    }
    *fd_out = fd;
    *bound_port = ntohs(addr.sin_port);
    return MOE_OK;
}

moe_status moe_metrics_server_start(moe_metrics_server **out, moe_registry *r, int port,
                                    int all_interfaces, int *bound_port) {
    if (!out || !r)
        return moe_error(MOE_ERR_INVALID, "moe_metrics_server_start: server and registry are "
                                          "required");
    *out = NULL;
    if (port < 0 || port > 65535)
        return moe_error(MOE_ERR_INVALID,
                         "metrics server: port %d is out of range; use 1..65535, or 0 for any "
                         "free port",
                         port);
    moe_metrics_server *s = calloc(1, sizeof *s);
    if (!s) return moe_error(MOE_ERR_NOMEM, "metrics server: out of memory");
    s->registry = r;
    int fd = -1, bound = 0;
    moe_status st = open_listener(port, all_interfaces, &fd, &bound);
    if (st != MOE_OK) {
        free(s);
        return st;
    }
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, (uint16_t)bound,
                                 NULL, NULL, handle, s, MHD_OPTION_LISTEN_SOCKET, fd,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!s->daemon) {
        close(fd);
        free(s);
        return moe_error(MOE_ERR_IO,
                         "metrics server: libmicrohttpd could not start on port %d; choose "
                         "another --metrics-port or run without one",
                         bound);
    }
    if (bound_port) *bound_port = bound;
    *out = s;
    return MOE_OK;
}

void moe_metrics_server_stop(moe_metrics_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->daemon); /* joins its thread: no scrape runs after this */
    free(s);
}
