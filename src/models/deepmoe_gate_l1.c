/* DeepMoE's gate sparsity penalty, per gated conv l with gates g [B, C]
 * (g >= 0, so |g| = g):
 * - elementwise (the default): sum_{b,c} |g_bc| / B, the L1 norm of each
 *   example's gates averaged over the batch;
 * - matrix (the original code's torch.linalg.norm(g, 1)): the matrix
 *   1-norm max_c sum_b |g_bc|, the largest column sum. Its gradient goes
 *   to that column only (the first one on ties, where PyTorch would share
 *   it; ties between real-valued sums do not happen in practice).
 * d|g|/dg is taken as sign(g), 0 at g = 0 (as torch.abs), which the
 * gate's own ReLU would zero anyway. */
#include "models/deepmoe_internal.h"

#include <math.h>

double deepmoe_gate_l1(deepmoe *m, int l) {
    const moe_real *g = m->g[l];
    int B = m->B, C = m->gates[l].C;
    if (!m->l1_matrix) {
        double s = 0;
        for (long i = 0; i < (long)B * C; i++) s += fabs((double)g[i]);
        return s / B;
    }
    double best = -1;
    int col = 0;
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int b = 0; b < B; b++) s += fabs((double)g[(long)b * C + c]);
        if (s > best) {
            best = s;
            col = c;
        }
    }
    m->l1_col[l] = col;
    return best;
}

static moe_real sign_of(moe_real x) {
    return (moe_real)((x > 0) - (x < 0));
}

void deepmoe_gate_l1_backward(const deepmoe *m, int l, moe_real *dg, double coef) {
    const moe_real *g = m->g[l];
    int B = m->B, C = m->gates[l].C;
    if (!m->l1_matrix) {
        moe_real k = (moe_real)(coef / B);
        for (long i = 0; i < (long)B * C; i++) dg[i] += k * sign_of(g[i]);
        return;
    }
    int col = m->l1_col[l];
    for (int b = 0; b < B; b++)
        dg[(long)b * C + col] += (moe_real)coef * sign_of(g[(long)b * C + col]);
}
