/* The audit log: one JSON line per request, appended (O_APPEND, so lines
 * from one writer never interleave with another's), readable by the owner
 * only, flushed per line so a crash loses nothing already answered. */
#include "serve/http.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct serve_audit {
    pthread_mutex_t lock;
    FILE *fp;
    char path[1024];
    int failed;   /* a write failed at least once */
    int reported; /* serve_audit_take_error has handed that failure out */
    char error[300];
};

moe_status serve_audit_open(serve_audit **out, const char *path) {
    *out = NULL;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return moe_error(MOE_ERR_IO, "cannot open the audit log %s: %s; check --state-dir", path,
                         strerror(errno));
    FILE *fp = fdopen(fd, "a");
    serve_audit *a = fp ? calloc(1, sizeof *a) : NULL;
    if (!a) {
        if (fp)
            fclose(fp);
        else
            close(fd);
        return moe_error(MOE_ERR_NOMEM, "audit log %s: out of memory", path);
    }
    pthread_mutex_init(&a->lock, NULL);
    a->fp = fp;
    snprintf(a->path, sizeof a->path, "%s", path);
    *out = a;
    return MOE_OK;
}

static void iso_time(char *out, size_t cap) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03ldZ", day, ts.tv_nsec / 1000000);
}

void serve_audit_write(serve_audit *a, const char *key_id, const char *method, const char *endpoint,
                       int status, long tokens, double latency_ms, const char *remote,
                       const char *detail) {
    if (!a) return;
    char when[48];
    iso_time(when, sizeof when);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "time", when);
    cJSON_AddStringToObject(o, "key_id", key_id && *key_id ? key_id : "-");
    cJSON_AddStringToObject(o, "method", method ? method : "");
    cJSON_AddStringToObject(o, "endpoint", endpoint ? endpoint : "");
    cJSON_AddNumberToObject(o, "status", status);
    cJSON_AddNumberToObject(o, "tokens", (double)tokens);
    cJSON_AddNumberToObject(o, "latency_ms", (double)(long)(latency_ms * 1000.0 + 0.5) / 1000.0);
    cJSON_AddStringToObject(o, "remote", remote ? remote : "");
    cJSON_AddStringToObject(o, "detail", detail ? detail : "");
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    pthread_mutex_lock(&a->lock);
    int ok = line && fprintf(a->fp, "%s\n", line) >= 0 && fflush(a->fp) == 0;
    if (!ok && !a->failed) {
        a->failed = 1;
        snprintf(a->error, sizeof a->error, "cannot write the audit log %.200s: %.60s", a->path,
                 line ? strerror(errno) : "out of memory");
    }
    pthread_mutex_unlock(&a->lock);
    free(line);
}

int serve_audit_take_error(serve_audit *a, char *msg, size_t cap) {
    if (!a) return 0;
    pthread_mutex_lock(&a->lock);
    int fresh = a->failed && !a->reported;
    if (fresh) {
        a->reported = 1;
        snprintf(msg, cap, "%s", a->error);
    }
    pthread_mutex_unlock(&a->lock);
    return fresh;
}

void serve_audit_close(serve_audit *a) {
    if (!a) return;
    fclose(a->fp);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
