/* Family mlp_moe (seed 002): configuration checks, the parameter table,
 * PyTorch-default initialisation, parameter and FLOP counts, the accessors
 * of the last forward, and the exported family_mlp_moe. Forward, backward
 * and the loss terms live in mlp_moe_forward.c, mlp_moe_backward.c,
 * mlp_moe_loss.c and mlp_moe_diversity.c. */
#include "models/mlp_moe_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static moe_status check_config(const moe_model_config *c) {
    const moe_layer_config *e = &c->moe;
    if (c->input.features < 1)
        return moe_error(MOE_ERR_INVALID,
                         "mlp_moe: model.input.features = %d: set the number "
                         "of input columns (>= 1)",
                         c->input.features);
    if (c->n_classes < 2)
        return moe_error(MOE_ERR_INVALID,
                         "mlp_moe: model.n_classes = %d: the output is a distribution over "
                         "n_classes >= 2 bins",
                         c->n_classes);
    if (c->mlp.hidden < 1)
        return moe_error(MOE_ERR_INVALID, "mlp_moe: model.mlp.hidden = %d: set >= 1",
                         c->mlp.hidden);
    const float w[] = {c->mlp.param_div_weight, c->mlp.output_div_weight, c->mlp.js_weight};
    const char *wn[] = {"param_div_weight", "output_div_weight", "js_weight"};
    for (int i = 0; i < 3; i++)
        if (!(w[i] >= 0) || !isfinite(w[i]))
            return moe_error(MOE_ERR_INVALID,
                             "mlp_moe: model.mlp.%s = %g: set a finite "
                             "weight >= 0",
                             wn[i], (double)w[i]);
    /* Seed 002's router is fixed: softmax over all experts, then top-k. */
    if (e->score != MOE_SCORE_SOFTMAX || e->topk_before_softmax || e->routing != MOE_ROUTE_TOPK)
        return moe_error(MOE_ERR_INVALID,
                         "mlp_moe: the router is softmax over all experts, then top-k: set "
                         "model.moe.score = \"softmax\", topk_before_softmax = false and "
                         "routing = \"topk\"");
    return MOE_OK;
}

/* The router as src/nn/moe sees it. Only cv_coef of the layer's auxiliary
 * coefficients applies (seed 002 has no switch, z or variance loss), and no
 * pair is ever dropped. */
static moe_layer_config router_config(const moe_model_config *c) {
    moe_layer_config r;
    memset(&r, 0, sizeof r);
    r.d_model = c->input.features;
    r.n_experts = c->moe.n_experts;
    r.top_k = c->moe.top_k;
    r.d_ff = c->mlp.hidden;
    r.act = MOE_ACT_RELU;
    r.score = MOE_SCORE_SOFTMAX;
    r.renormalize = c->moe.renormalize;
    r.temperature = c->moe.temperature;
    r.noisy = c->moe.noisy;
    r.capacity_factor = 0; /* dropless */
    r.routing = MOE_ROUTE_TOPK;
    r.fallback = c->moe.fallback_expert >= 0;
    r.fallback_expert = c->moe.fallback_expert;
    r.cv_coef = c->moe.cv_coef;
    return r;
}

static moe_status build_table(mlp_moe *m) {
    const int E = m->E, F = m->F, H = m->H, C = m->C;
    moe_param_table *t = &m->table;
    char n[MOE_MAX_NAME];
    int ok = 1;
#define ADD(name, nd, d0, d1)                                                                      \
    do {                                                                                           \
        int64_t shape_[2] = {(d0), (d1)};                                                          \
        ok = ok && moe_params_add(t, (name), (nd), shape_) >= 0;                                   \
    } while (0)
    ADD("gate.weight", 2, E, F);
    if (m->rcfg.noisy) ADD("gate.noise", 2, E, F);
    for (int e = 0; e < E; e++) {
        snprintf(n, sizeof n, "experts.%d.fc1.weight", e);
        ADD(n, 2, H, F);
        snprintf(n, sizeof n, "experts.%d.fc1.bias", e);
        ADD(n, 1, H, 0);
        snprintf(n, sizeof n, "experts.%d.fc2.weight", e);
        ADD(n, 2, C, H);
        snprintf(n, sizeof n, "experts.%d.fc2.bias", e);
        ADD(n, 1, C, 0);
    }
#undef ADD
    return ok ? MOE_OK : MOE_ERR_INVALID;
}

static moe_real *at(const mlp_moe *m, moe_real *base, const char *name) {
    int i = moe_params_find(&m->table, name);
    return i < 0 ? NULL : base + m->table.tensors[i].offset;
}

static void bind(const mlp_moe *m, mlp_moe_w *w, moe_real *base, moe_real **ptrs) {
    const int E = m->E;
    char n[MOE_MAX_NAME];
    w->gate = at(m, base, "gate.weight");
    w->noise = at(m, base, "gate.noise");
    w->w1 = ptrs;
    w->b1 = ptrs + E;
    w->w2 = ptrs + 2 * E;
    w->b2 = ptrs + 3 * E;
    for (int e = 0; e < E; e++) {
        snprintf(n, sizeof n, "experts.%d.fc1.weight", e);
        w->w1[e] = at(m, base, n);
        snprintf(n, sizeof n, "experts.%d.fc1.bias", e);
        w->b1[e] = at(m, base, n);
        snprintf(n, sizeof n, "experts.%d.fc2.weight", e);
        w->w2[e] = at(m, base, n);
        snprintf(n, sizeof n, "experts.%d.fc2.bias", e);
        w->b2[e] = at(m, base, n);
    }
}

/* U(-b, b) with b = 1/sqrt(fan_in): nn.Linear's default for both weight
 * (kaiming_uniform_ with a = sqrt(5)) and bias. */
static void uniform(moe_real *p, size_t n, int fan_in, moe_rng *r) {
    const double b = 1.0 / sqrt((double)fan_in);
    for (size_t i = 0; i < n; i++) p[i] = (moe_real)(b * (2.0 * moe_rng_uniform(r) - 1.0));
}

/* The gate and noise weights start at zero (the seed's w_gate, w_noise), so
 * the first softmax is uniform; experts as nn.Linear, in table order. */
static void init_weights(mlp_moe *m, uint64_t seed) {
    moe_rng r;
    moe_rng_seed(&r, seed);
    const int F = m->F, H = m->H, C = m->C;
    for (int e = 0; e < m->E; e++) {
        uniform(m->p.w1[e], (size_t)H * F, F, &r);
        uniform(m->p.b1[e], (size_t)H, F, &r);
        uniform(m->p.w2[e], (size_t)C * H, H, &r);
        uniform(m->p.b2[e], (size_t)C, H, &r);
    }
}

static void destroy(void *impl) {
    mlp_moe *m = impl;
    if (!m) return;
    moe_params_free(&m->table);
    free(m->params);
    free(m->grads);
    free(m->ptrs);
    free(m);
}

static moe_status create(void **impl, const moe_model_config *cfg, uint64_t seed) {
    *impl = NULL;
    if (!cfg) return moe_error(MOE_ERR_INVALID, "mlp_moe: NULL config");
    moe_status st = check_config(cfg);
    if (st) return st;
    moe_layer_config rc = router_config(cfg);
    if ((st = moe_layer_config_check(&rc))) return st;
    mlp_moe *m = calloc(1, sizeof *m);
    if (!m) return moe_error(MOE_ERR_NOMEM, "mlp_moe: out of memory");
    m->cfg = *cfg;
    m->rcfg = rc;
    m->F = cfg->input.features;
    m->H = cfg->mlp.hidden;
    m->C = cfg->n_classes;
    m->E = cfg->moe.n_experts;
    m->k = cfg->moe.top_k;
    moe_params_init(&m->table);
    if ((st = build_table(m))) {
        destroy(m);
        return st;
    }
    m->params = calloc(m->table.total, sizeof *m->params);
    m->grads = calloc(m->table.total, sizeof *m->grads);
    m->ptrs = calloc((size_t)8 * m->E, sizeof *m->ptrs);
    if (!m->params || !m->grads || !m->ptrs) {
        size_t total = m->table.total;
        destroy(m);
        return moe_error(MOE_ERR_NOMEM, "mlp_moe: out of memory for %zu parameters", total);
    }
    bind(m, &m->p, m->params, m->ptrs);
    bind(m, &m->g, m->grads, m->ptrs + 4 * m->E);
    init_weights(m, seed);
    *impl = m;
    return MOE_OK;
}

static const moe_param_table *table(const void *impl) {
    return &((const mlp_moe *)impl)->table;
}

static moe_real *params(void *impl) {
    return ((mlp_moe *)impl)->params;
}

static moe_real *grads(void *impl) {
    return ((mlp_moe *)impl)->grads;
}

static size_t expert_params(const mlp_moe *m) {
    const size_t F = (size_t)m->F, H = (size_t)m->H, C = (size_t)m->C;
    return H * F + H + C * H + C;
}

static size_t router_params(const mlp_moe *m) {
    return (size_t)m->E * m->F * (m->rcfg.noisy ? 2 : 1);
}

static size_t active_params(const void *impl) {
    const mlp_moe *m = impl;
    return router_params(m) + (size_t)m->k * expert_params(m);
}

/* Forward matmul FLOPs per example with n experts run: the router's
 * projections (gate, and noise when noisy) and each expert's two linears.
 * Softmaxes, the mixture and the per-batch diversity terms are left out. */
static double forward_flops(const mlp_moe *m, int n) {
    const double F = m->F, H = m->H, C = m->C;
    return 2.0 * (double)router_params(m) + n * 2.0 * (F * H + H * C);
}

/* Training runs k experts per example, except that the output-diversity and
 * JS terms need every expert's output on every example (and send gradients
 * through all of them): with either on, training costs the all-experts
 * FLOPs. This implementation always runs all E in forward; the counts say
 * what the objective needs, not what this code spends. */
static double train_flops(const void *impl, int T) {
    (void)T;
    const mlp_moe *m = impl;
    int all = m->cfg.mlp.output_div_weight > 0 || m->cfg.mlp.js_weight > 0;
    return 3.0 * forward_flops(m, all ? m->E : m->k);
}

static double all_experts_flops(const void *impl, int T) {
    (void)T;
    const mlp_moe *m = impl;
    return 3.0 * forward_flops(m, m->E);
}

static moe_status forward(void *impl, const moe_batch *b, int training, moe_rng *rng,
                          moe_arena *arena, double *task_loss, double *aux_loss) {
    return mlp_moe_forward_eps(impl, b, training, NULL, rng, arena, task_loss, aux_loss);
}

static const moe_real *class_logits(const void *impl) {
    const mlp_moe *m = impl;
    return m->last ? m->last->logphat : NULL;
}

static int n_moe_layers(const void *impl) {
    (void)impl;
    return 1;
}

static const moe_layer_stats *layer_stats(const void *impl, int i) {
    const mlp_moe *m = impl;
    return i == 0 && m->last ? m->last->rc->stats : NULL;
}

/* The trainer's annealed temperature divides the routing logits (and the
 * noise std, as in src/nn/moe); seed 002 itself uses 1. */
static void set_phase(void *impl, const family_phase *ph) {
    mlp_moe *m = impl;
    if (ph && ph->temperature > 0 && isfinite(ph->temperature))
        m->rcfg.temperature = ph->temperature;
}

static int router_tensor(const void *impl, int i) {
    const mlp_moe *m = impl;
    return i == 0 ? moe_params_find(&m->table, "gate.weight") : -1;
}

static int loss_parts(const void *impl, const char *const **names, const double **values) {
    static const char *const part_names[MLP_N_PARTS] = {"cv", "param_div", "output_div", "js"};
    const mlp_moe *m = impl;
    *names = part_names;
    *values = m->parts;
    return MLP_N_PARTS;
}

/* Expert scores are log-probabilities [E, B, C] (log-softmax of each
 * expert), the same kind as class_logits. */
static int expert_outputs(const void *impl, const moe_real **expert_scores,
                          const moe_real **gates) {
    const mlp_moe *m = impl;
    *expert_scores = m->last ? m->last->logy : NULL;
    *gates = m->last ? m->last->gates : NULL;
    return m->E;
}

const model_family family_mlp_moe = {
    .name = "mlp_moe",
    .create = create,
    .destroy = destroy,
    .table = table,
    .params = params,
    .grads = grads,
    .active_params = active_params,
    .train_flops = train_flops,
    .all_experts_flops = all_experts_flops,
    .forward = forward,
    .backward = mlp_moe_backward,
    .class_logits = class_logits,
    .n_moe_layers = n_moe_layers,
    .layer_stats = layer_stats,
    .router_tensor = router_tensor,
    .set_phase = set_phase,
    .optimizer_skips = NULL,
    .loss_parts = loss_parts,
    .expert_outputs = expert_outputs,
    .channel_gates = NULL,
};
