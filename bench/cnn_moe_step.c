/* One training step of seed 000's cnn_moe family (forward + backward, no
 * optimizer) on Fashion-MNIST's shape with the family's defaults: channels
 * [32, 64], 3 experts of width 128, gate hidden 256, dropout and noise on.
 * Prints the median forward and backward times of 10 steps after 2 warm-up
 * steps. Usage: cnn_moe_step [batch (128)] [experts (3)] */
#include "models/family.h"

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int B = argc > 1 ? atoi(argv[1]) : 128, E = argc > 2 ? atoi(argv[2]) : 3;
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_CNN_MOE;
    c.n_classes = 10;
    c.input.channels = 1;
    c.input.height = c.input.width = 28;
    c.moe.n_experts = E;
    c.moe.temperature = 2.0f;
    c.cnn.expert_channels = 128;
    c.cnn.gate_hidden = 256;
    c.cnn.expert_dropout = 0.5f;
    c.cnn.gate_dropout = 0.2f;
    c.cnn.gate_noise = 0.1f;
    c.cnn.diversity_weight = 0.1f;
    c.cnn.balance_weight = 0.5f;
    const model_family *f = &family_cnn_moe;
    void *m;
    if (f->create(&m, &c, 1) != MOE_OK) {
        fprintf(stderr, "%s\n", moe_last_error());
        return 1;
    }
    float *x = malloc((size_t)B * 784 * sizeof *x);
    int32_t *y = malloc((size_t)B * sizeof *y);
    moe_rng rng;
    moe_rng_seed(&rng, 1);
    for (long i = 0; i < (long)B * 784; i++) x[i] = moe_rng_normal(&rng);
    for (int i = 0; i < B; i++) y[i] = (int32_t)(i % 10);
    moe_batch b = {.labels = y, .B = B, .T = 1, .x = x};
    moe_arena a;
    moe_arena_init(&a);
    enum { WARM = 2, RUNS = 10 };
    double tf[RUNS], tb[RUNS];
    for (int s = 0; s < WARM + RUNS; s++) {
        double ce, aux;
        moe_arena_reset(&a);
        double t0 = bench_now();
        if (f->forward(m, &b, 1, &rng, &a, &ce, &aux) != MOE_OK) return 1;
        double t1 = bench_now();
        if (f->backward(m, &a, 1.0f) != MOE_OK) return 1;
        double t2 = bench_now();
        if (s >= WARM) {
            tf[s - WARM] = t1 - t0;
            tb[s - WARM] = t2 - t1;
        }
    }
    bench_sort(tf, RUNS);
    bench_sort(tb, RUNS);
    double fw = tf[RUNS / 2], bw = tb[RUNS / 2];
    printf("{\"name\": \"cnn_moe_step\", \"batch\": %d, \"experts\": %d, \"forward_ms\": %.2f, "
           "\"backward_ms\": %.2f, \"step_ms\": %.2f, \"gflops\": %.1f}\n",
           B, E, fw * 1e3, bw * 1e3, (fw + bw) * 1e3, f->train_flops(m, 1) * B / (fw + bw) / 1e9);
    moe_arena_free(&a);
    f->destroy(m);
    free(x);
    free(y);
    return 0;
}
