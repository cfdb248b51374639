/* Where a training step runs (train.device). cpu: in the trainer itself.
 * cuda: on GPU 0 through the GPU transformer (src/models/cuda/gpt_cuda.h):
 * the trainer hands this module whole steps and asks for the weights back
 * (train_device_sync) before anything that reads them on the host:
 * evaluation, checkpoints, the sample, the test split. Internal to the
 * trainer. */
#ifndef MOE_TRAIN_DEVICE_H
#define MOE_TRAIN_DEVICE_H

#include "moe/model.h"
#include "moe/optim.h"
#include "train/task.h"

typedef struct train_device train_device;

/* MOE_OK for train.device cpu, or for a config the GPU trains; else why not
 * (checked first, before the data loads; needs no GPU). */
moe_status train_device_check(const moe_run_config *cfg);
/* *out = NULL for train.device cpu. For cuda: checks that the config is one
 * the GPU trains (task lm, the GPU transformer's subset, AdamW), opens GPU 0
 * and copies model (and, on resume, opt's state) to it. */
moe_status train_device_open(train_device **out, const moe_run_config *cfg, const moe_model *model,
                             const moe_optim *opt);
void train_device_close(train_device *d);
/* "NVIDIA H100 ..., bf16" (for the log). */
const char *train_device_name(const train_device *d);

/* One optimizer step: grad_accum micro-batches from task, clipping at
 * grad_clip, AdamW at lr. Fills the step's mean ce and aux losses, the
 * gradient norm before clipping and the real tokens trained on, and makes
 * moe_model_layer_stats(model, i) answer the GPU's routing statistics of the
 * last micro-batch. */
moe_status train_device_step(train_device *d, moe_model *model, train_task *task, moe_rng *data_rng,
                             float lr, double *ce, double *aux, double *grad_norm,
                             long *real_tokens);
/* The GPU's weights into model and its AdamW state into opt, when they
 * changed since the last sync (synchronises). */
moe_status train_device_sync(train_device *d, moe_model *model, moe_optim *opt);

#endif
