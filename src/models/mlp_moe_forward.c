/* Family mlp_moe, forward: the router (src/nn/moe's noisy top-k router,
 * counts, statistics and cv^2 loss reused as they are), every expert on
 * every row, the gate-weighted mixture, the task loss and the diversity
 * terms. Everything backward needs goes to the arena. */
#include "models/mlp_moe_internal.h"
#include "ops/ops.h"

#include <math.h>
#include <string.h>

#define ALLOC(n, type) ((type *)moe_arena_alloc(arena, (size_t)(n) * sizeof(type)))

/* Router, capacity bookkeeping (dropless), statistics and the cv^2 term,
 * exactly as the MoE layer runs them. */
static moe_status route(mlp_moe *m, mlp_moe_cache *c, int training, const moe_real *eps,
                        moe_rng *rng, moe_arena *arena) {
    const int B = c->B, E = m->E, k = m->k;
    moe_layer_cache *rc = moe_arena_calloc(arena, sizeof *rc);
    if (!rc) return MOE_ERR_NOMEM;
    rc->T = B;
    rc->x = c->x;
    if (eps && m->rcfg.noisy && training) { /* replay the given noise */
        rc->eps = ALLOC((size_t)B * E, moe_real);
        if (!rc->eps) return MOE_ERR_NOMEM;
        memcpy(rc->eps, eps, sizeof(moe_real) * (size_t)B * E);
    }
    moe_layer_params rp = {0};
    rp.gate = m->p.gate;
    rp.noise = m->p.noise;
    moe_status st = moe_router_forward(rc, &m->rcfg, &rp, c->x, B, training, rng, arena);
    if (st) return st;
    rc->routed = ALLOC(E, int);
    rc->kept = ALLOC(E, int);
    rc->row_of = ALLOC((size_t)B * k, int);
    rc->P = ALLOC(E, moe_real);
    rc->importance = ALLOC(E, moe_real);
    rc->load = ALLOC(E, moe_real);
    if (!rc->routed || !rc->kept || !rc->row_of || !rc->P || !rc->importance || !rc->load)
        return MOE_ERR_NOMEM;
    moe_capacity_assign(rc, &m->rcfg);
    rc->R = B * k;
    if ((st = moe_stats_forward(rc, &m->rcfg, arena))) return st;
    moe_aux_forward(rc, &m->rcfg);
    c->rc = rc;
    return MOE_OK;
}

/* Expert e on all B rows: a = x W1^T + b1, h = relu(a), y = softmax(h W2^T
 * + b2) and logy = log-softmax. */
static void expert_forward(mlp_moe *m, mlp_moe_cache *c, int e) {
    const int B = c->B, F = m->F, H = m->H, C = m->C;
    moe_real *a = c->a + (size_t)e * B * H, *h = c->h + (size_t)e * B * H;
    moe_real *y = c->y + (size_t)e * B * C, *logy = c->logy + (size_t)e * B * C;
    matmul_forward(a, c->x, m->p.w1[e], m->p.b1[e], B, F, H);
    relu_forward(h, a, (long)B * H);
    matmul_forward(logy, h, m->p.w2[e], m->p.b2[e], B, H, C); /* logits, for now */
    for (int b = 0; b < B; b++) {
        moe_real *z = logy + (size_t)b * C;
        double lse = softmax_row(y + (size_t)b * C, z, C);
        for (int j = 0; j < C; j++) z[j] = (moe_real)(z[j] - lse);
    }
}

/* Dense gates, p_hat = sum_j w_j y_{chosen j}, and log p_hat as a
 * logsumexp of log w_j + log y (exact where p_hat underflows). */
static void mix(mlp_moe *m, mlp_moe_cache *c) {
    const int B = c->B, E = m->E, k = m->k, C = m->C;
    const int *ch = c->rc->chosen;
    const moe_real *w = c->rc->weights;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        moe_real *g = c->gates + (size_t)b * E;
        for (int e = 0; e < E; e++) g[e] = 0;
        for (int j = 0; j < k; j++) g[ch[(size_t)b * k + j]] = w[(size_t)b * k + j];
        for (int cl = 0; cl < C; cl++) {
            double p = 0, mx = -INFINITY;
            for (int j = 0; j < k; j++) {
                size_t at = ((size_t)ch[(size_t)b * k + j] * B + b) * C + cl;
                double wj = w[(size_t)b * k + j];
                p += wj * c->y[at];
                double l = log(wj) + c->logy[at];
                if (l > mx) mx = l;
            }
            double s = 0;
            for (int j = 0; j < k && isfinite(mx); j++) {
                size_t at = ((size_t)ch[(size_t)b * k + j] * B + b) * C + cl;
                s += exp(log((double)w[(size_t)b * k + j]) + c->logy[at] - mx);
            }
            c->phat[(size_t)b * C + cl] = (moe_real)p;
            c->logphat[(size_t)b * C + cl] = (moe_real)(isfinite(mx) ? mx + log(s) : mx);
        }
    }
}

static moe_status check_batch(const mlp_moe *m, const moe_batch *b, int training,
                              const moe_real *eps, const moe_rng *rng, const moe_arena *arena) {
    if (!b || !arena) return moe_error(MOE_ERR_INVALID, "mlp_moe forward: NULL batch or arena");
    if (b->B < 1 || !b->x)
        return moe_error(MOE_ERR_INVALID,
                         "mlp_moe forward: the batch needs B >= 1 (got %d) rows of x [B, %d]", b->B,
                         m->F);
    if (m->rcfg.noisy && training && !eps && !rng)
        return moe_error(MOE_ERR_INVALID, "mlp_moe forward: noisy gating in training needs an "
                                          "rng");
    return MOE_OK;
}

moe_status mlp_moe_forward_eps(mlp_moe *m, const moe_batch *b, int training, const moe_real *eps,
                               moe_rng *rng, moe_arena *arena, double *task_loss,
                               double *aux_loss) {
    m->last = NULL;
    moe_status st = check_batch(m, b, training, eps, rng, arena);
    if (st) return st;
    const int B = b->B, E = m->E, H = m->H, C = m->C;
    const size_t EBH = (size_t)E * B * H, EBC = (size_t)E * B * C;
    mlp_moe_cache *c = moe_arena_calloc(arena, sizeof *c);
    if (!c) return MOE_ERR_NOMEM;
    c->B = B;
    c->x = b->x;
    if ((st = mlp_moe_targets(c, b, C, arena))) return st;
    c->a = ALLOC(EBH, moe_real);
    c->h = ALLOC(EBH, moe_real);
    c->y = ALLOC(EBC, moe_real);
    c->logy = ALLOC(EBC, moe_real);
    c->gates = ALLOC((size_t)B * E, moe_real);
    c->phat = ALLOC((size_t)B * C, moe_real);
    c->logphat = ALLOC((size_t)B * C, moe_real);
    c->mean = ALLOC((size_t)E * C, moe_real);
    if (!c->a || !c->h || !c->y || !c->logy || !c->gates || !c->phat || !c->logphat || !c->mean)
        return MOE_ERR_NOMEM;
    if ((st = route(m, c, training, eps, rng, arena))) return st;

    /* Every expert on every row (the diversity terms need all outputs); the
     * GEMMs thread inside OpenBLAS. */
    for (int e = 0; e < E; e++) expert_forward(m, c, e);
    mix(m, c);
    for (int e = 0; e < E; e++)
        for (int cl = 0; cl < C; cl++) {
            double s = 0;
            for (int r = 0; r < B; r++) s += c->y[((size_t)e * B + r) * C + cl];
            c->mean[(size_t)e * C + cl] = (moe_real)(s / B);
        }

    const moe_mlp_moe_config *mc = &m->cfg.mlp;
    double *pt = m->parts;
    pt[MLP_PART_CV] = c->rc->stats->aux_cv;
    pt[MLP_PART_PARAM_DIV] = mlp_moe_param_div(m, &m->p, NULL, 0);
    pt[MLP_PART_OUTPUT_DIV] = mlp_moe_output_div(c->mean, E, C, NULL, 0);
    pt[MLP_PART_JS] = mlp_moe_js(c->mean, E, C, NULL, 0);
    double aux = m->rcfg.cv_coef * pt[MLP_PART_CV] + mc->param_div_weight * pt[MLP_PART_PARAM_DIV] +
                 mc->output_div_weight * pt[MLP_PART_OUTPUT_DIV] + mc->js_weight * pt[MLP_PART_JS];
    double task = c->has_target ? mlp_moe_ce_forward(c, C) : 0;
    if (task_loss) *task_loss = task;
    if (aux_loss) *aux_loss = aux;
    m->last = c;
    if (c->has_target && (!isfinite(task) || !isfinite(aux)))
        return moe_error(MOE_ERR_NUMERIC,
                         "mlp_moe forward: loss is %g + aux %g; lower the "
                         "learning rate or check the inputs for NaN",
                         task, aux);
    return MOE_OK;
}
