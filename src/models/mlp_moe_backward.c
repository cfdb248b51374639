/* Family mlp_moe, backward: the task loss and the output-diversity / JS
 * terms reach the experts through p_hat and the batch means, the parameter
 * diversity reaches their weights directly, and the router (src/nn/moe's
 * router backward, with the cv^2 gradients of importance and smooth load)
 * gets d loss / d gate weight of each chosen expert.
 *
 * No router gradient with top_k = 1 and renormalisation: the one chosen
 * weight is s / s = 1 whatever the scores, so neither the task loss nor
 * cv^2(importance) (importance = counts) sends anything to the router;
 * only cv^2 of the smooth load (noisy training, cv_coef > 0) does. The
 * model still trains its experts; the trainer's monitor flags the router
 * (no_router_grad). Seed 002 divides by (sum + 1e-6), so there the weight
 * is only ~1 and the gradient ~1e-6 relative; here it is exactly 0. */
#include "models/mlp_moe_internal.h"
#include "ops/ops.h"

#include <string.h>

#define ALLOC(n, type) ((type *)moe_arena_alloc(arena, (size_t)(n) * sizeof(type)))
#define CALLOC(n, type) ((type *)moe_arena_calloc(arena, (size_t)(n) * sizeof(type)))

/* Mixture backward: dw [B, k] written (d loss / d gate weight), dy [E, B, C]
 * added (w * dphat on each chosen expert's row). */
static void mix_backward(moe_real *dw, moe_real *dy, const moe_real *dphat, const mlp_moe *m,
                         const mlp_moe_cache *c) {
    const int B = c->B, k = m->k, C = m->C;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const moe_real *dp = dphat + (size_t)b * C;
        for (int j = 0; j < k; j++) {
            size_t pr = (size_t)b * k + j;
            size_t row = ((size_t)c->rc->chosen[pr] * B + b) * C;
            double w = c->rc->weights[pr], s = 0;
            for (int cl = 0; cl < C; cl++) {
                s += (double)dp[cl] * c->y[row + cl];
                dy[row + cl] = (moe_real)(dy[row + cl] + w * dp[cl]);
            }
            dw[pr] = (moe_real)s;
        }
    }
}

/* Expert e: softmax, fc2, relu, fc1 backward; weight grads added. */
static void expert_backward(mlp_moe *m, const mlp_moe_cache *c, int e, const moe_real *dy,
                            moe_real *dz, moe_real *dh, moe_real *da) {
    const int B = c->B, F = m->F, H = m->H, C = m->C;
    const moe_real *y = c->y + (size_t)e * B * C;
    dy += (size_t)e * B * C;
    for (int b = 0; b < B; b++) {
        const moe_real *yr = y + (size_t)b * C, *dr = dy + (size_t)b * C;
        double s = 0;
        for (int cl = 0; cl < C; cl++) s += (double)yr[cl] * dr[cl];
        for (int cl = 0; cl < C; cl++) dz[(size_t)b * C + cl] = (moe_real)(yr[cl] * (dr[cl] - s));
    }
    const moe_real *a = c->a + (size_t)e * B * H, *h = c->h + (size_t)e * B * H;
    matmul_backward(dh, m->g.w2[e], m->g.b2[e], dz, h, m->p.w2[e], B, H, C);
    relu_backward(da, dh, a, (long)B * H);
    matmul_backward(NULL, m->g.w1[e], m->g.b1[e], da, c->x, m->p.w1[e], B, F, H);
}

/* The router: cv^2 gradients (importance into dw, smooth load), then
 * src/nn/moe's router backward into the gate and noise gradients. */
static moe_status router_backward(mlp_moe *m, const mlp_moe_cache *c, moe_real *dw, double scale,
                                  moe_arena *arena) {
    const int B = c->B, E = m->E, k = m->k, F = m->F;
    const moe_layer_cache *rc = c->rc;
    moe_real *dP = ALLOC(E, moe_real), *dimp = ALLOC(E, moe_real), *dload = ALLOC(E, moe_real);
    moe_real *dx = CALLOC((size_t)B * F, moe_real); /* d x: computed by the router, unused */
    if (!dP || !dimp || !dload || !dx) return MOE_ERR_NOMEM;
    double dz = moe_aux_backward(dP, dimp, dload, rc, &m->rcfg, scale);
    if (m->rcfg.cv_coef != 0)
        for (size_t pr = 0; pr < (size_t)B * k; pr++) dw[pr] += dimp[rc->chosen[pr]];
    const int smooth_load = rc->noisy && m->rcfg.cv_coef != 0;
    moe_layer_params rp = {0}, rg = {0};
    rp.gate = m->p.gate;
    rp.noise = m->p.noise;
    rg.gate = m->g.gate;
    rg.noise = m->g.noise;
    return moe_router_backward(&rg, dx, dw, dP, dz, smooth_load ? dload : NULL, rc, &m->rcfg, &rp,
                               arena);
}

moe_status mlp_moe_backward(void *impl, moe_arena *arena, float scale) {
    mlp_moe *m = impl;
    const mlp_moe_cache *c = m->last;
    if (!c || !arena)
        return moe_error(MOE_ERR_INVALID, "mlp_moe backward: no forward to differentiate (run "
                                          "forward first, and keep its arena until backward)");
    const int B = c->B, E = m->E, H = m->H, C = m->C, k = m->k;
    const moe_mlp_moe_config *mc = &m->cfg.mlp;
    moe_real *dy = CALLOC((size_t)E * B * C, moe_real); /* d expert outputs */
    moe_real *dw = CALLOC((size_t)B * k, moe_real);     /* d gate weights */
    moe_real *dz = ALLOC((size_t)B * C, moe_real), *dh = ALLOC((size_t)B * H, moe_real);
    moe_real *da = ALLOC((size_t)B * H, moe_real);
    if (!dy || !dw || !dz || !dh || !da) return MOE_ERR_NOMEM;

    if (c->has_target) {
        moe_real *dphat = ALLOC((size_t)B * C, moe_real);
        if (!dphat) return MOE_ERR_NOMEM;
        mlp_moe_ce_backward(dphat, c, C, scale);
        mix_backward(dw, dy, dphat, m, c);
    }
    if (mc->output_div_weight > 0 || mc->js_weight > 0) {
        moe_real *dmean = CALLOC((size_t)E * C, moe_real);
        if (!dmean) return MOE_ERR_NOMEM;
        mlp_moe_output_div(c->mean, E, C, dmean, (double)scale * mc->output_div_weight);
        mlp_moe_js(c->mean, E, C, dmean, (double)scale * mc->js_weight);
        /* mean_e = sum_b y_e[b] / B */
        for (int e = 0; e < E; e++)
            for (int b = 0; b < B; b++)
                for (int cl = 0; cl < C; cl++)
                    dy[((size_t)e * B + b) * C + cl] += dmean[(size_t)e * C + cl] / B;
    }
    for (int e = 0; e < E; e++) expert_backward(m, c, e, dy, dz, dh, da);
    if (mc->param_div_weight > 0)
        mlp_moe_param_div(m, &m->p, &m->g, (double)scale * mc->param_div_weight);
    return router_backward(m, c, dw, scale, arena);
}
