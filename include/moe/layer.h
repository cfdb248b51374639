/* The Mixture-of-Experts layer: router, top-k with capacity, counting-sort
 * dispatch, one GEMM per expert over contiguous rows, combine, auxiliary
 * losses and routing statistics. Forward and backward on caller buffers.
 *
 *   x [T, D] -> logits = x Wg^T (+ noise) / temperature -> scores
 *   -> top-k per token -> capacity -> permute -> experts -> combine -> out [T, D]
 *
 * out holds the expert mixture (plus the shared expert when configured) and
 * no residual: a dropped (token, expert) pair contributes nothing, so the
 * token keeps only its residual in the block around the layer. */
#ifndef MOE_LAYER_H
#define MOE_LAYER_H

#include "moe/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum moe_activation {
    MOE_ACT_RELU,
    MOE_ACT_GELU,
    MOE_ACT_SILU,
    MOE_ACT_SWIGLU, /* silu(x W1^T) * (x W3^T) */
} moe_activation;

typedef enum moe_score_fn {
    MOE_SCORE_SOFTMAX,
    MOE_SCORE_SIGMOID,
} moe_score_fn;

typedef enum moe_routing {
    MOE_ROUTE_TOPK,        /* learned router */
    MOE_ROUTE_ROUND_ROBIN, /* forced balance: pair (t, j) goes to (t*k + j) % E,
                              weights 1/k; for best-case speed/memory only */
} moe_routing;

typedef struct moe_layer_config {
    int d_model;             /* D: width of a token vector */
    int n_experts;           /* E >= 1 */
    int top_k;               /* k, 1 <= k <= E */
    int d_ff;                /* F: hidden width of one expert */
    moe_activation act;      /* expert nonlinearity */
    int expert_bias;         /* expert linears carry biases */
    moe_score_fn score;      /* softmax or sigmoid router scores */
    int topk_before_softmax; /* 1: top-k on logits, softmax over the k chosen
                                (Mixtral); 0: softmax over all E, then top-k
                                (Switch, Shazeer) */
    int renormalize;         /* divide the k chosen weights by their sum */
    float temperature;       /* logits are divided by it (> 0) */
    int noisy;               /* Shazeer noisy top-k in training:
                                logits += N(0,1) * (softplus(x Wn^T) + 0.01) */
    float capacity_factor;   /* C = ceil(cf * T * k / E) pairs per expert;
                                <= 0 means dropless */
    int shared_d_ff;         /* hidden width of an always-on shared expert
                                (same activation), 0 = none */
    moe_routing routing;
    int fallback;        /* 1: a token whose routing logits are not all finite
                            goes to fallback_expert with weight 1 (the other k - 1
                            slots: the lowest-numbered other experts, weight 0)
                            and adds no router gradient. 0 (off) is the default,
                            so a zeroed config never masks NaN. Top-k only. */
    int fallback_expert; /* that expert. Models set both from the config key
                            model.moe.fallback_expert (-1 = off). */
    /* auxiliary loss coefficients (0 = off) */
    float switch_coef;      /* Switch: coef * E * sum_i f_i P_i */
    int switch_divide_by_k; /* 1: f_i counts pairs / (T*k), balanced = 1
                               (DeepSpeed, MegaBlocks); 0: f_i = pairs / T,
                               balanced = k (HF Mixtral) */
    float z_coef;           /* router z-loss: coef * mean_t logsumexp(logits_t)^2 */
    float var_coef;         /* spec: coef * var_i(mean_t P_ti) (population var) */
    float cv_coef;          /* Shazeer: coef * (cv^2(importance) + cv^2(load)) */
} moe_layer_config;

/* Pointers to one layer's parameters (or, with the same layout, gradients).
 * Unused tensors are NULL. */
typedef struct moe_layer_params {
    moe_real *gate;      /* [E, D] router */
    moe_real *noise;     /* [E, D] noise router (noisy only) */
    moe_real *w1;        /* [E, F, D] expert up projection */
    moe_real *b1;        /* [E, F] (expert_bias) */
    moe_real *w3;        /* [E, F, D] expert gate projection (SwiGLU only) */
    moe_real *b3;        /* [E, F] (SwiGLU and expert_bias) */
    moe_real *w2;        /* [E, D, F] expert down projection */
    moe_real *b2;        /* [E, D] (expert_bias) */
    moe_real *shared_w1; /* [Fs, D] */
    moe_real *shared_w3; /* [Fs, D] (SwiGLU only) */
    moe_real *shared_w2; /* [D, Fs] */
} moe_layer_params;

/* What one forward measured; arrays live in the arena. */
typedef struct moe_layer_stats {
    int n_tokens;                  /* T */
    int n_pairs;                   /* T * k */
    int n_dropped;                 /* pairs over capacity */
    int *expert_tokens;            /* [E] pairs kept per expert */
    int top_k;                     /* k */
    const int *chosen;             /* [T, k] experts of each token, best first */
    const moe_real *gate;          /* [T, k] their routing weights */
    const int *kept_pair;          /* [T * k] >= 0 when the pair was kept, -1 when dropped */
    int n_fallback;                /* tokens sent to the fallback expert (non-finite logits) */
    const unsigned char *fallback; /* [T] 1 for those tokens, or NULL when off */
    moe_real *mean_prob;           /* [E] mean router probability P_i */
    double router_entropy;         /* mean over tokens of -sum p log p (nats) */
    double aux_switch;             /* each auxiliary loss, unweighted */
    double aux_z;
    double aux_var;
    double aux_cv;
    double aux_total; /* the weighted sum added to the training loss */
} moe_layer_stats;

/* Everything forward saves for backward; opaque, allocated in the arena. */
typedef struct moe_layer_cache moe_layer_cache;

/* Checks a config: ranges, k <= E, activations. Message names the field. */
moe_status moe_layer_config_check(const moe_layer_config *cfg);

/* Number of parameters of one layer (for the parameter table). */
size_t moe_layer_param_count(const moe_layer_config *cfg);

/* out [T, D] written. training enables noise; rng draws it. The cache and
 * stats are allocated from arena and stay valid until it is reset. The cache
 * points at x: keep x unchanged until backward. */
moe_status moe_layer_forward(const moe_layer_config *cfg, const moe_layer_params *p, moe_real *out,
                             const moe_real *x, int T, int training, moe_rng *rng, moe_arena *arena,
                             moe_layer_cache **cache, moe_layer_stats **stats);

/* dx [T, D] written; g's tensors added (+=). daux is d(total loss)/d(aux_total),
 * usually 1. */
moe_status moe_layer_backward(const moe_layer_config *cfg, const moe_layer_params *p,
                              moe_layer_params *g, moe_real *dx, const moe_real *dout,
                              const moe_layer_cache *cache, moe_real daux, moe_arena *arena);

#ifdef __cplusplus
}
#endif
#endif
