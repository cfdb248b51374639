/* A model built from a moe_model_config: the (MoE) transformer, decoder or
 * encoder (training forward/backward over [B, T] token batches, generation
 * with a KV cache), or one of the seed systems' families (model.family:
 * cnn_moe, deepmoe, mlp_moe) over dense inputs (moe_batch.x).
 * Parameters and gradients are single allocations described by a named
 * parameter table; activations come from the caller's arena. */
#ifndef MOE_MODEL_H
#define MOE_MODEL_H

#include "moe/config.h"
#include "moe/core.h"
#include "moe/layer.h"
#include "moe/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_model moe_model;

/* Builds the parameter table, allocates parameters and gradients (zeroed)
 * and initialises weights from seed (GPT-2 style: N(0, 0.02), residual
 * projections scaled by 1/sqrt(2 n_layer), norms at 1/0). */
moe_status moe_model_create(moe_model **m, const moe_model_config *cfg, uint64_t seed);
void moe_model_free(moe_model *m);

const moe_model_config *moe_model_config_of(const moe_model *m);
const moe_param_table *moe_model_table(const moe_model *m);
moe_real *moe_model_params(moe_model *m); /* [table total] */
moe_real *moe_model_grads(moe_model *m);  /* [table total] */
size_t moe_model_param_count(const moe_model *m);
/* Parameters a token touches (router + k experts instead of E). */
size_t moe_model_active_param_count(const moe_model *m);
/* Training FLOPs per token (forward + backward, matmuls and attention) at
 * context T; forward alone is a third of it. Classifier models
 * (n_classes > 0) count their classifier head, not the LM head (which a
 * classification batch never runs). */
double moe_model_train_flops_per_token(const moe_model *m, int T);
/* The same if every token went through all E experts (the dense model of
 * equal parameter count): what sparse routing saves is measured against it. */
double moe_model_all_experts_flops_per_token(const moe_model *m, int T);

/* Forward over tokens [B, T]. With targets [B, T] (entries < 0 ignored) the
 * mean cross-entropy goes to *ce_loss and the summed weighted auxiliary
 * losses to *aux_loss; the training loss is their sum. training enables
 * dropout and router noise (drawn from rng). Saved activations live in arena
 * until it is reset; backward must follow before that. */
moe_status moe_model_forward(moe_model *m, const int32_t *tokens, const int32_t *targets, int B,
                             int T, int training, moe_rng *rng, moe_arena *arena, double *ce_loss,
                             double *aux_loss);
/* One batch for any task. tokens [B, T]; targets [B, T] next-token or
 * masked-token ids (< 0 ignored) for the LM head, or NULL; labels [B] class
 * ids for the classifier head (model.n_classes > 0; < 0 ignored), or NULL;
 * pad_mask [B, T] (1 = real token, 0 = padding), or NULL for none. Padding
 * never counts: attention never looks at it, MoE layers route only real
 * tokens (so routing statistics and auxiliary losses ignore padding), mean
 * pooling skips it; give padded positions target -1. */
typedef struct moe_batch {
    const int32_t *tokens;
    const int32_t *targets;
    const int32_t *labels;
    const uint8_t *pad_mask;
    int B, T;
    /* The seed families (model.family != transformer) read dense inputs
     * instead of tokens: x [B, input features] (images as [C, H, W]), and
     * learn from labels [B], or soft [B, n_classes] target distributions;
     * weights [B] scale each example's loss (NULL = 1). T is 1. */
    const moe_real *x;
    const moe_real *soft;
    const moe_real *weights;
} moe_batch;

/* Forward of a batch: *task_loss = the LM cross-entropy (targets) plus the
 * classification cross-entropy (labels), *aux_loss the weighted auxiliary
 * losses. With neither targets nor labels it only computes outputs. */
moe_status moe_model_forward_batch(moe_model *m, const moe_batch *batch, int training, moe_rng *rng,
                                   moe_arena *arena, double *task_loss, double *aux_loss);
/* Class logits [B, n_classes] of the last forward (classifier models). */
const moe_real *moe_model_class_logits(const moe_model *m);

/* Adds d(loss)/d(params) * scale to the gradients (scale = 1/grad_accum). */
moe_status moe_model_backward(moe_model *m, moe_arena *arena, float scale);
void moe_model_zero_grads(moe_model *m);
/* Logits [B, T, V] of the last forward (valid until the arena resets). */
const moe_real *moe_model_logits(const moe_model *m);

/* Routing of the last forward: number of MoE layers and each one's stats. */
int moe_model_moe_layers(const moe_model *m);
const moe_layer_stats *moe_model_layer_stats(const moe_model *m, int i);
/* For a model whose step ran on another device (train.device cuda): stats
 * [moe_layers] (the caller's, kept alive) become what moe_model_layer_stats
 * answers until the next forward here, so observers need not know where the
 * step ran. NULL clears them. */
void moe_model_set_layer_stats(moe_model *m, const moe_layer_stats *const *stats);
/* Transformer layer index of MoE layer i (i for the other families). */
int moe_model_moe_layer_index(const moe_model *m, int i);
/* Table index of MoE layer i's router weight, or -1. */
int moe_model_router_tensor(const moe_model *m, int i);

/* The family's name ("transformer", "cnn_moe", "deepmoe", "mlp_moe"). */
const char *moe_model_family_name(const moe_model *m);
/* Per-epoch settings the trainer applies before a step: the annealed router
 * (gate) temperature (<= 0 leaves it) and seed 001's frozen-embedding phase. */
void moe_model_set_phase(moe_model *m, float temperature, int freeze_embedding);
/* Tensor i of the table is a buffer (batch-norm running statistics):
 * checkpointed but not a parameter. */
int moe_model_tensor_is_buffer(const moe_model *m, int tensor);
/* The router (gate) temperature a trained model is used with outside
 * training: model.temperature_end when the temperature is annealed, else
 * model.moe.temperature. The trainer's test split, moe_evaluate and
 * moe_bootstrap apply it with moe_model_set_phase. */
float moe_model_final_temperature(const moe_model_config *c);
/* The optimizer must leave tensor i unchanged now (buffers, frozen parts). */
int moe_model_optimizer_skips(const moe_model *m, int tensor);
/* The unweighted auxiliary terms of the last forward (names and values
 * stay valid until the next forward); returns their count. */
int moe_model_loss_parts(const moe_model *m, const char *const **names, const double **values);
/* Mixtures of expert classifiers (cnn_moe, mlp_moe), last forward: each
 * expert's own class scores [E, B, C] (logits, or log-probabilities for
 * mlp_moe) and the gate weights [B, E]; returns E, or 0 for other families. */
int moe_model_expert_outputs(const moe_model *m, const moe_real **expert_scores,
                             const moe_real **gates);
/* Channel-gated networks (deepmoe), last forward: returns the number of
 * gated convs; for gated conv l, its gates [B, C_l], C_l and the forward
 * FLOPs per example one output channel costs. 0 for other families. */
int moe_model_channel_gates(const moe_model *m, int l, const moe_real **g, int *C,
                            double *flops_per_channel);

/* Sampling for generation. temperature 0 = greedy. */
typedef struct moe_sampling {
    float temperature; /* softmax temperature, 0 = argmax */
    int top_k;         /* keep the k most likely, 0 = all */
    float top_p;       /* nucleus: smallest set with mass >= top_p, 1 = all */
} moe_sampling;

/* Appends n_new tokens to prompt[n_prompt] in out (out[0..n_prompt) = prompt),
 * using a KV cache: the prompt is processed once, then one token at a time.
 * The context slides when it would pass max_seq_len (cache rebuilt). */
moe_status moe_model_generate(moe_model *m, const int32_t *prompt, int n_prompt, int n_new,
                              const moe_sampling *s, moe_rng *rng, int32_t *out);

#ifdef __cplusplus
}
#endif
#endif
