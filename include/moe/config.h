/* Run configuration: the model, the training recipe and the data, read from
 * one JSON file ({"name":..., "model":{...}, "train":{...}, "data":{...}})
 * and overridable key by key (--set model.n_layer=4). Every field has a
 * default; unknown keys are errors that name the valid ones. */
#ifndef MOE_CONFIG_H
#define MOE_CONFIG_H

#include "moe/core.h"
#include "moe/layer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum moe_norm_kind { MOE_NORM_LAYERNORM, MOE_NORM_RMSNORM } moe_norm_kind;
typedef enum moe_pos_kind { MOE_POS_LEARNED, MOE_POS_ROPE, MOE_POS_SINUSOIDAL } moe_pos_kind;
typedef enum moe_pool_kind { MOE_POOL_CLS, MOE_POOL_MEAN } moe_pool_kind;

/* A transformer: decoder-only (causal, the default) or an encoder
 * (bidirectional attention with a padding mask, for masked-LM and
 * classification); a dense model is moe_every = 0. A zeroed struct's
 * choices are the decoder's. */
typedef struct moe_model_config {
    int vocab_size;         /* V (256 for bytes) */
    int max_seq_len;        /* longest context (learned positions table size) */
    int n_layer;            /* transformer blocks */
    int d_model;            /* D */
    int n_head;             /* query heads; d_model % n_head == 0 */
    int n_kv_head;          /* key/value heads (grouped-query); n_head % n_kv_head == 0 */
    moe_pos_kind pos;       /* learned table or rotary */
    float rope_theta;       /* rotary base */
    moe_norm_kind norm;     /* norm kind for blocks and the final norm */
    int bidirectional;      /* 0: token t sees 0..t (decoder); 1: every real token (encoder) */
    int post_ln;            /* 1: norm after each residual add (BERT, seed 003); 0: pre-norm */
    int n_classes;          /* > 0: a classifier head over the pooled sequence */
    moe_pool_kind pool;     /* classifier input: the first ([CLS]) token or the mean of real ones */
    float norm_eps;         /* norm epsilon */
    int tied_embeddings;    /* lm head = token embedding^T */
    int attn_bias;          /* qkv and output projections carry biases */
    float dropout;          /* on attention output and FFN output, training only */
    int moe_every;          /* layer l is MoE when (l + 1) % moe_every == 0; 0 = none */
    int d_ff;               /* dense FFN hidden width */
    moe_activation ffn_act; /* dense FFN activation (SwiGLU allowed) */
    moe_layer_config moe;   /* every MoE layer (d_model copied from above) */
} moe_model_config;

typedef enum moe_optim_kind {
    MOE_OPT_SGD,
    MOE_OPT_ADAM,
    MOE_OPT_ADAMW,
    MOE_OPT_RMSPROP,
    MOE_OPT_ADAGRAD,
    MOE_OPT_ADADELTA,
    MOE_OPT_ADAMAX,
} moe_optim_kind;

typedef struct moe_optim_config {
    moe_optim_kind kind;
    float lr;           /* base learning rate */
    float beta1, beta2; /* Adam family */
    float eps;          /* denominator epsilon */
    float weight_decay; /* decoupled for AdamW, L2 (added to grad) for the rest */
    float momentum;     /* SGD, RMSprop */
    int nesterov;       /* SGD */
    float alpha;        /* RMSprop smoothing (PyTorch default 0.99) */
    float rho;          /* Adadelta (0.9) */
} moe_optim_config;

typedef enum moe_sched_kind {
    MOE_SCHED_CONSTANT,
    MOE_SCHED_LINEAR,    /* warmup, then linear decay to min_lr at total steps */
    MOE_SCHED_COSINE,    /* warmup, then cosine decay to min_lr at total steps */
    MOE_SCHED_MULTISTEP, /* lr * gamma^(milestones passed), after warmup */
} moe_sched_kind;

#define MOE_MAX_MILESTONES 16

typedef struct moe_sched_config {
    moe_sched_kind kind;
    int warmup_steps;                   /* linear ramp from 0 over these steps (all kinds) */
    float min_lr;                       /* floor for linear and cosine */
    int milestones[MOE_MAX_MILESTONES]; /* multistep: steps where lr *= gamma */
    int n_milestones;
    float gamma;
} moe_sched_config;

/* What a run trains: next-token LM (decoder), masked-LM or sequence
 * classification (encoders). */
typedef enum moe_task_kind { MOE_TASK_LM, MOE_TASK_MLM, MOE_TASK_CLASSIFY } moe_task_kind;

typedef struct moe_train_config {
    moe_task_kind task;  /* lm, mlm, classify */
    float mlm_prob;      /* mlm: share of real tokens chosen */
    int mlm_all_mask;    /* mlm: every chosen token becomes [MASK] (seed 003); else 80/10/10 */
    char init_from[512]; /* checkpoint whose matching tensors start the model (fine-tuning) */
    moe_optim_config optim;
    moe_sched_config sched;
    int steps;                  /* optimizer steps */
    int batch_size;             /* sequences per micro-batch */
    int seq_len;                /* tokens per sequence (<= max_seq_len) */
    int grad_accum;             /* micro-batches per optimizer step */
    float grad_clip;            /* max global L2 norm, 0 = off */
    int eval_every;             /* steps between evaluations, 0 = only at the end */
    int eval_batches;           /* validation micro-batches per evaluation */
    int log_every;              /* steps between metrics.jsonl lines */
    int checkpoint_every;       /* steps between checkpoints, 0 = only at the end */
    char early_stop_metric[32]; /* "val_loss" or "" (off) */
    int patience;               /* evaluations without improvement before stopping */
    float min_delta;            /* smallest improvement that counts */
    unsigned long long seed;
    int threads;       /* 0 = all cores */
    float max_seconds; /* wall-clock budget, 0 = none */
    int sample_tokens; /* generated sample length printed at the end */
    char sample_prompt[256];
} moe_train_config;

typedef struct moe_data_config {
    char source[32];     /* "bible-kjv" (Debian package), "file", or "spam" (mails) */
    char path[512];      /* text file when source = "file"; spam corpus folder (optional) */
    char tokenizer[512]; /* encoder tasks: "bytes", "gpt2" or a tokenizer file */
    float val_fraction;  /* tail of the text held out for validation */
} moe_data_config;

/* Monitoring: alert thresholds, routing probes, report refreshes
 * (docs/monitoring.md). */
typedef struct moe_obs_config {
    int report_every;     /* evaluations between report.html refreshes (0: only at the end) */
    int loss_window;      /* steps in the loss-variance and spike window */
    float spike_sigma;    /* loss spike: standard deviations over the window mean */
    float starve_ratio;   /* starved: share below starve_ratio / n_experts ... */
    int starve_steps;     /* ... for this many steps in a row */
    float imbalance_max;  /* imbalance: mean load cv over this (the spec's 20% bar) ... */
    int imbalance_window; /* ... over this many steps; it clears below 0.9 x the bar */
    int probe_windows;    /* routing.json: windows of seq_len tokens per topic */
    int probe_sample;     /* routing.json: tokens of the coloured sample text */
} moe_obs_config;

typedef struct moe_run_config {
    char name[64];     /* run name, prefix of runs/<name>-<timestamp> */
    char out_dir[256]; /* parent of run directories ("runs") */
    moe_model_config model;
    moe_train_config train;
    moe_data_config data;
    moe_obs_config obs;
} moe_run_config;

/* Fills every field with its default (a small byte-level MoE GPT). */
void moe_config_defaults(moe_run_config *c);
/* Applies a JSON document over c. Unknown keys, wrong types and bad values
 * are errors naming the key (and the valid keys, for unknown ones). */
moe_status moe_config_from_json(moe_run_config *c, const char *json_text, const char *origin);
moe_status moe_config_load(moe_run_config *c, const char *path);
/* "train.optim.lr=3e-4", "model.moe.top_k=2", enum names as strings. */
moe_status moe_config_set(moe_run_config *c, const char *assignment);
/* Cross-field checks (shapes, k <= E, heads divide width, ...). */
moe_status moe_config_validate(const moe_run_config *c);
/* The whole config as pretty JSON (malloc'd; caller frees). Round-trips
 * through moe_config_from_json. */
char *moe_config_to_json(const moe_run_config *c);
/* Only the "model" object (what a checkpoint's config.json stores). */
char *moe_model_config_to_json(const moe_model_config *m);
moe_status moe_model_config_from_json(moe_model_config *m, const char *json_text,
                                      const char *origin);

#ifdef __cplusplus
}
#endif
#endif
