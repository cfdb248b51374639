/* CUDA kernels: the GPU twin of src/ops/ops.h (docs/cuda.md).
 *
 * Conventions, the same for every launcher below:
 *  - Every pointer is a DEVICE pointer unless its comment says "host".
 *  - Every launcher enqueues on the context's stream, checks the launch
 *    (cudaGetLastError) and returns a moe_status; on failure the message
 *    names the kernel and CUDA's error string. Launchers never synchronise
 *    with the host: counts that depend on the data (tokens per expert, kept
 *    rows, the number of counted targets) stay in device memory.
 *  - dt is the activation type: MOE_DT_F32, or MOE_DT_BF16 (mixed precision).
 *    Arithmetic is fp32 inside every kernel; bf16 is only how values are
 *    stored. Matrices a GEMM reads (weights) come in dt (the bf16 copy the
 *    optimizer writes); vectors (biases, norm weights) are fp32 masters;
 *    saved statistics (mean, rstd, lse, router scores) are fp32.
 *  - Gradients as on the CPU: activation gradients (dt) are WRITTEN,
 *    parameter gradients (always fp32) are ADDED (+=).
 *  - Shapes are row-major, given next to each buffer; sizes are int
 *    (elements per tensor < 2^31) unless long. */
#ifndef MOE_OPS_CUDA_H
#define MOE_OPS_CUDA_H

#include "moe/core.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum moe_dtype { MOE_DT_F32 = 0, MOE_DT_BF16 = 1 } moe_dtype;
/* Bytes per element: 4 or 2. */
size_t moe_dtype_size(moe_dtype dt);
const char *moe_dtype_name(moe_dtype dt);
/* train.precision's value as a type: "fp32", else bf16 (the config allows only the two). */
moe_dtype moe_dtype_of_precision(const char *precision);

/* ---- context and memory (context.cu, memory.cu) ---------------------------
 * One context per device: a stream, a cuBLAS and a cuBLASLt handle and their
 * workspace. Not thread-safe: one thread drives a context. */
typedef struct moe_cuda moe_cuda;

/* Number of usable devices; 0 (and a message in why [n], when not NULL) when
 * there is no driver or no GPU. Never fails. */
int moe_cuda_device_count(char *why, size_t n);
/* "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB" for device i, without a
 * context. */
moe_status moe_cuda_device_describe(int device, char *buf, size_t n);
/* The CUDA runtime's version, "13.0". */
const char *moe_cuda_runtime_string(void);
moe_status moe_cuda_create(moe_cuda **out, int device);
void moe_cuda_destroy(moe_cuda *ctx);
/* The context's device, described as moe_cuda_device_describe does. */
void moe_cuda_describe(const moe_cuda *ctx, char *buf, size_t n);
/* The stream every launcher uses, as a void * (a cudaStream_t). */
void *moe_cuda_stream(moe_cuda *ctx);
/* Waits for the stream; reports any error a kernel raised. */
moe_status moe_cuda_sync(moe_cuda *ctx);

moe_status moe_cuda_alloc(moe_cuda *ctx, void **ptr, size_t bytes);
void moe_cuda_free(moe_cuda *ctx, void *ptr);
/* Copies on the stream; download waits for it (the host buffer is ready). */
moe_status moe_cuda_upload(moe_cuda *ctx, void *dst, const void *host_src, size_t bytes);
moe_status moe_cuda_download(moe_cuda *ctx, void *host_dst, const void *src, size_t bytes);
moe_status moe_cuda_copy(moe_cuda *ctx, void *dst, const void *src, size_t bytes);
moe_status moe_cuda_zero(moe_cuda *ctx, void *ptr, size_t bytes);
/* out [n] (out_dt) = inp [n] (in_dt); bf16 rounds to nearest even. */
moe_status moe_cuda_cast(moe_cuda *ctx, void *out, moe_dtype out_dt, const void *inp,
                         moe_dtype in_dt, long n);

/* Host-side bf16 conversions (round to nearest even; NaN stays NaN), for
 * uploads, downloads and tests. */
uint16_t moe_bf16_from_float(float f);
float moe_bf16_to_float(uint16_t h);

/* ---- dense GEMM (gemm.cu): cuBLAS, fp32 accumulation ----------------------
 * C[M,N] (c_dt) = alpha op(A)[M,K] op(B)[K,N] + beta C, row-major like
 * gemm() in ops.h; A and B in ab_dt. bf16 uses the tensor cores; fp32 is
 * plain fp32 (no TF32), so it matches the CPU to rounding. */
moe_status moe_cuda_gemm(moe_cuda *ctx, int trans_a, int trans_b, int M, int N, int K, float alpha,
                         const void *A, int lda, const void *B, int ldb, moe_dtype ab_dt,
                         float beta, void *C, moe_dtype c_dt, int ldc);

/* Linear layer, PyTorch layout. out [N,OC] (dt) = inp [N,C] weight^T [C,OC]
 * + bias; weight [OC,C] in dt, bias [OC] fp32 or NULL. */
moe_status moe_cuda_matmul_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp,
                                   const void *weight, const float *bias, int N, int C, int OC);
/* dinp [N,C] written (skipped if NULL); dweight [OC,C] and dbias [OC] (fp32)
 * added (each skipped if NULL). */
moe_status moe_cuda_matmul_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, float *dweight,
                                    float *dbias, const void *dout, const void *inp,
                                    const void *weight, int N, int C, int OC);

/* ---- dense ops (norm.cu, activation.cu, embedding.cu, crossentropy.cu,
 * rope.cu, adamw.cu) ------------------------------------------------------ */

/* out [N,C] = table [V,C] rows ids [N] (ids in [0, V), checked by the caller). */
moe_status moe_cuda_embedding_forward(moe_cuda *ctx, moe_dtype dt, void *out, const int32_t *ids,
                                      const void *table, int N, int C);
/* dtable [V,C] (fp32) += dout rows. */
moe_status moe_cuda_embedding_backward(moe_cuda *ctx, moe_dtype dt, float *dtable, const void *dout,
                                       const int32_t *ids, int N, int C);

/* LayerNorm over C: weight, bias [C] fp32 (bias may be NULL); mean, rstd [N]
 * saved (fp32). */
moe_status moe_cuda_layernorm_forward(moe_cuda *ctx, moe_dtype dt, void *out, float *mean,
                                      float *rstd, const void *inp, const float *weight,
                                      const float *bias, int N, int C, float eps);
/* dinp written; dweight, dbias added (dbias skipped if NULL). */
moe_status moe_cuda_layernorm_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, float *dweight,
                                       float *dbias, const void *dout, const void *inp,
                                       const float *weight, const float *mean, const float *rstd,
                                       int N, int C);
moe_status moe_cuda_rmsnorm_forward(moe_cuda *ctx, moe_dtype dt, void *out, float *rstd,
                                    const void *inp, const float *weight, int N, int C, float eps);
moe_status moe_cuda_rmsnorm_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, float *dweight,
                                     const void *dout, const void *inp, const float *weight,
                                     const float *rstd, int N, int C);

/* Pointwise over n elements, as in ops.h (GELU is the exact erf form). out
 * may alias inp. */
typedef enum moe_cuda_act { MOE_CUDA_RELU, MOE_CUDA_GELU, MOE_CUDA_SILU } moe_cuda_act;
moe_status moe_cuda_act_forward(moe_cuda *ctx, moe_dtype dt, moe_cuda_act act, void *out,
                                const void *inp, long n);
/* dinp written (may alias dout). */
moe_status moe_cuda_act_backward(moe_cuda *ctx, moe_dtype dt, moe_cuda_act act, void *dinp,
                                 const void *dout, const void *inp, long n);
/* SwiGLU: out = silu(a) * b; da, db written. */
moe_status moe_cuda_swiglu_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *a,
                                   const void *b, long n);
moe_status moe_cuda_swiglu_backward(moe_cuda *ctx, moe_dtype dt, void *da, void *db,
                                    const void *dout, const void *a, const void *b, long n);
/* out = a + b (out may alias either); backward: da += dout, db += dout. */
moe_status moe_cuda_residual_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *a,
                                     const void *b, long n);
moe_status moe_cuda_residual_backward(moe_cuda *ctx, moe_dtype dt, void *da, void *db,
                                      const void *dout, long n);

/* RoPE, rotate-half convention, exactly as rope_forward in ops.h (x [B,T,H,hd]
 * with token stride row_stride, position pos0 + t; out may alias inp). */
moe_status moe_cuda_rope_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp, int B,
                                 int T, int H, int hd, int row_stride, int pos0, float theta);
moe_status moe_cuda_rope_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, const void *dout, int B,
                                  int T, int H, int hd, int row_stride, int pos0, float theta);

/* Softmax cross-entropy, fused forward and backward, hard labels.
 * logits [N,V] (dt); targets [N] (host semantics as crossentropy_forward:
 * rows whose target == ignore_index are not counted; a target outside
 * [0, V) otherwise makes the loss NaN).
 * loss: one fp32 on the device, the mean over counted rows (0 when none).
 * count: one int on the device, the number of counted rows (may be NULL).
 * dlogits [N,V] (dt, may alias logits, skipped if NULL) written =
 * scale * (softmax - onehot) / count; 0 on ignored rows.
 * scratch: moe_cuda_crossentropy_scratch(N) bytes. */
size_t moe_cuda_crossentropy_scratch(int N);
moe_status moe_cuda_crossentropy(moe_cuda *ctx, moe_dtype dt, float *loss, int *count,
                                 void *dlogits, const void *logits, const int32_t *targets, int N,
                                 int V, int ignore_index, float scale, void *scratch);

/* Sum of squares of g [n] (fp32) into *out (one fp32 on the device,
 * overwritten). For clipping without a host round trip. */
moe_status moe_cuda_sumsq(moe_cuda *ctx, float *out, const float *g, long n);
/* AdamW (PyTorch's torch.optim.AdamW) over n fp32 master parameters, in
 * step_adam's order (src/train/optim.c):
 * g' = g * clip, clip = max_norm / (sqrt(*sumsq) + 1e-6) when sumsq is not
 * NULL, max_norm > 0 and that is below 1, else 1 (moe_grad_clip, torch's
 * clip_grad_norm_);
 * p = p (1 - lr wd); m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
 * p -= lr mhat / (sqrt(vhat) + eps)
 * with mhat = m / (1 - b1^step), vhat = v / (1 - b2^step) (step >= 1, host).
 * copy [n] (copy_dt) receives the new p (the bf16 weights the GEMMs read), or
 * NULL. */
typedef struct moe_cuda_adamw {
    float lr, beta1, beta2, eps, weight_decay;
    int step;
    float max_norm; /* 0: no clipping */
} moe_cuda_adamw;
moe_status moe_cuda_adamw_step(moe_cuda *ctx, float *param, const float *grad, float *m, float *v,
                               void *copy, moe_dtype copy_dt, long n, const moe_cuda_adamw *h,
                               const float *sumsq);

/* ---- attention (attention.cu): fused, flash-style ---------------------------
 * As attention_forward in ops.h (grouped-query heads, causal, optional
 * pad_mask [B,T] of uint8, rows with every key masked give 0), but instead
 * of the probabilities it saves lse [B,H,T] (fp32, log-sum-exp of each row's
 * scaled scores; -inf for a fully masked row), and backward recomputes them.
 * q [B,T,H,hd] with token stride q_stride; k, v [B,T,KVH,hd] with stride
 * kv_stride; out [B,T,H*hd]. hd <= 128 and a multiple of 8. */
moe_status moe_cuda_attention_forward(moe_cuda *ctx, moe_dtype dt, void *out, float *lse,
                                      const void *q, const void *k, const void *v,
                                      const uint8_t *pad_mask, int B, int T, int H, int KVH, int hd,
                                      int q_stride, int kv_stride, int causal);
/* dq, dk, dv written with the strides of q, k, v. scratch:
 * moe_cuda_attention_scratch(...) bytes. */
size_t moe_cuda_attention_scratch(int B, int T, int H, int KVH, int hd);
moe_status moe_cuda_attention_backward(moe_cuda *ctx, moe_dtype dt, void *dq, void *dk, void *dv,
                                       const void *dout, const void *out, const void *q,
                                       const void *k, const void *v, const float *lse,
                                       const uint8_t *pad_mask, int B, int T, int H, int KVH,
                                       int hd, int q_stride, int kv_stride, int causal,
                                       void *scratch);

/* ---- MoE (router.cu, dispatch.cu, grouped_gemm.cu) -----------------------
 * T tokens, D width, E experts (<= 256), k slots (<= 8, <= E), F expert
 * width. R_max = the rows the permuted buffers are allocated for: T*k when
 * dropless, else min(T*k, E*capacity). The actual row count R <= R_max is
 * offsets[E], on the device; kernels read it there. */

/* Fused router on logits [T,E] (fp32, already divided by the temperature):
 *  scores [T,E] = softmax(logits) (saved, fp32); lse [T] = logsumexp(logits);
 *  chosen [T,k] = the k largest (best first; ties: lower expert first);
 *  weights [T,k] (fp32) = their scores, divided by their sum when renormalize;
 *  or with topk_before_softmax the softmax over the k chosen logits;
 *  routed [E] (int) = pairs chosen per expert (overwritten);
 *  prob_sum [E] (fp32) = sum over tokens of scores (overwritten);
 *  z_sum (one fp32) = sum over tokens of lse^2 (overwritten).
 * Matches router.c for softmax scores without noise. */
moe_status moe_cuda_router_forward(moe_cuda *ctx, float *scores, float *lse, int32_t *chosen,
                                   float *weights, int32_t *routed, float *prob_sum, float *z_sum,
                                   const float *logits, int T, int E, int k,
                                   int topk_before_softmax, int renormalize);
/* dlogits [T,E] (fp32) written, from the gradient of the weights dw [T,k],
 * of the per-expert score sums dP [E] (d loss / d prob_sum[e], or NULL) and
 * of z_sum (dz: d loss / d z_sum, a device scalar, or NULL). The caller then
 * divides by the temperature. */
moe_status moe_cuda_router_backward(moe_cuda *ctx, float *dlogits, const float *dw, const float *dP,
                                    const float *dz, const float *scores, const float *lse,
                                    const int32_t *chosen, const float *weights, int T, int E,
                                    int k, int topk_before_softmax, int renormalize);

/* Switch and z auxiliary losses from routed/prob_sum/z_sum, on the device:
 * aux[0] = switch loss (E * sum_e f_e P_e, f_e = routed_e / (T*k) or / T),
 * aux[1] = z loss (z_sum / T), aux[2] = switch_coef aux[0] + z_coef aux[1].
 * dP [E] = daux * switch_coef * E * f_e / T (d aux[2] / d prob_sum), and
 * dz (one fp32) = daux * z_coef / T, for router_backward. daux on the host. */
moe_status moe_cuda_aux_loss(moe_cuda *ctx, float *aux, float *dP, float *dz, const int32_t *routed,
                             const float *prob_sum, const float *z_sum, int T, int E, int k,
                             int switch_divide_by_k, float switch_coef, float z_coef, float daux);

/* Capacity and permutation, deterministic (pairs in token order, as
 * capacity.c): pair p = t*k + j goes to expert chosen[p]; it is kept when
 * fewer than capacity earlier pairs went there (capacity = INT_MAX:
 * dropless). Writes kept [E] (int), offsets [E+1] (offsets[E] = R),
 * row_of [T*k] (its row in the permuted buffers, or -1 when dropped),
 * token_of [R_max] (the token of each row; rows >= R untouched), and gathers
 * xp [R_max, D] (dt) = x [T,D] rows. scratch: moe_cuda_dispatch_scratch(T, k, E)
 * bytes. */
size_t moe_cuda_dispatch_scratch(int T, int k, int E);
moe_status moe_cuda_dispatch_forward(moe_cuda *ctx, moe_dtype dt, void *xp, int32_t *kept,
                                     int32_t *offsets, int32_t *row_of, int32_t *token_of,
                                     const void *x, const int32_t *chosen, int T, int D, int E,
                                     int k, int capacity, void *scratch);
/* dx [T,D] (dt) += sum over kept slots j of dxp[row_of[t*k+j]]. */
moe_status moe_cuda_dispatch_backward(moe_cuda *ctx, moe_dtype dt, void *dx, const void *dxp,
                                      const int32_t *row_of, int T, int D, int k);
/* out [T,D] (dt) = sum over kept j of weights[t,j] * y[row_of[t*k+j]]
 * (written; a token with every pair dropped gets 0; accumulate = 1 adds). */
moe_status moe_cuda_combine_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *y,
                                    const float *weights, const int32_t *row_of, int T, int D,
                                    int k, int accumulate);
/* dy [R_max,D] (dt): row r = weights[t,j] * dout[t] for its pair (rows >= R
 * untouched); dw [T,k] (fp32) written = dot(dout[t], y[row]) (0 when
 * dropped). */
moe_status moe_cuda_combine_backward(moe_cuda *ctx, moe_dtype dt, void *dy, float *dw,
                                     const void *dout, const void *y, const float *weights,
                                     const int32_t *row_of, int T, int D, int k);

/* Grouped GEMMs over the expert blocks: rows offsets[e] .. offsets[e+1] of
 * the permuted buffers belong to expert e. Counts are read on the device
 * (the grid covers R_max rows plus one partial tile per expert; tiles past
 * an expert's rows exit). fp32 accumulation; bf16 on the tensor cores.
 * forward:  out [R,N] rows of e = inp [R,K] rows of e . weight[e]^T,
 *           weight [E,N,K] (dt).
 * backward_input: dinp [R,K] rows of e = dout [R,N] rows of e . weight[e]
 *           (written).
 * backward_weight: dweight [E,N,K] (fp32) += dout_e^T [N,R_e] . inp_e [R_e,K].
 * Rows >= R are neither read nor written. */
moe_status moe_cuda_grouped_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp,
                                    const void *weight, const int32_t *offsets, int E, int R_max,
                                    int K, int N);
moe_status moe_cuda_grouped_backward_input(moe_cuda *ctx, moe_dtype dt, void *dinp,
                                           const void *dout, const void *weight,
                                           const int32_t *offsets, int E, int R_max, int K, int N);
moe_status moe_cuda_grouped_backward_weight(moe_cuda *ctx, moe_dtype dt, float *dweight,
                                            const void *dout, const void *inp,
                                            const int32_t *offsets, int E, int R_max, int K, int N);

#ifdef __cplusplus
}
#endif

#endif
