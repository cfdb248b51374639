/* Internal: what a model family implements. moe_model (include/moe/model.h)
 * is a thin dispatcher over one of these: the transformer (src/models/gpt*.c)
 * or a seed system's network (cnn_moe, deepmoe, mlp_moe). The trainer,
 * optimizer, checkpoints and metrics only see the dispatcher, so every
 * family gets them unchanged.
 *
 * Conventions every family follows:
 * - parameters and gradients are one allocation each, described by a
 *   moe_param_table (names like "experts.0.pw.weight"); buffers that are not
 *   trained (batch-norm running statistics) are tensors too, so checkpoints
 *   carry them, and optimizer_skips() says which ones the optimizer must not
 *   move;
 * - forward saves what backward needs in the arena; backward ADDS
 *   d(loss)/d(params) * scale into the gradients;
 * - forward returns the task loss (cross-entropy) and the weighted sum of
 *   every auxiliary term separately, and loss_parts() names each term
 *   (unweighted) for metrics.jsonl. */
#ifndef MOE_MODELS_FAMILY_H
#define MOE_MODELS_FAMILY_H

#include "moe/model.h"

/* Per-epoch (or per-step) settings the trainer hands a family before a
 * step: the annealed router temperature and the training phase. */
typedef struct family_phase {
    float temperature;    /* seed 000's gate temperature (also the transformer's router) */
    int freeze_embedding; /* seed 001: last freeze_epochs epochs (CE only, embedding frozen) */
} family_phase;

#define FAMILY_MAX_PARTS 8

typedef struct model_family {
    const char *name;
    moe_status (*create)(void **impl, const moe_model_config *cfg, uint64_t seed);
    void (*destroy)(void *impl);
    const moe_param_table *(*table)(const void *impl);
    moe_real *(*params)(void *impl);
    moe_real *(*grads)(void *impl);
    /* Parameters one example (token) touches; NULL: all of them (families
     * that run every parameter on every example). */
    size_t (*active_params)(const void *impl);
    /* Training FLOPs (forward + backward) per example (per token at context T
     * for the transformer); and the same if every expert ran (the dense
     * equivalent). Forward alone is a third. */
    double (*train_flops)(const void *impl, int T);
    double (*all_experts_flops)(const void *impl, int T);
    /* task_loss and aux_loss are never NULL (the dispatcher passes its own). */
    moe_status (*forward)(void *impl, const moe_batch *b, int training, moe_rng *rng,
                          moe_arena *arena, double *task_loss, double *aux_loss);
    moe_status (*backward)(void *impl, moe_arena *arena, float scale);
    /* [B, C] class scores of the last forward: logits, or log-probabilities
     * for families whose output is a distribution (mlp_moe). */
    const moe_real *(*class_logits)(const void *impl);
    /* Routing of the last forward, as the transformer's MoE layers report it
     * (expert_tokens, mean_prob, router_entropy, aux_*). NULL = none. */
    int (*n_moe_layers)(const void *impl);
    const moe_layer_stats *(*layer_stats)(const void *impl, int i);
    /* Table index of MoE layer i's router weight (its gradient norm is
     * monitored: a router without gradient is an alert). */
    int (*router_tensor)(const void *impl, int i);
    /* Optional (NULL when the family has none). */
    void (*set_phase)(void *impl, const family_phase *ph);
    /* 1 when tensor i of the table is a buffer (not a parameter: not
     * counted, never trained), and when the optimizer must not change it
     * (buffers, and frozen parts in the current phase). */
    int (*is_buffer)(const void *impl, int tensor);
    int (*optimizer_skips)(const void *impl, int tensor);
    /* The unweighted auxiliary terms of the last forward: count, names, values. */
    int (*loss_parts)(const void *impl, const char *const **names, const double **values);
    /* Mixtures of expert classifiers (cnn_moe, mlp_moe), last forward:
     * E, each expert's own class scores [E, B, C] and the gate weights
     * [B, E] (0 for experts not chosen). Returns E (also before any
     * forward, when the pointers may be NULL), or 0. */
    int (*expert_outputs)(const void *impl, const moe_real **expert_scores, const moe_real **gates);
    /* Channel-gated networks (deepmoe), last forward: the number of gated
     * convs; for gated conv l its gates [B, C_l] through *g, C_l and the
     * forward FLOPs per example that each of its output channels costs
     * (what a zero gate lets a sparse implementation skip). g, C and
     * flops_per_channel may be NULL (to ask for the count). */
    int (*channel_gates)(const void *impl, int l, const moe_real **g, int *C,
                         double *flops_per_channel);
} model_family;

extern const model_family family_transformer, family_cnn_moe, family_deepmoe, family_mlp_moe;

#endif
