/* What the training loop trains on: a task owns its data, makes training
 * batches and evaluates. lm: next-byte prediction on a text corpus
 * (decoder); mlm: masked-LM on the spam corpus's mails (encoder); classify:
 * spam vs ham from [CLS] or mean pooling (encoder), or images / table rows
 * (the seed families, "dense" tasks, task_dense.c); distribution: a table's
 * soft labels. Internal to the trainer. */
#ifndef MOE_TRAIN_TASK_H
#define MOE_TRAIN_TASK_H

#include "moe/analysis.h"
#include "moe/dataset.h"
#include "moe/metrics.h"
#include "moe/text_data.h"
#include "moe/train.h"

typedef struct task_eval {
    double loss;     /* validation loss (the early-stopping metric) */
    double accuracy; /* mlm: masked tokens predicted; classify: sequences; lm: NAN */
    double macro_f1; /* classify; NAN otherwise */
} task_eval;

typedef struct train_task {
    moe_task_kind kind;
    const moe_run_config *cfg;
    moe_corpus corpus;    /* lm */
    moe_mail_corpus mail; /* mlm, classify */
    moe_tokenizer *tok;
    moe_text_data text;
    int B, T;
    int32_t *x, *y, *labels; /* the batch buffers, [B, T] and [B] */
    uint8_t *pad;
    moe_batch batch;
    long real_tokens;   /* unpadded tokens in the last training batch (throughput) */
    moe_confusion test; /* classify: the test split, filled by task_test */
    /* dense tasks (data.source fashion-mnist or csv) */
    const char *const *class_names;               /* classify: the labels' names, or NULL */
    const char *text_names[MOE_TEXT_MAX_CLASSES]; /* (the spam corpus's, for class_names) */
    int dense;
    moe_dataset_splits ds;
    int dense_B;            /* training batch (batch_size, at most the training split) */
    int eval_B;             /* evaluation batch */
    float *fx, *fsoft, *fw; /* batch buffers [eval_B, dim], [eval_B, C], [eval_B] */
    int *perm;              /* the training order of epoch perm_epoch */
    long perm_epoch;
    long next_step; /* the step whose batch comes next: epochs replay exactly on resume */
    int steps_per_epoch;
    moe_expert_analysis analysis; /* the last evaluated split, when the model has experts */
    moe_gate_sparsity gates;      /* ... and channel gates */
    /* the first examples of the last evaluated split: each expert's
     * probability of the example's class, [probe_n, E], and the class */
    float *probe;
    int32_t *probe_label;
    int probe_n, probe_cap;
} train_task;

/* Loads the data the config names. Fills the derived model fields of cfg
 * (vocab_size from the tokenizer, n_classes from the labels) when zero,
 * and checks them otherwise. */
moe_status task_init(train_task *t, moe_run_config *cfg);
void task_free(train_task *t);

/* The next training batch (random examples or windows), in t->batch. */
const moe_batch *task_train_batch(train_task *t, moe_rng *rng);
/* The validation split (classify: every example; mlm: fixed masks; lm:
 * train.eval_batches fixed windows). */
moe_status task_evaluate(train_task *t, moe_model *m, moe_arena *arena, task_eval *out);
/* classify: the test split into t->test (for results.json). */
moe_status task_test(train_task *t, moe_model *m, moe_arena *arena, task_eval *out);
/* Passes over the training data after `examples` sequences. */
double task_epoch(const train_task *t, long long examples);
/* Optimizer steps in one pass over the training split (dense tasks; 0 for
 * the others, whose batches are random windows). */
int task_steps_per_epoch(const train_task *t);

/* task_dense.c: the dense tasks' halves of the calls above. */
moe_status dense_init(train_task *t, moe_run_config *cfg);
void dense_free(train_task *t);
const moe_batch *dense_train_batch(train_task *t, moe_rng *rng);
/* split: 1 validation, 2 test; cm (optional) collects predictions. */
/* B validation examples from i0 (wrapping) as an inference batch (no targets). */
moe_batch dense_val_rows(train_task *t, int i0, int B);
moe_status dense_evaluate(train_task *t, int split, moe_model *m, moe_arena *arena,
                          moe_confusion *cm, task_eval *out);

#endif
