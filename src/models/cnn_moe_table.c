/* cnn_moe's shapes (checked from the config), its parameter table in
 * PyTorch's state_dict names and order, and the views binding the
 * parameter and gradient blocks to each layer. */
#include "models/cnn_moe_internal.h"

#include <stdio.h>
#include <string.h>

static const int default_channels[] = {32, 64};

moe_status cnn_moe_shape(cnn_moe *m, const moe_model_config *c) {
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

moe_status cnn_moe_build_table(cnn_moe *m) {
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

void cnn_moe_bind(const cnn_moe *m, cnn_w *w, moe_real *base) {
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
