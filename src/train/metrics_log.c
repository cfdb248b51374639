/* JSON lines for the training log and the final results, built with cJSON. */
#include "train/metrics_log.h"

#include "train/run_dir.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

static void put_line(FILE *fp, cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    if (s) {
        fprintf(fp, "%s\n", s);
        fflush(fp);
        free(s);
    }
    cJSON_Delete(obj);
}

/* JSON has no NaN/Inf: write null for them. */
static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static cJSON *layer_json(const moe_model *m, int i, int E) {
    const moe_layer_stats *s = moe_model_layer_stats(m, i);
    cJSON *o = cJSON_CreateObject();
    double cv, mm;
    moe_routing_balance(s, E, &cv, &mm);
    cJSON_AddNumberToObject(o, "layer", moe_model_moe_layer_index(m, i));
    cJSON *frac = cJSON_AddArrayToObject(o, "expert_fraction");
    int kept = s->n_pairs - s->n_dropped;
    for (int e = 0; e < E; e++)
        cJSON_AddItemToArray(frac,
                             cJSON_CreateNumber(kept ? (double)s->expert_tokens[e] / kept : 0));
    add_num(o, "load_cv", cv);
    add_num(o, "load_max_over_mean", mm);
    cJSON_AddNumberToObject(o, "dropped_pairs", s->n_dropped);
    add_num(o, "router_entropy", s->router_entropy);
    add_num(o, "aux_switch", s->aux_switch);
    add_num(o, "aux_z", s->aux_z);
    add_num(o, "aux_var", s->aux_var);
    add_num(o, "aux_cv", s->aux_cv);
    return o;
}

void metrics_log_train(FILE *fp, const moe_train_progress *p, const moe_model *m, int n_experts) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "train");
    cJSON_AddNumberToObject(o, "step", (double)p->step);
    add_num(o, "loss", p->loss);
    add_num(o, "ce", p->ce);
    add_num(o, "aux", p->aux);
    add_num(o, "lr", p->lr);
    add_num(o, "grad_norm", p->grad_norm);
    add_num(o, "tokens_per_s", p->tokens_per_s);
    add_num(o, "elapsed_s", p->elapsed_s);
    cJSON *layers = cJSON_AddArrayToObject(o, "moe_layers");
    for (int i = 0; i < moe_model_moe_layers(m); i++)
        cJSON_AddItemToArray(layers, layer_json(m, i, n_experts));
    put_line(fp, o);
}

void metrics_log_eval(FILE *fp, const moe_train_progress *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "eval");
    cJSON_AddNumberToObject(o, "step", (double)p->step);
    add_num(o, "val_loss", p->val_loss);
    add_num(o, "val_ppl", p->val_ppl);
    add_num(o, "elapsed_s", p->elapsed_s);
    put_line(fp, o);
}

moe_status metrics_write_results(const char *run_dir, const moe_run_config *cfg,
                                 const moe_train_result *r, const moe_train_progress *p,
                                 const moe_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", cfg->name);
    cJSON_AddStringToObject(o, "stop_reason", r->stop_reason);
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
    cJSON_AddStringToObject(o, "sample", r->sample);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return moe_error(MOE_ERR_NOMEM, "results.json: out of memory");
    moe_status st = run_dir_write_text(run_dir, "results.json", s);
    free(s);
    return st;
}
