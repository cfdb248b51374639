/* Starting and stopping the server: keys, audit log, metrics, models and
 * jobs, then a libmicrohttpd daemon with a pool of --threads HTTP threads
 * (inferences wait suspended, without holding one). Stopping is graceful:
 * stop accepting, drain in-flight requests, checkpoint the jobs. */
#include "serve/http.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void moe_serve_options_default(moe_serve_options *o) {
    serve_limits l;
    serve_limits_default(&l);
    *o = (moe_serve_options){
        .host = "127.0.0.1",
        .port = 8080,
        .state_dir = "serve-state",
        .data_dir = ".",
        .configs_dir = "configs",
        .max_body_bytes = l.max_body_bytes,
        .max_tokens = l.max_tokens,
        .max_inputs = l.max_inputs,
        .max_jobs = l.max_jobs,
        .max_batch = l.max_batch,
        .batch_window_ms = l.batch_window_ms,
        .max_queue = l.max_queue,
        .threads = 4,
        .fallback_expert = -1,
        .drain_timeout_s = 30,
    };
}

static void warn(const moe_server *s, const char *fmt, ...) {
    if (!s->opt.warn) return;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->opt.warn(msg, s->opt.warn_user);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    const moe_server *s = cls;
    if (!s->opt.warn) return;
    char msg[600];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    s->opt.warn(msg, s->opt.warn_user);
}

static moe_status check_options(const moe_serve_options *o) {
    if (o->port < 0 || o->port > 65535)
        return moe_error(MOE_ERR_INVALID, "port %d is out of range (0..65535; 0 = any free port)",
                         o->port);
    if (o->threads < 1 || o->threads > 256)
        return moe_error(MOE_ERR_INVALID, "threads %d is out of range (1..256)", o->threads);
    if (o->max_body_bytes < 64)
        return moe_error(MOE_ERR_INVALID, "max body %zu bytes is too small (at least 64)",
                         o->max_body_bytes);
    if (o->max_tokens < 1 || o->max_inputs < 1 || o->max_jobs < 0 || o->max_batch < 1 ||
        o->max_queue < 1 || !(o->batch_window_ms >= 0))
        return moe_error(MOE_ERR_INVALID, "max tokens, inputs, batch and queue must be >= 1, max "
                                          "jobs and the batch window >= 0");
    if (!o->state_dir || !*o->state_dir)
        return moe_error(MOE_ERR_INVALID, "a state directory is required");
    return MOE_OK;
}

/* A listening socket of our own, so errors say why (libmicrohttpd would
 * only fail) and any address getaddrinfo knows works, IPv6 included. */
static moe_status open_listener(const char *host, int port, int *fd_out, int *bound) {
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, service, &hints, &ai);
    if (rc) return moe_error(MOE_ERR_IO, "cannot resolve --host %s: %s", host, gai_strerror(rc));
    int fd = -1, err = 0;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (a->ai_family == AF_INET6) /* "::" also takes IPv4 */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, a->ai_addr, a->ai_addrlen) || listen(fd, 511)) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return moe_error(MOE_ERR_IO,
                         "cannot listen on %s port %d: %s; choose another --port (0 picks a "
                         "free one)",
                         host, port, strerror(err));
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    *bound = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                              : ((struct sockaddr_in *)&addr)->sin_port);
    *fd_out = fd;
    return MOE_OK;
}

/* The port, written to a temporary file renamed into place: a reader sees
 * no file or the whole number. */
static moe_status write_port_file(const char *path, int port) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "w");
    int ok = fp && fprintf(fp, "%d\n", port) > 0;
    if (fp) ok = fclose(fp) == 0 && ok;
    if (!ok || rename(tmp, path)) {
        int err = errno;
        unlink(tmp);
        return moe_error(MOE_ERR_IO, "cannot write the port file %s: %s", path, strerror(err));
    }
    return MOE_OK;
}

static moe_status make_dir(const char *path) {
    if (mkdir(path, 0700) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return MOE_OK;
    }
    return moe_error(MOE_ERR_IO, "cannot create the state directory %s: %s", path, strerror(errno));
}

/* Decodes %XX in place like libmicrohttpd's own, except %00: a NUL would
 * cut the path short ("/v1/jobs/x%00/resume" would reach the router as
 * "/v1/jobs/x"), so it stays as the three characters and fails the name
 * check. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls, (void)c;
    char *out = s;
    for (const char *in = s; *in;) {
        int hi = in[0] == '%' ? serve_hex_digit(in[1]) : -1,
            lo = hi >= 0 ? serve_hex_digit(in[2]) : -1;
        if (lo >= 0 && (hi | lo)) {
            *out++ = (char)(hi << 4 | lo);
            in += 3;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

/* Models, jobs, keys, audit, metrics: everything but the daemon. */
static moe_status open_parts(moe_server *s) {
    const moe_serve_options *o = &s->opt;
    moe_status st = serve_keys_load(&s->keys, o->keys_file, o->keys_env);
    if (st == MOE_OK) st = make_dir(o->state_dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/audit.jsonl", o->state_dir);
    if (st == MOE_OK) st = serve_audit_open(&s->audit, path);
    if (st == MOE_OK) st = moe_registry_create(&s->registry, "moe");
    if (st == MOE_OK) st = http_metrics_declare(&s->metrics, s->registry);
    if (st == MOE_OK)
        st = serve_models_open(&s->models, o->models_dir, o->models, o->n_models, &s->limits,
                               o->fallback_expert, s->registry);
    if (st == MOE_OK)
        st = serve_jobs_open(&s->jobs, o->state_dir, o->data_dir, o->configs_dir, o->max_jobs,
                             s->registry);
    if (st == MOE_OK) st = http_assets_load(s);
    if (st == MOE_OK && !s->plotly)
        warn(s, "%s; /static/plotly.min.js answers 404 and the dashboard draws no charts",
             s->plotly_error);
    if (st == MOE_OK) {
        /* the model count for /healthz; models are fixed once loaded */
        char *list = serve_models_list_json(s->models);
        cJSON *j = list ? cJSON_Parse(list) : NULL;
        s->n_models = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "models"));
        cJSON_Delete(j);
        free(list);
    }
    return st;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The order matters while the daemon may still call handlers: once
 * stopping is set and the handlers that began before it are done, none
 * touches jobs or models, so they can close. Jobs checkpoint and become
 * interrupted; models answer what is queued, resuming every suspended
 * connection (libmicrohttpd aborts if one is still suspended when it
 * stops). The daemon goes next (its completion callbacks write the audit
 * log and metrics), then what those need. */
static void close_parts(moe_server *s) {
    atomic_store(&s->stopping, 1);
    while (atomic_load(&s->handlers) > 0) sleep_ms(1);
    serve_jobs_close(s->jobs);
    s->jobs = NULL;
    serve_models_close(s->models);
    s->models = NULL;
    if (s->daemon) MHD_stop_daemon(s->daemon);
    serve_audit_close(s->audit);
    serve_keys_free(s->keys);
    http_assets_free(s);
    moe_registry_free(s->registry);
    free(s);
}

moe_status moe_serve_start(moe_server **out, const moe_serve_options *o) {
    if (!out || !o) return moe_error(MOE_ERR_INVALID, "moe_serve_start: server and options needed");
    *out = NULL;
    moe_status st = check_options(o);
    if (st != MOE_OK) return st;
    moe_server *s = calloc(1, sizeof *s);
    if (!s) return moe_error(MOE_ERR_NOMEM, "moe serve: out of memory");
    s->opt = *o;
    if (!s->opt.host || !*s->opt.host) s->opt.host = "127.0.0.1";
    serve_limits_default(&s->limits);
    s->limits = (serve_limits){.max_body_bytes = o->max_body_bytes,
                               .max_tokens = o->max_tokens,
                               .max_inputs = o->max_inputs,
                               .max_jobs = o->max_jobs,
                               .max_batch = o->max_batch,
                               .batch_window_ms = o->batch_window_ms,
                               .max_queue = o->max_queue,
                               .window_always = o->batch_window_always};
    st = open_parts(s);
    int fd = -1;
    if (st == MOE_OK) st = open_listener(s->opt.host, o->port, &fd, &s->port);
    if (st != MOE_OK) {
        close_parts(s);
        return st;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->port, NULL, NULL, http_access, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        s, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads,
        MHD_OPTION_NOTIFY_COMPLETED, http_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
        MHD_OPTION_END);
    if (!s->daemon) {
        st = moe_error(MOE_ERR_IO, "libmicrohttpd could not start on %s port %d", s->opt.host,
                       s->port);
        close(fd);
        close_parts(s);
        return st;
    }
    if (o->port_file && *o->port_file) st = write_port_file(o->port_file, s->port);
    if (st != MOE_OK) {
        close_parts(s);
        return st;
    }
    *out = s;
    return MOE_OK;
}

int moe_serve_port(const moe_server *s) {
    return s ? s->port : 0;
}

void moe_serve_stop(moe_server *s) {
    if (!s) return;
    atomic_store(&s->stopping, 1);
    /* no new connections; those open get 503 and "Connection: close" */
    MHD_socket listener = MHD_quiesce_daemon(s->daemon);
    if (listener != MHD_INVALID_SOCKET) close(listener);
    double deadline = serve_now() + s->opt.drain_timeout_s;
    while (atomic_load(&s->inflight) > 0 && serve_now() < deadline) sleep_ms(20);
    if (atomic_load(&s->inflight) > 0)
        warn(s, "%d requests still in flight after %.0f s; stopping anyway",
             atomic_load(&s->inflight), s->opt.drain_timeout_s);
    char msg[400];
    if (serve_audit_take_error(s->audit, msg, sizeof msg)) warn(s, "%s", msg);
    close_parts(s);
}

moe_status moe_serve_run(const moe_serve_options *o, volatile int *stop,
                         void (*on_ready)(const moe_server *s, void *user), void *user) {
    moe_server *s = NULL;
    moe_status st = moe_serve_start(&s, o);
    if (st != MOE_OK) return st;
    if (on_ready) on_ready(s, user);
    char msg[400];
    while (!*stop) {
        sleep_ms(100);
        if (serve_audit_take_error(s->audit, msg, sizeof msg)) warn(s, "%s", msg);
    }
    moe_serve_stop(s);
    return MOE_OK;
}
