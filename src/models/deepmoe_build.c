/* DeepMoE: the layer plan from the config, the parameter table and the
 * PyTorch-default initialisation. */
#include "models/deepmoe_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int default_channels[] = {32, 64, 128};
static const int emb_widths[DM_EMB_CONVS - 1] = {32, 64}; /* then emb_dim */

/* Registration with a per-tensor kind and the fan-in its init uses (0: a
 * batch-norm tensor, initialised by name). */
typedef struct reg {
    deepmoe *m;
    int *fan_in;
    moe_status st;
} reg;

static int add(reg *r, unsigned char kind, int fan_in, const char *name, int ndim, int64_t d0,
               int64_t d1, int64_t d2, int64_t d3) {
    if (r->st != MOE_OK) return -1;
    int64_t shape[4] = {d0, d1, d2, d3};
    int i = moe_params_add(&r->m->table, name, ndim, shape);
    if (i < 0) {
        r->st = MOE_ERR_INVALID;
        return -1;
    }
    r->m->kind[i] = kind;
    r->fan_in[i] = fan_in;
    return i;
}

static moe_status check_config(const moe_model_config *c) {
    const moe_deepmoe_config *d = &c->deepmoe;
    if (c->input.channels < 1 || c->input.height < 1 || c->input.width < 1)
        return moe_error(MOE_ERR_INVALID,
                         "deepmoe: model.input channels/height/width must be positive (got "
                         "%d x %d x %d): set them or load image data first",
                         c->input.channels, c->input.height, c->input.width);
    if (c->n_classes < 1)
        return moe_error(MOE_ERR_INVALID, "deepmoe: model.n_classes must be positive (got %d)",
                         c->n_classes);
    if (d->n_channels < 0 || d->n_channels > MOE_MAX_STAGES)
        return moe_error(MOE_ERR_INVALID, "deepmoe: model.deepmoe.channels takes 1 to %d stages",
                         MOE_MAX_STAGES);
    for (int i = 0; i < d->n_channels; i++)
        if (d->channels[i] < 1)
            return moe_error(MOE_ERR_INVALID,
                             "deepmoe: model.deepmoe.channels[%d] = %d must be positive", i,
                             d->channels[i]);
    if ((unsigned)d->arch > MOE_DEEPMOE_RESNET || (unsigned)d->l1 > MOE_GATE_L1_MATRIX)
        return moe_error(MOE_ERR_INVALID, "deepmoe: unknown model.deepmoe.arch or .l1");
    if (d->gated && d->emb_dim < 1)
        return moe_error(MOE_ERR_INVALID,
                         "deepmoe: model.deepmoe.emb_dim must be positive when gated (got %d)",
                         d->emb_dim);
    if (!(d->dropout >= 0 && d->dropout < 1) || !(d->lambda >= 0) || !(d->mu >= 0))
        return moe_error(MOE_ERR_INVALID,
                         "deepmoe: model.deepmoe.dropout must be in [0, 1), lambda and mu >= 0");
    return MOE_OK;
}

/* A unit: its conv and BN tensors under prefix ("features.3", "layers.1"),
 * conv named prefix.<conv>, BN prefix.<bn>. Geometry from the input H, W. */
static int add_unit(reg *r, const char *prefix, const char *conv, const char *bn, int cin, int cout,
                    int H, int W, int k, int stride, int relu, int gated) {
    deepmoe *m = r->m;
    if (r->st != MOE_OK) return -1;
    int u = m->n_units++;
    dm_unit *U = &m->units[u];
    char n[MOE_MAX_NAME];
    *U = (dm_unit){.cin = cin, .cout = cout, .H = H, .W = W, .k = k, .stride = stride};
    U->pad = k / 2;
    U->OH = conv2d_out_size(H, k, stride, U->pad);
    U->OW = conv2d_out_size(W, k, stride, U->pad);
    U->relu = relu;
    U->gate = -1;
#define NM(what, field) (snprintf(n, sizeof n, "%s.%s.%s", prefix, what, field), n)
    U->t_conv = add(r, DM_PARAM, cin * k * k, NM(conv, "weight"), 4, cout, cin, k, k);
    U->t_bn_w = add(r, DM_PARAM, 0, NM(bn, "weight"), 1, cout, 0, 0, 0);
    U->t_bn_b = add(r, DM_PARAM, 0, NM(bn, "bias"), 1, cout, 0, 0, 0);
    U->t_rmean = add(r, DM_BUFFER, 0, NM(bn, "running_mean"), 1, cout, 0, 0, 0);
    U->t_rvar = add(r, DM_BUFFER, 0, NM(bn, "running_var"), 1, cout, 0, 0, 0);
#undef NM
    if (gated) {
        dm_gate *G = &m->gates[m->n_gates];
        U->gate = m->n_gates++;
        G->unit = u;
        G->C = cout;
        G->flops_per_channel = 2.0 * cin * k * k * U->OH * U->OW;
    }
    return u;
}

/* The whole plan: embedding network, main network, gates, classifier. */
static moe_status build_table(deepmoe *m, int *fan_in) {
    reg r = {m, fan_in, MOE_OK};
    char n[MOE_MAX_NAME], p[MOE_MAX_NAME];
    int H = m->in_h, W = m->in_w, C = m->in_c;
    if (m->gated) {
        int eh = H, ew = W, ec = C;
        for (int i = 0; i < DM_EMB_CONVS; i++) {
            dm_econv *E = &m->emb[i];
            E->cin = ec;
            E->cout = i < DM_EMB_CONVS - 1 ? emb_widths[i] : m->emb_dim;
            E->H = eh;
            E->W = ew;
            E->OH = conv2d_out_size(eh, 3, 2, 1);
            E->OW = conv2d_out_size(ew, 3, 2, 1);
            snprintf(n, sizeof n, "embedding.conv%d.weight", i + 1);
            E->t_w = add(&r, DM_EMBEDDING, ec * 9, n, 4, E->cout, ec, 3, 3);
            snprintf(n, sizeof n, "embedding.conv%d.bias", i + 1);
            E->t_b = add(&r, DM_EMBEDDING, ec * 9, n, 1, E->cout, 0, 0, 0);
            eh = E->OH;
            ew = E->OW;
            ec = E->cout;
        }
        m->t_head_w = add(&r, DM_EMBEDDING, m->emb_dim, "embedding.head.weight", 2, m->n_classes,
                          m->emb_dim, 0, 0);
        m->t_head_b =
            add(&r, DM_EMBEDDING, m->emb_dim, "embedding.head.bias", 1, m->n_classes, 0, 0, 0);
    }
    if (!m->resnet) {
        for (int s = 0; s < m->n_stages; s++) {
            for (int j = 0; j < 2; j++) {
                snprintf(p, sizeof p, "features.%d", 2 * s + j);
                int u = add_unit(&r, p, "conv", "bn", C, m->ch[s], H, W, 3, 1, 1, m->gated);
                if (u < 0) return r.st;
                C = m->ch[s];
            }
            if (H < 2 || W < 2)
                return moe_error(MOE_ERR_INVALID,
                                 "deepmoe: the %d x %d input is too small for %d VGG stages "
                                 "(each halves it): use fewer model.deepmoe.channels",
                                 m->in_h, m->in_w, m->n_stages);
            H = conv2d_out_size(H, 2, 2, 0);
            W = conv2d_out_size(W, 2, 2, 0);
        }
    } else {
        add_unit(&r, "stem", "conv", "bn", C, m->ch[0], H, W, 3, 1, 1, m->gated);
        C = m->ch[0];
        for (int s = 0; s < m->n_stages; s++) {
            int stride = s == 0 ? 1 : 2, cout = m->ch[s];
            dm_block *Bk = &m->blocks[m->n_blocks++];
            snprintf(p, sizeof p, "layers.%d", s);
            Bk->u1 = add_unit(&r, p, "conv1", "bn1", C, cout, H, W, 3, stride, 1, m->gated);
            if (Bk->u1 < 0) return r.st;
            int OH = m->units[Bk->u1].OH, OW = m->units[Bk->u1].OW;
            Bk->u2 = add_unit(&r, p, "conv2", "bn2", cout, cout, OH, OW, 3, 1, 0, m->gated);
            Bk->sc = -1;
            if (stride != 1 || C != cout)
                Bk->sc =
                    add_unit(&r, p, "shortcut.0", "shortcut.1", C, cout, H, W, 1, stride, 0, 0);
            H = OH;
            W = OW;
            C = cout;
        }
    }
    if (r.st != MOE_OK) return r.st;
    m->c_last = C;
    m->h_last = H;
    m->w_last = W;
    for (int l = 0; l < m->n_gates; l++) {
        snprintf(n, sizeof n, "gates.%d.weight", l);
        m->gates[l].t_w = add(&r, DM_PARAM, m->emb_dim, n, 2, m->gates[l].C, m->emb_dim, 0, 0);
    }
    m->t_cls_w = add(&r, DM_PARAM, C, "classifier.weight", 2, m->n_classes, C, 0, 0);
    m->t_cls_b = add(&r, DM_PARAM, C, "classifier.bias", 1, m->n_classes, 0, 0, 0);
    return r.st;
}

/* Forward FLOPs per example as executed (every channel computed): convs,
 * gate projections and linear layers (2 per multiply-add); BN, activations
 * and pooling are not counted, as for the transformer. */
static double forward_flops(const deepmoe *m) {
    double f = 0;
    for (int i = 0; m->gated && i < DM_EMB_CONVS; i++) {
        const dm_econv *E = &m->emb[i];
        f += 2.0 * E->cin * 9 * E->cout * E->OH * E->OW;
    }
    for (int u = 0; u < m->n_units; u++) {
        const dm_unit *U = &m->units[u];
        f += 2.0 * U->cin * U->k * U->k * U->cout * U->OH * U->OW;
    }
    for (int l = 0; l < m->n_gates; l++) f += 2.0 * m->emb_dim * m->gates[l].C;
    if (m->gated) f += 2.0 * m->emb_dim * m->n_classes;
    return f + 2.0 * m->c_last * m->n_classes;
}

/* PyTorch's defaults: Conv2d and Linear weights kaiming_uniform(a =
 * sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases the same bound;
 * BN weight 1, bias 0, running mean 0, running variance 1. The gate
 * projections W_l are Linear(emb_dim, C, bias=False) and get the same. */
static void init_weights(deepmoe *m, const int *fan_in, uint64_t seed) {
    moe_rng rng;
    moe_rng_seed(&rng, seed);
    for (int i = 0; i < m->table.count; i++) {
        const moe_tensor_info *t = &m->table.tensors[i];
        moe_real *p = m->params + t->offset;
        if (fan_in[i] > 0) {
            double bound = 1.0 / sqrt((double)fan_in[i]);
            for (size_t j = 0; j < t->numel; j++)
                p[j] = (moe_real)(bound * (2.0 * moe_rng_uniform(&rng) - 1.0));
        } else {
            /* BN weight and running variance 1; BN bias and running mean 0 */
            size_t len = strlen(t->name);
            int one = (len >= 7 && !strcmp(t->name + len - 7, ".weight")) ||
                      strstr(t->name, "running_var") != NULL;
            for (size_t j = 0; j < t->numel; j++) p[j] = one ? 1 : 0;
        }
    }
}

moe_status deepmoe_create(deepmoe **out, const moe_model_config *cfg, uint64_t seed) {
    *out = NULL;
    moe_status st = check_config(cfg);
    if (st != MOE_OK) return st;
    deepmoe *m = calloc(1, sizeof *m);
    if (!m) return moe_error(MOE_ERR_NOMEM, "deepmoe: out of memory");
    const moe_deepmoe_config *d = &cfg->deepmoe;
    m->cfg = *cfg;
    m->resnet = d->arch == MOE_DEEPMOE_RESNET;
    m->gated = d->gated != 0;
    m->emb_dim = m->gated ? d->emb_dim : 0;
    m->n_classes = cfg->n_classes;
    m->l1_matrix = d->l1 == MOE_GATE_L1_MATRIX;
    m->lambda = d->lambda;
    m->mu = d->mu;
    m->dropout = d->dropout;
    m->in_c = cfg->input.channels;
    m->in_h = cfg->input.height;
    m->in_w = cfg->input.width;
    m->n_stages = d->n_channels > 0 ? d->n_channels : 3;
    for (int s = 0; s < m->n_stages; s++)
        m->ch[s] = (d->n_channels > 0 ? d->channels[s] : default_channels[s]) * (d->wide ? 2 : 1);
    moe_params_init(&m->table);
    /* at most 5 tensors per unit + embedding + gates + classifier */
    int cap = 5 * DM_MAX_UNITS + 2 * DM_EMB_CONVS + 2 + DM_MAX_GATES + 2;
    int *fan_in = calloc((size_t)cap, sizeof *fan_in);
    m->kind = calloc((size_t)cap, 1);
    if (!fan_in || !m->kind) {
        free(fan_in);
        deepmoe_free(m);
        return moe_error(MOE_ERR_NOMEM, "deepmoe: out of memory");
    }
    st = build_table(m, fan_in);
    if (st == MOE_OK) {
        size_t bytes = (m->table.total * sizeof(moe_real) + 63) / 64 * 64;
        m->params = aligned_alloc(64, bytes);
        m->grads = aligned_alloc(64, bytes);
        if (!m->params || !m->grads) {
            st =
                moe_error(MOE_ERR_NOMEM, "deepmoe: cannot allocate %zu parameters", m->table.total);
        } else {
            memset(m->params, 0, bytes);
            memset(m->grads, 0, bytes);
            init_weights(m, fan_in, seed);
            m->fwd_flops = forward_flops(m);
        }
    }
    free(fan_in);
    if (st != MOE_OK) {
        deepmoe_free(m);
        return st;
    }
    *out = m;
    return MOE_OK;
}

void deepmoe_free(deepmoe *m) {
    if (!m) return;
    moe_params_free(&m->table);
    free(m->params);
    free(m->grads);
    free(m->kind);
    free(m);
}
