/* metrics.jsonl lines and results.json of a training run. */
#ifndef MOE_TRAIN_METRICS_LOG_H
#define MOE_TRAIN_METRICS_LOG_H

#include "moe/train.h"

#include <stdio.h>

/* {"type":"train","step":..,"loss":..,...,"moe_layers":[{per-layer routing}]} */
void metrics_log_train(FILE *fp, const moe_train_progress *p, const moe_model *m, int n_experts);
/* {"type":"eval","step":..,"val_loss":..,"val_ppl":..} */
void metrics_log_eval(FILE *fp, const moe_train_progress *p);
moe_status metrics_write_results(const char *run_dir, const moe_run_config *cfg,
                                 const moe_train_result *r, const moe_train_progress *p,
                                 const moe_model *m);

#endif
