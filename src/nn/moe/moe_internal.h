/* Internal pieces of the MoE layer (include/moe/layer.h): the forward cache
 * and the step functions layer.c chains together. Each step lives in its own
 * file: router.c, capacity.c, dispatch.c, experts.c, combine.c, aux_loss.c,
 * stats.c. Shapes: T tokens, D model width, E experts, k slots, F expert
 * hidden width, R kept (token, slot) pairs (rows of the permuted buffers). */
#ifndef MOE_NN_MOE_INTERNAL_H
#define MOE_NN_MOE_INTERNAL_H

#include "moe/layer.h"

/* Everything forward saves for backward. Arrays live in the arena. */
struct moe_layer_cache {
    int T;                   /* tokens */
    int R;                   /* kept pairs = rows of xp, h, y */
    int noisy;               /* noise was drawn (cfg->noisy && training) */
    const moe_real *x;       /* [T, D] the caller's input; unchanged until backward */
    moe_real *clean;         /* [T, E] x Wg^T / temperature */
    moe_real *noise_raw;     /* [T, E] x Wn^T (noisy) */
    moe_real *noise_std;     /* [T, E] (softplus(raw) + 0.01) / temperature (noisy) */
    moe_real *eps;           /* [T, E] N(0, 1) draws (noisy) */
    moe_real *logits;        /* [T, E] routing logits: clean + eps * std (== clean if not noisy) */
    moe_real *scores;        /* [T, E] softmax or sigmoid of logits */
    moe_real *lse;           /* [T] logsumexp of logits (z-loss) */
    int *chosen;             /* [T, k] experts, best first */
    int *next;               /* [T] expert ranked k+1 (-1 when k == E); Shazeer's load */
    moe_real *weights;       /* [T, k] routing weights */
    unsigned char *fallback; /* [T] 1: non-finite logits, sent to the fallback expert
                                (NULL when cfg->fallback is 0) */
    int n_fallback;          /* how many such tokens */
    int *routed;             /* [E] pairs chosen per expert, before capacity */
    int *kept;               /* [E] pairs kept per expert */
    int n_dropped;           /* pairs over capacity */
    int *row_of;             /* [T * k] row of pair t*k+j in xp/y, -1 if dropped */
    int *offsets;            /* [E + 1] first row of each expert */
    int *perm;               /* [R] pair index of each row */
    moe_real *xp;            /* [R, D] gathered inputs */
    moe_real *ha;            /* [R, F] pre-activation (x W1^T + b1) */
    moe_real *hb;            /* [R, F] x W3^T + b3 (SwiGLU) */
    moe_real *h;             /* [R, F] activation: forward scratch, NULL after */
    moe_real *y;             /* [R, D] expert outputs */
    moe_real *sa, *sb;       /* [T, Fs] shared expert pre-activations */
    moe_real *P;             /* [E] mean score per expert */
    moe_real *importance;    /* [E] sum of gate weights per expert */
    moe_real *load;          /* [E] smooth (noisy) or hard load per expert */
    moe_layer_stats *stats;
};

/* router.c: logits, scores, top-k and weights into c (clean .. weights).
 * The noise is drawn from rng unless the caller set c->eps [T, E] before the
 * call (a family that must replay given noise); the layer never does. */
moe_status moe_router_forward(moe_layer_cache *c, const moe_layer_config *cfg,
                              const moe_layer_params *p, const moe_real *x, int T, int training,
                              moe_rng *rng, moe_arena *arena);
/* Gradients of the routing logits from the gate weights (dw [T, k], already
 * holding the importance term), d mean score dP [E], the z-loss scale and the
 * smooth load dload [E] (or NULL); then into g->gate, g->noise and dx (+=). */
moe_status moe_router_backward(moe_layer_params *g, moe_real *dx, const moe_real *dw,
                               const moe_real *dP, double dz_scale, const moe_real *dload,
                               const moe_layer_cache *c, const moe_layer_config *cfg,
                               const moe_layer_params *p, moe_arena *arena);

/* capacity.c: C = ceil(cf * T * k / E), or INT_MAX when dropless. */
int moe_capacity(const moe_layer_config *cfg, int T);
/* Fills c->routed, c->kept, c->n_dropped and c->row_of (row inside its
 * expert's block, -1 if dropped) walking pairs in token order. */
void moe_capacity_assign(moe_layer_cache *c, const moe_layer_config *cfg);

/* dispatch.c: offsets, perm and global row_of from the capacity decision;
 * gathers xp [R, D]. */
void moe_dispatch_forward(moe_layer_cache *c, const moe_real *x, int E, int k, int D);
/* dx[t] += sum over kept slots of dxp[row(t, j)] */
void moe_dispatch_backward(moe_real *dx, const moe_real *dxp, const int *row_of, int T, int k,
                           int D);

/* experts.c (the net itself is nn/ffn.c) */
/* All experts, one GEMM per projection over each expert's block. */
void moe_experts_forward(moe_layer_cache *c, const moe_layer_config *cfg,
                         const moe_layer_params *p);
/* dxp [R, D] written; expert grads added; scratch [R, F] x 3. */
void moe_experts_backward(moe_real *dxp, moe_layer_params *g, const moe_real *dy,
                          const moe_layer_cache *c, const moe_layer_config *cfg,
                          const moe_layer_params *p, moe_real *dh, moe_real *da, moe_real *db);

/* combine.c: out[t] += sum_j w[t, j] * y[row(t, j)] over kept pairs. */
void moe_combine_forward(moe_real *out, const moe_real *y, const moe_real *weights,
                         const int *row_of, int T, int k, int D);
/* dy [R, D] written; dw [T, k] written (0 for dropped pairs). */
void moe_combine_backward(moe_real *dy, moe_real *dw, const moe_real *dout, const moe_real *y,
                          const moe_real *weights, const int *row_of, int T, int k, int D);

/* aux_loss.c: P, importance, load and the four losses into c->stats. */
void moe_aux_forward(moe_layer_cache *c, const moe_layer_config *cfg);
/* d aux_total scaled by daux: dP [E], dimp [E] (gate-weight importance),
 * dload [E] (smooth load, noisy only) written; returns the z-loss scale so
 * that dlogits[t] += scale * 2 lse_t / T * softmax(logits_t). */
double moe_aux_backward(moe_real *dP, moe_real *dimp, moe_real *dload, const moe_layer_cache *c,
                        const moe_layer_config *cfg, double daux);
/* Phi, the standard normal CDF, and its density. */
double moe_normal_cdf(double z);
double moe_normal_pdf(double z);
/* Smooth load: (is_in, z, threshold expert) of pair (t, i); see aux_loss.c. */
double moe_load_z(const moe_layer_cache *c, int t, int i, int E, int k, int *thr_expert);

/* stats.c: counts, mean probability and router entropy into c->stats. */
moe_status moe_stats_forward(moe_layer_cache *c, const moe_layer_config *cfg, moe_arena *arena);

#endif
