/* One DeepMoE training step (forward + backward) on Fashion-MNIST-shaped
 * input (1 x 28 x 28, 10 classes), default widths [32, 64, 128], batch 128
 * unless given: median of the timed steps after two warm-up steps, per
 * architecture, gated and ungated. Usage: deepmoe_step [B] [steps] */
#include "models/family.h"

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(moe_deepmoe_arch arch, int gated, int B, int steps) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_DEEPMOE;
    c.n_classes = 10;
    c.input = (moe_input_config){1, 28, 28, 784};
    c.deepmoe = (moe_deepmoe_config){
        .arch = arch, .gated = gated, .emb_dim = 128, .lambda = 0.01f, .mu = 1.0f, .dropout = 0.0f};
    void *m;
    if (family_deepmoe.create(&m, &c, 1) != MOE_OK) {
        fprintf(stderr, "create: %s\n", moe_last_error());
        return 1;
    }
    moe_real *x = malloc((size_t)B * 784 * sizeof *x);
    int32_t *y = malloc((size_t)B * sizeof *y);
    moe_rng r;
    moe_rng_seed(&r, 3);
    for (long i = 0; i < (long)B * 784; i++) x[i] = moe_rng_uniform(&r);
    for (int b = 0; b < B; b++) y[b] = (int32_t)moe_rng_below(&r, 10);
    moe_batch batch = {.labels = y, .B = B, .T = 1, .x = x};
    moe_arena arena;
    moe_arena_init(&arena);
    double *t = malloc((size_t)steps * sizeof *t), ce, aux;
    for (int s = -2; s < steps; s++) {
        moe_arena_reset(&arena);
        double t0 = bench_now();
        if (family_deepmoe.forward(m, &batch, 1, &r, &arena, &ce, &aux) != MOE_OK ||
            family_deepmoe.backward(m, &arena, 1.0f) != MOE_OK) {
            fprintf(stderr, "step: %s\n", moe_last_error());
            return 1;
        }
        if (s >= 0) t[s] = bench_now() - t0;
    }
    bench_sort(t, (size_t)steps);
    double gflop = family_deepmoe.train_flops(m, 1) * B / 1e9;
    printf("{\"name\": \"deepmoe_step\", \"arch\": \"%s\", \"gated\": %d, \"B\": %d, "
           "\"step_ms\": %.1f, \"train_gflop\": %.2f, \"gflops\": %.1f, \"arena_mb\": %.1f}\n",
           arch == MOE_DEEPMOE_VGG ? "vgg" : "resnet", gated, B, 1e3 * t[steps / 2], gflop,
           gflop / t[steps / 2], arena.high_water / 1048576.0);
    free(t);
    free(x);
    free(y);
    moe_arena_free(&arena);
    family_deepmoe.destroy(m);
    return 0;
}

int main(int argc, char **argv) {
    int B = argc > 1 ? atoi(argv[1]) : 128, steps = argc > 2 ? atoi(argv[2]) : 5;
    if (B < 2 || steps < 1) return 2;
    int rc = 0;
    rc |= run(MOE_DEEPMOE_VGG, 1, B, steps);
    rc |= run(MOE_DEEPMOE_VGG, 0, B, steps);
    rc |= run(MOE_DEEPMOE_RESNET, 1, B, steps);
    rc |= run(MOE_DEEPMOE_RESNET, 0, B, steps);
    return rc;
}
