/* results.json of a training run, built with cJSON. */
#include "train/results_json.h"

#include "train/run_dir.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

/* JSON has no NaN/Inf: write null for them. */
static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

moe_status metrics_write_results(const char *run_dir, const moe_run_config *cfg,
                                 const moe_train_result *r, const moe_train_progress *p,
                                 const moe_model *m, const moe_confusion *test,
                                 const char *const *class_names, cJSON *extra) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", cfg->name);
    cJSON_AddStringToObject(o, "stop_reason", r->stop_reason);
    cJSON_AddStringToObject(o, "device", r->device);
    cJSON_AddNumberToObject(o, "steps", (double)r->steps);
    add_num(o, "final_val_loss", r->final_val_loss);
    add_num(o, "final_val_ppl", exp(r->final_val_loss));
    add_num(o, "best_val_loss", r->best_val_loss);
    add_num(o, "best_val_ppl", exp(r->best_val_loss));
    add_num(o, "train_loss", p->loss);
    add_num(o, "tokens_per_s", r->tokens_per_s);
    add_num(o, "elapsed_s", p->elapsed_s);
    cJSON_AddNumberToObject(o, "params", (double)moe_model_param_count(m));
    cJSON_AddNumberToObject(o, "active_params", (double)moe_model_active_param_count(m));
    add_num(o, "train_flops_per_token", moe_model_train_flops_per_token(m, cfg->train.seq_len));
    if (cfg->model.family != MOE_FAMILY_TRANSFORMER) {
        cJSON_AddStringToObject(o, "family", moe_model_family_name(m));
        add_num(o, "flops_per_example_active", moe_model_train_flops_per_token(m, 1) / 3);
        add_num(o, "flops_per_example_dense", moe_model_all_experts_flops_per_token(m, 1) / 3);
    }
    cJSON_AddStringToObject(o, "sample", r->sample);
    add_num(o, "final_val_accuracy", p->val_accuracy);
    add_num(o, "final_val_macro_f1", p->val_macro_f1);
    if (test && test->n_classes > 0) {
        cJSON *rep = NULL;
        moe_status st = moe_classify_report_json(test, class_names, &rep);
        if (st != MOE_OK) {
            cJSON_Delete(o);
            return st;
        }
        cJSON_AddItemToObject(o, "test", rep);
    }
    cJSON *item = extra ? extra->child : NULL;
    while (item) { /* moved over, so extra is empty afterwards */
        cJSON *next = item->next;
        cJSON_AddItemToObject(o, item->string, cJSON_DetachItemViaPointer(extra, item));
        item = next;
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return moe_error(MOE_ERR_NOMEM, "results.json: out of memory");
    moe_status st = run_dir_write_text(run_dir, "results.json", s);
    free(s);
    return st;
}
