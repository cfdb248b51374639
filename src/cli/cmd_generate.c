/* moe generate: continue a prompt with a trained checkpoint. */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: moe generate --checkpoint DIR --prompt TEXT [options]\n\n"
           "  --checkpoint DIR   e.g. runs/<run>/checkpoints/latest\n"
           "  --prompt TEXT      text to continue (byte-level)\n"
           "  --tokens N         new tokens (default 200)\n"
           "  --temperature T    0 = greedy (default 0.8)\n"
           "  --top-k K          keep the K most likely (default 40, 0 = all)\n"
           "  --top-p P          nucleus mass (default 0.95, 1 = all)\n"
           "  --seed S           sampling seed (default 1)\n");
}

int cmd_generate(int argc, char **argv) {
    const char *ckpt = NULL, *prompt = NULL;
    int n = 200;
    moe_sampling s = {0.8f, 40, 0.95f};
    unsigned long long seed = 1;
    static const struct option options[] = {{"help", no_argument, 0, 'h'},
                                            {"checkpoint", required_argument, 0, 'c'},
                                            {"prompt", required_argument, 0, 'p'},
                                            {"tokens", required_argument, 0, 'n'},
                                            {"temperature", required_argument, 0, 't'},
                                            {"top-k", required_argument, 0, 'k'},
                                            {"top-p", required_argument, 0, 'P'},
                                            {"seed", required_argument, 0, 'S'},
                                            {0, 0, 0, 0}};
    int c, seed_int = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'h':
            help();
            return 0;
        case 'c':
            ckpt = optarg;
            break;
        case 'p':
            prompt = optarg;
            break;
        case 'n':
            bad = cli_int("generate", "--tokens", optarg, 0, 1000000, &n);
            break;
        case 't':
            bad = cli_float("generate", "--temperature", optarg, 0, 100, &s.temperature);
            break;
        case 'k':
            bad = cli_int("generate", "--top-k", optarg, 0, 1 << 24, &s.top_k);
            break;
        case 'P':
            bad = cli_float("generate", "--top-p", optarg, 1e-6, 1, &s.top_p);
            break;
        case 'S':
            bad = cli_int("generate", "--seed", optarg, 0, 2147483647, &seed_int);
            break;
        default:
            return cli_usage_error("generate");
        }
        if (bad) return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "moe generate: unexpected argument '%s'\n", argv[optind]);
        return cli_usage_error("generate");
    }
    seed = (unsigned long long)seed_int;
    if (!ckpt || !prompt || !prompt[0]) {
        fprintf(stderr, "moe generate: --checkpoint DIR and a non-empty --prompt are required\n");
        return 2;
    }
    moe_model *m = NULL;
    if (cli_load_model("generate", ckpt, &m)) return 1;
    if (moe_model_config_of(m)->vocab_size != 256) {
        moe_model_free(m);
        fprintf(stderr, "moe generate: this checkpoint is not a byte-level model\n");
        return 1;
    }
    int np = (int)strlen(prompt);
    int32_t *ids = malloc((size_t)(np + n) * sizeof *ids);
    if (!ids) return 1;
    for (int i = 0; i < np; i++) ids[i] = (uint8_t)prompt[i];
    moe_rng rng;
    moe_rng_seed(&rng, seed);
    moe_status st = moe_model_generate(m, ids, np, n, &s, &rng, ids);
    if (st == MOE_OK) {
        for (int i = 0; i < np + n; i++) putchar(ids[i]);
        putchar('\n');
    }
    free(ids);
    moe_model_free(m);
    return st == MOE_OK ? 0 : cli_fail("generate", "generation failed", st);
}
