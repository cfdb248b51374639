/* Seed 000's family "cnn_moe": shapes, the parameter table, PyTorch-default
 * initialisation, and the model_family entry points (the network itself is
 * in cnn_moe_forward.c and cnn_moe_backward.c). */
#include "models/cnn_moe_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int default_channels[] = {32, 64};

static moe_status check_and_shape(cnn_moe *m, const moe_model_config *c) {
    const moe_cnn_config *k = &c->cnn;
    if (c->input.channels < 1 || c->input.height < 1 || c->input.width < 1)
        return moe_error(MOE_ERR_INVALID,
                         "cnn_moe: model.input.channels, height and width must be positive (got "
                         "%d x %d x %d); set them or let the image data fill them",
                         c->input.channels, c->input.height, c->input.width);
    if (c->n_classes < 1)
        return moe_error(MOE_ERR_INVALID, "cnn_moe: model.n_classes must be positive (got %d)",
                         c->n_classes);
    if (c->moe.n_experts < 1)
        return moe_error(MOE_ERR_INVALID, "cnn_moe: model.moe.n_experts must be positive (got %d)",
                         c->moe.n_experts);
    if (!(c->moe.temperature > 0))
        return moe_error(MOE_ERR_INVALID, "cnn_moe: model.moe.temperature must be > 0 (got %g)",
                         (double)c->moe.temperature);
    if (k->expert_channels < 1 || k->gate_hidden < 1)
        return moe_error(MOE_ERR_INVALID,
                         "cnn_moe: model.cnn.expert_channels and gate_hidden must be positive");
    if (k->n_channels < 0 || k->n_channels > MOE_MAX_STAGES)
        return moe_error(MOE_ERR_INVALID, "cnn_moe: model.cnn.channels has %d stages (1..%d)",
                         k->n_channels, MOE_MAX_STAGES);
    if (!(k->expert_dropout >= 0 && k->expert_dropout < 1 && k->gate_dropout >= 0 &&
          k->gate_dropout < 1 && k->gate_noise >= 0))
        return moe_error(MOE_ERR_INVALID,
                         "cnn_moe: dropouts must be in [0, 1) and gate_noise >= 0");
    if ((unsigned)k->loss > MOE_CNN_LOSS_CODE)
        return moe_error(MOE_ERR_INVALID, "cnn_moe: model.cnn.loss must be readme or code");
    m->n_stages = k->n_channels ? k->n_channels : 2;
    m->Cin = c->input.channels;
    m->H = c->input.height;
    m->W = c->input.width;
    int cin = m->Cin, h = m->H, w = m->W;
    for (int s = 0; s < m->n_stages; s++) {
        m->ch[s] = k->n_channels ? k->channels[s] : default_channels[s];
        if (m->ch[s] < 1)
            return moe_error(MOE_ERR_INVALID, "cnn_moe: model.cnn.channels[%d] = %d must be > 0", s,
                             m->ch[s]);
        if (h < 2 || w < 2)
            return moe_error(MOE_ERR_INVALID,
                             "cnn_moe: stage %d sees a %d x %d image, too small for its 2x2 max "
                             "pool; use fewer model.cnn.channels stages or larger images",
                             s, h, w);
        m->sh[s] = h;
        m->sw[s] = w;
        h /= 2; /* 2x2 stride-2 pool, floor */
        w /= 2;
        cin = m->ch[s];
    }
    m->Cf = cin;
    m->fh = h;
    m->fw = w;
    m->E = c->moe.n_experts;
    m->X = k->expert_channels;
    m->Hd = k->gate_hidden;
    m->NC = c->n_classes;
    return MOE_OK;
}

typedef struct reg {
    moe_param_table *t;
    moe_status st;
} reg;

static int add(reg *r, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (r->st != MOE_OK) return -1;
    int64_t shape[4] = {d0, d1, d2, d3};
    int i = moe_params_add(r->t, name, ndim, shape);
    if (i < 0) r->st = MOE_ERR_INVALID;
    return i;
}

/* A batch norm's four tensors under prefix (PyTorch's state_dict names,
 * without num_batches_tracked: the momentum is fixed). */
static void add_bn(reg *r, const char *prefix, int C) {
    char n[MOE_MAX_NAME];
    static const char *const what[] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.%s", prefix, what[i]);
        add(r, n, 1, C, 0, 0, 0);
    }
}

static moe_status build_table(cnn_moe *m) {
    reg r = {&m->table, MOE_OK};
    char n[MOE_MAX_NAME], p[48]; /* p: a batch norm's prefix */
    int cin = m->Cin;
    for (int s = 0; s < m->n_stages; s++) {
        snprintf(n, sizeof n, "features.%d.conv.weight", s);
        add(&r, n, 4, m->ch[s], cin, 3, 3);
        snprintf(n, sizeof n, "features.%d.conv.bias", s);
        add(&r, n, 1, m->ch[s], 0, 0, 0);
        snprintf(p, sizeof p, "features.%d.bn", s);
        add_bn(&r, p, m->ch[s]);
        cin = m->ch[s];
    }
    for (int e = 0; e < m->E; e++) {
#define NAME(fmt) (snprintf(n, sizeof n, "experts.%d." fmt, e), n)
        add(&r, NAME("dw.weight"), 4, m->Cf, 1, 3, 3);
        add(&r, NAME("dw.bias"), 1, m->Cf, 0, 0, 0);
        add(&r, NAME("pw.weight"), 4, m->X, m->Cf, 1, 1);
        add(&r, NAME("pw.bias"), 1, m->X, 0, 0, 0);
        snprintf(p, sizeof p, "experts.%d.bn", e);
        add_bn(&r, p, m->X);
        add(&r, NAME("fc.weight"), 2, m->NC, m->X, 0, 0);
        add(&r, NAME("fc.bias"), 1, m->NC, 0, 0, 0);
#undef NAME
    }
    add(&r, "gate.fc1.weight", 2, m->Hd, m->Cf, 0, 0);
    add(&r, "gate.fc1.bias", 1, m->Hd, 0, 0, 0);
    add_bn(&r, "gate.bn", m->Hd);
    m->router = add(&r, "gate.fc2.weight", 2, m->E, m->Hd, 0, 0);
    add(&r, "gate.fc2.bias", 1, m->E, 0, 0, 0);
    return r.st;
}

static moe_real *at(const cnn_moe *m, moe_real *base, const char *name) {
    int i = moe_params_find(&m->table, name);
    return i < 0 ? NULL : base + m->table.tensors[i].offset;
}

static void bind_bn(const cnn_moe *m, cnn_bn_w *bn, moe_real *base, const char *prefix) {
    char n[MOE_MAX_NAME];
    moe_real **dst[4] = {&bn->w, &bn->b, &bn->rm, &bn->rv};
    static const char *const what[] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.%s", prefix, what[i]);
        *dst[i] = at(m, base, n);
    }
}

static void bind(const cnn_moe *m, cnn_w *w, moe_real *base) {
    char n[MOE_MAX_NAME], p[48];
    for (int s = 0; s < m->n_stages; s++) {
        snprintf(n, sizeof n, "features.%d.conv.weight", s);
        w->stage[s].conv_w = at(m, base, n);
        snprintf(n, sizeof n, "features.%d.conv.bias", s);
        w->stage[s].conv_b = at(m, base, n);
        snprintf(p, sizeof p, "features.%d.bn", s);
        bind_bn(m, &w->stage[s].bn, base, p);
    }
    for (int e = 0; e < m->E; e++) {
        cnn_expert_w *x = &w->expert[e];
#define T_(fmt) (snprintf(n, sizeof n, "experts.%d." fmt, e), at(m, base, n))
        x->dw_w = T_("dw.weight");
        x->dw_b = T_("dw.bias");
        x->pw_w = T_("pw.weight");
        x->pw_b = T_("pw.bias");
        x->fc_w = T_("fc.weight");
        x->fc_b = T_("fc.bias");
#undef T_
        snprintf(p, sizeof p, "experts.%d.bn", e);
        bind_bn(m, &x->bn, base, p);
    }
    w->gate.fc1_w = at(m, base, "gate.fc1.weight");
    w->gate.fc1_b = at(m, base, "gate.fc1.bias");
    bind_bn(m, &w->gate.bn, base, "gate.bn");
    w->gate.fc2_w = at(m, base, "gate.fc2.weight");
    w->gate.fc2_b = at(m, base, "gate.fc2.bias");
}

/* fan_in of a weight: every dim but the first (PyTorch's
 * _calculate_fan_in_and_fan_out). */
static double fan_in(const moe_tensor_info *t) {
    double f = 1;
    for (int d = 1; d < t->ndim; d++) f *= (double)t->shape[d];
    return f;
}

/* PyTorch's defaults: conv and linear weights kaiming_uniform(a = sqrt 5),
 * i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases the same bound with the
 * weight's fan_in; batch norm weight 1, bias 0, running mean 0, variance 1;
 * the gate's last layer N(0, 0.01) with bias 0 (seed 000's uniform start).
 * One stream in table order, so the result depends on the seed only. */
static void init_weights(cnn_moe *m, uint64_t seed) {
    moe_rng rng;
    moe_rng_seed(&rng, seed);
    double bound = 0;
    for (int i = 0; i < m->table.count; i++) {
        const moe_tensor_info *t = &m->table.tensors[i];
        moe_real *p = m->params + t->offset;
        const char *name = t->name;
        int bn = strstr(name, ".bn.") != NULL;
        int gate_out = strncmp(name, "gate.fc2.", 9) == 0;
        int weight = strstr(name, ".weight") != NULL;
        if (weight && !bn) bound = 1.0 / sqrt(fan_in(t)); /* the bias that follows shares it */
        for (size_t j = 0; j < t->numel; j++) {
            if (bn)
                p[j] = (strstr(name, ".weight") || strstr(name, "running_var")) ? 1 : 0;
            else if (gate_out)
                p[j] = weight ? (moe_real)(0.01 * moe_rng_normal(&rng)) : 0;
            else
                p[j] = (moe_real)(bound * (2.0 * moe_rng_uniform(&rng) - 1.0));
        }
    }
}

static void destroy(void *impl) {
    cnn_moe *m = impl;
    if (!m) return;
    moe_params_free(&m->table);
    free(m->params);
    free(m->grads);
    free(m->w.expert);
    free(m->g.expert);
    free(m->ex);
    free(m->buffer);
    free(m);
}

static moe_status create(void **out, const moe_model_config *cfg, uint64_t seed) {
    *out = NULL;
    cnn_moe *m = calloc(1, sizeof *m);
    if (!m) return moe_error(MOE_ERR_NOMEM, "cnn_moe: out of memory");
    m->cfg = *cfg;
    moe_status st = check_and_shape(m, cfg);
    if (st != MOE_OK) {
        free(m);
        return st;
    }
    m->temperature = cfg->moe.temperature;
    moe_params_init(&m->table);
    st = build_table(m);
    if (st != MOE_OK) {
        destroy(m);
        return st;
    }
    m->params = calloc(m->table.total, sizeof(moe_real));
    m->grads = calloc(m->table.total, sizeof(moe_real));
    m->w.expert = calloc((size_t)m->E, sizeof(cnn_expert_w));
    m->g.expert = calloc((size_t)m->E, sizeof(cnn_expert_w));
    m->ex = calloc((size_t)m->E, sizeof(cnn_expert_acts));
    m->buffer = calloc((size_t)m->table.count, 1);
    if (!m->params || !m->grads || !m->w.expert || !m->g.expert || !m->ex || !m->buffer) {
        size_t total = m->table.total;
        destroy(m);
        return moe_error(MOE_ERR_NOMEM, "cnn_moe: out of memory for %zu parameters", total);
    }
    for (int i = 0; i < m->table.count; i++) {
        m->buffer[i] = strstr(m->table.tensors[i].name, ".running_") != NULL;
        if (m->buffer[i]) m->n_buffer_elems += m->table.tensors[i].numel;
    }
    bind(m, &m->w, m->params);
    bind(m, &m->g, m->grads);
    init_weights(m, seed);
    m->ce_count = -1;
    *out = m;
    return MOE_OK;
}

static const moe_param_table *table(const void *impl) {
    return &((const cnn_moe *)impl)->table;
}

static moe_real *params(void *impl) {
    return ((cnn_moe *)impl)->params;
}

static moe_real *grads(void *impl) {
    return ((cnn_moe *)impl)->grads;
}

/* The gate is soft: every example runs through every expert, so every
 * parameter is active (the buffers are not parameters). */
static size_t active_params(const void *impl) {
    const cnn_moe *m = impl;
    size_t n = 0;
    for (int i = 0; i < m->table.count; i++) n += m->table.tensors[i].numel;
    return n - m->n_buffer_elems;
}

/* Forward multiply-adds x 2, training (forward + backward) x 3; the same
 * for the dense count since no expert is ever skipped. T is unused. */
static double train_flops(const void *impl, int T) {
    (void)T;
    return 6.0 * cnn_moe_forward_macs(impl);
}

static const moe_real *class_logits(const void *impl) {
    const cnn_moe *m = impl;
    return m->have_forward ? m->logits : NULL;
}

static int n_moe_layers(const void *impl) {
    (void)impl;
    return 1;
}

static const moe_layer_stats *layer_stats(const void *impl, int i) {
    const cnn_moe *m = impl;
    return i == 0 && m->have_forward ? &m->stats : NULL;
}

static int router_tensor(const void *impl, int i) {
    const cnn_moe *m = impl;
    return i == 0 ? m->router : -1;
}

static void set_phase(void *impl, const family_phase *ph) {
    cnn_moe *m = impl;
    if (ph && ph->temperature > 0) m->temperature = ph->temperature;
}

static int is_buffer(const void *impl, int tensor) {
    const cnn_moe *m = impl;
    return tensor >= 0 && tensor < m->table.count && m->buffer[tensor];
}

static int loss_parts(const void *impl, const char *const **names, const double **values) {
    const cnn_moe *m = impl;
    if (values) *values = m->parts;
    return cnn_moe_aux_parts(&m->cfg.cnn, names);
}

static int expert_outputs(const void *impl, const moe_real **expert_scores,
                          const moe_real **gates) {
    const cnn_moe *m = impl;
    if (expert_scores) *expert_scores = m->have_forward ? m->expert_logits : NULL;
    if (gates) *gates = m->have_forward ? m->gate.g : NULL;
    return m->E;
}

const model_family family_cnn_moe = {
    .name = "cnn_moe",
    .create = create,
    .destroy = destroy,
    .table = table,
    .params = params,
    .grads = grads,
    .active_params = active_params,
    .train_flops = train_flops,
    .all_experts_flops = train_flops,
    .forward = cnn_moe_forward,
    .backward = cnn_moe_backward,
    .class_logits = class_logits,
    .n_moe_layers = n_moe_layers,
    .layer_stats = layer_stats,
    .router_tensor = router_tensor,
    .set_phase = set_phase,
    .is_buffer = is_buffer,
    .optimizer_skips = is_buffer, /* nothing is frozen by phase in this family */
    .loss_parts = loss_parts,
    .expert_outputs = expert_outputs,
    .channel_gates = NULL,
};
