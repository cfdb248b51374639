/* The CLI's --device cuda paths on GPU 0 through the GPU transformer
 * (src/models/cuda/gpt_cuda.h): moe bench's timed steps and moe generate's
 * decoding. (moe train and moe eval go through the library.) */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#ifdef MOE_HAVE_CUDA
#include "models/cuda/gpt_cuda.h"

int bench_cuda_steps(const moe_run_config *cfg, const moe_model *m, const int32_t *x,
                     const int32_t *y, int steps, double *ms, double *loss, char *device,
                     size_t device_len) {
    const moe_train_config *t = &cfg->train;
    moe_status st = gpt_cuda_supported(&cfg->model);
    if (st != MOE_OK) return cli_fail("bench", "--device cuda", st);
    if (t->optim.kind != MOE_OPT_ADAMW) {
        fprintf(stderr, "moe bench: --device cuda: train.optim.kind must be adamw\n");
        return 1;
    }
    moe_dtype dt = moe_dtype_of_precision(t->precision);
    moe_cuda *ctx = NULL;
    gpt_cuda *g = NULL;
    st = moe_cuda_create(&ctx, 0);
    if (st == MOE_OK) st = gpt_cuda_create(&g, ctx, m, t->batch_size, t->seq_len, dt);
    if (st == MOE_OK)
        st = gpt_cuda_time_steps(g, &t->optim, t->grad_clip, x, y, t->batch_size, t->seq_len, steps,
                                 ms, loss);
    if (st == MOE_OK) moe_cuda_describe(ctx, device, device_len);
    gpt_cuda_destroy(g);
    moe_cuda_destroy(ctx);
    return st == MOE_OK ? 0 : cli_fail("bench", "--device cuda", st);
}

int generate_cuda(const moe_model *m, const char *precision, const int32_t *prompt, int n_prompt,
                  int n_new, const moe_sampling *s, moe_rng *rng, int32_t *out) {
    const moe_model_config *c = moe_model_config_of(m);
    moe_status st = gpt_cuda_supported(c);
    if (st != MOE_OK) return cli_fail("generate", "--device cuda", st);
    moe_cuda *ctx = NULL;
    gpt_cuda *g = NULL;
    st = moe_cuda_create(&ctx, 0);
    if (st == MOE_OK)
        st = gpt_cuda_create(&g, ctx, m, 1, c->max_seq_len, moe_dtype_of_precision(precision));
    if (st == MOE_OK) st = gpt_cuda_generate(g, c, prompt, n_prompt, n_new, s, rng, out);
    gpt_cuda_destroy(g);
    moe_cuda_destroy(ctx);
    return st == MOE_OK ? 0 : cli_fail("generate", "--device cuda", st);
}

#else

int generate_cuda(const moe_model *m, const char *precision, const int32_t *prompt, int n_prompt,
                  int n_new, const moe_sampling *s, moe_rng *rng, int32_t *out) {
    (void)m, (void)precision, (void)prompt, (void)n_prompt, (void)n_new, (void)s, (void)rng,
        (void)out;
    fprintf(stderr, "moe generate: --device cuda: this moe was built without the CUDA backend "
                    "(nvcc was not found at build time)\n");
    return 1;
}

int bench_cuda_steps(const moe_run_config *cfg, const moe_model *m, const int32_t *x,
                     const int32_t *y, int steps, double *ms, double *loss, char *device,
                     size_t device_len) {
    (void)cfg, (void)m, (void)x, (void)y, (void)steps, (void)ms, (void)loss, (void)device,
        (void)device_len;
    fprintf(stderr, "moe bench: --device cuda: this moe was built without the CUDA backend "
                    "(nvcc was not found at build time)\n");
    return 1;
}

#endif
