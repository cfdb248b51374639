/* results.json of a training run (metrics.jsonl is the registry's sink). */
#ifndef MOE_TRAIN_RESULTS_JSON_H
#define MOE_TRAIN_RESULTS_JSON_H

#include "moe/metrics.h"
#include "moe/train.h"

#include <stdio.h>

struct cJSON;

/* results.json: the outcome, sizes and costs of the run. */
/* test: the classifier's test-split confusion (NULL for other tasks),
 * class_names its labels; extra's members (the seed families' analyses),
 * when given, are moved into the object. */
moe_status metrics_write_results(const char *run_dir, const moe_run_config *cfg,
                                 const moe_train_result *r, const moe_train_progress *p,
                                 const moe_model *m, const moe_confusion *test,
                                 const char *const *class_names, struct cJSON *extra);

#endif
