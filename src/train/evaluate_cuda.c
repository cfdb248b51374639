/* moe eval --device cuda: a language model's validation loss and forward
 * speed on GPU 0, through the GPU transformer. The keys are moe_evaluate's
 * (evaluate.c), measured on the same validation windows; decoding has no GPU
 * path yet, so generate_ms_per_token is null there. */
#include "moe/metrics.h"
#include "train/evaluate_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MOE_HAVE_CUDA
#include "models/cuda/gpt_cuda.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One forward without targets, timed until the last row's logits are on
 * the host (what a client of the model waits for). */
static moe_status timed_forward(gpt_cuda *g, const int32_t *x, int B, int T, float *row,
                                double *seconds) {
    double t0 = now_s();
    moe_status st = gpt_cuda_forward(g, x, NULL, B, T, 0);
    if (st == MOE_OK) st = gpt_cuda_read_logits(g, B * T - 1, 1, row);
    *seconds = now_s() - t0;
    return st;
}

static moe_status measure(gpt_cuda *g, const train_task *t, const moe_run_config *c, int large,
                          int n_seq, int32_t *x, int32_t *y, float *row, cJSON *o) {
    const int B = c->train.batch_size, T = t->T, nb = c->train.eval_batches;
    double sum = 0, ce, aux, dt;
    moe_status st = MOE_OK;
    for (int i = 0; i < nb && st == MOE_OK; i++) { /* moe_eval_lm's windows */
        moe_corpus_val_batch(&t->corpus, B, T, i, nb, x, y);
        st = gpt_cuda_forward(g, x, y, B, T, 0);
        if (st == MOE_OK) st = gpt_cuda_read_loss(g, &ce, &aux);
        sum += ce;
    }
    if (st != MOE_OK) return st;
    double val = sum / (nb > 0 ? nb : 1);
    cJSON_AddNumberToObject(o, "val_loss", val);
    cJSON_AddNumberToObject(o, "val_ppl", exp(val));
    moe_latency lat;
    moe_latency_init(&lat);
    double time1 = 0;
    long tokens1 = 0;
    for (int i = -1; i < n_seq && st == MOE_OK; i++) { /* i = -1 warms up */
        moe_corpus_val_batch(&t->corpus, 1, T, i < 0 ? 0 : i % 64, 64, x, y);
        st = timed_forward(g, x, 1, T, row, &dt);
        if (i < 0 || st != MOE_OK) continue;
        time1 += dt;
        tokens1 += T;
        st = moe_latency_add(&lat, dt / T);
    }
    moe_latency_summary s;
    if (st == MOE_OK) st = moe_latency_summarize(&lat, &s);
    moe_latency_free(&lat);
    if (st != MOE_OK) return st;
    cJSON_AddNumberToObject(o, "latency_ms_per_token_p50", s.p50 * 1e3);
    cJSON_AddNumberToObject(o, "latency_ms_per_token_p90", s.p90 * 1e3);
    cJSON_AddNumberToObject(o, "latency_ms_per_token_p99", s.p99 * 1e3);
    cJSON_AddNumberToObject(o, "tokens_per_s_batch1", tokens1 / time1);
    double timeB = 0;
    long tokensB = 0;
    for (int i = 0; i < 4 && st == MOE_OK; i++) { /* the first is a warm-up */
        moe_corpus_val_batch(&t->corpus, large, T, i % 64, 64, x, y);
        st = timed_forward(g, x, large, T, row, &dt);
        if (i == 0) continue;
        timeB += dt;
        tokensB += (long)large * T;
    }
    cJSON_AddNumberToObject(o, "large_batch", large);
    cJSON_AddNumberToObject(o, "tokens_per_s_large_batch", tokensB / timeB);
    cJSON_AddNullToObject(o, "generate_ms_per_token"); /* no GPU decode path yet */
    return st;
}

moe_status eval_lm_cuda(const moe_run_config *c, const train_task *t, const moe_model *m, int large,
                        int n_seq, cJSON *o) {
    moe_status st = gpt_cuda_supported(moe_model_config_of(m));
    if (st != MOE_OK) return st;
    const int T = t->T, B = c->train.batch_size > large ? c->train.batch_size : large;
    moe_dtype dt = moe_dtype_of_precision(c->train.precision);
    moe_cuda *ctx = NULL;
    gpt_cuda *g = NULL;
    int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    float *row = malloc((size_t)moe_model_config_of(m)->vocab_size * sizeof *row);
    if (!x || !y || !row) st = moe_error(MOE_ERR_NOMEM, "eval: out of memory");
    if (st == MOE_OK) st = moe_cuda_create(&ctx, 0);
    if (st == MOE_OK) st = gpt_cuda_create(&g, ctx, m, B, T, dt);
    if (st == MOE_OK) st = measure(g, t, c, large, n_seq, x, y, row, o);
    if (st == MOE_OK) {
        char name[256], dev[320];
        moe_cuda_describe(ctx, name, sizeof name);
        snprintf(dev, sizeof dev, "%s, %s", name, moe_dtype_name(dt));
        cJSON_AddStringToObject(o, "device", dev);
    }
    gpt_cuda_destroy(g);
    moe_cuda_destroy(ctx);
    free(x);
    free(y);
    free(row);
    return st;
}

#else

moe_status eval_lm_cuda(const moe_run_config *c, const train_task *t, const moe_model *m, int large,
                        int n_seq, cJSON *o) {
    (void)c, (void)t, (void)m, (void)large, (void)n_seq, (void)o;
    return moe_error(MOE_ERR_UNSUPPORTED,
                     "eval --device cuda: this libmoe was built without the CUDA backend");
}

#endif
