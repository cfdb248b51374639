/* moe bootstrap: 95% intervals of a classifier checkpoint's metrics by
 * resampling its test (or validation) split. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: moe bootstrap --checkpoint DIR [--resamples N] [--split test|val]\n"
           "                     [--seed N] [--out FILE]\n\n"
           "Answers every example of the split once with the checkpoint (a seed-family\n"
           "classifier: cnn_moe, deepmoe, mlp_moe), then redraws the examples with\n"
           "replacement N times and prints, as JSON, each metric (accuracy, macro-F1,\n"
           "mean cross-entropy) with its bootstrap mean and 95%% interval (2.5th and\n"
           "97.5th percentiles). The model is not retrained.\n\n"
           "  --checkpoint DIR  e.g. runs/<run>/checkpoints/best\n"
           "  --resamples N     resamples (default 200, as seed 002)\n"
           "  --split S         test (default) or val\n"
           "  --seed N          resampling seed (default 1)\n"
           "  --out FILE        also write the JSON there\n");
}

int cmd_bootstrap(int argc, char **argv) {
    const char *ckpt = NULL, *split = "test", *out = NULL;
    int resamples = 200, seed = 1;
    const cli_opt opts[] = {
        {"checkpoint", CLI_STRING, &ckpt, 0, 0}, {"resamples", CLI_INT, &resamples, 2, 1000000},
        {"split", CLI_STRING, &split, 0, 0},     {"seed", CLI_INT, &seed, 0, 2147483647},
        {"out", CLI_STRING, &out, 0, 0},         {0}};
    int rc = cli_parse("bootstrap", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    if (!ckpt) {
        fprintf(stderr, "moe bootstrap: --checkpoint DIR is required (see --help)\n");
        return 2;
    }
    if (strcmp(split, "test") != 0 && strcmp(split, "val") != 0) {
        fprintf(stderr, "moe bootstrap: --split is 'test' or 'val', got '%s'\n", split);
        return 2;
    }
    moe_model *m = NULL;
    if (cli_load_model("bootstrap", ckpt, &m)) return 1;
    moe_run_config cfg;
    if (cli_run_config_of("bootstrap", ckpt, &cfg)) {
        moe_model_free(m);
        return 1;
    }
    char *json = NULL;
    moe_status st =
        moe_bootstrap(&cfg, m, strcmp(split, "test") == 0, resamples, (uint64_t)seed, &json);
    moe_model_free(m);
    if (st != MOE_OK) return cli_fail("bootstrap", "bootstrap failed", st);
    printf("%s\n", json);
    int bad = 0;
    if (out) {
        FILE *fp = fopen(out, "w");
        bad = !fp || fprintf(fp, "%s\n", json) < 0;
        bad = (fp && fclose(fp) != 0) || bad;
        if (bad) fprintf(stderr, "moe bootstrap: cannot write %s\n", out);
    }
    free(json);
    return bad;
}
