/* Training jobs, inside: the job record, the registry of jobs, and what
 * the jobs*.c files share.
 *
 *   jobs.c         registry, threads, states, the serve_jobs_* API
 *   jobs_config.c  a POST /v1/train body -> a sandboxed, validated run config
 *   jobs_json.c    a job <-> its JSON object (the API's and job.json's)
 *   jobs_store.c   job.json written atomically; recovery after a restart
 *
 * Locking: js->mu guards every job field and the list; job->io serialises
 * the writes of one job.json (fs_atomic's temp name is per process, so two
 * threads must never write the same file at once). Order: io, then mu. */
#ifndef MOE_SERVE_JOBS_INTERNAL_H
#define MOE_SERVE_JOBS_INTERNAL_H

#include "moe/config.h"
#include "moe/obs.h"
#include "moe/train.h"
#include "serve/serve.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <time.h>

#define JOB_ID_MAX 32       /* "j-000001-0123abcd" */
#define JOB_HISTORY_MAX 500 /* points kept; more are thinned to half */

typedef enum job_state {
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_INTERRUPTED,
    JOB_N_STATES
} job_state;

extern const char *const job_state_names[JOB_N_STATES];
/* The state named s, or -1. */
int job_state_parse(const char *s);

/* One point of the loss curve; NAN = not measured at that step. */
typedef struct job_point {
    long step;
    double loss, aux, lr, val_loss, val_accuracy;
} job_point;

/* The latest values the trainer reported (job->metrics[]); NAN = none yet. */
typedef enum job_metric {
    JM_TRAIN_LOSS,
    JM_CE,
    JM_AUX_LOSS,
    JM_LR,
    JM_GRAD_NORM,
    JM_TOKENS_PER_S,
    JM_BALANCE_CV,
    JM_MAX_OVER_MEAN,
    JM_VAL_LOSS,
    JM_VAL_PPL,
    JM_VAL_ACCURACY,
    JM_VAL_MACRO_F1,
    JOB_N_METRICS
} job_metric;

typedef struct job {
    char id[JOB_ID_MAX];
    char name[SERVE_NAME_MAX];
    char key_id[SERVE_NAME_MAX]; /* who started it (or last resumed it) */
    job_state state;
    char error[512];      /* failed: why */
    char stop_reason[32]; /* the trainer's, once it ended ("completed", "early_stop", ...) */
    time_t created, started, finished; /* 0 = not yet */
    cJSON *config;                     /* the sandboxed run config (moe_config_to_json's object) */
    /* progress */
    long step, total_steps;
    double epoch, elapsed_s, eta_s;
    double elapsed_before; /* training seconds of the runs before a resume */
    double metrics[JOB_N_METRICS];
    job_point *history;
    int n_history, cap_history;
    int history_stride;  /* training reports per kept point (doubles at each thinning) */
    int history_skipped; /* reports since the last kept one */
    /* expert shares of the last step: [n_layers][n_experts] */
    double *shares;
    int *layer_index; /* model block of each MoE layer */
    int n_layers, n_experts;
    size_t cap_shares; /* doubles shares holds, ints layer_index holds: a */
    int cap_layers;    /* recovered job.json sized them, not the model */
    /* the thread running it */
    pthread_t thread;
    int has_thread;        /* joinable thread exists */
    int thread_done;       /* it has published its end (join is then immediate) */
    volatile int stop;     /* the trainer's stop flag */
    int cancel_requested;  /* stop came from DELETE (else from shutdown) */
    int resuming;          /* the thread continues from the checkpoint */
    pthread_mutex_t io;    /* serialises job.json writes */
    double last_persist;   /* monotonic seconds of the last progress write */
    struct serve_jobs *js; /* owner, for the thread */
} job;

struct serve_jobs {
    char *state_dir, *jobs_dir, *data_real, *configs_dir;
    int max_jobs;
    int active; /* queued + running: the slots max_jobs bounds */
    int closing;
    pthread_mutex_t mu;
    job **jobs;
    int n_jobs, cap_jobs;
    unsigned long next_seq; /* the counter in the next id */
    moe_metric *m_state, *m_started;
};

/* ---- jobs_config.c ---- */
/* Parses a POST /v1/train body into a validated run config whose files are
 * inside data_dir and whose outputs go to out_dir (the job's folder).
 * name gets the job's name. 400 with the field at fault. */
moe_status jobs_build_config(const struct serve_jobs *js, const char *body, size_t len,
                             const char *out_dir, moe_run_config *cfg, char *name, size_t name_cap,
                             serve_error *err);
/* 0 < threads <= cores; 0 (all cores) becomes half of them, so a job leaves
 * room for inference. */
int jobs_thread_budget(int requested);

/* ---- jobs_json.c ---- */
/* The job as JSON (the API's object; job.json is the same). history:
 * include the loss curve; config: include the run config. Caller holds mu. */
cJSON *job_to_json(const struct serve_jobs *js, const job *j, int history, int config);
/* Interrupted or cancelled, with a checkpoint to continue from. */
int job_resumable(const struct serve_jobs *js, const job *j);
/* A job read back from job.json (recovery); MOE_ERR_FORMAT naming what is wrong. */
moe_status job_from_json(job *j, const cJSON *o);
void job_free_fields(job *j);
/* Appends a training or evaluation point (thinned to half past the cap). */
void job_history_add(job *j, const moe_train_progress *p);
/* "2026-01-02T03:04:05Z" */
void job_time_iso(time_t t, char *buf, size_t cap);
time_t job_time_parse(const char *s);

/* ---- jobs_store.c ---- */
/* state_dir/jobs/<id> (malloc'd) and its files. */
char *job_dir(const struct serve_jobs *js, const char *id);
char *job_run_dir(const struct serve_jobs *js, const char *id);
/* 1 when the run's checkpoints/latest exists. */
int job_has_checkpoint(const struct serve_jobs *js, const char *id);
/* Rewrites job.json atomically from the job as it is now (takes io, then mu). */
moe_status job_persist(struct serve_jobs *js, job *j);
/* Reads every state_dir/jobs/<id>/job.json; jobs a dead server left
 * queued/running become interrupted (or failed). Malformed files are
 * skipped with a line on stderr. Called before any thread runs. */
moe_status jobs_recover(struct serve_jobs *js);

/* ---- jobs.c ---- */
/* Adds j to the list (caller holds mu). */
moe_status jobs_add(struct serve_jobs *js, job *j);
job *job_new(void);
void job_destroy(job *j);

#endif
