/* moe serve: the pieces of the HTTP server and the contracts between them.
 *
 *   http_*.c     libmicrohttpd daemon, routing, auth, limits, audit, metrics
 *   api_keys.c   API keys: hashed (SHA-256), compared in constant time, scoped
 *   audit.c      the audit log (JSONL)
 *   request.c    JSON request bodies -> validated requests (pure; fuzzed)
 *   models.c     the served models (checkpoints) and their batching workers
 *   infer.c      one batch of requests through a model -> JSON replies
 *   jobs*.c      asynchronous training jobs, persisted under the state dir
 *
 * Errors for clients are serve_error values (HTTP status, the field at
 * fault, a message); library errors stay moe_status. docs/serve.md
 * describes the API for users; /openapi.json describes it for machines. */
#ifndef MOE_SERVE_INTERNAL_H
#define MOE_SERVE_INTERNAL_H

#include "moe/moe.h"

#include <stddef.h>
#include <stdint.h>

#define SERVE_NAME_MAX 64 /* model and job names, key ids: [A-Za-z0-9][A-Za-z0-9_.-]* */

/* Limits a client cannot pass (moe serve's options set them). */
typedef struct serve_limits {
    size_t max_body_bytes;  /* request body; more gives 413 (default 1 MiB) */
    int max_tokens;         /* tokens per request: inputs, plus max_tokens generated (4096) */
    int max_inputs;         /* texts, token sequences or feature rows per infer request (64) */
    int max_jobs;           /* training jobs running at once; more gives 429 (1) */
    int max_batch;          /* inference requests merged into one forward (32) */
    double batch_window_ms; /* how long a worker waits for more requests to batch (2 ms) */
    int max_queue;          /* requests waiting per model; more gives 503 (1024) */
    int window_always;      /* 1: wait the window before every batch; 0: only under load
                               (the pickup found company or the last forward merged some) */
} serve_limits;

void serve_limits_default(serve_limits *l);

/* What a client is told when its request fails. */
typedef struct serve_error {
    int status;        /* HTTP status, >= 400 */
    char field[64];    /* the request field at fault ("text", "tokens[3]"), or "" */
    char message[256]; /* what is wrong and what to do */
} serve_error;

/* Fills e; returns MOE_ERR_INVALID for status < 500, else MOE_ERR_IO. */
moe_status serve_fail(serve_error *e, int status, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* {"error": {"status": 400, "field": "...", "message": "..."}} (malloc'd). */
char *serve_error_json(const serve_error *e);

/* A model or job name, key id: 1..63 chars of [A-Za-z0-9_.-], first one
 * alphanumeric (so never "..", "/", or a hidden file). */
int serve_name_valid(const char *name);

/* Monotonic seconds (latencies, batching windows, persist intervals). */
double serve_now(void);
/* The value of one hex digit (either case), or -1. */
int serve_hex_digit(char c);

/* ---- API keys (api_keys.c) ------------------------------------------- */

enum { SERVE_SCOPE_INFER = 1, SERVE_SCOPE_TRAIN = 2 }; /* bit set; train implies infer */

typedef struct serve_keys serve_keys;

/* Keys from a file (lines "id scope sha256:<64 hex>"; scope "infer" or
 * "train"; # comments) and/or an environment value ("id:scope:key,..."
 * with the keys in clear, hashed on load). At least one key in total, else
 * MOE_ERR_INVALID. Errors name the file and line. */
moe_status serve_keys_load(serve_keys **out, const char *file, const char *env_value);
void serve_keys_free(serve_keys *k);
/* The id of the key whose hash matches presented (every stored hash is
 * compared, in constant time) and its scopes, or NULL. */
const char *serve_keys_check(const serve_keys *k, const char *presented, int *scopes);
int serve_keys_count(const serve_keys *k);
/* A new random key (32 bytes, hex) and its file line "id scope sha256:..". */
moe_status serve_key_new(const char *id, const char *scope, char *key, size_t key_cap, char *line,
                         size_t line_cap);

/* ---- audit log (audit.c) --------------------------------------------- */

typedef struct serve_audit serve_audit;
/* Appends to path (created 0600); one JSON line per request:
 * {"time": ISO-8601 UTC, "key_id", "method", "endpoint", "status", "tokens",
 *  "latency_ms", "remote", "detail"}. Never the key itself. */
moe_status serve_audit_open(serve_audit **out, const char *path);
void serve_audit_write(serve_audit *a, const char *key_id, const char *method, const char *endpoint,
                       int status, long tokens, double latency_ms, const char *remote,
                       const char *detail);
void serve_audit_close(serve_audit *a);

/* ---- requests (request.c): bodies -> validated structs --------------- */

typedef enum serve_input_kind {
    SERVE_INPUT_TEXT,   /* "text": a string or an array of strings */
    SERVE_INPUT_TOKENS, /* "tokens": an array of ids or an array of arrays */
    SERVE_INPUT_ROWS,   /* "rows": an array of number arrays (the dense families) */
} serve_input_kind;

/* POST /v1/infer. */
typedef struct serve_infer_request {
    char model[SERVE_NAME_MAX];
    serve_input_kind kind;
    int n_inputs;     /* 1..limits.max_inputs */
    int single;       /* "text" was one string, "tokens" one flat list of ids: errors
                         name "text" / "tokens[j]", not "text[0]" / "tokens[0][j]" */
    char **texts;     /* [n_inputs] NUL-terminated UTF-8 (TEXT) */
    int32_t **tokens; /* [n_inputs][n_tokens[i]] (TOKENS) */
    int *n_tokens;    /* [n_inputs] (TOKENS) */
    float *rows;      /* [n_inputs * n_features] (ROWS) */
    int n_features;   /* (ROWS) every row has this many */
    int trace;        /* "trace": true: add the routing trace */
    int top;          /* "top": next-token candidates for LMs, 1..20 (5) */
} serve_infer_request;

/* POST /v1/generate. */
typedef struct serve_generate_request {
    char model[SERVE_NAME_MAX];
    char *prompt;           /* "prompt": text, or NULL when prompt_tokens given */
    int32_t *prompt_tokens; /* "prompt_tokens" */
    int n_prompt_tokens;
    int max_tokens;    /* "max_tokens" 1..limits.max_tokens (64) */
    float temperature; /* 0..10 (1) */
    int top_k;         /* 0..vocab (0 = all) */
    float top_p;       /* (0, 1] (1) */
    uint64_t seed;     /* "seed" (0) */
    int trace;         /* routing trace of the generated tokens */
} serve_generate_request;

/* Parse and validate; unknown fields, wrong types, out-of-range values and
 * invalid UTF-8 give 400 naming the field. Model-dependent checks (token
 * ids < vocab, row width) happen in infer.c. *out is zeroed first and must
 * be freed with the matching _free even after an error. */
moe_status serve_parse_infer(const char *body, size_t len, const serve_limits *lim,
                             serve_infer_request *out, serve_error *err);
void serve_infer_request_free(serve_infer_request *r);
moe_status serve_parse_generate(const char *body, size_t len, const serve_limits *lim,
                                serve_generate_request *out, serve_error *err);
void serve_generate_request_free(serve_generate_request *r);
/* The strict parse every body gets: exactly len bytes of one JSON object
 * (no trailing data, no \u0000), only the keys in keys (NULL-terminated),
 * none twice; 400 naming the field otherwise, with allowed listing them.
 * *out is the cJSON tree to delete. */
struct cJSON;
moe_status serve_parse_object(const char *body, size_t len, const char *const *keys,
                              const char *allowed, struct cJSON **out, serve_error *err);

/* ---- served models (models.c, infer.c) -------------------------------- */

typedef struct serve_model serve_model;
typedef struct serve_models serve_models;

/* What a worker hands back for one request. */
typedef struct serve_reply {
    int status;      /* HTTP status */
    char *body;      /* malloc'd JSON: the answer, or serve_error_json */
    long tokens;     /* tokens (or rows) processed and generated: audit and metrics */
    char detail[96]; /* short audit note ("fallback=3"), or "" */
} serve_reply;

/* Called once per submitted request, from the model's worker thread, when
 * *reply is filled; the HTTP layer resumes the suspended connection. */
typedef void (*serve_done_fn)(void *user);

/* Loads every checkpoint folder directly under models_dir (the folder name
 * is the model name; a run directory's checkpoints/best is also accepted as
 * <run>/checkpoints/best) and each "name=path" of extra. Starts one worker
 * thread per model. fallback_expert >= 0: a token whose router scores are
 * not finite goes to that expert (counted as moe_serve_fallback_total).
 * Metrics (served tokens, queue depth, batch sizes, per-expert routing of
 * served traffic) are declared in reg. */
moe_status serve_models_open(serve_models **out, const char *models_dir, const char *const *extra,
                             int n_extra, const serve_limits *lim, int fallback_expert,
                             moe_registry *reg);
/* Finishes queued requests, stops the workers, frees the models. */
void serve_models_close(serve_models *ms);
serve_model *serve_models_find(serve_models *ms, const char *name);
/* GET /v1/models: {"models": [{"name", "family", "task", "params",
 * "active_params", "n_experts", "top_k", "n_classes", "class_names",
 * "max_seq_len", "input": "text"|"rows", "n_features", "vocab_size"}]}. */
char *serve_models_list_json(serve_models *ms);
/* Requests waiting over all models (the queue-depth gauge, /healthz). */
int serve_models_queue_depth(serve_models *ms);

/* Queue a request (taken over: freed by the worker) for the model's
 * worker, which batches it with others. MOE_OK: done(user) will be called
 * exactly once after *reply is filled. Otherwise (queue full: 503; model
 * stopping: 503) *err is set, reply untouched, done never called, and the
 * request is still the caller's. */
moe_status serve_infer_submit(serve_model *m, serve_infer_request *rq, serve_reply *reply,
                              serve_done_fn done, void *user, serve_error *err);
moe_status serve_generate_submit(serve_model *m, serve_generate_request *rq, serve_reply *reply,
                                 serve_done_fn done, void *user, serve_error *err);

/* ---- training jobs (jobs*.c) ------------------------------------------ */

typedef struct serve_jobs serve_jobs;

/* state_dir/jobs/<id>/ holds job.json (state, config, times, last metrics)
 * and the run directory. On open, jobs a killed server left "running" or
 * "queued" become "interrupted" with resumable = true when a checkpoint
 * exists (else "failed"). data_dir: every file a job's config names
 * (data.path, data.tokenizer files, train.init_from) must resolve inside it;
 * configs_dir: named presets ("tiny" = configs_dir/tiny.json). Job states
 * are a gauge in reg. */
moe_status serve_jobs_open(serve_jobs **out, const char *state_dir, const char *data_dir,
                           const char *configs_dir, int max_jobs, moe_registry *reg);
/* Asks running jobs to stop (each writes a checkpoint and becomes
 * "interrupted", resumable) and waits for them. */
void serve_jobs_close(serve_jobs *js);
/* POST /v1/train body: {"config": <preset name> | <run config object>,
 * "set": {"train.steps": 50, ...} (optional), "name": "..." (optional)}.
 * 202 and {"id", "state": "queued", ...} in *json; 429 at max_jobs. */
moe_status serve_jobs_start(serve_jobs *js, const char *body, size_t len, const char *key_id,
                            char **json, serve_error *err);
/* POST /v1/jobs/{id}/resume: continues an interrupted or cancelled job
 * from its last checkpoint (409 when it is not resumable). */
moe_status serve_jobs_resume(serve_jobs *js, const char *id, const char *key_id, char **json,
                             serve_error *err);
/* GET /v1/jobs/{id}: {"id", "name", "state" (queued|running|completed|
 * failed|cancelled|interrupted), "resumable", "checkpoint", "created",
 * "started", "finished", "key_id", "error", "progress": {"step",
 * "total_steps", "epoch", "elapsed_s", "eta_s"}, "metrics": {latest
 * train_loss, aux_loss, lr, tokens_per_s, val_loss, val_accuracy, ...},
 * "history": [{"step", "loss", "val_loss"?, ...}] (at most 500 points),
 * "experts": {"layers": [[share of expert e] per MoE layer]} (latest)}.
 * 404 for an unknown id. */
moe_status serve_jobs_get(serve_jobs *js, const char *id, char **json, serve_error *err);
/* GET /v1/jobs: {"jobs": [the same objects without history]}. */
moe_status serve_jobs_list(serve_jobs *js, char **json);
/* DELETE /v1/jobs/{id}: stops a queued or running job after its current
 * step (its last checkpoint stays); 409 when it has already ended. */
moe_status serve_jobs_cancel(serve_jobs *js, const char *id, char **json, serve_error *err);
/* Jobs running now (for /healthz and the limits). */
int serve_jobs_running(serve_jobs *js);

#endif
