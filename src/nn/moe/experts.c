/* Experts: each expert is a feed-forward net run as ONE GEMM per projection
 * over its contiguous block of rows (a grouped GEMM done expert by expert);
 * weights are used in place, never copied. OpenBLAS threads inside each
 * GEMM. The shared expert is the same net over all T rows. */
#include "moe_internal.h"
#include "nn/ffn.h"

/* pointer to expert e's slice of a stacked tensor, or NULL */
static moe_real *slice(moe_real *base, int e, size_t per) {
    return base ? base + (size_t)e * per : NULL;
}

void moe_experts_forward(moe_layer_cache *c, const moe_layer_config *cfg,
                         const moe_layer_params *p) {
    const int E = cfg->n_experts, D = cfg->d_model, F = cfg->d_ff;
    const size_t FD = (size_t)F * D;
    const int glu = cfg->act == MOE_ACT_SWIGLU, bias = cfg->expert_bias;
    for (int e = 0; e < E; e++) {
        int r0 = c->offsets[e], n = c->offsets[e + 1] - r0;
        ffn_forward(c->y + (size_t)r0 * D, c->h + (size_t)r0 * F, c->ha + (size_t)r0 * F,
                    glu ? c->hb + (size_t)r0 * F : NULL, c->xp + (size_t)r0 * D,
                    slice(p->w1, e, FD), bias ? slice(p->b1, e, F) : NULL,
                    glu ? slice(p->w3, e, FD) : NULL, glu && bias ? slice(p->b3, e, F) : NULL,
                    slice(p->w2, e, FD), bias ? slice(p->b2, e, D) : NULL, cfg->act, n, D, F);
    }
}

void moe_experts_backward(moe_real *dxp, moe_layer_params *g, const moe_real *dy,
                          const moe_layer_cache *c, const moe_layer_config *cfg,
                          const moe_layer_params *p, moe_real *dh, moe_real *da, moe_real *db) {
    const int E = cfg->n_experts, D = cfg->d_model, F = cfg->d_ff;
    const size_t FD = (size_t)F * D;
    const int glu = cfg->act == MOE_ACT_SWIGLU, bias = cfg->expert_bias;
    for (int e = 0; e < E; e++) {
        size_t r0 = (size_t)c->offsets[e];
        int n = c->offsets[e + 1] - c->offsets[e];
        ffn_backward(dxp + r0 * D, slice(g->w1, e, FD), bias ? slice(g->b1, e, F) : NULL,
                     glu ? slice(g->w3, e, FD) : NULL, glu && bias ? slice(g->b3, e, F) : NULL,
                     slice(g->w2, e, FD), bias ? slice(g->b2, e, D) : NULL, dh + r0 * F,
                     da + r0 * F, glu ? db + r0 * F : NULL, dy + r0 * D,
                     c->h ? c->h + r0 * F : NULL, c->ha + r0 * F, glu ? c->hb + r0 * F : NULL,
                     c->xp + r0 * D, slice(p->w1, e, FD), glu ? slice(p->w3, e, FD) : NULL,
                     slice(p->w2, e, FD), cfg->act, n, D, F);
    }
}
