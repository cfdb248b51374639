/* The MoE layer: config check, parameter count, and the forward / backward
 * orchestration of router -> capacity -> dispatch -> experts -> combine,
 * with the shared expert, auxiliary losses and statistics. All per-call
 * buffers come from the arena (no malloc in forward or backward). */
#include "moe_internal.h"
#include "nn/ffn.h"
#include "ops/ops.h"

#include <math.h>
#include <string.h>

#define ALLOC(n, type) ((type *)moe_arena_alloc(arena, (size_t)(n) * sizeof(type)))

moe_status moe_layer_config_check(const moe_layer_config *cfg) {
    if (!cfg) return moe_error(MOE_ERR_INVALID, "moe layer config: NULL pointer");
    if (cfg->d_model < 1)
        return moe_error(MOE_ERR_INVALID, "moe.d_model = %d: set d_model >= 1", cfg->d_model);
    if (cfg->n_experts < 1)
        return moe_error(MOE_ERR_INVALID, "moe.n_experts = %d: set n_experts >= 1", cfg->n_experts);
    if (cfg->top_k < 1)
        return moe_error(MOE_ERR_INVALID, "moe.top_k = %d: set top_k >= 1", cfg->top_k);
    if (cfg->top_k > cfg->n_experts)
        return moe_error(MOE_ERR_INVALID,
                         "moe.top_k = %d exceeds moe.n_experts = %d: set top_k <= n_experts",
                         cfg->top_k, cfg->n_experts);
    if (cfg->d_ff < 1) return moe_error(MOE_ERR_INVALID, "moe.d_ff = %d: set d_ff >= 1", cfg->d_ff);
    if ((unsigned)cfg->act > MOE_ACT_SWIGLU)
        return moe_error(MOE_ERR_INVALID, "moe.act = %d: use relu, gelu, silu or swiglu",
                         (int)cfg->act);
    if ((unsigned)cfg->score > MOE_SCORE_SIGMOID)
        return moe_error(MOE_ERR_INVALID, "moe.score = %d: use softmax or sigmoid",
                         (int)cfg->score);
    if ((unsigned)cfg->routing > MOE_ROUTE_ROUND_ROBIN)
        return moe_error(MOE_ERR_INVALID, "moe.routing = %d: use topk or round_robin",
                         (int)cfg->routing);
    if (!(cfg->temperature > 0) || !isfinite(cfg->temperature))
        return moe_error(MOE_ERR_INVALID,
                         "moe.temperature = %g: set a finite temperature > 0 (1 = none)",
                         (double)cfg->temperature);
    if (!isfinite(cfg->capacity_factor))
        return moe_error(MOE_ERR_INVALID,
                         "moe.capacity_factor = %g: set a finite value (<= 0 = dropless)",
                         (double)cfg->capacity_factor);
    if (cfg->fallback && (cfg->fallback_expert < 0 || cfg->fallback_expert >= cfg->n_experts))
        return moe_error(MOE_ERR_INVALID,
                         "moe.fallback_expert = %d: set -1 (off) or an expert in [0, %d)",
                         cfg->fallback_expert, cfg->n_experts);
    if (cfg->shared_d_ff < 0)
        return moe_error(MOE_ERR_INVALID, "moe.shared_d_ff = %d: set >= 0 (0 = no shared expert)",
                         cfg->shared_d_ff);
    const struct {
        const char *name;
        float v;
    } coefs[] = {{"switch_coef", cfg->switch_coef},
                 {"z_coef", cfg->z_coef},
                 {"var_coef", cfg->var_coef},
                 {"cv_coef", cfg->cv_coef}};
    for (size_t i = 0; i < sizeof coefs / sizeof coefs[0]; i++)
        if (!(coefs[i].v >= 0) || !isfinite(coefs[i].v))
            return moe_error(MOE_ERR_INVALID, "moe.%s = %g: set a finite coefficient >= 0",
                             coefs[i].name, (double)coefs[i].v);
    return MOE_OK;
}

size_t moe_layer_param_count(const moe_layer_config *cfg) {
    const size_t E = (size_t)cfg->n_experts, D = (size_t)cfg->d_model, F = (size_t)cfg->d_ff;
    const size_t Fs = (size_t)cfg->shared_d_ff;
    const int glu = cfg->act == MOE_ACT_SWIGLU;
    size_t n = E * D;               /* gate */
    if (cfg->noisy) n += E * D;     /* noise */
    n += E * F * D * (glu ? 3 : 2); /* w1, (w3), w2 */
    if (cfg->expert_bias) n += E * F * (glu ? 2 : 1) + E * D;
    n += Fs * D * (glu ? 3 : 2); /* shared w1, (w3), w2 */
    return n;
}

static moe_status check_params(const moe_layer_config *cfg, const moe_layer_params *p,
                               const char *which) {
    const int glu = cfg->act == MOE_ACT_SWIGLU, bias = cfg->expert_bias;
    const char *missing = !p->gate                                   ? "gate"
                          : cfg->noisy && !p->noise                  ? "noise"
                          : !p->w1                                   ? "w1"
                          : !p->w2                                   ? "w2"
                          : glu && !p->w3                            ? "w3"
                          : bias && !p->b1                           ? "b1"
                          : bias && !p->b2                           ? "b2"
                          : bias && glu && !p->b3                    ? "b3"
                          : cfg->shared_d_ff && !p->shared_w1        ? "shared_w1"
                          : cfg->shared_d_ff && !p->shared_w2        ? "shared_w2"
                          : cfg->shared_d_ff && glu && !p->shared_w3 ? "shared_w3"
                                                                     : NULL;
    if (missing)
        return moe_error(MOE_ERR_INVALID, "moe layer: %s.%s is NULL but the config uses it", which,
                         missing);
    return MOE_OK;
}

moe_status moe_layer_forward(const moe_layer_config *cfg, const moe_layer_params *p, moe_real *out,
                             const moe_real *x, int T, int training, moe_rng *rng, moe_arena *arena,
                             moe_layer_cache **cache, moe_layer_stats **stats) {
    moe_status st = moe_layer_config_check(cfg);
    if (st) return st;
    if (T < 1 || !out || !x || !arena || !cache)
        return moe_error(MOE_ERR_INVALID,
                         "moe_layer_forward: need T >= 1 (got %d) and "
                         "non-NULL out, x, arena and cache",
                         T);
    if (cfg->noisy && training && !rng)
        return moe_error(MOE_ERR_INVALID, "moe_layer_forward: noisy gating in training needs "
                                          "an rng");
    if ((st = check_params(cfg, p, "params"))) return st;
    const int E = cfg->n_experts, k = cfg->top_k, D = cfg->d_model, F = cfg->d_ff;
    const int Fs = cfg->shared_d_ff, glu = cfg->act == MOE_ACT_SWIGLU;
    const size_t P = (size_t)T * k;

    moe_layer_cache *c = moe_arena_calloc(arena, sizeof *c);
    if (!c) return MOE_ERR_NOMEM;
    c->T = T;
    c->x = x;
    if ((st = moe_router_forward(c, cfg, p, x, T, training, rng, arena))) return st;

    c->routed = ALLOC(E, int);
    c->kept = ALLOC(E, int);
    c->row_of = ALLOC(P, int);
    c->offsets = ALLOC(E + 1, int);
    c->perm = ALLOC(P, int);
    c->P = ALLOC(E, moe_real);
    c->importance = ALLOC(E, moe_real);
    c->load = ALLOC(E, moe_real);
    if (!c->routed || !c->kept || !c->row_of || !c->offsets || !c->perm || !c->P ||
        !c->importance || !c->load)
        return MOE_ERR_NOMEM;
    moe_capacity_assign(c, cfg);

    const int R = (int)(P - (size_t)c->n_dropped);
    c->xp = ALLOC((size_t)R * D, moe_real); /* [R, D] */
    c->y = ALLOC((size_t)R * D, moe_real);  /* [R, D] */
    c->ha = ALLOC((size_t)R * F, moe_real); /* [R, F] */
    c->hb = glu ? ALLOC((size_t)R * F, moe_real) : NULL;
    if (!c->xp || !c->y || !c->ha || (glu && !c->hb)) return MOE_ERR_NOMEM;
    moe_dispatch_forward(c, x, E, k, D);
    /* The activations h are scratch: backward recomputes them from ha, hb
     * (one cheap pointwise pass) instead of keeping [R, F] per layer. */
    size_t mark = moe_arena_mark(arena);
    c->h = ALLOC((size_t)R * F, moe_real); /* [R, F] */
    if (!c->h) return MOE_ERR_NOMEM;
    moe_experts_forward(c, cfg, p);
    moe_arena_release(arena, mark);
    c->h = NULL;

    if (Fs > 0) { /* shared expert writes out, the routed mixture adds to it */
        c->sa = ALLOC((size_t)T * Fs, moe_real);
        c->sb = glu ? ALLOC((size_t)T * Fs, moe_real) : NULL;
        if (!c->sa || (glu && !c->sb)) return MOE_ERR_NOMEM;
        mark = moe_arena_mark(arena);
        moe_real *sh = ALLOC((size_t)T * Fs, moe_real); /* [T, Fs] scratch, as h */
        if (!sh) return MOE_ERR_NOMEM;
        ffn_forward(out, sh, c->sa, c->sb, x, p->shared_w1, NULL, p->shared_w3, NULL, p->shared_w2,
                    NULL, cfg->act, T, D, Fs);
        moe_arena_release(arena, mark);
    } else {
        memset(out, 0, sizeof(moe_real) * (size_t)T * D);
    }
    moe_combine_forward(out, c->y, c->weights, c->row_of, T, k, D);

    if ((st = moe_stats_forward(c, cfg, arena))) return st;
    moe_aux_forward(c, cfg);
    *cache = c;
    if (stats) *stats = c->stats;
    return MOE_OK;
}

moe_status moe_layer_backward(const moe_layer_config *cfg, const moe_layer_params *p,
                              moe_layer_params *g, moe_real *dx, const moe_real *dout,
                              const moe_layer_cache *c, moe_real daux, moe_arena *arena) {
    if (!c || !dx || !dout || !g || !arena)
        return moe_error(MOE_ERR_INVALID, "moe_layer_backward: NULL cache, dx, dout, grads "
                                          "or arena (run forward first)");
    moe_status st = check_params(cfg, g, "grads");
    if (st) return st;
    const int E = cfg->n_experts, k = cfg->top_k, D = cfg->d_model, F = cfg->d_ff;
    const int Fs = cfg->shared_d_ff, glu = cfg->act == MOE_ACT_SWIGLU, T = c->T, R = c->R;

    moe_real *dy = ALLOC((size_t)R * D, moe_real);  /* [R, D] */
    moe_real *dxp = ALLOC((size_t)R * D, moe_real); /* [R, D] */
    moe_real *dw = ALLOC((size_t)T * k, moe_real);  /* [T, k] */
    moe_real *dh = ALLOC((size_t)R * F, moe_real);  /* [R, F] scratch x 3 */
    moe_real *da = ALLOC((size_t)R * F, moe_real);
    moe_real *db = glu ? ALLOC((size_t)R * F, moe_real) : NULL;
    moe_real *dP = ALLOC(E, moe_real), *dimp = ALLOC(E, moe_real), *dload = ALLOC(E, moe_real);
    if (!dy || !dxp || !dw || !dh || !da || (glu && !db) || !dP || !dimp || !dload)
        return MOE_ERR_NOMEM;

    moe_combine_backward(dy, dw, dout, c->y, c->weights, c->row_of, T, k, D);
    moe_experts_backward(dxp, g, dy, c, cfg, p, dh, da, db);

    if (Fs > 0) { /* dx written here first */
        moe_real *sdh = ALLOC((size_t)T * Fs, moe_real), *sda = ALLOC((size_t)T * Fs, moe_real);
        moe_real *sdb = glu ? ALLOC((size_t)T * Fs, moe_real) : NULL;
        if (!sdh || !sda || (glu && !sdb)) return MOE_ERR_NOMEM;
        ffn_backward(dx, g->shared_w1, NULL, g->shared_w3, NULL, g->shared_w2, NULL, sdh, sda, sdb,
                     dout, NULL, c->sa, c->sb, c->x, p->shared_w1, p->shared_w3, p->shared_w2,
                     cfg->act, T, D, Fs);
    } else {
        memset(dx, 0, sizeof(moe_real) * (size_t)T * D);
    }
    moe_dispatch_backward(dx, dxp, c->row_of, T, k, D);

    double dz = moe_aux_backward(dP, dimp, dload, c, cfg, daux);
    if (cfg->routing == MOE_ROUTE_TOPK && cfg->cv_coef != 0)
        for (size_t pr = 0; pr < (size_t)T * k; pr++) dw[pr] += dimp[c->chosen[pr]];
    const int smooth_load = c->noisy && cfg->cv_coef != 0;
    return moe_router_backward(g, dx, dw, dP, dz, smooth_load ? dload : NULL, c, cfg, p, arena);
}
