/* Inside the served models (models.c, models_load.c, batcher.c, infer.c,
 * generate.c): one serve_model per checkpoint, each owned by one worker
 * thread that batches its queue. */
#ifndef MOE_SERVE_MODELS_INTERNAL_H
#define MOE_SERVE_MODELS_INTERNAL_H

#include "moe/analysis.h"
#include "serve/serve.h"

#include <pthread.h>

/* One queued request. The request's contents were moved in at submit. */
typedef struct serve_job {
    int generate; /* which of the two below */
    serve_infer_request infer;
    serve_generate_request gen;
    serve_reply *reply;
    serve_done_fn done;
    void *user;
    struct serve_job *next;
} serve_job;

/* The server's metrics (NULL members when no registry was given). */
typedef struct serve_metrics {
    moe_metric *tokens, *tokens_per_s, *queue_depth, *batch_size, *forward_s, *expert_pairs,
        *fallback, *errors;
} serve_metrics;

#define SERVE_RATE_WINDOW 10 /* seconds in the tokens/s window */

struct serve_model {
    char name[SERVE_NAME_MAX];
    moe_model *model;
    const moe_model_config *mc; /* the model's own (dropless, fallback set) */
    const char *family;         /* "transformer", "mlp_moe", ... */
    moe_task_kind task;         /* lm, mlm, classify, distribution */
    int transformer, decoder;   /* decoder: causal, no classifier head */
    int can_generate;           /* a pre-norm decoder (generation has no post-norm path) */
    moe_tokenizer *tok;         /* encoders: the run's tokenizer; NULL = bytes */
    int32_t cls_id, pad_id, mask_id;
    int n_classes;
    char **class_names;  /* [n_classes] or NULL (index as text) */
    int n_features;      /* dense families: numbers per row */
    float *mean, *std;   /* dense: the training split's normalisation, or NULL */
    int norm_channels;   /* mean/std per channel (images: features / channels each) */
    int rows_normalized; /* 1: the server normalises raw rows (or the run did not) */
    moe_arena arena;

    /* queue (guarded by mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    serve_job *head, *tail;
    int depth, stopping, running;
    int last_batch; /* requests in the previous forward (worker only) */
    pthread_t thread;

    serve_limits lim;
    const serve_metrics *metrics;
    /* tokens/s over the last SERVE_RATE_WINDOW seconds (worker only) */
    long rate_tokens[SERVE_RATE_WINDOW];
    long rate_second[SERVE_RATE_WINDOW];
};

struct serve_models {
    serve_model **m;
    int n;
    serve_metrics metrics;
};

/* models_load.c: the checkpoint at path as model name (not started). */
moe_status serve_model_load(serve_model **out, const char *name, const char *path,
                            int fallback_expert);
void serve_model_free(serve_model *sm);
/* The checkpoint folder of an entry: path itself, or path/checkpoints/best
 * (a run directory); 0 when neither holds a checkpoint. */
int serve_checkpoint_dir(const char *path, char *out, size_t cap);

/* batcher.c: the worker thread's loop. */
void *serve_worker_main(void *arg);

/* infer.c: a batch of infer jobs through the model (one forward), each
 * reply filled; generate.c: one generate job. */
void serve_infer_batch(serve_model *sm, serve_job **jobs, int n);
void serve_generate_one(serve_model *sm, serve_job *job);

/* infer_json.c */
void serve_reply_error(serve_model *sm, serve_reply *r, int status, const char *field,
                       const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
void serve_reply_json(serve_reply *r, struct cJSON *o);
/* A number in an answer that is NaN or infinite: the model's outputs were
 * not finite (corrupted weights, a router without a fallback expert).
 * Absent values are JSON null, never NaN, so any non-finite number is one. */
int serve_has_nonfinite(const struct cJSON *j);
/* Routing of real tokens into the metrics: stats rows [row0, row0 + n). */
long serve_count_routing(serve_model *sm, long row0, int n);
const char *serve_task_name(moe_task_kind t);
/* The tokens/s gauge: n tokens served now (0 just refreshes it). */
void serve_rate_add(serve_model *sm, long n);

#endif
