/* moe_evaluate's GPU half (evaluate_cuda.c): a language model's validation
 * loss, latency and throughput on GPU 0, into o with the CPU path's keys. */
#ifndef MOE_TRAIN_EVALUATE_CUDA_H
#define MOE_TRAIN_EVALUATE_CUDA_H

#include "train/task.h"

#include <cjson/cJSON.h>

moe_status eval_lm_cuda(const moe_run_config *c, const train_task *t, const moe_model *m, int large,
                        int n_seq, cJSON *o);

#endif
