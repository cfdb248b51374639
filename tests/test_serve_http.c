/* moe serve embedded through include/moe/serve.h: start on port 0, answer
 * over a real socket, refuse bad options, stop; and the router alone
 * (exact paths, {id} names, 405 with Allow). */
#include "test_util.h"

#include "moe/serve.h"
#include "scratch_dir.h"
#include "serve/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* One HTTP/1.0 exchange with 127.0.0.1:port; the whole answer in out. */
static int http_get(int port, const char *request, char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) return -1;
    if (write(fd, request, strlen(request)) != (ssize_t)strlen(request)) return -1;
    size_t n = 0;
    ssize_t got;
    while (n + 1 < cap && (got = read(fd, out + n, cap - 1 - n)) > 0) n += (size_t)got;
    out[n] = '\0';
    close(fd);
    int status = 0;
    sscanf(out, "HTTP/1.%*d %d", &status);
    return status;
}

/* A connection to 127.0.0.1:port, or -1; reads give up after 10 s, so a
 * server that neither answers nor closes fails the test instead of hanging it. */
static int connect_port(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval limit = {.tv_sec = 10};
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* 1 when all of text was sent (no SIGPIPE when the server has closed). */
static int send_text(int fd, const char *text) {
    return send(fd, text, strlen(text), MSG_NOSIGNAL) == (ssize_t)strlen(text);
}

/* Reads one answer (headers and a Content-Length body) from fd, or up to
 * EOF; its status, 0 when the connection closed without one. */
static int read_answer(int fd, char *out, size_t cap) {
    size_t n = 0;
    ssize_t got;
    out[0] = '\0';
    while (n + 1 < cap && (got = read(fd, out + n, cap - 1 - n)) > 0) {
        n += (size_t)got;
        out[n] = '\0';
        const char *end = strstr(out, "\r\n\r\n"), *len = strstr(out, "Content-Length: ");
        if (end && len && len < end && n >= (size_t)(end + 4 - out) + strtoul(len + 16, NULL, 10))
            break;
    }
    int status = 0;
    sscanf(out, "HTTP/1.%*d %d", &status);
    return status;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void options(moe_serve_options *o) {
    moe_serve_options_default(o);
    o->port = 0;
    o->keys_env = "tester:train:s3cret-key-0123456";
    o->state_dir = scratch_path("state");
    o->configs_dir = "configs";
    o->port_file = scratch_path("port");
    o->threads = 2;
}

static void test_start_answer_stop(void **state) {
    (void)state;
    moe_serve_options o;
    options(&o);
    moe_server *s = NULL;
    assert_int_equal(moe_serve_start(&s, &o), MOE_OK);
    int port = moe_serve_port(s);
    assert_true(port > 0);
    FILE *fp = fopen(o.port_file, "r");
    int written = 0;
    assert_non_null(fp);
    assert_int_equal(fscanf(fp, "%d", &written), 1);
    fclose(fp);
    assert_int_equal(written, port);

    static char out[1 << 16];
    assert_int_equal(http_get(port, "GET /healthz HTTP/1.0\r\n\r\n", out, sizeof out), 200);
    assert_non_null(strstr(out, "\"status\":\"ok\""));
    assert_non_null(strstr(out, "X-Content-Type-Options: nosniff"));
    assert_int_equal(http_get(port, "GET /v1/models HTTP/1.0\r\n\r\n", out, sizeof out), 401);
    assert_non_null(strstr(out, "WWW-Authenticate: Bearer"));
    assert_int_equal(
        http_get(port,
                 "GET /v1/models HTTP/1.0\r\nAuthorization: Bearer s3cret-key-0123456\r\n\r\n", out,
                 sizeof out),
        200);
    assert_non_null(strstr(out, "\"models\":[]"));
    assert_int_equal(http_get(port, "GET /nowhere HTTP/1.0\r\n\r\n", out, sizeof out), 404);
    assert_int_equal(http_get(port,
                              "GET /metrics HTTP/1.0\r\nX-API-Key: s3cret-key-0123456\r\n\r\n", out,
                              sizeof out),
                     200);
    assert_non_null(strstr(out, "moe_serve_requests_total{endpoint=\"/healthz\",method=\"GET\","
                                "status=\"200\"} 1"));
    assert_non_null(strstr(out, "moe_serve_auth_failures_total 1"));
    moe_serve_stop(s);
    /* the audit log has the five requests */
    fp = fopen(scratch_path("state/audit.jsonl"), "r");
    assert_non_null(fp);
    int lines = 0;
    while (fgets(out, sizeof out, fp)) {
        assert_null(strstr(out, "s3cret"));
        lines++;
    }
    fclose(fp);
    assert_int_equal(lines, 5);
}

/* moe_serve_stop on its own thread; done tells the test it returned,
 * drained that the drain timed out (its warning), after which the server
 * closes its parts at once. s is not to be touched once drained is set. */
typedef struct stopper {
    moe_server *s;
    atomic_int drained, done;
} stopper;

static void drain_warning(const char *message, void *user) {
    stopper *st = user;
    if (strstr(message, "still in flight")) atomic_store(&st->drained, 1);
}

static void *stop_thread(void *arg) {
    stopper *st = arg;
    moe_serve_stop(st->s);
    atomic_store(&st->done, 1);
    return NULL;
}

/* Polls cond every millisecond, 10 s at most. */
#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        int waited_ = 0;                                                                           \
        while (!(cond) && waited_++ < 10000) sleep_ms(1);                                          \
        if (!(cond)) fail_msg("timed out waiting for %s", #cond);                                  \
    } while (0)

#define TRAIN_HEAD                                                                                 \
    "POST /v1/train HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret-key-0123456\r\n"           \
    "Content-Type: application/json\r\nContent-Length: 18\r\n\r\n"

/* Requests whose headers passed before the shutdown and whose bodies come
 * after it began, or after the jobs and models are gone, are refused with
 * 503 (or the connection closes); /healthz on a kept-alive connection says
 * "stopping" without touching them; the stop ends, bounded by the drain
 * timeout, without a crash (the sanitizer build checks the memory). */
static void test_stop_with_slow_bodies(void **state) {
    (void)state;
    stopper st = {0};
    moe_serve_options o;
    options(&o);
    o.drain_timeout_s = 0.3;
    o.warn = drain_warning;
    o.warn_user = &st;
    moe_server *s = NULL;
    assert_int_equal(moe_serve_start(&s, &o), MOE_OK);
    st.s = s;
    int port = moe_serve_port(s);
    static char out[1 << 16];
    /* two trainings with half their body sent, a kept-alive connection */
    int early = connect_port(port), late = connect_port(port), kept = connect_port(port);
    assert_true(early >= 0 && late >= 0 && kept >= 0);
    assert_true(send_text(early, TRAIN_HEAD "{\"config\": "));
    assert_true(send_text(late, TRAIN_HEAD "{\"config\": "));
    assert_true(send_text(kept, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(read_answer(kept, out, sizeof out), 200);
    WAIT_FOR(atomic_load(&s->inflight) == 2);

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_thread, &st), 0);
    WAIT_FOR(atomic_load(&s->stopping));
    /* the body completes while the server drains: no job starts */
    assert_true(send_text(early, "\"tiny\"}"));
    int status = read_answer(early, out, sizeof out);
    if (status != 503 && status != 0) fail_msg("a body finished while stopping got %s", out);
    /* the drain times out on late; its body and a health check come while
     * the jobs and models close and the daemon stops */
    WAIT_FOR(atomic_load(&st.drained));
    (void)send_text(late, "\"tiny\"}"); /* the server may have closed it already */
    (void)send_text(kept, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    status = read_answer(late, out, sizeof out);
    if (status != 503 && status != 0) fail_msg("a body finished at the stop got %s", out);
    status = read_answer(kept, out, sizeof out);
    if (status != 503 && status != 0) fail_msg("/healthz at the stop got %s", out);
    if (status == 503) assert_non_null(strstr(out, "\"queue_depth\":0,\"jobs_running\":0"));
    WAIT_FOR(atomic_load(&st.done));
    pthread_join(t, NULL);
    close(early);
    close(late);
    close(kept);
}

/* The server's warnings, as the CLI would print them. */
static char warnings[4096];
static pthread_mutex_t warnings_lock = PTHREAD_MUTEX_INITIALIZER;

static void collect_warning(const char *message, void *user) {
    (void)user;
    pthread_mutex_lock(&warnings_lock);
    size_t used = strlen(warnings);
    snprintf(warnings + used, sizeof warnings - used, "%s\n", message);
    pthread_mutex_unlock(&warnings_lock);
}

/* Without plotly.js its 404 (no key needed) says nothing about the server's
 * paths; the operator gets them once at start. */
static void test_missing_plotly(void **state) {
    (void)state;
    const char *missing = "/nonexistent/moe-test-plotly/plotly.min.js";
    char before[4096] = "";
    if (getenv("MOE_PLOTLY_JS")) snprintf(before, sizeof before, "%s", getenv("MOE_PLOTLY_JS"));
    setenv("MOE_PLOTLY_JS", missing, 1);
    moe_serve_options o;
    options(&o);
    o.warn = collect_warning;
    warnings[0] = '\0';
    moe_server *s = NULL;
    assert_int_equal(moe_serve_start(&s, &o), MOE_OK);
    static char out[1 << 16];
    assert_int_equal(
        http_get(moe_serve_port(s), "GET /static/plotly.min.js HTTP/1.0\r\n\r\n", out, sizeof out),
        404);
    assert_non_null(strstr(out, "plotly.min.js is not installed on this server"));
    assert_null(strstr(out, "nonexistent"));
    assert_null(strstr(out, "MOE_PLOTLY_JS"));
    moe_serve_stop(s);
    if (before[0])
        setenv("MOE_PLOTLY_JS", before, 1);
    else
        unsetenv("MOE_PLOTLY_JS");
    pthread_mutex_lock(&warnings_lock);
    assert_non_null(strstr(warnings, missing));
    pthread_mutex_unlock(&warnings_lock);
}

static void test_bad_options(void **state) {
    (void)state;
    moe_serve_options o;
    moe_server *s = NULL;
    options(&o);
    o.keys_env = NULL;
    assert_int_equal(moe_serve_start(&s, &o), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "no API keys"));
    assert_null(s);
    options(&o);
    o.port = 70000;
    assert_int_equal(moe_serve_start(&s, &o), MOE_ERR_INVALID);
    options(&o);
    o.threads = 0;
    assert_int_equal(moe_serve_start(&s, &o), MOE_ERR_INVALID);
    options(&o);
    o.host = "no-such-host.invalid";
    assert_int_equal(moe_serve_start(&s, &o), MOE_ERR_IO);
    assert_non_null(strstr(moe_last_error(), "no-such-host.invalid"));
    /* a port in use */
    options(&o);
    moe_server *first = NULL;
    assert_int_equal(moe_serve_start(&first, &o), MOE_OK);
    o.port = moe_serve_port(first);
    o.port_file = NULL;
    assert_int_equal(moe_serve_start(&s, &o), MOE_ERR_IO);
    assert_non_null(strstr(moe_last_error(), "cannot listen"));
    moe_serve_stop(first);
}

static void expect_route(const char *method, const char *url, int want, const char *pattern,
                         const char *param, const char *allow) {
    const http_route *r = NULL;
    char p[256], a[64];
    int got = http_route_find(method, url, &r, p, sizeof p, a, sizeof a);
    if (got != want) fail_msg("%s %s: %d, want %d", method, url, got, want);
    if (pattern) {
        assert_non_null(r);
        assert_string_equal(r->pattern, pattern);
    } else {
        assert_null(r);
    }
    if (param) assert_string_equal(p, param);
    if (allow) assert_string_equal(a, allow);
}

static void test_router(void **state) {
    (void)state;
    expect_route("POST", "/v1/infer", 200, "/v1/infer", "", NULL);
    expect_route("GET", "/v1/jobs/j-000001-x", 200, "/v1/jobs/{id}", "j-000001-x", NULL);
    expect_route("POST", "/v1/jobs/abc/resume", 200, "/v1/jobs/{id}/resume", "abc", NULL);
    expect_route("GET", "/v1/jobs/..", 404, "/v1/jobs/{id}", NULL, NULL);
    expect_route("GET", "/v1/jobs/.hidden", 404, "/v1/jobs/{id}", NULL, NULL);
    expect_route("GET", "/v1/jobs/../../etc/passwd", 404, NULL, NULL, NULL);
    expect_route("GET", "/v1/jobs/", 404, NULL, NULL, NULL);
    expect_route("GET", "/v1/jobs//resume", 404, NULL, NULL, NULL);
    expect_route("GET", "/v1/infer/", 404, NULL, NULL, NULL);
    expect_route("GET", "/V1/INFER", 404, NULL, NULL, NULL);
    expect_route("GET", "/v1/infer", 405, NULL, NULL, "POST");
    expect_route("PUT", "/v1/jobs/abc", 405, NULL, NULL, "GET, DELETE");
    expect_route("GET", "/v1/jobs/abc/resume", 405, NULL, NULL, "POST");
    /* a 405 is labelled with the path's pattern; unknown paths have none */
    assert_string_equal(http_route_path_pattern("/v1/jobs/abc"), "/v1/jobs/{id}");
    assert_string_equal(http_route_path_pattern("/healthz"), "/healthz");
    assert_null(http_route_path_pattern("/v1/nothing"));
    /* every route is distinct and has a handler */
    int n;
    const http_route *t = serve_http_routes(&n);
    for (int i = 0; i < n; i++) {
        assert_non_null(t[i].handle);
        for (int j = 0; j < i; j++)
            assert_false(!strcmp(t[i].method, t[j].method) && !strcmp(t[i].pattern, t[j].pattern));
    }
}

/* The hex digits of key hashes and %XX escapes. */
static void test_hex_digit(void **state) {
    (void)state;
    const char *digits = "0123456789abcdef", *upper = "ABCDEF";
    for (int i = 0; i < 16; i++) assert_int_equal(serve_hex_digit(digits[i]), i);
    for (int i = 0; i < 6; i++) assert_int_equal(serve_hex_digit(upper[i]), 10 + i);
    assert_int_equal(serve_hex_digit('g'), -1);
    assert_int_equal(serve_hex_digit('G'), -1);
    assert_int_equal(serve_hex_digit('%'), -1);
    assert_int_equal(serve_hex_digit('\0'), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_answer_stop),
        cmocka_unit_test(test_stop_with_slow_bodies),
        cmocka_unit_test(test_missing_plotly),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_router),
        cmocka_unit_test(test_hex_digit),
    };
    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
