/* moe eval: quality (validation loss, perplexity) and cost (parameters,
 * FLOPs, throughput, generation latency) of a checkpoint, as JSON. */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: moe eval --checkpoint DIR [--batches N] [--set key=value ...] [--out FILE]\n\n"
           "Evaluates a checkpoint on the validation split of its run's data (the run's\n"
           "config.json; --set data.source=file --set data.path=X for other text) and\n"
           "prints JSON: val_loss, val_ppl, parameters (total, active), training and\n"
           "inference FLOPs per token, evaluation tokens/s and generation ms/token.\n\n"
           "  --checkpoint DIR   e.g. runs/<run>/checkpoints/latest\n"
           "  --batches N        validation batches (default: train.eval_batches)\n"
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
        {"eval_tokens_per_s", "eval_tokens_per_second", "Evaluation throughput.", 1},
        {"generate_ms_per_token", "generate_seconds_per_token", "Greedy decoding latency.", 1e-3},
    };
    moe_registry *reg = NULL;
    moe_status st = moe_registry_create(&reg, "moe");
    for (size_t i = 0; st == MOE_OK && i < sizeof rows / sizeof rows[0]; i++) {
        moe_metric *m;
        st = moe_registry_declare(reg, rows[i].metric, MOE_METRIC_GAUGE, rows[i].help, NULL, NULL,
                                  0, &m);
        if (st == MOE_OK)
            st = moe_metric_set(m, NULL,
                                cJSON_GetObjectItem(o, rows[i].json)->valuedouble * rows[i].scale);
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

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *prom = NULL;
    cli_sets sets = {0};
    int batches = 0;
    const cli_opt opts[] = {
        {"checkpoint", CLI_STRING, &ckpt, 0, 0}, {"batches", CLI_INT, &batches, 1, 1000000},
        {"out", CLI_STRING, &out, 0, 0},         {"prometheus", CLI_STRING, &prom, 0, 0},
        {"set", CLI_SETS, &sets, 0, 0},          {0}};
    int rc = cli_parse("eval", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    if (!ckpt) {
        fprintf(stderr, "moe eval: --checkpoint DIR is required (see --help)\n");
        return 2;
    }
    moe_model *m = NULL;
    if (cli_load_model("eval", ckpt, &m)) return 1;
    moe_run_config cfg; /* data and batch shape of the run it came from */
    if (cli_run_config_of("eval", ckpt, &cfg) || cli_apply_sets("eval", &cfg, &sets)) {
        moe_model_free(m);
        return 1;
    }
    const moe_model_config *mc = moe_model_config_of(m);
    int B = cfg.train.batch_size, T = cfg.train.seq_len;
    if (T > mc->max_seq_len) T = mc->max_seq_len;
    if (batches <= 0) batches = cfg.train.eval_batches;
    moe_corpus corpus;
    moe_status st = moe_corpus_load(&corpus, &cfg.data, T);
    if (st != MOE_OK) {
        moe_model_free(m);
        return cli_fail("eval", "cannot load data", st);
    }
    moe_arena arena;
    moe_arena_init(&arena);
    double val = 0, t0 = cli_now();
    st = moe_eval_lm(m, &corpus, B, T, batches, &arena, &val);
    double eval_s = cli_now() - t0;
    /* generation latency: 64 new tokens after a 64-byte prompt, greedy */
    int np = 64, nn = 64;
    int32_t ids[128];
    for (int i = 0; i < np; i++) ids[i] = corpus.bytes[corpus.n_train + i];
    moe_sampling greedy = {0, 0, 1};
    moe_rng rng;
    moe_rng_seed(&rng, 1);
    double g0 = cli_now();
    if (st == MOE_OK) st = moe_model_generate(m, ids, np, nn, &greedy, &rng, ids);
    double gen_ms = (cli_now() - g0) * 1e3 / nn;
    if (st != MOE_OK) {
        moe_corpus_free(&corpus);
        moe_arena_free(&arena);
        moe_model_free(m);
        return cli_fail("eval", "evaluation failed", st);
    }
    double train_flops = moe_model_train_flops_per_token(m, T);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "checkpoint", ckpt);
    cJSON_AddNumberToObject(o, "val_loss", val);
    cJSON_AddNumberToObject(o, "val_ppl", exp(val));
    cJSON_AddNumberToObject(o, "val_bits_per_byte", val / log(2.0));
    cJSON_AddNumberToObject(o, "val_tokens", (double)batches * B * T);
    cJSON_AddNumberToObject(o, "params", (double)moe_model_param_count(m));
    cJSON_AddNumberToObject(o, "active_params", (double)moe_model_active_param_count(m));
    cJSON_AddNumberToObject(o, "train_flops_per_token", train_flops);
    cJSON_AddNumberToObject(o, "forward_flops_per_token", train_flops / 3);
    double all = moe_model_all_experts_flops_per_token(m, T);
    cJSON_AddNumberToObject(o, "all_experts_forward_flops_per_token", all / 3);
    cJSON_AddNumberToObject(o, "flops_saved_vs_all_experts", 1 - train_flops / all);
    cJSON_AddNumberToObject(o, "eval_tokens_per_s", (double)batches * B * T / eval_s);
    cJSON_AddNumberToObject(o, "generate_ms_per_token", gen_ms);
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
    moe_corpus_free(&corpus);
    moe_arena_free(&arena);
    moe_model_free(m);
    return st == MOE_OK ? 0 : 1;
}
