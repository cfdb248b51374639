/* Family mlp_moe, seed 002's three expert-diversity terms (each 0 with
 * one expert; P = E (E - 1) / 2 pairs):
 *  - parameter diversity: mean over pairs of cos^2 between the experts'
 *    flattened weights. Like the seed, only weights count (fc1.weight then
 *    fc2.weight; biases are left out);
 *  - output diversity: mean over pairs of |cos(m_i, m_j)|, m_e [C] the
 *    batch mean of expert e's output distribution (every expert runs on
 *    every row for this);
 *  - JS: minus the mean over pairs of JS(p, q) = (KL(p||m) + KL(q||m)) / 2,
 *    m = (p + q) / 2, with p, q the batch means clamped to [1e-8, 1] and the
 *    seed's log(v + 1e-8) inside each KL.
 * Cosines divide by max(norm, 1e-8) per vector (F.cosine_similarity's eps);
 * a clamped norm is treated as a constant in the gradient. */
#include "models/mlp_moe_internal.h"

#include <math.h>

#define COS_EPS 1e-8

static double vdot(const moe_real *a, const moe_real *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* g += a * u + b * v over n entries */
static void axpby(moe_real *g, double a, const moe_real *u, double b, const moe_real *v, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = (moe_real)(g[i] + a * u[i] + b * v[i]);
}

double mlp_moe_param_div(const mlp_moe *m, const mlp_moe_w *p, mlp_moe_w *g, double scale) {
    const int E = m->E;
    if (E < 2) return 0;
    const size_t n1 = (size_t)m->H * m->F, n2 = (size_t)m->C * m->H;
    const double P = E * (E - 1) / 2.0;
    double nrm[E];
    for (int e = 0; e < E; e++)
        nrm[e] = fmax(sqrt(vdot(p->w1[e], p->w1[e], n1) + vdot(p->w2[e], p->w2[e], n2)), COS_EPS);
    double val = 0;
    for (int i = 0; i < E; i++)
        for (int j = i + 1; j < E; j++) {
            double d = vdot(p->w1[i], p->w1[j], n1) + vdot(p->w2[i], p->w2[j], n2);
            double cs = d / (nrm[i] * nrm[j]);
            val += cs * cs / P;
            if (!g || scale == 0) continue;
            /* d cos / d v_i = v_j / (n_i n_j) - cos v_i / n_i^2 */
            double c = scale * 2 * cs / P, a = c / (nrm[i] * nrm[j]);
            double bi = -c * cs / (nrm[i] * nrm[i]), bj = -c * cs / (nrm[j] * nrm[j]);
            axpby(g->w1[i], a, p->w1[j], bi, p->w1[i], n1);
            axpby(g->w2[i], a, p->w2[j], bi, p->w2[i], n2);
            axpby(g->w1[j], a, p->w1[i], bj, p->w1[j], n1);
            axpby(g->w2[j], a, p->w2[i], bj, p->w2[j], n2);
        }
    return val;
}

double mlp_moe_output_div(const moe_real *mean, int E, int C, moe_real *dmean, double scale) {
    if (E < 2) return 0;
    const double P = E * (E - 1) / 2.0;
    double nrm[E];
    for (int e = 0; e < E; e++)
        nrm[e] = fmax(sqrt(vdot(mean + (size_t)e * C, mean + (size_t)e * C, (size_t)C)), COS_EPS);
    double val = 0;
    for (int i = 0; i < E; i++)
        for (int j = i + 1; j < E; j++) {
            const moe_real *mi = mean + (size_t)i * C, *mj = mean + (size_t)j * C;
            double cs = vdot(mi, mj, (size_t)C) / (nrm[i] * nrm[j]);
            val += fabs(cs) / P;
            if (!dmean || scale == 0) continue;
            double c = scale * (cs > 0 ? 1 : cs < 0 ? -1 : 0) / P, a = c / (nrm[i] * nrm[j]);
            axpby(dmean + (size_t)i * C, a, mj, -c * cs / (nrm[i] * nrm[i]), mi, (size_t)C);
            axpby(dmean + (size_t)j * C, a, mi, -c * cs / (nrm[j] * nrm[j]), mj, (size_t)C);
        }
    return val;
}

static double clamp01(double v) {
    return fmin(fmax(v, MLP_MOE_JS_EPS), 1.0);
}

double mlp_moe_js(const moe_real *mean, int E, int C, moe_real *dmean, double scale) {
    if (E < 2) return 0;
    const double P = E * (E - 1) / 2.0, eps = MLP_MOE_JS_EPS;
    double sum = 0;
    for (int i = 0; i < E; i++)
        for (int j = i + 1; j < E; j++) {
            const moe_real *mi = mean + (size_t)i * C, *mj = mean + (size_t)j * C;
            double js = 0;
            for (int c = 0; c < C; c++) {
                double p = clamp01(mi[c]), q = clamp01(mj[c]), mid = 0.5 * (p + q);
                double lm = log(mid + eps);
                js += 0.5 * (p * (log(p + eps) - lm) + q * (log(q + eps) - lm));
                if (!dmean || scale == 0) continue;
                /* d(-js / P)/dp = -(log(p+e) - log(m+e) + p/(p+e) - m/(m+e)) / (2P) */
                double a = -scale / (2 * P), tail = mid / (mid + eps);
                int in_i = mi[c] >= eps && mi[c] <= 1, in_j = mj[c] >= eps && mj[c] <= 1;
                if (in_i)
                    dmean[(size_t)i * C + c] +=
                        (moe_real)(a * (log(p + eps) - lm + p / (p + eps) - tail));
                if (in_j)
                    dmean[(size_t)j * C + c] +=
                        (moe_real)(a * (log(q + eps) - lm + q / (q + eps) - tail));
            }
            sum += js;
        }
    return -sum / P;
}
