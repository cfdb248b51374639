/* moe route: which experts each token of a text goes to, with weights, in
 * every MoE layer of a checkpoint, as JSON (and the class probabilities of a
 * classifier). */
#include "cli/cli.h"
#include "moe/analysis.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: moe route --checkpoint DIR --text TEXT [--out FILE]\n\n"
           "Routes TEXT through the checkpoint's model (no training) and prints JSON: for\n"
           "every token its text and, per MoE layer, the experts it went to (best first),\n"
           "their weights and whether each (token, expert) pair was kept or dropped over\n"
           "capacity. Encoders get [CLS] first and also report class probabilities.\n"
           "The tokenizer is the run's (data.tokenizer); decoders read bytes.\n\n"
           "  --checkpoint DIR   e.g. runs/<run>/checkpoints/best\n"
           "  --text TEXT        the text to route\n"
           "  --out FILE         also write the JSON there\n");
}

/* ids of text: [CLS] + tokens for encoders, bytes for byte-level decoders. */
static int tokenize(const moe_run_config *cfg, const moe_model_config *mc, const char *text,
                    moe_tokenizer **tok, int32_t **ids, int *n) {
    size_t len = strlen(text), n_ids = 0;
    if (!mc->bidirectional) {
        *ids = malloc((len ? len : 1) * sizeof **ids);
        if (!*ids) return cli_fail("route", "out of memory", MOE_ERR_NOMEM);
        for (size_t i = 0; i < len; i++) (*ids)[i] = (uint8_t)text[i];
        *n = (int)len;
        return 0;
    }
    moe_status st = moe_text_tokenizer(cfg->data.tokenizer, tok);
    int32_t *body = NULL;
    if (st == MOE_OK) st = moe_tokenizer_encode(*tok, (const uint8_t *)text, len, &body, &n_ids);
    if (st != MOE_OK) return cli_fail("route", "cannot tokenize the text", st);
    *ids = malloc((n_ids + 1) * sizeof **ids);
    if (!*ids) {
        free(body);
        return cli_fail("route", "out of memory", MOE_ERR_NOMEM);
    }
    (*ids)[0] = moe_tokenizer_special(*tok, MOE_TOK_CLS);
    if (n_ids) memcpy(*ids + 1, body, n_ids * sizeof *body);
    free(body);
    *n = (int)n_ids + 1;
    return 0;
}

static void add_class_probs(cJSON *o, const moe_model *m) {
    int C = moe_model_config_of(m)->n_classes;
    const moe_real *lg = moe_model_class_logits(m);
    if (C <= 0 || !lg) return;
    double mx = lg[0], z = 0;
    for (int c = 1; c < C; c++) mx = fmax(mx, lg[c]);
    for (int c = 0; c < C; c++) z += exp(lg[c] - mx);
    cJSON *pr = cJSON_AddArrayToObject(o, "class_probs");
    int best = 0;
    for (int c = 0; c < C; c++) {
        cJSON_AddItemToArray(pr, cJSON_CreateNumber(exp(lg[c] - mx) / z));
        if (lg[c] > lg[best]) best = c;
    }
    cJSON_AddNumberToObject(o, "predicted_class", best);
}

int cmd_route(int argc, char **argv) {
    const char *ckpt = NULL, *text = NULL, *out = NULL;
    const cli_opt opts[] = {{"checkpoint", CLI_STRING, &ckpt, 0, 0},
                            {"text", CLI_STRING, &text, 0, 0},
                            {"out", CLI_STRING, &out, 0, 0},
                            {0}};
    int rc = cli_parse("route", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    rc = 0;
    if (!ckpt || !text || !text[0]) {
        fprintf(stderr, "moe route: --checkpoint DIR and a non-empty --text are required\n");
        return 2;
    }
    moe_model *m = NULL;
    moe_run_config cfg;
    if (cli_load_model("route", ckpt, &m)) return 1;
    const moe_model_config *mc = moe_model_config_of(m);
    moe_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    int n = 0;
    if (moe_model_moe_layers(m) == 0) {
        fprintf(stderr, "moe route: %s is a dense model: no experts to route to\n", ckpt);
        rc = 1;
    } else if (cli_run_config_of("route", ckpt, &cfg) || tokenize(&cfg, mc, text, &tok, &ids, &n)) {
        rc = 1;
    }
    if (rc == 0 && n > mc->max_seq_len) n = mc->max_seq_len; /* the model's context */
    moe_arena arena;
    moe_arena_init(&arena);
    moe_batch b = {ids, NULL, NULL, NULL, 1, n, NULL, NULL, NULL};
    moe_status st = MOE_OK;
    if (rc == 0 && (st = moe_model_forward_batch(m, &b, 0, NULL, &arena, NULL, NULL)) != MOE_OK)
        rc = cli_fail("route", "forward failed", st);
    if (rc == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "checkpoint", ckpt);
        cJSON_AddNumberToObject(o, "n_experts", mc->moe.n_experts);
        cJSON_AddNumberToObject(o, "top_k", mc->moe.top_k);
        cJSON_AddItemToObject(o, "tokens", moe_routing_trace_json(m, tok, ids, n, 0));
        add_class_probs(o, m);
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        if (out) {
            FILE *fp = fopen(out, "w");
            if (!fp || fprintf(fp, "%s\n", s) < 0 || fclose(fp) != 0) {
                fprintf(stderr, "moe route: cannot write %s\n", out);
                rc = 1;
            }
        }
        free(s);
        cJSON_Delete(o);
    }
    moe_arena_free(&arena);
    free(ids);
    moe_tokenizer_free(tok);
    moe_model_free(m);
    return rc;
}
