/* moe: train, evaluate, generate, benchmark and report on Mixture-of-Experts
 * models, inspect data sets and tokenize text. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *fp) {
    fprintf(fp, "usage: moe <command> [options]\n\n"
                "commands:\n"
                "  train      train a model from a JSON config (runs/<name>-<time>/)\n"
                "  eval       validation loss, perplexity and speed of a checkpoint (JSON)\n"
                "  generate   continue a prompt with a trained checkpoint\n"
                "  bench      time training steps of a config (tokens/s, memory, GFLOP/s)\n"
                "  report     an HTML report of a run directory (charts; opens offline)\n"
                "  route      which experts each token of a text goes to (JSON)\n"
                "  tokenizer  train a BPE tokenizer; encode and decode text (also GPT-2's)\n"
                "  data       a data set as libmoe reads it (JSON): 'moe data spam'\n"
                "  search     train a grid of configs and rank them by a validation metric\n"
                "  bootstrap  95%% intervals of a classifier's test metrics by resampling\n"
                "  serve      an authenticated HTTP API for inference and training jobs\n"
                "  key        a new API key for serve: 'moe key new --id ID --scope infer'\n"
                "  devices    the CPU and the GPUs this build can use (JSON)\n\n"
                "'moe <command> --help' describes each one.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    /* getopt_long prefixes its messages with argv[0]: "moe train: ..." */
    static char name[64];
    snprintf(name, sizeof name, "moe %s", cmd);
    argv[1] = name;
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "report")) return cmd_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "data")) return cmd_data(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenizer")) return cmd_tokenizer(argc - 1, argv + 1);
    if (!strcmp(cmd, "route")) return cmd_route(argc - 1, argv + 1);
    if (!strcmp(cmd, "search")) return cmd_search(argc - 1, argv + 1);
    if (!strcmp(cmd, "bootstrap")) return cmd_bootstrap(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "key")) return cmd_key(argc - 1, argv + 1);
    if (!strcmp(cmd, "devices")) return cmd_devices(argc - 1, argv + 1);
    fprintf(stderr, "moe: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
