/* The GPU transformer: support check, device memory, parameter and
 * optimizer transfers, AdamW step and the synchronising reads. */
#include "models/cuda/gpt_cuda_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Layer l has a MoE FFN (gpt_block_is_moe in gpt.c). */
static int block_is_moe(const moe_model_config *c, int l) {
    return c->moe_every > 0 && c->moe.n_experts > 0 && (l + 1) % c->moe_every == 0;
}

static moe_status unsupported(const char *key, const char *what) {
    return moe_error(MOE_ERR_UNSUPPORTED,
                     "%s: the GPU transformer %s; change %s or train on the CPU", key, what, key);
}

moe_status gpt_cuda_supported(const moe_model_config *c) {
    if (c->family != MOE_FAMILY_TRANSFORMER)
        return unsupported("model.family", "is the transformer family only");
    if (c->bidirectional)
        return unsupported("model.bidirectional", "is a causal decoder only (no encoder)");
    if (c->n_classes > 0)
        return unsupported("model.n_classes", "has no classifier head (LM head only)");
    if (c->post_ln) return unsupported("model.post_ln", "has pre-norm blocks only");
    if (c->dropout > 0) return unsupported("model.dropout", "has no dropout (use 0)");
    if (c->pos != MOE_POS_LEARNED && c->pos != MOE_POS_ROPE)
        return unsupported("model.pos", "has learned or rotary positions only (no sinusoidal)");
    if (c->norm != MOE_NORM_LAYERNORM && c->norm != MOE_NORM_RMSNORM)
        return unsupported("model.norm", "has LayerNorm or RMSNorm only");
    if (c->n_head < 1 || c->n_kv_head < 1 || c->d_model < 1 || c->d_model % c->n_head ||
        c->n_head % c->n_kv_head)
        return moe_error(MOE_ERR_INVALID, "model: d_model, n_head and n_kv_head must be "
                                          "positive, n_head | d_model and n_kv_head | n_head");
    int hd = c->d_model / c->n_head;
    if (hd > 128 || hd % 8)
        return unsupported("model.n_head",
                           "needs a head dim (d_model / n_head) that is a multiple of 8 and "
                           "at most 128 (fused attention)");
    if (sizeof(moe_real) != sizeof(float))
        return moe_error(MOE_ERR_UNSUPPORTED, "the GPU transformer needs the fp32 build");
    int any_moe = 0;
    for (int l = 0; l < c->n_layer; l++) any_moe |= block_is_moe(c, l);
    if (any_moe) {
        moe_layer_config e = c->moe;
        e.d_model = c->d_model;
        e.fallback = e.fallback_expert >= 0; /* as gpt_create */
        moe_status st = moe_layer_cuda_supported(&e);
        if (st != MOE_OK) return st;
        /* each GPU layer keeps the temperature it was created with */
        if (c->temperature_schedule != MOE_TEMP_CONSTANT)
            return unsupported("model.temperature_schedule",
                               "keeps the router temperature constant (no annealing)");
    }
    return MOE_OK;
}

/* A device buffer remembered for destroy. */
static moe_status dalloc(gpt_cuda *g, void **p, size_t bytes) {
    *p = NULL;
    if (g->n_allocs == g->cap_allocs) {
        int cap = g->cap_allocs ? 2 * g->cap_allocs : 64;
        void **a = realloc(g->allocs, (size_t)cap * sizeof *a);
        if (!a) return moe_error(MOE_ERR_NOMEM, "gpt_cuda: out of memory");
        g->allocs = a;
        g->cap_allocs = cap;
    }
    moe_status st = moe_cuda_alloc(g->ctx, p, bytes ? bytes : 16);
    if (st != MOE_OK) return st;
    g->allocs[g->n_allocs++] = *p;
    return MOE_OK;
}

#define DALLOC(ptr, bytes)                                                                         \
    do {                                                                                           \
        void *p_;                                                                                  \
        if ((st = dalloc(g, &p_, (size_t)(bytes))) != MOE_OK) goto fail;                           \
        (ptr) = p_;                                                                                \
    } while (0)

/* Offset of a named tensor, or -1. */
static long find(const moe_param_table *t, const char *name) {
    int i = moe_params_find(t, name);
    return i < 0 ? -1 : (long)t->tensors[i].offset;
}

static moe_status bind_offsets(gpt_cuda *g, const moe_param_table *t) {
    gpt_cuda_off *o = &g->off;
    char n[MOE_MAX_NAME];
    o->wte = find(t, "model.embed_tokens.weight");
    o->wpe = find(t, "model.embed_positions.weight");
    o->lnf_w = find(t, "model.norm.weight");
    o->lnf_b = find(t, "model.norm.bias");
    o->lm_head = g->cfg.tied_embeddings ? o->wte : find(t, "lm_head.weight");
    if (o->wte < 0 || o->lnf_w < 0 || o->lm_head < 0 ||
        (g->cfg.pos == MOE_POS_LEARNED) != (o->wpe >= 0))
        return moe_error(MOE_ERR_INVALID, "gpt_cuda: the CPU model's table lacks a tensor");
    for (int l = 0; l < g->L; l++) {
        gpt_cuda_block_off *b = &o->blocks[l];
#define F_(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, l), find(t, n))
        b->ln1_w = F_("input_layernorm.weight");
        b->ln1_b = F_("input_layernorm.bias");
        b->qkv_w = F_("self_attn.qkv_proj.weight");
        b->qkv_b = F_("self_attn.qkv_proj.bias");
        b->o_w = F_("self_attn.o_proj.weight");
        b->o_b = F_("self_attn.o_proj.bias");
        b->ln2_w = F_("post_attention_layernorm.weight");
        b->ln2_b = F_("post_attention_layernorm.bias");
        b->gate = F_("block_sparse_moe.gate.weight");
        b->ew1 = F_("block_sparse_moe.experts.w1");
        b->ew3 = F_("block_sparse_moe.experts.w3");
        b->ew2 = F_("block_sparse_moe.experts.w2");
        b->w1 = F_("mlp.w1.weight");
        b->w3 = F_("mlp.w3.weight");
        b->w2 = F_("mlp.w2.weight");
#undef F_
        int moe = g->block_is_moe[l];
        if (b->ln1_w < 0 || b->qkv_w < 0 || b->o_w < 0 || b->ln2_w < 0 ||
            (moe && (b->gate < 0 || b->ew1 < 0 || b->ew2 < 0)) ||
            (!moe && (b->w1 < 0 || b->w2 < 0)))
            return moe_error(MOE_ERR_INVALID, "gpt_cuda: block %d of the CPU table is incomplete",
                             l);
    }
    return MOE_OK;
}

moe_status gpt_cuda_create(gpt_cuda **out, moe_cuda *ctx, const moe_model *cpu, int B_max,
                           int T_max, moe_dtype dt) {
    *out = NULL;
    const moe_model_config *c = moe_model_config_of(cpu);
    moe_status st = gpt_cuda_supported(c);
    if (st != MOE_OK) return st;
    if (B_max < 1 || T_max < 1 || T_max > c->max_seq_len || (dt != MOE_DT_F32 && dt != MOE_DT_BF16))
        return moe_error(MOE_ERR_INVALID,
                         "gpt_cuda_create: B_max = %d, T_max = %d; need >= 1 and T_max <= "
                         "model.max_seq_len = %d, dt fp32 or bf16",
                         B_max, T_max, c->max_seq_len);
    if ((long)B_max * T_max * (long)c->vocab_size >= 2147483647L)
        return moe_error(MOE_ERR_INVALID, "gpt_cuda_create: B_max x T_max x vocab_size logits "
                                          "exceed 2^31 elements");
    gpt_cuda *g = calloc(1, sizeof *g);
    if (!g) return moe_error(MOE_ERR_NOMEM, "gpt_cuda: out of memory");
    g->ctx = ctx;
    g->cfg = *c;
    g->cfg.moe.d_model = c->d_model;
    g->cfg.moe.fallback = c->moe.fallback_expert >= 0;
    g->dt = dt;
    g->dsz = moe_dtype_size(dt);
    g->B_max = B_max;
    g->T_max = T_max;
    g->D = c->d_model;
    g->V = c->vocab_size;
    g->L = c->n_layer;
    g->H = c->n_head;
    g->KVH = c->n_kv_head;
    g->hd = c->d_model / c->n_head;
    g->Q = (g->H + 2 * g->KVH) * g->hd;
    g->F = c->d_ff;
    const moe_param_table *t = moe_model_table(cpu);
    g->total = t->total;
    g->block_is_moe = calloc((size_t)g->L, sizeof(int));
    g->moe_block = calloc((size_t)g->L, sizeof(int));
    g->off.blocks = calloc((size_t)g->L, sizeof *g->off.blocks);
    g->acts = calloc((size_t)g->L, sizeof *g->acts);
    g->xs = calloc((size_t)g->L + 1, sizeof *g->xs);
    long NM = (long)B_max * T_max;
    g->h_ids = malloc((size_t)NM * sizeof *g->h_ids);
    if (!g->block_is_moe || !g->moe_block || !g->off.blocks || !g->acts || !g->xs || !g->h_ids) {
        st = moe_error(MOE_ERR_NOMEM, "gpt_cuda: out of memory");
        goto fail;
    }
    for (int l = 0; l < g->L; l++) {
        g->block_is_moe[l] = block_is_moe(&g->cfg, l);
        if (g->block_is_moe[l]) g->moe_block[g->n_moe++] = l;
    }
    if ((st = bind_offsets(g, t)) != MOE_OK) goto fail;

    /* parameters, gradients, optimizer state */
    size_t n = g->total;
    DALLOC(g->master, n * sizeof(float));
    if ((st = moe_cuda_upload(ctx, g->master, moe_model_params((moe_model *)cpu),
                              n * sizeof(float))) != MOE_OK)
        goto fail;
    if (dt == MOE_DT_F32) {
        g->copy = g->master;
    } else {
        DALLOC(g->copy, n * g->dsz);
        if ((st = moe_cuda_cast(ctx, g->copy, dt, g->master, MOE_DT_F32, (long)n)) != MOE_OK)
            goto fail;
    }
    DALLOC(g->grads, n * sizeof(float));
    DALLOC(g->adam_m, n * sizeof(float));
    DALLOC(g->adam_v, n * sizeof(float));
    DALLOC(g->sumsq, sizeof(float));
    if ((st = moe_cuda_zero(ctx, g->grads, n * sizeof(float))) != MOE_OK ||
        (st = moe_cuda_zero(ctx, g->adam_m, n * sizeof(float))) != MOE_OK ||
        (st = moe_cuda_zero(ctx, g->adam_v, n * sizeof(float))) != MOE_OK)
        goto fail;

    /* activations for B_max x T_max tokens */
    const size_t ND = (size_t)NM * g->D * g->dsz, NQ = (size_t)NM * g->Q * g->dsz;
    const size_t NF = (size_t)NM * (g->F > 0 ? g->F : 1) * g->dsz, N4 = (size_t)NM * 4;
    const int glu = c->ffn_act == MOE_ACT_SWIGLU;
    DALLOC(g->tokens, N4);
    DALLOC(g->targets, N4);
    DALLOC(g->pos_ids, N4);
    for (int l = 0; l <= g->L; l++) DALLOC(g->xs[l], ND);
    for (int l = 0; l < g->L; l++) {
        gpt_cuda_block_acts *a = &g->acts[l];
        DALLOC(a->ln1, ND);
        DALLOC(a->ln1_mean, N4);
        DALLOC(a->ln1_rstd, N4);
        DALLOC(a->qkv, NQ);
        DALLOC(a->lse, (size_t)B_max * g->H * T_max * 4);
        DALLOC(a->attn, ND);
        DALLOC(a->x_mid, ND);
        DALLOC(a->ln2, ND);
        DALLOC(a->ln2_mean, N4);
        DALLOC(a->ln2_rstd, N4);
        if (g->block_is_moe[l]) {
            if ((st = moe_layer_cuda_workspace_create(&a->ws, ctx, &g->cfg.moe, (int)NM, dt)) !=
                MOE_OK)
                goto fail;
        } else {
            DALLOC(a->h1, NF);
            if (glu) DALLOC(a->h3, NF);
            DALLOC(a->hact, NF);
        }
    }
    DALLOC(g->lnf, ND);
    DALLOC(g->lnf_mean, N4);
    DALLOC(g->lnf_rstd, N4);
    DALLOC(g->logits, (size_t)NM * g->V * g->dsz);
    DALLOC(g->loss, sizeof(float));
    DALLOC(g->count, sizeof(int));
    g->ce_scratch_bytes = moe_cuda_crossentropy_scratch((int)NM);
    DALLOC(g->ce_scratch, g->ce_scratch_bytes);
    DALLOC(g->dx, ND);
    DALLOC(g->dln, ND);
    DALLOC(g->dnorm, ND);
    DALLOC(g->dtmp, ND);
    DALLOC(g->dqkv, NQ);
    if (g->n_moe < g->L) {
        DALLOC(g->dh, NF);
        DALLOC(g->da, NF);
        if (glu) DALLOC(g->db, NF);
    }
    g->att_scratch_bytes = moe_cuda_attention_scratch(B_max, T_max, g->H, g->KVH, g->hd);
    DALLOC(g->att_scratch, g->att_scratch_bytes);
    if ((st = moe_cuda_sync(ctx)) != MOE_OK) goto fail;
    *out = g;
    return MOE_OK;
fail:
    gpt_cuda_destroy(g);
    return st;
}

void gpt_cuda_destroy(gpt_cuda *g) {
    if (!g) return;
    if (g->acts)
        for (int l = 0; l < g->L; l++) moe_layer_cuda_workspace_destroy(g->acts[l].ws);
    for (int i = 0; i < g->n_allocs; i++) moe_cuda_free(g->ctx, g->allocs[i]);
    free(g->allocs);
    free(g->block_is_moe);
    free(g->moe_block);
    free(g->off.blocks);
    free(g->acts);
    free(g->xs);
    free(g->h_ids);
    free(g);
}

moe_status gpt_cuda_norm_forward(gpt_cuda *g, void *out, float *mean, float *rstd, const void *inp,
                                 const float *w, const float *b, int N) {
    const moe_model_config *c = &g->cfg;
    if (c->norm == MOE_NORM_LAYERNORM)
        return moe_cuda_layernorm_forward(g->ctx, g->dt, out, mean, rstd, inp, w, b, N, g->D,
                                          c->norm_eps);
    return moe_cuda_rmsnorm_forward(g->ctx, g->dt, out, rstd, inp, w, N, g->D, c->norm_eps);
}

moe_status gpt_cuda_norm_backward(gpt_cuda *g, void *dinp, float *dw, float *db, const void *dout,
                                  const void *inp, const float *w, const float *mean,
                                  const float *rstd, int N) {
    if (g->cfg.norm == MOE_NORM_LAYERNORM)
        return moe_cuda_layernorm_backward(g->ctx, g->dt, dinp, dw, db, dout, inp, w, mean, rstd, N,
                                           g->D);
    return moe_cuda_rmsnorm_backward(g->ctx, g->dt, dinp, dw, dout, inp, w, rstd, N, g->D);
}

moe_status gpt_cuda_zero_grads(gpt_cuda *g) {
    return moe_cuda_zero(g->ctx, g->grads, g->total * sizeof(float));
}

/* ---- AdamW ---------------------------------------------------------------- */

moe_status gpt_cuda_optim_step(gpt_cuda *g, const moe_optim_config *oc, float lr, float grad_clip) {
    if (oc->kind != MOE_OPT_ADAMW)
        return moe_error(MOE_ERR_UNSUPPORTED,
                         "train.optim.kind = %s: the GPU transformer trains with adamw only",
                         moe_optim_name(oc->kind));
    /* the transformer freezes nothing (moe_model_optimizer_skips is 0 for
     * every tensor): one update over the whole block, as the CPU trainer */
    moe_status st = moe_cuda_sumsq(g->ctx, g->sumsq, g->grads, (long)g->total);
    if (st != MOE_OK) return st;
    moe_cuda_adamw h = {lr,
                        oc->beta1,
                        oc->beta2,
                        oc->eps,
                        oc->weight_decay,
                        (int)(g->step + 1),
                        grad_clip > 0 ? grad_clip : 0};
    st = moe_cuda_adamw_step(g->ctx, g->master, g->grads, g->adam_m, g->adam_v,
                             g->dt == MOE_DT_F32 ? NULL : g->copy, g->dt, (long)g->total, &h,
                             g->sumsq);
    if (st != MOE_OK) return st;
    g->step++;
    g->has_norm = 1;
    return MOE_OK;
}

/* ---- reads (synchronising) ------------------------------------------------- */

moe_status gpt_cuda_read_loss(gpt_cuda *g, double *ce, double *aux) {
    if (!g->has_forward || !g->has_targets)
        return moe_error(MOE_ERR_INVALID, "gpt_cuda_read_loss: needs a forward with targets");
    float v = 0;
    moe_status st = moe_cuda_download(g->ctx, &v, g->loss, sizeof v);
    if (st != MOE_OK) return st;
    double sum = 0;
    for (int i = 0; i < g->n_moe; i++) {
        float a = 0;
        st = moe_cuda_download(g->ctx, &a, g->acts[g->moe_block[i]].ws->aux + 2, sizeof a);
        if (st != MOE_OK) return st;
        sum += a;
    }
    if (ce) *ce = v;
    if (aux) *aux = sum;
    return MOE_OK;
}

moe_status gpt_cuda_read_grad_norm(gpt_cuda *g, double *norm) {
    if (!g->has_norm)
        return moe_error(MOE_ERR_INVALID, "gpt_cuda_read_grad_norm: no optim_step yet");
    float s = 0;
    moe_status st = moe_cuda_download(g->ctx, &s, g->sumsq, sizeof s);
    if (st != MOE_OK) return st;
    *norm = sqrt((double)s);
    return MOE_OK;
}

moe_status gpt_cuda_read_logits(gpt_cuda *g, int row0, int n, float *host) {
    int N = g->B * g->T;
    if (!g->has_forward || g->logits_are_grads || row0 < 0 || n < 0 || row0 + n > N)
        return moe_error(MOE_ERR_INVALID,
                         "gpt_cuda_read_logits: rows [%d, %d) of %d, after a forward (before "
                         "backward, which overwrites the logits with their gradient)",
                         row0, row0 + n, g->has_forward ? N : 0);
    size_t count = (size_t)n * g->V;
    const void *src = gpt_cuda_at(g, g->logits, (long)row0 * g->V);
    if (g->dt == MOE_DT_F32) return moe_cuda_download(g->ctx, host, src, count * sizeof(float));
    uint16_t *tmp = malloc(count * 2 + 2);
    if (!tmp) return moe_error(MOE_ERR_NOMEM, "gpt_cuda_read_logits: out of memory");
    moe_status st = moe_cuda_download(g->ctx, tmp, src, count * 2);
    if (st == MOE_OK)
        for (size_t i = 0; i < count; i++) host[i] = moe_bf16_to_float(tmp[i]);
    free(tmp);
    return st;
}

int gpt_cuda_moe_layers(const gpt_cuda *g) {
    return g->n_moe;
}

moe_status gpt_cuda_layer_stats(gpt_cuda *g, int i, moe_layer_cuda_stats *out) {
    if (i < 0 || i >= g->n_moe || !g->has_forward)
        return moe_error(MOE_ERR_INVALID,
                         "gpt_cuda_layer_stats: MoE layer %d of %d, after a "
                         "forward",
                         i, g->n_moe);
    return moe_layer_cuda_stats_read(g->acts[g->moe_block[i]].ws, out);
}

const moe_layer_cuda_ws *gpt_cuda_layer_ws(const gpt_cuda *g, int i) {
    return i >= 0 && i < g->n_moe ? g->acts[g->moe_block[i]].ws : NULL;
}

moe_status gpt_cuda_read_grads(gpt_cuda *g, float *host) {
    return moe_cuda_download(g->ctx, host, g->grads, g->total * sizeof(float));
}

/* ---- transfers ------------------------------------------------------------- */

static moe_status check_optim(const gpt_cuda *g, const moe_optim *opt) {
    if (opt->cfg.kind != MOE_OPT_ADAMW || opt->n != g->total || opt->n_slots != 2 || !opt->state)
        return moe_error(MOE_ERR_INVALID,
                         "gpt_cuda: the optimizer must be adamw over the model's %zu parameters",
                         g->total);
    return MOE_OK;
}

moe_status gpt_cuda_download(gpt_cuda *g, moe_model *cpu, moe_optim *opt) {
    if (moe_model_table(cpu)->total != g->total)
        return moe_error(MOE_ERR_INVALID,
                         "gpt_cuda_download: the CPU model has %zu parameters, "
                         "the GPU model %zu",
                         moe_model_table(cpu)->total, g->total);
    moe_status st = MOE_OK;
    if (opt && (st = check_optim(g, opt)) != MOE_OK) return st;
    st = moe_cuda_download(g->ctx, moe_model_params(cpu), g->master, g->total * sizeof(float));
    if (st != MOE_OK || !opt) return st;
    if ((st = moe_cuda_download(g->ctx, opt->state, g->adam_m, g->total * sizeof(float))) != MOE_OK)
        return st;
    st = moe_cuda_download(g->ctx, opt->state + g->total, g->adam_v, g->total * sizeof(float));
    if (st == MOE_OK) opt->step = g->step;
    return st;
}

moe_status gpt_cuda_upload_optim(gpt_cuda *g, const moe_optim *opt) {
    moe_status st = check_optim(g, opt);
    if (st != MOE_OK) return st;
    if ((st = moe_cuda_upload(g->ctx, g->adam_m, opt->state, g->total * sizeof(float))) != MOE_OK ||
        (st = moe_cuda_upload(g->ctx, g->adam_v, opt->state + g->total,
                              g->total * sizeof(float))) != MOE_OK)
        return st;
    g->step = opt->step;
    return moe_cuda_sync(g->ctx); /* the host state may change once we return */
}
