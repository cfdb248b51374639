/* moe generate: continue a prompt with a trained checkpoint. */
#include "cli/cli.h"

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
           "  --seed S           sampling seed (default 1)\n"
           "  --device cpu|cuda  cuda: decode on GPU 0 (no KV cache yet: each token runs\n"
           "                     the context window through the model; docs/cuda.md)\n"
           "  --precision bf16|fp32  the GPU's activation type (default bf16)\n");
}

int cmd_generate(int argc, char **argv) {
    const char *ckpt = NULL, *prompt = NULL, *device = "cpu", *precision = "bf16";
    int n = 200;
    moe_sampling s = {0.8f, 40, 0.95f};
    int seed = 1;
    const cli_opt opts[] = {{"checkpoint", CLI_STRING, &ckpt, 0, 0},
                            {"prompt", CLI_STRING, &prompt, 0, 0},
                            {"tokens", CLI_INT, &n, 0, 1000000},
                            {"temperature", CLI_FLOAT, &s.temperature, 0, 100},
                            {"top-k", CLI_INT, &s.top_k, 0, 1 << 24},
                            {"top-p", CLI_FLOAT, &s.top_p, 1e-6, 1},
                            {"seed", CLI_INT, &seed, 0, 2147483647},
                            {"device", CLI_STRING, &device, 0, 0},
                            {"precision", CLI_STRING, &precision, 0, 0},
                            {0}};
    int rc = cli_parse("generate", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    int on_gpu = !strcmp(device, "cuda");
    if ((!on_gpu && strcmp(device, "cpu")) ||
        (strcmp(precision, "bf16") && strcmp(precision, "fp32"))) {
        fprintf(stderr,
                "moe generate: --device is cpu or cuda and --precision bf16 or fp32 "
                "(got %s, %s)\n",
                device, precision);
        return 2;
    }
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
    moe_rng_seed(&rng, (uint64_t)seed);
    int failed = 0;
    if (on_gpu) {
        failed = generate_cuda(m, precision, ids, np, n, &s, &rng, ids);
    } else {
        moe_status st = moe_model_generate(m, ids, np, n, &s, &rng, ids);
        if (st != MOE_OK) failed = cli_fail("generate", "generation failed", st);
    }
    if (!failed) {
        for (int i = 0; i < np + n; i++) putchar(ids[i]);
        putchar('\n');
    }
    free(ids);
    moe_model_free(m);
    return failed;
}
