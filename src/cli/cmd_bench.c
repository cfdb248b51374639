/* moe bench: time training steps of a config on random tokens, the way the
 * PyTorch twin in bench/ does (same sizes, AdamW, median step time). */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void help(void) {
    printf("usage: moe bench [--config FILE] [--set key=value ...] [--steps N]\n"
           "                 [--device cpu|cuda] [--precision bf16|fp32]\n\n"
           "Runs N training steps (forward, backward, optimizer) of the config's model\n"
           "on random tokens and prints one JSON line: median step ms, tokens/s,\n"
           "achieved GFLOP/s, peak resident memory and the step arena's size. Default N = 8; the "
           "first two\n"
           "steps are warm-up and not counted. --device cuda runs the steps on GPU 0\n"
           "(train.device; docs/cuda.md) and adds the device's name and precision.\n");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench(int argc, char **argv) {
    const char *config = NULL, *device = NULL, *precision = NULL;
    cli_sets sets = {0};
    int steps = 8;
    const cli_opt opts[] = {
        {"config", CLI_STRING, &config, 0, 0},       {"set", CLI_SETS, &sets, 0, 0},
        {"steps", CLI_INT, &steps, 3, 100000},       {"device", CLI_STRING, &device, 0, 0},
        {"precision", CLI_STRING, &precision, 0, 0}, {0}};
    int rc = cli_parse("bench", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    if (cli_device_sets("bench", &sets, device, precision)) return 2;
    moe_run_config cfg;
    if (cli_load_config("bench", &cfg, config, &sets)) return 1;
    if (cfg.train.threads > 0) moe_set_threads(cfg.train.threads);
    const moe_train_config *t = &cfg.train;
    int B = t->batch_size, T = t->seq_len, V = cfg.model.vocab_size;
    moe_model *m;
    moe_status st = moe_model_create(&m, &cfg.model, t->seed);
    if (st != MOE_OK) return cli_fail("bench", "cannot build model", st);
    int on_gpu = strcmp(t->device, "cuda") == 0;
    moe_optim opt = {0};
    size_t n = moe_model_table(m)->total;
    if (!on_gpu && (st = moe_optim_init(&opt, &t->optim, n)) != MOE_OK)
        return cli_fail("bench", "optimizer", st);
    int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    double *ms = malloc((size_t)steps * sizeof *ms);
    moe_rng rng, drop_rng;
    moe_rng_seed(&rng, t->seed);
    moe_rng_seed(&drop_rng, t->seed + 1);
    for (int i = 0; i < B * T; i++) {
        x[i] = (int32_t)moe_rng_below(&rng, (uint32_t)V);
        y[i] = (int32_t)moe_rng_below(&rng, (uint32_t)V);
    }
    moe_arena arena;
    moe_arena_init(&arena);
    double loss = 0;
    char device_name[320] = "cpu";
    if (on_gpu &&
        bench_cuda_steps(&cfg, m, x, y, steps, ms, &loss, device_name, sizeof device_name))
        return 1;
    for (int s = 0; s < steps && st == MOE_OK && !on_gpu; s++) {
        double t0 = cli_now(), ce, aux;
        moe_arena_reset(&arena);
        st = moe_model_forward(m, x, y, B, T, 1, &drop_rng, &arena, &ce, &aux);
        if (st != MOE_OK) break;
        moe_model_zero_grads(m);
        st = moe_model_backward(m, &arena, 1.0f);
        moe_optim_step(&opt, moe_model_params(m), moe_model_grads(m), t->optim.lr);
        ms[s] = (cli_now() - t0) * 1e3;
        loss = ce + aux;
    }
    if (st != MOE_OK) return cli_fail("bench", "step failed", st);
    qsort(ms + 2, (size_t)steps - 2, sizeof *ms, cmp_double);
    double med = ms[2 + (steps - 2) / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double flops = moe_model_train_flops_per_token(m, T) * B * T;
    printf("{\"name\": \"%s\", \"device\": \"%s\", \"precision\": \"%s\", \"step_ms\": %.3f, "
           "\"tok_per_s\": %.0f, \"gflops\": %.1f, "
           "\"peak_rss_mb\": %.1f, \"arena_mb\": %.1f, \"params\": %zu, \"active_params\": %zu, "
           "\"train_flops_per_token\": %.0f, \"last_loss\": %.4f}\n",
           cfg.name, device_name, on_gpu ? t->precision : "fp32", med, B * T / med * 1e3,
           flops / med / 1e6, ru.ru_maxrss / 1024.0, arena.high_water / 1048576.0,
           moe_model_param_count(m), moe_model_active_param_count(m),
           moe_model_train_flops_per_token(m, T), loss);
    free(x);
    free(y);
    free(ms);
    moe_arena_free(&arena);
    moe_optim_free(&opt);
    moe_model_free(m);
    return 0;
}
