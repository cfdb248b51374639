/* The training loop: data -> forward -> loss -> backward -> clip ->
 * optimizer -> metrics -> evaluation -> checkpoints, inside a run directory
 * runs/<name>-<UTC timestamp>/ holding config.json, metrics.jsonl,
 * results.json and checkpoints/. */
#ifndef MOE_TRAIN_H
#define MOE_TRAIN_H

#include "moe/config.h"
#include "moe/core.h"
#include "moe/data.h"
#include "moe/model.h"
#include "moe/obs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the loop reports to its caller (the CLI draws the progress line). */
typedef struct moe_train_progress {
    int is_eval;           /* 1: an evaluation just finished */
    long step;             /* optimizer steps done */
    long total_steps;      /* planned */
    double epoch;          /* passes over the training tokens */
    double loss;           /* training loss (ce + aux) of the last step */
    double ce;             /* its cross-entropy part */
    double aux;            /* its auxiliary part */
    double lr;             /* learning rate used */
    double grad_norm;      /* global norm before clipping */
    double tokens_per_s;   /* training throughput since start of this process */
    double examples_per_s; /* sequences per second, same basis */
    long alerts;           /* alerts raised by this process */
    double elapsed_s;      /* wall time since start of this process */
    double eta_s;          /* estimated time left */
    double balance_cv;     /* mean over MoE layers of the coefficient of variation of expert load */
    double max_over_mean;  /* worst MoE layer: busiest expert's load / mean load */
    double val_loss;       /* evaluations: mean validation cross-entropy */
    double val_ppl;        /* exp(val_loss) */
    double val_accuracy;   /* mlm: masked tokens right; classify: sequences right; else NAN */
    double val_macro_f1;   /* classify; else NAN */
} moe_train_progress;

typedef void (*moe_progress_fn)(const moe_train_progress *p, void *user);
/* An alert as it starts ("step 120: layer 1 expert 3 starved: ..."); it is
 * also in metrics.jsonl and the alerts_total metric. */
typedef void (*moe_alert_fn)(const char *message, void *user);

typedef struct moe_train_opts {
    const char *resume_dir;   /* checkpoint folder to continue from, or NULL */
    const char *run_dir;      /* use this run directory instead of a new one, or NULL */
    moe_progress_fn progress; /* called every log step and after each evaluation */
    moe_alert_fn alert;       /* called for every alert, or NULL */
    void *user;               /* passed to progress and alert */
    moe_registry *registry;   /* metrics go here (e.g. one served over HTTP), or NULL for a
                                 private registry; families are declared by the trainer */
    volatile int *stop;       /* set non-zero (e.g. on SIGINT) to stop after the step */
} moe_train_opts;

/* The outcome, also written to results.json. */
typedef struct moe_train_result {
    char run_dir[512];      /* where everything was written */
    long steps;             /* optimizer steps done in total */
    double final_val_loss;  /* last evaluation */
    double best_val_loss;   /* validation loss of the best evaluation (by the early-stopping
                               metric; NAN when a resumed run saw none) */
    double tokens_per_s;    /* throughput of this process */
    char stop_reason[32];   /* "completed", "early_stop", "time_budget", "interrupted" */
    char sample[2048];      /* text generated from train.sample_prompt at the end */
    char report_error[512]; /* why report.html could not be written ("" when it was) */
    double test_accuracy;   /* classify: the test split (NAN otherwise) */
    double test_macro_f1;
    char device[320]; /* where the steps ran: "cpu", or the GPU and precision */
} moe_train_result;

moe_status moe_train_run(const moe_run_config *cfg, const moe_train_opts *opts,
                         moe_train_result *result);

/* Mean validation cross-entropy of a model over n_batches fixed batches. */
moe_status moe_eval_lm(moe_model *m, const moe_corpus *c, int B, int T, int n_batches,
                       moe_arena *arena, double *val_loss);

/* routing.json (docs/monitoring.md): `windows` windows of T tokens per
 * topic and the first sample_tokens validation tokens routed through m
 * without training; *json is malloc'd. Uses (and resets) arena. */
moe_status moe_routing_probe(moe_model *m, const moe_corpus *c, const moe_topics *topics, int T,
                             int windows, int sample_tokens, moe_arena *arena, long step,
                             char **json);

/* routing.json for an encoder on labelled text: the first per_group
 * validation examples of each group (e.g. easy ham, hard ham, spam) routed
 * as padded [CLS] rows of T tokens, and the first validation example's
 * tokens (up to sample_tokens) with their experts, shown through tok. */
struct moe_text_data;
struct moe_tokenizer;
moe_status moe_routing_probe_text(moe_model *m, const struct moe_text_data *d,
                                  const struct moe_tokenizer *tok, int T, int per_group,
                                  int sample_tokens, moe_arena *arena, long step, char **json);

/* A model's quality on the data of run config cfg (its task, data and
 * tokenizer) and its inference speed, as one JSON object (malloc'd):
 * task, val_loss and the task's own measures (val_ppl; masked-token
 * accuracy; accuracy and macro-F1 plus the test split's report with
 * per-class precision/recall/F1 and the confusion matrix), latency per token
 * at batch 1 (p50/p90/p99 over n_seq validation sequences) and tokens/s at
 * batch 1 and at large_batch (0: train.batch_size); language models also
 * get generate_ms_per_token (greedy decoding with the KV cache). */
moe_status moe_evaluate(const moe_run_config *cfg, moe_model *m, int large_batch, int n_seq,
                        char **json);

/* 95% percentile-bootstrap intervals of a seed-family classifier's
 * accuracy, macro-F1 and mean cross-entropy on the test split (test_split
 * != 0) or the validation split of cfg's data: the model answers once, and
 * `resamples` resamples of the examples (with replacement, from seed)
 * rescore those answers. *json (malloc'd): {"accuracy": {"value",
 * "bootstrap_mean", "ci95_low", "ci95_high"}, "macro_f1": ..., "loss": ...}. */
moe_status moe_bootstrap(const moe_run_config *cfg, moe_model *m, int test_split, int resamples,
                         uint64_t seed, char **json);

/* Load balance of one forward's routing: coefficient of variation of the
 * pairs per expert, and busiest / mean. */
void moe_routing_balance(const moe_layer_stats *s, int n_experts, double *cv,
                         double *max_over_mean);

#ifdef __cplusplus
}
#endif
#endif
