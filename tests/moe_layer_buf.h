/* Test helper: one allocation of MoE layer parameters and one of gradients
 * with the same layout, pointers set for the tensors a config uses. */
#ifndef MOE_TEST_LAYER_BUF_H
#define MOE_TEST_LAYER_BUF_H

#include "moe/layer.h"

#include <stdlib.h>
#include <string.h>

typedef struct layer_buf {
    moe_layer_params p, g; /* parameters and gradients (same layout) */
    moe_real *pblock, *gblock;
    size_t n; /* elements in each block */
} layer_buf;

/* Points every used tensor of cfg into block; returns elements used. */
static size_t layer_buf_layout(moe_layer_params *t, moe_real *block, const moe_layer_config *cfg) {
    const size_t E = cfg->n_experts, D = cfg->d_model, F = cfg->d_ff, Fs = cfg->shared_d_ff;
    const int glu = cfg->act == MOE_ACT_SWIGLU, bias = cfg->expert_bias;
    size_t o = 0;
    memset(t, 0, sizeof *t);
#define TAKE(field, n)                                                                             \
    do {                                                                                           \
        t->field = block ? block + o : NULL;                                                       \
        o += (n);                                                                                  \
    } while (0)
    TAKE(gate, E * D);
    if (cfg->noisy) TAKE(noise, E * D);
    TAKE(w1, E * F * D);
    if (glu) TAKE(w3, E * F * D);
    TAKE(w2, E * D * F);
    if (bias) {
        TAKE(b1, E * F);
        if (glu) TAKE(b3, E * F);
        TAKE(b2, E * D);
    }
    if (Fs) {
        TAKE(shared_w1, Fs * D);
        if (glu) TAKE(shared_w3, Fs * D);
        TAKE(shared_w2, D * Fs);
    }
#undef TAKE
    return o;
}

static int layer_buf_init(layer_buf *b, const moe_layer_config *cfg) {
    b->n = layer_buf_layout(&b->p, NULL, cfg);
    b->pblock = calloc(b->n, sizeof(moe_real));
    b->gblock = calloc(b->n, sizeof(moe_real));
    if (!b->pblock || !b->gblock) return -1;
    layer_buf_layout(&b->p, b->pblock, cfg);
    layer_buf_layout(&b->g, b->gblock, cfg);
    return 0;
}

static void layer_buf_free(layer_buf *b) {
    free(b->pblock);
    free(b->gblock);
    memset(b, 0, sizeof *b);
}

/* A config with the given shape and everything else off. */
static moe_layer_config layer_cfg(int D, int E, int k, int F, moe_activation act) {
    moe_layer_config c;
    memset(&c, 0, sizeof c);
    c.d_model = D;
    c.n_experts = E;
    c.top_k = k;
    c.d_ff = F;
    c.act = act;
    c.score = MOE_SCORE_SOFTMAX;
    c.temperature = 1.0f;
    c.switch_divide_by_k = 1;
    c.routing = MOE_ROUTE_TOPK;
    c.fallback = 0;
    return c;
}

#endif
