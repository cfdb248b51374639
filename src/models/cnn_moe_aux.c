/* Seed 000's auxiliary losses on the gate weights G [B,E] (rows sum to 1),
 * both versions exactly as docs/families.md defines them (i indexes the
 * batch, j and k experts, S_i = sum_j G_ij, dw and bw the config's
 * diversity_weight and balance_weight):
 *
 * readme (the original README's formulas):
 *   diversity = sum_i sum_{j != k} G_ij G_ik        SUMMED over the batch
 *   balance   = sum_j (1/E - m_j)^2,  m_j = (1/B) sum_i G_ij
 *   aux       = dw * diversity + bw * balance
 *
 * code (the original train.py's terms, as the guide writes them):
 *   entropy     = -(1/B) sum_i sum_j G_ij ln(G_ij + 1e-6)
 *   balance_kl  = KL(p || u) = sum_j p_j ln(p_j / (1/E)),  p = softmax_j(u_j),
 *                 u_j = sum_i G_ij (usage summed over the batch)
 *   correlation = mean(G^T G) = (1/E^2) sum_{j,k} sum_i G_ij G_ik
 *   min_gate    = (1/B) sum_i relu(0.1 - min_j G_ij)
 *   aux         = dw * entropy + bw * balance_kl + 0.1 * correlation + 0.5 * min_gate
 *
 * Gradients (written by cnn_moe_aux_backward, times scale):
 *   d diversity / dG_ij   = 2 (S_i - G_ij)
 *   d balance / dG_ij     = -(2/B) (1/E - m_j)
 *   d entropy / dG_ij     = -(1/B) (ln(G_ij + 1e-6) + G_ij / (G_ij + 1e-6))
 *   d balance_kl / dG_ij  = p_j (ln p_j - sum_k p_k ln p_k)   (the same for every i)
 *   d correlation / dG_ij = (2/E^2) S_i
 *   d min_gate / dG_ij    = -(1/B) when j is row i's first minimum and min < 0.1, else 0 */
#include "models/cnn_moe_internal.h"

#include <math.h>

#define ENTROPY_EPS 1e-6
#define MIN_GATE 0.1
#define CORR_WEIGHT 0.1
#define MIN_GATE_WEIGHT 0.5

static const char *const readme_names[] = {"diversity", "balance"};
static const char *const code_names[] = {"entropy", "balance_kl", "correlation", "min_gate"};

int cnn_moe_aux_parts(const moe_cnn_config *c, const char *const **names) {
    int code = c->loss == MOE_CNN_LOSS_CODE;
    if (names) *names = code ? code_names : readme_names;
    return code ? 4 : 2;
}

/* Index of row g's first smallest entry (torch.min's choice on ties). */
static int row_argmin(const moe_real *g, int E) {
    int a = 0;
    for (int j = 1; j < E; j++)
        if (g[j] < g[a]) a = j;
    return a;
}

/* p = softmax(u) with u_j = sum_i G_ij, in double; returns sum_j p_j ln p_j. */
static double usage_softmax(double *p, const moe_real *G, int B, int E) {
    double mx = -INFINITY, z = 0, plogp = 0;
    for (int j = 0; j < E; j++) {
        double u = 0;
        for (int i = 0; i < B; i++) u += G[(long)i * E + j];
        p[j] = u;
        if (u > mx) mx = u;
    }
    for (int j = 0; j < E; j++) z += exp(p[j] - mx);
    for (int j = 0; j < E; j++) {
        double lp = p[j] - mx - log(z);
        p[j] = exp(lp);
        plogp += p[j] * lp;
    }
    return plogp;
}

double cnn_moe_aux_forward(const moe_cnn_config *c, double *parts, double *work, const moe_real *G,
                           int B, int E) {
    if (c->loss == MOE_CNN_LOSS_README) {
        double div = 0, bal = 0;
        for (int i = 0; i < B; i++) {
            const moe_real *g = G + (long)i * E;
            double s = 0, sq = 0;
            for (int j = 0; j < E; j++) {
                s += g[j];
                sq += (double)g[j] * g[j];
            }
            div += s * s - sq; /* sum_{j != k} g_j g_k */
        }
        for (int j = 0; j < E; j++) {
            double mj = 0;
            for (int i = 0; i < B; i++) mj += G[(long)i * E + j];
            double d = 1.0 / E - mj / B;
            bal += d * d;
        }
        parts[0] = div;
        parts[1] = bal;
        return c->diversity_weight * div + c->balance_weight * bal;
    }
    double ent = 0, corr = 0, ming = 0, *p = work;
    for (int i = 0; i < B; i++) {
        const moe_real *g = G + (long)i * E;
        double s = 0;
        for (int j = 0; j < E; j++) {
            ent -= g[j] * log(g[j] + ENTROPY_EPS);
            s += g[j];
        }
        corr += s * s; /* sum_{j,k} G_ij G_ik */
        double gap = MIN_GATE - g[row_argmin(g, E)];
        if (gap > 0) ming += gap;
    }
    double kl = usage_softmax(p, G, B, E) + log((double)E); /* sum p ln p - sum p ln(1/E) */
    parts[0] = ent / B;
    parts[1] = kl;
    parts[2] = corr / ((double)E * E);
    parts[3] = ming / B;
    return c->diversity_weight * parts[0] + c->balance_weight * parts[1] + CORR_WEIGHT * parts[2] +
           MIN_GATE_WEIGHT * parts[3];
}

void cnn_moe_aux_backward(const moe_cnn_config *c, moe_real *dG, double *work, const moe_real *G,
                          int B, int E, float scale) {
    double dw = c->diversity_weight * (double)scale, bw = c->balance_weight * (double)scale;
    if (c->loss == MOE_CNN_LOSS_README) {
        double *dbal = work; /* the balance term's gradient depends on j only */
        for (int j = 0; j < E; j++) {
            double mj = 0;
            for (int i = 0; i < B; i++) mj += G[(long)i * E + j];
            dbal[j] = -2.0 / B * (1.0 / E - mj / B);
        }
#pragma omp parallel for schedule(static)
        for (int i = 0; i < B; i++) {
            const moe_real *g = G + (long)i * E;
            double s = 0;
            for (int j = 0; j < E; j++) s += g[j];
            for (int j = 0; j < E; j++)
                dG[(long)i * E + j] = (moe_real)(dw * 2.0 * (s - g[j]) + bw * dbal[j]);
        }
        return;
    }
    double *p = work, *dkl = work + E;
    double plogp = usage_softmax(p, G, B, E);
    for (int j = 0; j < E; j++) dkl[j] = bw * p[j] * (log(p[j]) - plogp);
    double corr_k = CORR_WEIGHT * (double)scale * 2.0 / ((double)E * E);
    double min_k = MIN_GATE_WEIGHT * (double)scale / B;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        const moe_real *g = G + (long)i * E;
        moe_real *d = dG + (long)i * E;
        double s = 0;
        for (int j = 0; j < E; j++) s += g[j];
        for (int j = 0; j < E; j++) {
            double gj = g[j];
            double dent = -(log(gj + ENTROPY_EPS) + gj / (gj + ENTROPY_EPS)) / B;
            d[j] = (moe_real)(dw * dent + dkl[j] + corr_k * s);
        }
        int a = row_argmin(g, E);
        if (MIN_GATE - g[a] > 0) d[a] -= (moe_real)min_k;
    }
}
