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

/* Which network a config builds: the transformer (decoder or encoder), or
 * one of the seed systems' families (docs/families.md). */
typedef enum moe_model_family {
    MOE_FAMILY_TRANSFORMER,
    MOE_FAMILY_CNN_MOE, /* seed 000: shared CNN, conv experts with own classifiers, annealed gate */
    MOE_FAMILY_DEEPMOE, /* seed 001: channel-gated VGG/ResNet driven by a shallow embedding */
    MOE_FAMILY_MLP_MOE, /* seed 002: noisy top-k mixture of softmax MLPs (distributions) */
} moe_model_family;

/* How a router's temperature moves from model.moe.temperature to
 * model.moe.temperature_end over training (per epoch when train.epochs > 0,
 * else per step): constant, linear T_i - (T_i - T_f) t / n, or cosine
 * T_f + (T_i - T_f)(1 + cos(pi t / n)) / 2. */
typedef enum moe_temp_schedule {
    MOE_TEMP_CONSTANT,
    MOE_TEMP_LINEAR,
    MOE_TEMP_COSINE
} moe_temp_schedule;

/* The input of the non-transformer families: images [channels, height,
 * width] or rows of `features` numbers. Zero fields are filled from the
 * data. */
typedef struct moe_input_config {
    int channels, height, width; /* images */
    int features;                /* tables (and channels * height * width for images) */
} moe_input_config;

/* Seed 000's two loss versions: "readme" CE + dw * sum_i sum_{j!=k} G_ij G_ik
 * + bw * sum_j (1/E - mean_i G_ij)^2; "code" CE + dw * H(G) + bw * KL(softmax(
 * sum_i G_i) || uniform) + 0.1 mean(G^T G) + 0.5 mean(relu(0.1 - min_j G_ij)). */
typedef enum moe_cnn_loss { MOE_CNN_LOSS_README, MOE_CNN_LOSS_CODE } moe_cnn_loss;

#define MOE_MAX_STAGES 8

/* Seed 000: a shared CNN (stages of conv3x3-BN-ReLU, each followed by a 2x2
 * max pool), E experts (model.moe.n_experts) each a depthwise-separable conv
 * block (depthwise 3x3, pointwise to expert_channels, BN, ReLU, dropout,
 * global average pool) with its own linear classifier, and a gating MLP on
 * the pooled shared features (Linear-BN-ReLU-dropout-Linear) whose logits
 * are divided by the temperature (model.moe.temperature*) and get N(0,
 * gate_noise) noise in training; output = sum_e softmax(gate)_e * logits_e. */
typedef struct moe_cnn_config {
    int channels[MOE_MAX_STAGES]; /* shared extractor stage widths */
    int n_channels;
    int expert_channels;    /* each expert's pointwise conv width */
    int gate_hidden;        /* gating MLP hidden width */
    float expert_dropout;   /* after each expert's conv block (0.5) */
    float gate_dropout;     /* in the gating MLP (0.2) */
    float gate_noise;       /* std of the training noise on gate logits (0.1) */
    moe_cnn_loss loss;      /* readme or code */
    float diversity_weight; /* dw (0.1) */
    float balance_weight;   /* bw (0.5) */
} moe_cnn_config;

typedef enum moe_deepmoe_arch { MOE_DEEPMOE_VGG, MOE_DEEPMOE_RESNET } moe_deepmoe_arch;
/* The gate sparsity penalty: elementwise L1 (sum |g|, mean over the batch)
 * or the original code's matrix 1-norm of each [B, C] gate matrix. */
typedef enum moe_gate_l1 { MOE_GATE_L1_ELEMENTWISE, MOE_GATE_L1_MATRIX } moe_gate_l1;

/* Seed 001 (DeepMoE): a shallow embedding network (3x3 stride-2 convs +
 * GELU, the last one emb_dim wide, then global average pool) gives e; every gated conv
 * multiplies its output channels by relu(W_l e) (W_l [C_out, emb_dim], no
 * bias); a head Linear(emb_dim, classes) gives the embedding logits.
 * Loss = CE + lambda * sum_l L1(g_l) + mu * CE(embedding logits); during
 * the last freeze_epochs epochs the embedding network is frozen and the
 * loss is CE alone. gated = 0 builds the same network without gates (the
 * baseline). */
typedef struct moe_deepmoe_config {
    moe_deepmoe_arch arch;
    int channels[MOE_MAX_STAGES]; /* stage widths (VGG: two convs per stage; ResNet: one block) */
    int n_channels;
    int wide;          /* doubles every width */
    int gated;         /* 0: the ungated baseline */
    int emb_dim;       /* d (128) */
    float lambda;      /* gate L1 weight (0.01) */
    float mu;          /* embedding CE weight (1) */
    moe_gate_l1 l1;    /* elementwise (default) or matrix */
    int freeze_epochs; /* the last N epochs: embedding frozen, CE only */
    float dropout;     /* before the classifier */
} moe_deepmoe_config;

/* Seed 002: E experts (model.moe.n_experts) Linear-ReLU-Linear-softmax,
 * noisy top-k gating (model.moe.noisy, top_k, renormalize; softmax before
 * top-k), output = the gate-weighted mixture of the experts' distributions;
 * loss = soft-label CE (with row weights) + model.moe.cv_coef * (cv^2
 * importance + cv^2 load) + the diversity terms below. */
typedef struct moe_mlp_moe_config {
    int hidden;              /* expert hidden width */
    float param_div_weight;  /* mean over expert pairs of cos^2 of flattened weights */
    float output_div_weight; /* mean |cos| between experts' batch-mean outputs */
    float js_weight;         /* minus the mean pairwise JS divergence of those outputs */
} moe_mlp_moe_config;

/* A transformer: decoder-only (causal, the default) or an encoder
 * (bidirectional attention with a padding mask, for masked-LM and
 * classification); a dense model is moe_every = 0. A zeroed struct's
 * choices are the decoder's. */
typedef struct moe_model_config {
    moe_model_family family; /* transformer (the fields below) or a seed family */
    int vocab_size;          /* V (256 for bytes) */
    int max_seq_len;         /* longest context (learned positions table size) */
    int n_layer;             /* transformer blocks */
    int d_model;             /* D */
    int n_head;              /* query heads; d_model % n_head == 0 */
    int n_kv_head;           /* key/value heads (grouped-query); n_head % n_kv_head == 0 */
    moe_pos_kind pos;        /* learned table or rotary */
    float rope_theta;        /* rotary base */
    moe_norm_kind norm;      /* norm kind for blocks and the final norm */
    int bidirectional;       /* 0: token t sees 0..t (decoder); 1: every real token (encoder) */
    int post_ln;             /* 1: norm after each residual add (BERT, seed 003); 0: pre-norm */
    int n_classes;           /* > 0: a classifier head over the pooled sequence */
    moe_pool_kind pool;     /* classifier input: the first ([CLS]) token or the mean of real ones */
    float norm_eps;         /* norm epsilon */
    int tied_embeddings;    /* lm head = token embedding^T */
    int attn_bias;          /* qkv and output projections carry biases */
    float dropout;          /* on attention output and FFN output, training only */
    int moe_every;          /* layer l is MoE when (l + 1) % moe_every == 0; 0 = none */
    int d_ff;               /* dense FFN hidden width */
    moe_activation ffn_act; /* dense FFN activation (SwiGLU allowed) */
    moe_layer_config moe;   /* every MoE layer (d_model copied from above); the seed
                               families' E, k, temperature, noise and cv_coef */
    float temperature_end;  /* router temperature at the end of training */
    moe_temp_schedule temperature_schedule;
    moe_input_config input;     /* seed families */
    moe_cnn_config cnn;         /* family cnn_moe */
    moe_deepmoe_config deepmoe; /* family deepmoe */
    moe_mlp_moe_config mlp;     /* family mlp_moe */
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
typedef enum moe_task_kind {
    MOE_TASK_LM,
    MOE_TASK_MLM,
    MOE_TASK_CLASSIFY,     /* spam mails (encoder), images or a table with a class column */
    MOE_TASK_DISTRIBUTION, /* a table whose targets are probability columns (soft labels) */
} moe_task_kind;

typedef struct moe_train_config {
    moe_task_kind task;  /* lm, mlm, classify */
    float mlm_prob;      /* mlm: share of real tokens chosen */
    int mlm_all_mask;    /* mlm: every chosen token becomes [MASK] (seed 003); else 80/10/10 */
    char init_from[512]; /* checkpoint whose matching tensors start the model (fine-tuning) */
    moe_optim_config optim;
    moe_sched_config sched;
    int steps;                  /* optimizer steps */
    int epochs;                 /* > 0: steps = epochs x steps per epoch, and eval_every,
                                   checkpoint_every, sched.milestones and
                                   obs.analysis_every count epochs */
    int batch_size;             /* sequences per micro-batch */
    int seq_len;                /* tokens per sequence (<= max_seq_len) */
    int grad_accum;             /* micro-batches per optimizer step */
    float grad_clip;            /* max global L2 norm, 0 = off */
    int eval_every;             /* steps between evaluations, 0 = only at the end */
    int eval_batches;           /* validation micro-batches per evaluation */
    int log_every;              /* steps between metrics.jsonl lines */
    int checkpoint_every;       /* steps between checkpoints, 0 = only at the end */
    char early_stop_metric[32]; /* "val_loss", "val_accuracy" or "" (off) */
    int patience;               /* evaluations without improvement before stopping */
    int restore_best;           /* end with the best evaluation's weights (the test split and
                                   the last checkpoint use them) */
    float min_delta;            /* smallest improvement that counts */
    unsigned long long seed;
    int threads;       /* 0 = all cores */
    float max_seconds; /* wall-clock budget, 0 = none */
    int sample_tokens; /* generated sample length printed at the end */
    char sample_prompt[256];
    char device[8];    /* "cpu", or "cuda": the step runs on GPU 0 (docs/cuda.md) */
    char precision[8]; /* cuda: "bf16" (mixed, fp32 masters) or "fp32"; the CPU is fp32 */
} moe_train_config;

typedef struct moe_data_config {
    char source[32];        /* "bible-kjv" (Debian package), "file", "spam" (mails),
                               "fashion-mnist" (Debian's idx files) or "csv" (a table) */
    char path[512];         /* text file (file), spam corpus folder, Fashion-MNIST folder
                               (optional) or the CSV file */
    char tokenizer[512];    /* encoder tasks: "bytes", "gpt2" or a tokenizer file */
    float val_fraction;     /* tail of the text held out for validation; images and tables:
                               share of the training examples held out (stratified) */
    float test_fraction;    /* tables: share held out as the test split (stratified) */
    char label_column[64];  /* tables: the class column (name or 0-based index; "" = last) */
    char prob_columns[512]; /* tables: comma-separated probability columns (soft labels),
                               names or indices, or a range "a:b"; "" = hard labels */
    char weight_column[64]; /* tables: a per-row weight column, or "" */
    int normalize;          /* images and tables: standardise with the training split's mean/std */
    int augment_pad;        /* images: random crop after padding by this many pixels (0 = off) */
    int augment_flip;       /* images: random horizontal flip */
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
    int analysis_every;   /* seed families: expert analysis every N evaluations' epochs
                             (epochs with train.epochs, else steps), and at the end */
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
