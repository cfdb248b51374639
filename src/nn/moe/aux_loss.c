/* Auxiliary losses, all computed from the routing logits after temperature
 * (and after noise, when noisy gating is on in training). Choices, written
 * down because implementations differ:
 *  - Switch (Fedus et al.): E * sum_i f_i P_i. f_i counts the ROUTING
 *    decision before capacity (all T*k chosen pairs, dropped or not),
 *    divided by T*k (switch_divide_by_k = 1: balanced = 1, DeepSpeed,
 *    MegaBlocks) or by T (0: balanced = k, HF Mixtral). P_i = mean over tokens
 *    of the full score (softmax over all E, even for top-k-before-softmax;
 *    sigmoid scores for sigmoid routers). Gradient flows only through P.
 *  - z-loss (ST-MoE): mean_t (logsumexp_e logits_te)^2.
 *  - variance (the product spec's alpha * var(mean_over_batch(scores))):
 *    population variance over experts of P_i.
 *  - cv^2 (Shazeer et al. 2017): cv^2(importance) + cv^2(load) with
 *    cv^2(v) = var(v) / (mean(v)^2 + 1e-10), var unbiased (n - 1) as
 *    torch.var in the seed code; 0 when E == 1. importance_i = sum_t of the
 *    gate weight of expert i (0 when unchosen; all chosen pairs, before
 *    capacity). load_i = sum_t Phi((clean_ti - thr_ti) / std_ti) when noise
 *    was drawn, where thr is the (k+1)-th largest noisy logit if i is in the
 *    top k, else the k-th (Shazeer's _prob_in_top_k; gradient flows through
 *    clean_i, std_i and the threshold expert's noisy logit); otherwise
 *    load_i = the number of pairs chosen (no gradient). */
#include "moe_internal.h"

#include <math.h>

double moe_normal_cdf(double z) {
    return 0.5 * erfc(-z * 0.70710678118654752440);
}

double moe_normal_pdf(double z) {
    return 0.39894228040143267794 * exp(-0.5 * z * z);
}

double moe_load_z(const moe_layer_cache *c, int t, int i, int E, int k, int *thr_expert) {
    if (c->next[t] < 0) { /* k == E: every expert is always in */
        *thr_expert = -1;
        return INFINITY;
    }
    const moe_real *l = c->logits + (size_t)t * E;
    int in_thr = c->next[t], out_thr = c->chosen[(size_t)t * k + k - 1];
    int m = l[i] > l[in_thr] ? in_thr : out_thr;
    *thr_expert = m;
    size_t ti = (size_t)t * E + i;
    return (c->clean[ti] - l[m]) / c->noise_std[ti];
}

/* cv^2 of v [n]; with grad != NULL also writes d cv^2 / d v scaled by a. */
static double cv2(const moe_real *v, int n, moe_real *grad, double a) {
    if (n < 2) {
        if (grad)
            for (int i = 0; i < n; i++) grad[i] = 0;
        return 0;
    }
    double mean = 0, ss = 0;
    for (int i = 0; i < n; i++) mean += v[i];
    mean /= n;
    for (int i = 0; i < n; i++) ss += (v[i] - mean) * (v[i] - mean);
    double var = ss / (n - 1), den = mean * mean + 1e-10;
    if (grad)
        for (int i = 0; i < n; i++)
            grad[i] = (moe_real)(a * (2 * (v[i] - mean) / (n - 1) / den -
                                      var * 2 * mean / (n * den * den)));
    return var / den;
}

void moe_aux_forward(moe_layer_cache *c, const moe_layer_config *cfg) {
    const int E = cfg->n_experts, k = cfg->top_k, T = c->T;
    moe_layer_stats *st = c->stats;
    double P[E], imp[E], load[E], z = 0;
    for (int e = 0; e < E; e++) P[e] = imp[e] = load[e] = 0;
    for (int t = 0; t < T; t++) {
        const moe_real *s = c->scores + (size_t)t * E;
        for (int e = 0; e < E; e++) P[e] += s[e];
        for (int j = 0; j < k; j++)
            imp[c->chosen[(size_t)t * k + j]] += c->weights[(size_t)t * k + j];
        z += (double)c->lse[t] * c->lse[t];
        if (c->noisy)
            for (int i = 0; i < E; i++) {
                int m;
                double zz = moe_load_z(c, t, i, E, k, &m);
                load[i] += m < 0 ? 1.0 : moe_normal_cdf(zz);
            }
    }
    double sw = 0, mean_p = 0, var = 0;
    const double fden = cfg->switch_divide_by_k ? (double)T * k : (double)T;
    for (int e = 0; e < E; e++) {
        c->P[e] = (moe_real)(P[e] / T);
        c->importance[e] = (moe_real)imp[e];
        c->load[e] = (moe_real)(c->noisy ? load[e] : c->routed[e]);
        sw += c->routed[e] / fden * (P[e] / T);
        mean_p += P[e] / T;
    }
    mean_p /= E;
    for (int e = 0; e < E; e++) var += (P[e] / T - mean_p) * (P[e] / T - mean_p);
    st->aux_switch = E * sw;
    st->aux_z = z / T;
    st->aux_var = var / E;
    st->aux_cv = cv2(c->importance, E, NULL, 0) + cv2(c->load, E, NULL, 0);
    st->aux_total = cfg->switch_coef * st->aux_switch + cfg->z_coef * st->aux_z +
                    cfg->var_coef * st->aux_var + cfg->cv_coef * st->aux_cv;
}

double moe_aux_backward(moe_real *dP, moe_real *dimp, moe_real *dload, const moe_layer_cache *c,
                        const moe_layer_config *cfg, double daux) {
    const int E = cfg->n_experts, k = cfg->top_k, T = c->T;
    const double fden = cfg->switch_divide_by_k ? (double)T * k : (double)T;
    const double a_sw = cfg->switch_coef * daux, a_var = cfg->var_coef * daux;
    double mean_p = 0;
    for (int e = 0; e < E; e++) mean_p += c->P[e];
    mean_p /= E;
    for (int e = 0; e < E; e++)
        dP[e] = (moe_real)(a_sw * E * (c->routed[e] / fden) + a_var * 2.0 * (c->P[e] - mean_p) / E);
    cv2(c->importance, E, dimp, cfg->cv_coef * daux);
    cv2(c->load, E, dload, cfg->cv_coef * daux); /* used only when noisy */
    return cfg->z_coef * daux;
}
