/* train_device.h: training steps on the GPU. The trainer keeps its loop,
 * observer, evaluation and checkpoints; this file runs the step on the GPU
 * transformer and translates its results (losses, norm, routing statistics)
 * into what the loop reads on the CPU. */
#include "train/train_device.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MOE_HAVE_CUDA
#include "models/cuda/gpt_cuda.h"

struct train_device {
    const moe_run_config *cfg;
    moe_cuda *ctx;
    gpt_cuda *gpu;
    int dirty; /* the GPU's weights moved since the last sync */
    char name[320];
    /* the routing statistics of the last step, as the CPU layer reports them */
    int n_moe;
    moe_layer_stats *stats;        /* [n_moe] */
    const moe_layer_stats **shown; /* [n_moe] pointers into stats */
    int *expert_tokens;            /* [n_moe, E] */
    moe_real *mean_prob;           /* [n_moe, E] */
};

moe_status train_device_check(const moe_run_config *cfg) {
    const moe_train_config *t = &cfg->train;
    if (strcmp(t->device, "cuda") != 0) return MOE_OK;
    if (t->task != MOE_TASK_LM)
        return moe_error(MOE_ERR_UNSUPPORTED,
                         "train.device cuda trains the decoder language model (train.task lm) "
                         "only; use train.device cpu for this task");
    if (t->optim.kind != MOE_OPT_ADAMW)
        return moe_error(MOE_ERR_UNSUPPORTED,
                         "train.device cuda: train.optim.kind must be adamw (the GPU's optimizer)");
    return gpt_cuda_supported(&cfg->model);
}

void train_device_close(train_device *d) {
    if (!d) return;
    gpt_cuda_destroy(d->gpu);
    moe_cuda_destroy(d->ctx);
    free(d->stats);
    free(d->shown);
    free(d->expert_tokens);
    free(d->mean_prob);
    free(d);
}

moe_status train_device_open(train_device **out, const moe_run_config *cfg, const moe_model *model,
                             const moe_optim *opt) {
    *out = NULL;
    if (strcmp(cfg->train.device, "cuda") != 0) return MOE_OK;
    moe_status st = train_device_check(cfg);
    if (st != MOE_OK) return st;
    train_device *d = calloc(1, sizeof *d);
    if (!d) return moe_error(MOE_ERR_NOMEM, "train.device cuda: out of memory");
    d->cfg = cfg;
    moe_dtype dt = moe_dtype_of_precision(cfg->train.precision);
    st = moe_cuda_create(&d->ctx, 0);
    if (st == MOE_OK)
        st = gpt_cuda_create(&d->gpu, d->ctx, model, cfg->train.batch_size, cfg->train.seq_len, dt);
    if (st == MOE_OK && opt && opt->step > 0) st = gpt_cuda_upload_optim(d->gpu, opt);
    int E = cfg->model.moe.n_experts;
    if (st == MOE_OK) {
        d->n_moe = gpt_cuda_moe_layers(d->gpu);
        size_t n = d->n_moe ? (size_t)d->n_moe : 1;
        d->stats = calloc(n, sizeof *d->stats);
        d->shown = calloc(n, sizeof *d->shown);
        d->expert_tokens = calloc(n * E, sizeof *d->expert_tokens);
        d->mean_prob = calloc(n * E, sizeof *d->mean_prob);
        if (!d->stats || !d->shown || !d->expert_tokens || !d->mean_prob)
            st = moe_error(MOE_ERR_NOMEM, "train.device cuda: out of memory");
    }
    if (st != MOE_OK) {
        train_device_close(d);
        return st;
    }
    char gpu[256];
    moe_cuda_describe(d->ctx, gpu, sizeof gpu);
    snprintf(d->name, sizeof d->name, "%s, %s", gpu, moe_dtype_name(dt));
    *out = d;
    return MOE_OK;
}

const char *train_device_name(const train_device *d) {
    return d ? d->name : "cpu";
}

/* The GPU layer's statistics in the CPU layer's record. What the GPU does
 * not measure is marked: router entropy NaN, no per-pair arrays (chosen,
 * gate, kept_pair: only evaluation's routing probe reads those, and it runs
 * on the CPU). */
static moe_status read_stats(train_device *d, moe_model *model) {
    const int E = d->cfg->model.moe.n_experts, k = d->cfg->model.moe.top_k;
    for (int i = 0; i < d->n_moe; i++) {
        moe_layer_cuda_stats g;
        moe_status st = gpt_cuda_layer_stats(d->gpu, i, &g);
        if (st != MOE_OK) return st;
        moe_layer_stats *s = &d->stats[i];
        memset(s, 0, sizeof *s);
        s->n_tokens = g.n_tokens;
        s->n_pairs = g.n_pairs;
        s->n_dropped = g.n_dropped;
        s->top_k = k;
        s->expert_tokens = d->expert_tokens + (size_t)i * E;
        s->mean_prob = d->mean_prob + (size_t)i * E;
        for (int e = 0; e < E; e++) {
            s->expert_tokens[e] = g.kept[e];
            s->mean_prob[e] = g.mean_prob[e];
        }
        s->router_entropy = NAN;
        s->aux_switch = g.aux_switch;
        s->aux_z = g.aux_z;
        s->aux_total = g.aux_total;
        d->shown[i] = s;
    }
    moe_model_set_layer_stats(model, d->n_moe ? d->shown : NULL);
    return MOE_OK;
}

moe_status train_device_step(train_device *d, moe_model *model, train_task *task, moe_rng *data_rng,
                             float lr, double *ce, double *aux, double *grad_norm,
                             long *real_tokens) {
    const moe_train_config *t = &d->cfg->train;
    *ce = *aux = *grad_norm = 0;
    *real_tokens = 0;
    moe_status st = gpt_cuda_zero_grads(d->gpu);
    for (int micro = 0; micro < t->grad_accum && st == MOE_OK; micro++) {
        const moe_batch *b = task_train_batch(task, data_rng);
        st = gpt_cuda_forward(d->gpu, b->tokens, b->targets, b->B, b->T, 1);
        if (st == MOE_OK) st = gpt_cuda_backward(d->gpu, 1.0f / (float)t->grad_accum);
        double c = 0, a = 0;
        /* reading the loss waits for this micro-batch: the next batch is
         * prepared on the host while nothing runs on the GPU (docs/cuda.md) */
        if (st == MOE_OK) st = gpt_cuda_read_loss(d->gpu, &c, &a);
        *ce += c / t->grad_accum;
        *aux += a / t->grad_accum;
        *real_tokens += task->real_tokens;
    }
    if (st != MOE_OK) return st;
    d->dirty = 1;
    if (!isfinite(*ce + *aux)) return MOE_OK; /* the caller stops; weights are not needed */
    st = gpt_cuda_optim_step(d->gpu, &t->optim, lr, t->grad_clip);
    if (st == MOE_OK) st = gpt_cuda_read_grad_norm(d->gpu, grad_norm);
    if (st == MOE_OK) st = read_stats(d, model);
    return st;
}

moe_status train_device_sync(train_device *d, moe_model *model, moe_optim *opt) {
    if (!d || !d->dirty) return MOE_OK;
    moe_status st = gpt_cuda_download(d->gpu, model, opt);
    if (st == MOE_OK) d->dirty = 0;
    return st;
}

#else /* built without the CUDA backend */

struct train_device {
    int unused;
};

moe_status train_device_check(const moe_run_config *cfg) {
    if (strcmp(cfg->train.device, "cuda") != 0) return MOE_OK;
    return moe_error(MOE_ERR_UNSUPPORTED,
                     "train.device cuda: this libmoe was built without the CUDA backend (nvcc was "
                     "not found at build time); rebuild with the CUDA toolkit or use cpu");
}

moe_status train_device_open(train_device **out, const moe_run_config *cfg, const moe_model *model,
                             const moe_optim *opt) {
    (void)model, (void)opt;
    *out = NULL;
    return train_device_check(cfg);
}

void train_device_close(train_device *d) {
    (void)d;
}

const char *train_device_name(const train_device *d) {
    (void)d;
    return "cpu";
}

moe_status train_device_step(train_device *d, moe_model *model, train_task *task, moe_rng *data_rng,
                             float lr, double *ce, double *aux, double *grad_norm,
                             long *real_tokens) {
    (void)d, (void)model, (void)task, (void)data_rng, (void)lr;
    *ce = *aux = *grad_norm = 0;
    *real_tokens = 0;
    return moe_error(MOE_ERR_UNSUPPORTED, "train.device cuda: built without the CUDA backend");
}

moe_status train_device_sync(train_device *d, moe_model *model, moe_optim *opt) {
    (void)d, (void)model, (void)opt;
    return MOE_OK;
}

#endif
