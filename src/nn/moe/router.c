/* Router: logits = (x Wg^T + eps * (softplus(x Wn^T) + 0.01)) / temperature,
 * scores = softmax or sigmoid of the logits, top-k per token, and the k
 * routing weights. Everything here is per token, so the loops are OpenMP
 * over tokens; the noise is drawn sequentially so a seed fixes it. */
#include "moe_internal.h"
#include "ops/ops.h"

#include <math.h>
#include <string.h>

#define ALLOC(n, type) ((type *)moe_arena_alloc(arena, (size_t)(n) * sizeof(type)))

static double softplus(double v) {
    return (v > 0 ? v : 0) + log1p(exp(-fabs(v)));
}

static double sigmoid(double v) {
    return 1.0 / (1.0 + exp(-v));
}

/* Ranks the top n (n <= E) logits of one token, best first; ties go to the
 * lower index. O(n E), cheap for the E of a router. */
static void top_n(int *idx, const moe_real *l, int E, int n) {
    for (int j = 0; j < n; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int used = 0;
            for (int m = 0; m < j; m++) used |= idx[m] == e;
            if (!used && (best < 0 || l[e] > l[best])) best = e;
        }
        idx[j] = best;
    }
}

/* Token t's logits are not all finite (a NaN or Inf in its input or in a
 * router row): it goes to the fallback expert with weight 1, the other k - 1
 * slots to the lowest-numbered other experts with weight 0 (so the pair
 * count, capacity and dispatch stay as for any token). Its scores become
 * one-hot and its logsumexp 0, so the mean probabilities, entropy and
 * auxiliary losses stay finite; backward gives it no router gradient. */
static void route_fallback(moe_layer_cache *c, const moe_layer_config *cfg, int t) {
    const int E = cfg->n_experts, k = cfg->top_k, fb = cfg->fallback_expert;
    moe_real *s = c->scores + (size_t)t * E;
    int *ch = c->chosen + (size_t)t * k;
    moe_real *w = c->weights + (size_t)t * k;
    for (int e = 0; e < E; e++) s[e] = e == fb;
    c->lse[t] = 0;
    ch[0] = fb;
    w[0] = 1;
    for (int j = 1, e = 0; j < k; j++, e++) {
        if (e == fb) e++;
        ch[j] = e;
        w[j] = 0;
    }
    c->next[t] = -1;
    c->fallback[t] = 1;
}

static int all_finite(const moe_real *l, int E) {
    for (int e = 0; e < E; e++)
        if (!isfinite(l[e])) return 0;
    return 1;
}

/* Scores, top-k and weights of token t. */
static void route_token(moe_layer_cache *c, const moe_layer_config *cfg, int t) {
    const int E = cfg->n_experts, k = cfg->top_k;
    const moe_real *l = c->logits + (size_t)t * E;
    moe_real *s = c->scores + (size_t)t * E;
    int *ch = c->chosen + (size_t)t * k;
    moe_real *w = c->weights + (size_t)t * k;
    if (c->fallback && cfg->routing == MOE_ROUTE_TOPK && !all_finite(l, E)) {
        route_fallback(c, cfg, t);
        return;
    }
    /* the logsumexp also feeds the z-loss, for sigmoid routers too */
    c->lse[t] = (moe_real)softmax_row(s, l, E);
    if (cfg->score == MOE_SCORE_SIGMOID)
        for (int e = 0; e < E; e++) s[e] = (moe_real)sigmoid(l[e]);

    if (cfg->routing == MOE_ROUTE_ROUND_ROBIN) {
        for (int j = 0; j < k; j++) {
            ch[j] = (int)(((long)t * k + j) % E);
            w[j] = (moe_real)(1.0 / k);
        }
        c->next[t] = -1;
        return;
    }
    int rank[k + 1];
    int n = k < E ? k + 1 : k;
    top_n(rank, l, E, n);
    memcpy(ch, rank, sizeof(int) * (size_t)k);
    c->next[t] = k < E ? rank[k] : -1;
    if (cfg->score == MOE_SCORE_SOFTMAX && cfg->topk_before_softmax) {
        /* Mixtral: softmax over the k chosen logits (sums to 1 already) */
        double m = l[ch[0]], z = 0;
        for (int j = 0; j < k; j++) z += exp(l[ch[j]] - m);
        for (int j = 0; j < k; j++) w[j] = (moe_real)(exp(l[ch[j]] - m) / z);
        return;
    }
    double S = 0;
    for (int j = 0; j < k; j++) S += s[ch[j]];
    for (int j = 0; j < k; j++) w[j] = cfg->renormalize ? (moe_real)(s[ch[j]] / S) : s[ch[j]];
}

moe_status moe_router_forward(moe_layer_cache *c, const moe_layer_config *cfg,
                              const moe_layer_params *p, const moe_real *x, int T, int training,
                              moe_rng *rng, moe_arena *arena) {
    const int E = cfg->n_experts, D = cfg->d_model, k = cfg->top_k;
    const size_t TE = (size_t)T * E;
    const double inv_temp = 1.0 / cfg->temperature;
    c->noisy = cfg->noisy && training;
    c->clean = ALLOC(TE, moe_real);
    c->scores = ALLOC(TE, moe_real);
    c->lse = ALLOC(T, moe_real);
    c->chosen = ALLOC((size_t)T * k, int);
    c->next = ALLOC(T, int);
    c->weights = ALLOC((size_t)T * k, moe_real);
    if (!c->clean || !c->scores || !c->lse || !c->chosen || !c->next || !c->weights)
        return MOE_ERR_NOMEM;
    c->fallback = NULL;
    c->n_fallback = 0;
    if (cfg->fallback) {
        c->fallback = moe_arena_calloc(arena, (size_t)T);
        if (!c->fallback) return MOE_ERR_NOMEM;
    }

    gemm(0, 1, T, E, D, (moe_real)inv_temp, x, D, p->gate, D, 0, c->clean, E);
    c->logits = c->clean;
    if (c->noisy) {
        /* eps preset by the caller fixes the noise (mlp_moe's parity test);
         * the layer's cache starts zeroed, so the layer always draws it */
        const int draw = c->eps == NULL;
        c->noise_raw = ALLOC(TE, moe_real);
        c->noise_std = ALLOC(TE, moe_real);
        if (draw) c->eps = ALLOC(TE, moe_real);
        c->logits = ALLOC(TE, moe_real);
        if (!c->noise_raw || !c->noise_std || !c->eps || !c->logits) return MOE_ERR_NOMEM;
        gemm(0, 1, T, E, D, 1, x, D, p->noise, D, 0, c->noise_raw, E);
        if (draw)
            for (size_t i = 0; i < TE; i++) c->eps[i] = (moe_real)moe_rng_normal(rng);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < TE; i++) {
            double sd = (softplus(c->noise_raw[i]) + 0.01) * inv_temp;
            c->noise_std[i] = (moe_real)sd;
            c->logits[i] = (moe_real)(c->clean[i] + c->eps[i] * sd);
        }
    }
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) route_token(c, cfg, t);
    if (c->fallback)
        for (int t = 0; t < T; t++) c->n_fallback += c->fallback[t];
    return MOE_OK;
}

/* d loss / d logits of token t into dl [E] (written), the part of the noise
 * std gradient in dsd [E] (written, noisy only). dp [E] is scratch. */
static void token_backward(moe_real *dl, moe_real *dsd, double *dp, const moe_real *dw,
                           const moe_real *dP, double dz_scale, const moe_real *dload,
                           const moe_layer_cache *c, const moe_layer_config *cfg, int t) {
    const int E = cfg->n_experts, k = cfg->top_k, T = c->T;
    const moe_real *l = c->logits + (size_t)t * E;
    const moe_real *s = c->scores + (size_t)t * E;
    const int *ch = c->chosen + (size_t)t * k;
    const moe_real *w = c->weights + (size_t)t * k;
    const moe_real *dwt = dw + (size_t)t * k;
    const int softmax = cfg->score == MOE_SCORE_SOFTMAX;
    for (int e = 0; e < E; e++) {
        dl[e] = 0;
        dp[e] = dP ? dP[e] / T : 0; /* P_i = mean_t score_ti */
    }
    if (c->fallback && c->fallback[t]) { /* fixed routing: no router gradient */
        if (c->noisy)
            for (int e = 0; e < E; e++) dsd[e] = 0;
        return;
    }
    /* gate weights (round robin weights are constants) */
    if (cfg->routing == MOE_ROUTE_TOPK) {
        double wd = 0;
        for (int j = 0; j < k; j++) wd += (double)w[j] * dwt[j];
        if (softmax && cfg->topk_before_softmax) {
            for (int j = 0; j < k; j++) dl[ch[j]] += (moe_real)(w[j] * (dwt[j] - wd));
        } else if (cfg->renormalize) { /* w_j = s_j / S */
            double S = 0;
            for (int j = 0; j < k; j++) S += s[ch[j]];
            for (int j = 0; j < k; j++) dp[ch[j]] += (dwt[j] - wd) / S;
        } else {
            for (int j = 0; j < k; j++) dp[ch[j]] += dwt[j];
        }
    }
    /* scores -> logits */
    if (softmax) {
        double sd = 0;
        for (int e = 0; e < E; e++) sd += s[e] * dp[e];
        for (int e = 0; e < E; e++) dl[e] += (moe_real)(s[e] * (dp[e] - sd));
    } else {
        for (int e = 0; e < E; e++) dl[e] += (moe_real)(dp[e] * s[e] * (1 - s[e]));
    }
    /* z-loss: d lse^2 / T = 2 lse / T * softmax(logits) */
    if (dz_scale != 0) {
        double a = dz_scale * 2.0 * c->lse[t] / T;
        for (int e = 0; e < E; e++) dl[e] += (moe_real)(a * exp(l[e] - c->lse[t]));
    }
    if (!c->noisy) return;
    /* noisy logit = clean + eps * std: the std sees eps * dl */
    const moe_real *eps = c->eps + (size_t)t * E;
    const moe_real *sdv = c->noise_std + (size_t)t * E;
    for (int e = 0; e < E; e++) dsd[e] = eps[e] * dl[e];
    if (!dload) return;
    /* smooth load Phi((clean_i - thr) / std_i); thr is another expert's
     * noisy logit, so its clean logit and std get the opposite share. */
    for (int i = 0; i < E; i++) {
        if (dload[i] == 0) continue;
        int m;
        double z = moe_load_z(c, t, i, E, k, &m);
        if (m < 0) continue;
        double dz = moe_normal_pdf(z) * dload[i];
        dl[i] += (moe_real)(dz / sdv[i]); /* from here on dl is d clean */
        dsd[i] -= (moe_real)(dz * z / sdv[i]);
        double dthr = -dz / sdv[i];
        dl[m] += (moe_real)dthr;
        dsd[m] += (moe_real)(eps[m] * dthr);
    }
}

moe_status moe_router_backward(moe_layer_params *g, moe_real *dx, const moe_real *dw,
                               const moe_real *dP, double dz_scale, const moe_real *dload,
                               const moe_layer_cache *c, const moe_layer_config *cfg,
                               const moe_layer_params *p, moe_arena *arena) {
    const int E = cfg->n_experts, D = cfg->d_model, T = c->T;
    const size_t TE = (size_t)T * E;
    const double inv_temp = 1.0 / cfg->temperature;
    moe_real *dclean = ALLOC(TE, moe_real); /* [T, E] d (x Wg^T) */
    moe_real *draw = ALLOC(TE, moe_real);   /* [T, E] d (x Wn^T) */
    double *dp = ALLOC(TE, double);         /* [T, E] scratch */
    if (!dclean || !draw || !dp) return MOE_ERR_NOMEM;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        moe_real *dl = dclean + (size_t)t * E, *dsd = draw + (size_t)t * E;
        token_backward(dl, dsd, dp + (size_t)t * E, dw, dP, dz_scale, dload, c, cfg, t);
        for (int e = 0; e < E; e++) {
            dl[e] = (moe_real)(dl[e] * inv_temp);
            if (c->noisy)
                dsd[e] = (moe_real)(dsd[e] * inv_temp * sigmoid(c->noise_raw[(size_t)t * E + e]));
        }
    }
    if (g->gate) gemm(1, 0, E, D, T, 1, dclean, E, c->x, D, 1, g->gate, D);
    gemm(0, 0, T, D, E, 1, dclean, E, p->gate, D, 1, dx, D);
    if (c->noisy) {
        if (g->noise) gemm(1, 0, E, D, T, 1, draw, E, c->x, D, 1, g->noise, D);
        gemm(0, 0, T, D, E, 1, draw, E, p->noise, D, 1, dx, D);
    }
    return MOE_OK;
}
