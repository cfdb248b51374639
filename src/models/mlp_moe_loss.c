/* Family mlp_moe, the task loss: soft-label cross-entropy of the mixture,
 * as seed 002 writes it: l_b = -sum_c t_bc log clamp(p_hat_bc, 1e-12, 1),
 * loss = mean_b (w_b l_b) = sum_b w_b l_b / N. N is the number of counted
 * rows (all B with soft targets; rows with a label >= 0 with hard labels),
 * so unit weights give the plain mean; the weights are NOT normalised by
 * their sum (the seed's weighted_soft_cross_entropy is (w * l).mean()).
 * Hard labels are the same loss with one-hot targets. */
#include "models/mlp_moe_internal.h"

#include <math.h>
#include <string.h>

moe_status mlp_moe_targets(mlp_moe_cache *c, const moe_batch *b, int C, moe_arena *arena) {
    const int B = b->B;
    c->has_target = b->soft != NULL || b->labels != NULL;
    if (!c->has_target) return MOE_OK;
    c->row_scale = moe_arena_alloc(arena, sizeof(moe_real) * (size_t)B);
    if (!c->row_scale) return MOE_ERR_NOMEM;
    int counted = B;
    if (b->soft) { /* soft targets win when a batch carries both */
        c->target = b->soft;
    } else {
        moe_real *onehot = moe_arena_calloc(arena, sizeof(moe_real) * (size_t)B * C);
        if (!onehot) return MOE_ERR_NOMEM;
        c->target = onehot;
        counted = 0;
        for (int r = 0; r < B; r++) {
            int32_t l = b->labels[r];
            if (l >= C)
                return moe_error(MOE_ERR_INVALID,
                                 "mlp_moe: label %d of row %d is outside [0, %d): check "
                                 "model.n_classes against the data",
                                 (int)l, r, C);
            if (l < 0) continue; /* ignored row */
            onehot[(size_t)r * C + l] = 1;
            counted++;
        }
    }
    for (int r = 0; r < B; r++) {
        int keep = b->soft || b->labels[r] >= 0;
        double w = b->weights ? b->weights[r] : 1.0;
        c->row_scale[r] = keep && counted > 0 ? (moe_real)(w / counted) : 0;
    }
    return MOE_OK;
}

double mlp_moe_ce_forward(const mlp_moe_cache *c, int C) {
    double loss = 0;
    for (int r = 0; r < c->B; r++) {
        if (c->row_scale[r] == 0) continue;
        double l = 0;
        for (int j = 0; j < C; j++) {
            double t = c->target[(size_t)r * C + j];
            if (t == 0) continue;
            double p = fmin(fmax((double)c->phat[(size_t)r * C + j], MLP_MOE_CE_EPS), 1.0);
            l -= t * log(p);
        }
        loss += c->row_scale[r] * l;
    }
    return loss;
}

void mlp_moe_ce_backward(moe_real *dphat, const mlp_moe_cache *c, int C, double scale) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < c->B; r++) {
        double s = scale * c->row_scale[r];
        for (int j = 0; j < C; j++) {
            size_t i = (size_t)r * C + j;
            double p = c->phat[i];
            /* the clamp passes the gradient only inside [1e-12, 1] */
            int inside = p >= MLP_MOE_CE_EPS && p <= 1.0;
            dphat[i] = inside ? (moe_real)(-s * c->target[i] / p) : 0;
        }
    }
}
