/* The whole-model GPU benchmark beside ../shared/anchors/hf_mixtral_gpu.py
 * (copied to bench/hf_mixtral_gpu.py): the same Mixtral-architecture model
 * (vocab 32000, hidden 1024, 8 layers, 16 heads / 4 KV heads, RoPE,
 * RMSNorm, 16 SwiGLU experts of width 2816, top-2 with softmax before top-k
 * and renormalisation, untied embeddings, Switch aux loss 0.01 in HF's
 * convention; 1.19 B parameters), random init, AdamW training steps at batch
 * 8 x 1024 in bf16 (or fp32 with --fp32), timed like the anchor (3 warm-up
 * steps, the mean of 5). Prints one JSON object.
 *
 * Built in the kernels-only tree (no config files: the config is written
 * out here). Decoding is not measured: the GPU model has no KV-cache decode
 * path yet (docs/cuda.md). */
#include "moe/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MOE_HAVE_CUDA
#include "models/cuda/gpt_cuda.h"

static moe_model_config mixtral_like(void) {
    moe_model_config c;
    memset(&c, 0, sizeof c);
    c.family = MOE_FAMILY_TRANSFORMER;
    c.vocab_size = 32000;
    c.max_seq_len = 4096;
    c.n_layer = 8;
    c.d_model = 1024;
    c.n_head = 16;
    c.n_kv_head = 4;
    c.pos = MOE_POS_ROPE;
    c.rope_theta = 1e6f; /* MixtralConfig's default */
    c.norm = MOE_NORM_RMSNORM;
    c.norm_eps = 1e-5f;
    c.tied_embeddings = 0;
    c.moe_every = 1;
    c.d_ff = 2816;
    c.ffn_act = MOE_ACT_SWIGLU;
    moe_layer_config *m = &c.moe;
    m->d_model = 1024;
    m->n_experts = 16;
    m->top_k = 2;
    m->d_ff = 2816;
    m->act = MOE_ACT_SWIGLU;
    m->score = MOE_SCORE_SOFTMAX;
    m->renormalize = 1;
    m->temperature = 1;
    m->capacity_factor = 0; /* dropless, as HF */
    m->switch_coef = 0.01f;
    m->switch_divide_by_k = 0;
    m->fallback_expert = -1;
    return c;
}

static int fail(const char *what, moe_status st) {
    fprintf(stderr, "bench_model_gpu: %s: %s\n", what, moe_last_error());
    (void)st;
    return 1;
}

int main(int argc, char **argv) {
    int fp32 = argc > 1 && !strcmp(argv[1], "--fp32");
    const int B = 8, T = 1024, warm = 3, timed = 5;
    moe_model_config cfg = mixtral_like();
    moe_status st = gpt_cuda_supported(&cfg);
    if (st != MOE_OK) return fail("config", st);
    char why[256];
    if (moe_cuda_device_count(why, sizeof why) == 0) {
        fprintf(stderr, "bench_model_gpu: no CUDA device: %s\n", why);
        return 2;
    }
    moe_model *m;
    if ((st = moe_model_create(&m, &cfg, 0)) != MOE_OK) return fail("model", st);
    moe_cuda *ctx;
    gpt_cuda *g;
    if ((st = moe_cuda_create(&ctx, 0)) != MOE_OK) return fail("CUDA", st);
    if ((st = gpt_cuda_create(&g, ctx, m, B, T, fp32 ? MOE_DT_F32 : MOE_DT_BF16)) != MOE_OK)
        return fail("GPU model", st);
    int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    moe_rng rng;
    moe_rng_seed(&rng, 0);
    for (int i = 0; i < B * T; i++) {
        x[i] = (int32_t)moe_rng_below(&rng, (uint32_t)cfg.vocab_size);
        y[i] = (int32_t)moe_rng_below(&rng, (uint32_t)cfg.vocab_size);
    }
    moe_optim_config oc = {.kind = MOE_OPT_ADAMW,
                           .lr = 1e-4f,
                           .beta1 = 0.9f,
                           .beta2 = 0.999f,
                           .eps = 1e-8f,
                           .weight_decay = 0.01f}; /* torch.optim.AdamW's defaults */
    double ms[8], loss = 0;
    if ((st = gpt_cuda_time_steps(g, &oc, 0, x, y, B, T, warm + timed, ms, &loss)) != MOE_OK)
        return fail("training step", st);
    double mean = 0;
    for (int i = warm; i < warm + timed; i++) mean += ms[i] / timed;
    double flops = moe_model_train_flops_per_token(m, T);
    char dev[256];
    moe_cuda_describe(ctx, dev, sizeof dev);
    printf("{\"gpu\": \"%s\", \"precision\": \"%s\", \"params\": %zu, \"active_params\": %zu, "
           "\"batch\": %d, \"seq\": %d, \"train_step_ms\": %.2f, \"train_tok_per_s\": %.0f, "
           "\"train_tflops\": %.1f, \"last_loss\": %.4f, \"decode\": \"not implemented\"}\n",
           dev, fp32 ? "fp32" : "bf16", moe_model_param_count(m), moe_model_active_param_count(m),
           B, T, mean, B * T / mean * 1e3, flops * B * T / mean / 1e9, loss);
    gpt_cuda_destroy(g);
    moe_cuda_destroy(ctx);
    moe_model_free(m);
    free(x);
    free(y);
    return 0;
}

#else

int main(void) {
    fprintf(stderr, "bench_model_gpu: built without the CUDA backend\n");
    return 2;
}

#endif
