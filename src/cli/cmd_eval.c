/* moe eval: quality (validation loss and the task's measures: perplexity,
 * masked-token accuracy, accuracy and macro-F1 with the test split's
 * report) and cost (parameters, FLOPs per token active and dense, latency
 * per token p50/p90/p99 at batch 1, tokens/s at batch 1 and a large batch,
 * decoding latency) of a checkpoint, as JSON. */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf(
        "usage: moe eval --checkpoint DIR [--batches N] [--set key=value ...] [--out FILE]\n\n"
        "Evaluates a checkpoint on its run's task and data (the run's config.json;\n"
        "--set data.source=file --set data.path=X for other text) and prints JSON:\n"
        "quality (val_loss; val_ppl for language models, masked-token accuracy for\n"
        "masked-LM, accuracy, macro-F1 and the test split's per-class report and\n"
        "confusion matrix for classifiers) and cost (parameters total and active,\n"
        "FLOPs per token active and with every expert, their ratio, latency per\n"
        "token p50/p90/p99 at batch 1, tokens/s at batch 1 and a large batch, and\n"
        "decoding ms/token for language models). The seed families (images, tables)\n"
        "report per example: FLOPs active and dense-equivalent, latency, examples/s,\n"
        "and the test split's expert analysis or gate sparsity.\n\n"
        "  --checkpoint DIR   e.g. runs/<run>/checkpoints/latest\n"
        "  --batches N        language models: validation batches (default: train.eval_batches)\n"
        "  --large-batch N    the large batch for throughput (default 64)\n"
        "  --latency-seqs N   batch-1 sequences timed for the percentiles (default 64)\n"
        "  --device cpu|cuda  where the forwards run (cuda: GPU 0, language models;\n"
        "                     validation loss, latency and throughput; docs/cuda.md)\n"
        "  --precision bf16|fp32  the GPU's activation type\n"
        "  --out FILE         also write the JSON there\n"
        "  --prometheus FILE  also write the numbers as Prometheus metrics (text\n"
        "                     exposition, e.g. for node_exporter's textfile collector)\n");
}

/* The evaluation as Prometheus metrics, through the same registry the
 * trainer uses. */
static moe_status write_prometheus(const char *path, const cJSON *o) {
    static const struct {
        const char *json, *metric, *help;
        double scale; /* to base units */
    } rows[] = {
        {"val_loss", "eval_val_loss", "Mean validation cross-entropy.", 1},
        {"val_ppl", "eval_val_perplexity", "exp(val_loss).", 1},
        {"params", "model_params", "Parameters in total.", 1},
        {"active_params", "model_active_params", "Parameters a token touches.", 1},
        {"forward_flops_per_token", "model_forward_flops_per_token", "Forward FLOPs per token.", 1},
        {"all_experts_forward_flops_per_token", "model_dense_forward_flops_per_token",
         "Forward FLOPs per token with every expert on every token.", 1},
        {"val_accuracy", "eval_val_accuracy", "Validation accuracy (classifiers).", 1},
        {"val_macro_f1", "eval_val_macro_f1", "Validation macro-F1 (classifiers).", 1},
        {"latency_ms_per_token_p50", "latency_seconds_per_token_p50",
         "Batch-1 forward latency per token, median.", 1e-3},
        {"latency_ms_per_token_p99", "latency_seconds_per_token_p99",
         "Batch-1 forward latency per token, 99th percentile.", 1e-3},
        {"tokens_per_s_batch1", "tokens_per_second_batch1", "Forward throughput at batch 1.", 1},
        {"tokens_per_s_large_batch", "tokens_per_second_large_batch",
         "Forward throughput at the large batch.", 1},
        {"generate_ms_per_token", "generate_seconds_per_token", "Greedy decoding latency.", 1e-3},
        {"flops_per_example_active", "model_forward_flops_per_example",
         "Forward FLOPs per example (seed families).", 1},
        {"flops_per_example_dense", "model_dense_forward_flops_per_example",
         "Forward FLOPs per example with every expert (seed families).", 1},
        {"latency_ms_per_example_p50", "latency_seconds_per_example_p50",
         "Batch-1 forward latency per example, median.", 1e-3},
        {"latency_ms_per_example_p99", "latency_seconds_per_example_p99",
         "Batch-1 forward latency per example, 99th percentile.", 1e-3},
        {"examples_per_s_batch1", "examples_per_second_batch1", "Forward throughput at batch 1.",
         1},
        {"examples_per_s_large_batch", "examples_per_second_large_batch",
         "Forward throughput at the large batch.", 1},
    };
    moe_registry *reg = NULL;
    moe_status st = moe_registry_create(&reg, "moe");
    for (size_t i = 0; st == MOE_OK && i < sizeof rows / sizeof rows[0]; i++) {
        const cJSON *v = cJSON_GetObjectItem(o, rows[i].json);
        if (!cJSON_IsNumber(v)) continue; /* not measured for this task */
        moe_metric *m;
        st = moe_registry_declare(reg, rows[i].metric, MOE_METRIC_GAUGE, rows[i].help, NULL, NULL,
                                  0, &m);
        if (st == MOE_OK) st = moe_metric_set(m, NULL, v->valuedouble * rows[i].scale);
    }
    char *text = NULL;
    if (st == MOE_OK) st = moe_registry_render_prometheus(reg, &text);
    if (st == MOE_OK) {
        FILE *fp = fopen(path, "w");
        if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0)
            st = moe_error(MOE_ERR_IO, "cannot write %s", path);
    }
    free(text);
    moe_registry_free(reg);
    return st;
}

/* Cost of the model: parameters and FLOPs per token, active and dense. */
static void add_cost(cJSON *o, const moe_model *m, int T) {
    double train = moe_model_train_flops_per_token(m, T);
    double active = train / 3, dense = moe_model_all_experts_flops_per_token(m, T) / 3;
    cJSON_AddNumberToObject(o, "params", (double)moe_model_param_count(m));
    cJSON_AddNumberToObject(o, "active_params", (double)moe_model_active_param_count(m));
    cJSON_AddNumberToObject(o, "train_flops_per_token", train);
    cJSON_AddNumberToObject(o, "forward_flops_per_token", active);
    cJSON_AddNumberToObject(o, "all_experts_forward_flops_per_token", dense);
    cJSON_AddNumberToObject(o, "active_over_dense_flops", active / dense);
    cJSON_AddNumberToObject(o, "flops_saved_vs_all_experts", 1 - active / dense);
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *prom = NULL, *device = NULL, *precision = NULL;
    cli_sets sets = {0};
    int batches = 0, large = 64, n_seq = 64;
    const cli_opt opts[] = {{"checkpoint", CLI_STRING, &ckpt, 0, 0},
                            {"batches", CLI_INT, &batches, 1, 1000000},
                            {"large-batch", CLI_INT, &large, 1, 4096},
                            {"latency-seqs", CLI_INT, &n_seq, 1, 100000},
                            {"out", CLI_STRING, &out, 0, 0},
                            {"prometheus", CLI_STRING, &prom, 0, 0},
                            {"set", CLI_SETS, &sets, 0, 0},
                            {"device", CLI_STRING, &device, 0, 0},
                            {"precision", CLI_STRING, &precision, 0, 0},
                            {0}};
    int rc = cli_parse("eval", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    if (cli_device_sets("eval", &sets, device, precision)) return 2;
    if (!ckpt) {
        fprintf(stderr, "moe eval: --checkpoint DIR is required (see --help)\n");
        return 2;
    }
    moe_model *m = NULL;
    if (cli_load_model("eval", ckpt, &m)) return 1;
    moe_run_config cfg; /* task, data and batch shape of the run it came from */
    if (cli_run_config_of("eval", ckpt, &cfg) || cli_apply_sets("eval", &cfg, &sets)) {
        moe_model_free(m);
        return 1;
    }
    const moe_model_config *mc = moe_model_config_of(m);
    if (cfg.train.seq_len > mc->max_seq_len) cfg.train.seq_len = mc->max_seq_len;
    if (batches > 0) cfg.train.eval_batches = batches;
    char *quality = NULL;
    moe_status st = moe_evaluate(&cfg, m, large, n_seq, &quality);
    if (st != MOE_OK) {
        moe_model_free(m);
        return cli_fail("eval", "evaluation failed", st);
    }
    cJSON *o = cJSON_Parse(quality);
    free(quality);
    cJSON_AddStringToObject(o, "checkpoint", ckpt);
    if (cfg.model.family == MOE_FAMILY_TRANSFORMER) add_cost(o, m, cfg.train.seq_len);
    if (cfg.train.task == MOE_TASK_LM) {
        cJSON *v = cJSON_GetObjectItem(o, "val_loss");
        if (v) cJSON_AddNumberToObject(o, "val_bits_per_byte", v->valuedouble / log(2.0));
    }
    char *s = cJSON_Print(o);
    printf("%s\n", s);
    if (out) {
        FILE *fp = fopen(out, "w");
        if (!fp || fprintf(fp, "%s\n", s) < 0 || fclose(fp) != 0) {
            fprintf(stderr, "moe eval: cannot write %s\n", out);
            st = MOE_ERR_IO;
        }
    }
    if (prom && st == MOE_OK && (st = write_prometheus(prom, o)) != MOE_OK)
        cli_fail("eval", "--prometheus", st);
    free(s);
    cJSON_Delete(o);
    moe_model_free(m);
    return st == MOE_OK ? 0 : 1;
}
