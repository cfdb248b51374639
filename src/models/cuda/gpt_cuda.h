/* The transformer on the GPU (docs/cuda.md): the decoder of src/models/gpt*.c
 * with the same parameter table, so a checkpoint moves between devices
 * unchanged. Built from the launchers of src/ops/cuda/cuda_ops.h and the GPU
 * MoE layer (src/nn/moe/cuda/layer_cuda.h).
 *
 * Device memory: the fp32 master parameters [table total] in the CPU
 * model's layout, their compute copy in dt (what the GEMMs read; equal to
 * the masters in fp32 mode), fp32 gradients [total], AdamW's m and v
 * [total] each, and activations for up to B_max x T_max tokens, all
 * allocated once by gpt_cuda_create. A training step (zero_grads, forward,
 * backward, optim_step) enqueues work only: the losses and the gradient norm
 * stay on the device until a read_* call, which synchronises. */
#ifndef MOE_MODELS_GPT_CUDA_H
#define MOE_MODELS_GPT_CUDA_H

#include "moe/model.h"
#include "moe/optim.h"
#include "nn/moe/cuda/layer_cuda.h"
#include "ops/cuda/cuda_ops.h"

typedef struct gpt_cuda gpt_cuda;

/* MOE_OK when the GPU model computes cfg, else MOE_ERR_UNSUPPORTED with a
 * message naming the config key (model.dropout, model.post_ln, ...).
 * Supported: family transformer, decoder (bidirectional 0, n_classes 0),
 * pre-norm, LayerNorm or RMSNorm, learned, rotary or no positions, tied or
 * untied embeddings, attention biases or not, dropout 0, any dense FFN
 * activation, MoE layers that moe_layer_cuda_supported accepts. Needs no
 * GPU. */
moe_status gpt_cuda_supported(const moe_model_config *cfg);

/* A GPU copy of cpu (its config and current parameters) for batches of up
 * to B_max x T_max tokens (T_max <= max_seq_len), activations stored as dt. */
moe_status gpt_cuda_create(gpt_cuda **out, moe_cuda *ctx, const moe_model *cpu, int B_max,
                           int T_max, moe_dtype dt);
void gpt_cuda_destroy(gpt_cuda *g);

/* Forward over tokens [B, T] (host; uploaded; ids in [0, V) are checked on
 * the host first). With targets [B, T] (host; < 0 ignored) the mean
 * cross-entropy and the weighted auxiliary losses are computed on the
 * device (read them with gpt_cuda_read_loss); without, only the logits.
 * training is accepted for symmetry (no dropout, no noise on the GPU). */
moe_status gpt_cuda_forward(gpt_cuda *g, const int32_t *tokens, const int32_t *targets, int B,
                            int T, int training);
/* Gradients to zero. */
moe_status gpt_cuda_zero_grads(gpt_cuda *g);
/* After a forward with targets: gradients of scale * (ce + aux) ADDED
 * (scale = 1 / grad_accum for accumulation, as moe_model_backward). */
moe_status gpt_cuda_backward(gpt_cuda *g, float scale);
/* Global-norm clipping (grad_clip > 0; torch's clip_grad_norm_, computed on
 * the device) and one AdamW update at learning rate lr with oc's
 * hyper-parameters; then the compute copy is refreshed. Only
 * oc->kind == MOE_OPT_ADAMW (else MOE_ERR_UNSUPPORTED). */
moe_status gpt_cuda_optim_step(gpt_cuda *g, const moe_optim_config *oc, float lr, float grad_clip);

/* The last forward's mean cross-entropy and weighted auxiliary loss (sum
 * over MoE layers), synchronising. */
moe_status gpt_cuda_read_loss(gpt_cuda *g, double *ce, double *aux);
/* The gradient norm before clipping of the last optim_step (synchronises). */
moe_status gpt_cuda_read_grad_norm(gpt_cuda *g, double *norm);
/* Logits of the last forward for rows [row0, row0 + n) of the B*T rows into
 * host [n, V] (fp32), synchronising. Before backward only: backward writes
 * the logits' gradient over them (MOE_ERR_INVALID after it). */
moe_status gpt_cuda_read_logits(gpt_cuda *g, int row0, int n, float *host);
/* Number of MoE layers, and the statistics of MoE layer i's last forward
 * (synchronises). */
int gpt_cuda_moe_layers(const gpt_cuda *g);
moe_status gpt_cuda_layer_stats(gpt_cuda *g, int i, moe_layer_cuda_stats *out);

/* Tests: the fp32 gradient block [table total] in the CPU layout
 * (moe_model_grads' layout) into host (synchronises). */
moe_status gpt_cuda_read_grads(gpt_cuda *g, float *host);
/* Tests: MoE layer i's workspace (its device buffers hold the last
 * forward's routing: chosen, row_of, ...), read-only; NULL when out of
 * range. */
const moe_layer_cuda_ws *gpt_cuda_layer_ws(const gpt_cuda *g, int i);

/* Copies the device's fp32 master parameters into cpu (same config), and
 * when opt is not NULL (AdamW over the same table) its m, v and step count:
 * what a checkpoint, an evaluation on the CPU or generation needs. */
moe_status gpt_cuda_download(gpt_cuda *g, moe_model *cpu, moe_optim *opt);
/* Uploads an optimizer state (a resumed run's m, v and step). */
moe_status gpt_cuda_upload_optim(gpt_cuda *g, const moe_optim *opt);

/* moe_model_generate on the GPU (gpt_cuda_generate.c): n_new tokens after
 * prompt [n_prompt] into out [n_prompt + n_new], sampled as on the CPU. No
 * KV cache yet: each token is a forward over the context window (created
 * with B_max >= 1 and T_max = max_seq_len). c is the model's config. */
moe_status gpt_cuda_generate(gpt_cuda *g, const moe_model_config *c, const int32_t *prompt,
                             int n_prompt, int n_new, const moe_sampling *s, moe_rng *rng,
                             int32_t *out);

/* Times `steps` training steps (zero grads, forward and backward on tokens
 * x and targets y [B, T] (host), clipping at grad_clip, AdamW at oc->lr)
 * into ms [steps] (wall milliseconds; each step ends by reading its loss, so
 * the GPU has finished it), and the last loss (ce + aux) into *loss
 * (gpt_cuda_bench.c: moe bench --device cuda and bench/bench_model_gpu.c). */
moe_status gpt_cuda_time_steps(gpt_cuda *g, const moe_optim_config *oc, float grad_clip,
                               const int32_t *x, const int32_t *y, int B, int T, int steps,
                               double *ms, double *loss);

#endif
