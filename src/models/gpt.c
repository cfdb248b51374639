/* Decoder-only transformer: parameter table, allocation, initialisation. */
#include "models/gpt_internal.h"
#include "ops/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gpt_head_dim(const moe_model_config *c) {
    return c->d_model / c->n_head;
}

int gpt_block_is_moe(const moe_model_config *c, int l) {
    return c->moe_every > 0 && c->moe.n_experts > 0 && (l + 1) % c->moe_every == 0;
}

/* Tensor registration, remembered as indices so both blocks can be bound. */
typedef struct reg {
    moe_param_table *t;
    moe_status st;
} reg;

static int add(reg *r, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    if (r->st != MOE_OK) return -1;
    int64_t shape[3] = {d0, d1, d2};
    int i = moe_params_add(r->t, name, ndim, shape);
    if (i < 0) r->st = MOE_ERR_INVALID;
    return i;
}

static moe_status check_config(const moe_model_config *c) {
    if (c->vocab_size < 2 || c->n_layer < 1 || c->d_model < 1 || c->n_head < 1 ||
        c->n_kv_head < 1 || c->max_seq_len < 1)
        return moe_error(MOE_ERR_INVALID, "model: vocab_size, n_layer, d_model, n_head, "
                                          "n_kv_head and max_seq_len must be positive");
    if (c->d_model % c->n_head)
        return moe_error(MOE_ERR_INVALID,
                         "model.d_model = %d is not divisible by model.n_head = %d: pick a "
                         "head count that divides the width",
                         c->d_model, c->n_head);
    if (c->n_head % c->n_kv_head)
        return moe_error(MOE_ERR_INVALID,
                         "model.n_head = %d is not a multiple of model.n_kv_head = %d", c->n_head,
                         c->n_kv_head);
    if (c->n_classes < 0 || (unsigned)c->pool > MOE_POOL_MEAN)
        return moe_error(MOE_ERR_INVALID,
                         "model.n_classes must be >= 0 and model.pool cls or mean");
    if (c->pos == MOE_POS_SINUSOIDAL && c->d_model % 2)
        return moe_error(MOE_ERR_INVALID,
                         "model.pos = sinusoidal needs an even model.d_model (got %d)", c->d_model);
    if (c->pos == MOE_POS_ROPE && gpt_head_dim(c) % 2)
        return moe_error(MOE_ERR_INVALID,
                         "model.pos = rope needs an even head dim (d_model / "
                         "n_head = %d)",
                         gpt_head_dim(c));
    int any_dense = 0;
    for (int l = 0; l < c->n_layer; l++) any_dense |= !gpt_block_is_moe(c, l);
    if (any_dense && c->d_ff < 1)
        return moe_error(MOE_ERR_INVALID, "model.d_ff must be positive for dense layers");
    if (c->moe_every > 0) {
        moe_layer_config e = c->moe;
        e.d_model = c->d_model; /* the layer's width is the model's */
        e.fallback = e.fallback_expert >= 0;
        return moe_layer_config_check(&e);
    }
    return MOE_OK;
}

/* Registers every tensor; fills idx[] in the order bind() reads them. */
static moe_status build_table(gpt_model *m) {
    const moe_model_config *c = &m->cfg;
    const moe_layer_config *e = &c->moe;
    int D = c->d_model, hd = gpt_head_dim(c), F = c->d_ff;
    int ln_bias = c->norm == MOE_NORM_LAYERNORM;
    reg r = {&m->table, MOE_OK};
    char n[MOE_MAX_NAME];
    m->qkv_dim = (c->n_head + 2 * c->n_kv_head) * hd;
    add(&r, "model.embed_tokens.weight", 2, c->vocab_size, D, 0);
    if (c->pos == MOE_POS_LEARNED) add(&r, "model.embed_positions.weight", 2, c->max_seq_len, D, 0);
    for (int l = 0; l < c->n_layer; l++) {
#define NAME(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, l), n)
        add(&r, NAME("input_layernorm.weight"), 1, D, 0, 0);
        if (ln_bias) add(&r, NAME("input_layernorm.bias"), 1, D, 0, 0);
        add(&r, NAME("self_attn.qkv_proj.weight"), 2, m->qkv_dim, D, 0);
        if (c->attn_bias) add(&r, NAME("self_attn.qkv_proj.bias"), 1, m->qkv_dim, 0, 0);
        add(&r, NAME("self_attn.o_proj.weight"), 2, D, D, 0);
        if (c->attn_bias) add(&r, NAME("self_attn.o_proj.bias"), 1, D, 0, 0);
        add(&r, NAME("post_attention_layernorm.weight"), 1, D, 0, 0);
        if (ln_bias) add(&r, NAME("post_attention_layernorm.bias"), 1, D, 0, 0);
        if (gpt_block_is_moe(c, l)) {
            int E = e->n_experts, EF = e->d_ff, glu = e->act == MOE_ACT_SWIGLU;
            add(&r, NAME("block_sparse_moe.gate.weight"), 2, E, D, 0);
            if (e->noisy) add(&r, NAME("block_sparse_moe.noise.weight"), 2, E, D, 0);
            add(&r, NAME("block_sparse_moe.experts.w1"), 3, E, EF, D);
            if (e->expert_bias) add(&r, NAME("block_sparse_moe.experts.b1"), 2, E, EF, 0);
            if (glu) add(&r, NAME("block_sparse_moe.experts.w3"), 3, E, EF, D);
            if (glu && e->expert_bias) add(&r, NAME("block_sparse_moe.experts.b3"), 2, E, EF, 0);
            add(&r, NAME("block_sparse_moe.experts.w2"), 3, E, D, EF);
            if (e->expert_bias) add(&r, NAME("block_sparse_moe.experts.b2"), 2, E, D, 0);
            if (e->shared_d_ff > 0) {
                add(&r, NAME("block_sparse_moe.shared_expert.w1"), 2, e->shared_d_ff, D, 0);
                if (glu)
                    add(&r, NAME("block_sparse_moe.shared_expert.w3"), 2, e->shared_d_ff, D, 0);
                add(&r, NAME("block_sparse_moe.shared_expert.w2"), 2, D, e->shared_d_ff, 0);
            }
        } else {
            add(&r, NAME("mlp.w1.weight"), 2, F, D, 0);
            if (c->ffn_act == MOE_ACT_SWIGLU) add(&r, NAME("mlp.w3.weight"), 2, F, D, 0);
            add(&r, NAME("mlp.w2.weight"), 2, D, F, 0);
        }
#undef NAME
    }
    add(&r, "model.norm.weight", 1, D, 0, 0);
    if (ln_bias) add(&r, "model.norm.bias", 1, D, 0, 0);
    if (!c->tied_embeddings) add(&r, "lm_head.weight", 2, c->vocab_size, D, 0);
    if (c->n_classes > 0) {
        add(&r, "classifier.weight", 2, c->n_classes, D, 0);
        add(&r, "classifier.bias", 1, c->n_classes, 0, 0);
    }
    return r.st;
}

/* Pointer to a named tensor inside base, or NULL when not registered. */
static moe_real *at(const gpt_model *m, moe_real *base, const char *name) {
    int i = moe_params_find(&m->table, name);
    return i < 0 ? NULL : base + m->table.tensors[i].offset;
}

static void bind(const gpt_model *m, gpt_w *w, moe_real *base) {
    const moe_model_config *c = &m->cfg;
    char n[MOE_MAX_NAME];
    w->wte = at(m, base, "model.embed_tokens.weight");
    w->wpe = at(m, base, "model.embed_positions.weight");
    w->lnf_w = at(m, base, "model.norm.weight");
    w->lnf_b = at(m, base, "model.norm.bias");
    w->lm_head = c->tied_embeddings ? w->wte : at(m, base, "lm_head.weight");
    w->cls_w = at(m, base, "classifier.weight");
    w->cls_b = at(m, base, "classifier.bias");
    for (int l = 0; l < c->n_layer; l++) {
        gpt_block_w *b = &w->blocks[l];
#define T_(fmt) (snprintf(n, sizeof n, "model.layers.%d." fmt, l), at(m, base, n))
        b->ln1_w = T_("input_layernorm.weight");
        b->ln1_b = T_("input_layernorm.bias");
        b->qkv_w = T_("self_attn.qkv_proj.weight");
        b->qkv_b = T_("self_attn.qkv_proj.bias");
        b->o_w = T_("self_attn.o_proj.weight");
        b->o_b = T_("self_attn.o_proj.bias");
        b->ln2_w = T_("post_attention_layernorm.weight");
        b->ln2_b = T_("post_attention_layernorm.bias");
        b->moe.gate = T_("block_sparse_moe.gate.weight");
        b->moe.noise = T_("block_sparse_moe.noise.weight");
        b->moe.w1 = T_("block_sparse_moe.experts.w1");
        b->moe.b1 = T_("block_sparse_moe.experts.b1");
        b->moe.w3 = T_("block_sparse_moe.experts.w3");
        b->moe.b3 = T_("block_sparse_moe.experts.b3");
        b->moe.w2 = T_("block_sparse_moe.experts.w2");
        b->moe.b2 = T_("block_sparse_moe.experts.b2");
        b->moe.shared_w1 = T_("block_sparse_moe.shared_expert.w1");
        b->moe.shared_w3 = T_("block_sparse_moe.shared_expert.w3");
        b->moe.shared_w2 = T_("block_sparse_moe.shared_expert.w2");
        b->w1 = T_("mlp.w1.weight");
        b->w3 = T_("mlp.w3.weight");
        b->w2 = T_("mlp.w2.weight");
#undef T_
    }
}

/* GPT-2 initialisation: N(0, 0.02) for matrices, residual projections
 * (o_proj, w2) scaled by 1/sqrt(2L), norms 1, biases 0. */
static void init_weights(gpt_model *m, uint64_t seed) {
    moe_rng rng;
    moe_rng_seed(&rng, seed);
    const float std = 0.02f, resid_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (int i = 0; i < m->table.count; i++) {
        const moe_tensor_info *t = &m->table.tensors[i];
        moe_real *p = m->params + t->offset;
        const char *name = t->name;
        int is_norm = strstr(name, "norm.") != NULL;
        int is_bias = strstr(name, ".bias") != NULL || strstr(name, ".b1") != NULL ||
                      strstr(name, ".b2") != NULL || strstr(name, ".b3") != NULL;
        int is_resid = strstr(name, "o_proj.weight") || strstr(name, ".w2");
        for (size_t j = 0; j < t->numel; j++) {
            if (is_norm && !is_bias)
                p[j] = 1;
            else if (is_bias)
                p[j] = 0;
            else
                p[j] = (is_resid ? resid_std : std) * moe_rng_normal(&rng);
        }
    }
}

moe_status gpt_create(gpt_model **out, const moe_model_config *cfg, uint64_t seed) {
    *out = NULL;
    moe_status st = check_config(cfg);
    if (st != MOE_OK) return st;
    gpt_model *m = calloc(1, sizeof *m);
    if (!m) return moe_error(MOE_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->cfg.moe.d_model = cfg->d_model;
    m->cfg.moe.fallback = cfg->moe.fallback_expert >= 0; /* the config key's -1 is off */
    int L = cfg->n_layer;
    m->w.blocks = calloc((size_t)L, sizeof *m->w.blocks);
    m->g.blocks = calloc((size_t)L, sizeof *m->g.blocks);
    m->block_is_moe = calloc((size_t)L, sizeof(int));
    m->moe_block = calloc((size_t)L, sizeof(int));
    if (!m->w.blocks || !m->g.blocks || !m->block_is_moe || !m->moe_block) goto nomem;
    for (int l = 0; l < L; l++) {
        m->block_is_moe[l] = gpt_block_is_moe(&m->cfg, l);
        if (m->block_is_moe[l]) m->moe_block[m->n_moe++] = l;
    }
    moe_params_init(&m->table);
    st = build_table(m);
    if (st != MOE_OK) goto fail;
    size_t bytes = (m->table.total * sizeof(moe_real) + 63) / 64 * 64;
    m->params = aligned_alloc(64, bytes);
    m->grads = aligned_alloc(64, bytes);
    if (!m->params || !m->grads) goto nomem;
    memset(m->params, 0, bytes);
    memset(m->grads, 0, bytes);
    bind(m, &m->w, m->params);
    bind(m, &m->g, m->grads);
    init_weights(m, seed);
    if (cfg->pos == MOE_POS_SINUSOIDAL) {
        m->sinusoid = malloc((size_t)cfg->max_seq_len * cfg->d_model * sizeof *m->sinusoid);
        if (!m->sinusoid) goto nomem;
        sinusoid_positions(m->sinusoid, cfg->max_seq_len, cfg->d_model);
    }
    *out = m;
    return MOE_OK;
nomem:
    st = moe_error(MOE_ERR_NOMEM, "model: cannot allocate parameters");
fail:
    gpt_free(m);
    return st;
}

void gpt_free(gpt_model *m) {
    if (!m) return;
    moe_params_free(&m->table);
    free(m->params);
    free(m->grads);
    free(m->w.blocks);
    free(m->g.blocks);
    free(m->block_is_moe);
    free(m->moe_block);
    free(m->sinusoid);
    free(m);
}

const moe_real *gpt_logits(const gpt_model *m) {
    return m->logits;
}
int gpt_moe_layers(const gpt_model *m) {
    return m->n_moe;
}
const moe_layer_stats *gpt_layer_stats(const gpt_model *m, int i) {
    return (i >= 0 && i < m->n_moe && m->acts) ? m->acts[m->moe_block[i]].stats : NULL;
}
int gpt_moe_layer_index(const gpt_model *m, int i) {
    return m->moe_block[i];
}

size_t gpt_param_count(const gpt_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->table.count; i++) n += m->table.tensors[i].numel;
    return n;
}

size_t gpt_active_param_count(const gpt_model *m) {
    const moe_layer_config *e = &m->cfg.moe;
    size_t n = gpt_param_count(m);
    if (m->n_moe == 0 || e->n_experts <= e->top_k) return n;
    size_t per_expert = (size_t)e->d_ff * e->d_model * (e->act == MOE_ACT_SWIGLU ? 3 : 2);
    if (e->expert_bias)
        per_expert += (size_t)e->d_ff * (e->act == MOE_ACT_SWIGLU ? 2 : 1) + e->d_model;
    return n - (size_t)m->n_moe * (size_t)(e->n_experts - e->top_k) * per_expert;
}

static double flops_per_token(const gpt_model *m, int T, int experts_per_token);

double gpt_train_flops_per_token(const gpt_model *m, int T) {
    return flops_per_token(m, T, m->cfg.moe.top_k);
}

double gpt_all_experts_flops_per_token(const gpt_model *m, int T) {
    return flops_per_token(m, T, m->cfg.moe.n_experts);
}

static double flops_per_token(const gpt_model *m, int T, int experts_per_token) {
    const moe_model_config *c = &m->cfg;
    const moe_layer_config *e = &c->moe;
    double D = c->d_model, fwd = 0;
    for (int l = 0; l < c->n_layer; l++) {
        fwd += 2.0 * D * m->qkv_dim + 2.0 * D * D; /* projections */
        fwd += 2.0 * 2.0 * T * D;                  /* scores and weighted values (full square) */
        if (m->block_is_moe[l]) {
            int mats = e->act == MOE_ACT_SWIGLU ? 3 : 2;
            fwd += 2.0 * D * e->n_experts; /* router */
            fwd += 2.0 * mats * D * e->d_ff * experts_per_token;
            fwd += 2.0 * mats * D * e->shared_d_ff; /* shared expert */
        } else {
            fwd += 2.0 * (c->ffn_act == MOE_ACT_SWIGLU ? 3 : 2) * D * c->d_ff;
        }
    }
    if (c->n_classes > 0)
        fwd += 2.0 * D * c->n_classes / T; /* the classifier, once per sequence */
    else
        fwd += 2.0 * D * c->vocab_size; /* the LM head, on every token */
    return 3.0 * fwd;
}
