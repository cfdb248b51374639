/* What the training loop trains on: a task owns its data, makes training
 * batches and evaluates. lm: next-byte prediction on a text corpus
 * (decoder); mlm: masked-LM on the spam corpus's mails (encoder); classify:
 * spam vs ham from [CLS] or mean pooling (encoder). Internal to the
 * trainer. */
#ifndef MOE_TRAIN_TASK_H
#define MOE_TRAIN_TASK_H

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

#endif
