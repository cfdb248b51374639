/* Internal: seed 002's family mlp_moe, a noisy top-k mixture of softmax
 * MLPs that predicts a class distribution (docs/families.md, "mlp_moe").
 *
 *   x [B, F] -> router (src/nn/moe/router.c: clean = x Wg^T, noisy in
 *   training = clean + eps * (softplus(x Wn^T) + 0.01), softmax over all E,
 *   top-k, optional renormalisation) -> gates [B, E]
 *   expert e: y_e = softmax(relu(x W1_e^T + b1_e) W2_e^T + b2_e) [B, C]
 *   p_hat = sum_e gates_e * y_e (every expert runs on every row: the
 *   diversity terms need all outputs)
 *
 * Shapes: B rows, F features, H expert hidden width, C classes, E experts,
 * k chosen experts per row. */
#ifndef MOE_MODELS_MLP_MOE_INTERNAL_H
#define MOE_MODELS_MLP_MOE_INTERNAL_H

#include "models/family.h"
#include "nn/moe/moe_internal.h"

/* The clamp of p_hat inside the cross-entropy (the seed's 1e-12) and of the
 * batch-mean expert outputs inside the JS divergence (the seed's 1e-8). */
#define MLP_MOE_CE_EPS 1e-12
#define MLP_MOE_JS_EPS 1e-8

/* Pointers into the parameter block (or, with the same offsets, the
 * gradient block). Per-expert arrays hold E pointers. */
typedef struct mlp_moe_w {
    moe_real *gate;  /* [E, F] "gate.weight" (the seed's w_gate [F, E], transposed) */
    moe_real *noise; /* [E, F] "gate.noise" (noisy only, else NULL) */
    moe_real **w1;   /* [E] x [H, F] "experts.e.fc1.weight" */
    moe_real **b1;   /* [E] x [H]    "experts.e.fc1.bias" */
    moe_real **w2;   /* [E] x [C, H] "experts.e.fc2.weight" */
    moe_real **b2;   /* [E] x [C]    "experts.e.fc2.bias" */
} mlp_moe_w;

/* What forward saves for backward; arrays live in the arena. */
typedef struct mlp_moe_cache {
    int B;
    int has_target;         /* 0: no labels and no soft targets (outputs only) */
    const moe_real *x;      /* [B, F] the caller's input, unchanged until backward */
    const moe_real *target; /* [B, C] target distribution (one-hot rows for labels) */
    moe_real *row_scale;    /* [B] w_b / N: each row's share of the task loss */
    moe_real *a;            /* [E, B, H] fc1 pre-activations */
    moe_real *h;            /* [E, B, H] relu(a) */
    moe_real *y;            /* [E, B, C] expert distributions */
    moe_real *logy;         /* [E, B, C] their logarithms (log-softmax) */
    moe_real *gates;        /* [B, E] gate weights, 0 for experts not chosen */
    moe_real *phat;         /* [B, C] mixture */
    moe_real *logphat;      /* [B, C] log of the mixture (class_logits) */
    moe_real *mean;         /* [E, C] batch-mean expert outputs (diversity terms) */
    moe_layer_cache *rc;    /* the router's cache (chosen, weights, load, stats) */
} mlp_moe_cache;

enum { MLP_PART_CV, MLP_PART_PARAM_DIV, MLP_PART_OUTPUT_DIV, MLP_PART_JS, MLP_N_PARTS };

typedef struct mlp_moe {
    moe_model_config cfg;
    int F, H, C, E, k;
    moe_layer_config rcfg; /* the router as src/nn/moe sees it (d_model = F) */
    moe_param_table table;
    moe_real *params, *grads;
    mlp_moe_w p, g;
    moe_real **ptrs;           /* storage of the per-expert pointer arrays */
    mlp_moe_cache *last;       /* last forward (valid until the arena resets), or NULL */
    double parts[MLP_N_PARTS]; /* unweighted auxiliary terms of the last forward */
} mlp_moe;

/* mlp_moe_forward.c: forward with the routing noise given: eps [B, E]
 * N(0, 1) draws used when noise applies (cfg noisy and training), or NULL to
 * draw them from rng. The family's forward is this with eps = NULL. */
moe_status mlp_moe_forward_eps(mlp_moe *m, const moe_batch *b, int training, const moe_real *eps,
                               moe_rng *rng, moe_arena *arena, double *task_loss, double *aux_loss);
/* mlp_moe_backward.c */
moe_status mlp_moe_backward(void *impl, moe_arena *arena, float scale);

/* mlp_moe_loss.c: the task loss. Targets and row scales into the cache;
 * returns MOE_ERR_INVALID (message set) on a label outside [0, C). */
moe_status mlp_moe_targets(mlp_moe_cache *c, const moe_batch *b, int C, moe_arena *arena);
/* sum_b row_scale_b * -sum_c t_bc log clamp(p_hat_bc, 1e-12, 1) */
double mlp_moe_ce_forward(const mlp_moe_cache *c, int C);
/* dphat [B, C] written: d(scale * loss) / d p_hat (0 where the clamp is active). */
void mlp_moe_ce_backward(moe_real *dphat, const mlp_moe_cache *c, int C, double scale);

/* mlp_moe_diversity.c: the three diversity terms. Each returns its value;
 * with a gradient destination it also adds scale * d(value)/d(input). */
/* Mean over expert pairs of cos^2 between the flattened weights (fc1 and fc2
 * weights, no biases) of two experts; gradients into g's w1 and w2. */
double mlp_moe_param_div(const mlp_moe *m, const mlp_moe_w *p, mlp_moe_w *g, double scale);
/* Mean over pairs of |cos(mean_i, mean_j)|, mean [E, C]; dmean [E, C] added. */
double mlp_moe_output_div(const moe_real *mean, int E, int C, moe_real *dmean, double scale);
/* Minus the mean over pairs of JS(clamp(mean_i), clamp(mean_j)); dmean added. */
double mlp_moe_js(const moe_real *mean, int E, int C, moe_real *dmean, double scale);

#endif
