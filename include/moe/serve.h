/* moe serve as a library: an authenticated HTTP API (libmicrohttpd) for
 * inference on trained checkpoints and for training jobs, with an audit
 * log, Prometheus metrics, an OpenAPI document and a dashboard.
 * docs/serve.md describes the endpoints; `moe serve` is a thin CLI over
 * this header. */
#ifndef MOE_SERVE_H
#define MOE_SERVE_H

#include "moe/core.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Mirrors the options of `moe serve`; moe_serve_options_default fills the
 * defaults the CLI documents. */
typedef struct moe_serve_options {
    const char *models_dir;    /* every checkpoint folder under it is a model; NULL: none */
    const char *const *models; /* "name=checkpoint" pairs (--model) */
    int n_models;
    const char *host;        /* address to bind ("127.0.0.1"; "0.0.0.0" or "::" for all) */
    int port;                /* 0: any free port */
    const char *port_file;   /* written atomically with the bound port once accepting; or NULL */
    const char *keys_file;   /* lines "id scope sha256:<hex>"; or NULL */
    const char *keys_env;    /* "id:scope:key,..." (MOE_API_KEYS); or NULL */
    const char *state_dir;   /* audit.jsonl and jobs/ ("serve-state") */
    const char *data_dir;    /* files a training config may name are inside it (".") */
    const char *configs_dir; /* presets for POST /v1/train ("configs") */
    size_t max_body_bytes;   /* 1 MiB */
    int max_tokens;          /* 4096 */
    int max_inputs;          /* 64 */
    int max_jobs;            /* 1 */
    int max_batch;           /* 32 */
    double batch_window_ms;  /* 2 */
    int batch_window_always; /* wait the window for every batch, not only under load (0) */
    int max_queue;           /* 1024 */
    int threads;             /* HTTP threads (4) */
    int fallback_expert;     /* -1: none */
    int public_metrics;      /* GET /metrics without a key */
    double drain_timeout_s;  /* how long shutdown waits for in-flight requests (30) */
    /* Messages for an operator (the audit log failing, say); NULL: none. */
    void (*warn)(const char *message, void *user);
    void *warn_user;
} moe_serve_options;

void moe_serve_options_default(moe_serve_options *o);

typedef struct moe_server moe_server;

/* Loads keys, models and jobs, binds and starts accepting; MOE_ERR_IO when
 * the address cannot be bound, MOE_ERR_INVALID/FORMAT for bad options or
 * keys (the message says which). */
moe_status moe_serve_start(moe_server **out, const moe_serve_options *o);
/* The bound TCP port. */
int moe_serve_port(const moe_server *s);
/* Graceful stop: stops accepting, answers /healthz with 503 "stopping",
 * waits (up to drain_timeout_s) for in-flight requests, stops training jobs
 * (they checkpoint and become "interrupted"), stops the models and the
 * daemon, closes the audit log, frees s. */
void moe_serve_stop(moe_server *s);
/* Starts, then serves until *stop becomes nonzero (a signal handler sets
 * it), then stops gracefully. on_ready (may be NULL) is called once the
 * server accepts connections. */
moe_status moe_serve_run(const moe_serve_options *o, volatile int *stop,
                         void (*on_ready)(const moe_server *s, void *user), void *user);

#ifdef __cplusplus
}
#endif
#endif
