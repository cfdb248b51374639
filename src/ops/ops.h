/* CPU kernels: every op is a forward/backward pair in llm.c's argument order
 * (outputs, saved buffers, inputs, weights, dimensions). Gradient pointers
 * start with d. Parameter gradients ADD (+=) so micro-batch accumulation is
 * free; activation gradients are WRITTEN (=). Shapes are row-major and given
 * in the comment next to each buffer. moe_real is float, or double in the
 * MOE_DOUBLE build used by the gradient checks. */
#ifndef MOE_OPS_H
#define MOE_OPS_H

#include "moe/core.h"

#include <stdint.h>

/* --- GEMM (OpenBLAS): C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C.
 * trans_a / trans_b: 0 or 1; lda/ldb/ldc are row strides as stored. */
void gemm(int trans_a, int trans_b, int M, int N, int K, moe_real alpha, const moe_real *A, int lda,
          const moe_real *B, int ldb, moe_real beta, moe_real *C, int ldc);

/* --- Linear layer, PyTorch layout: weight [OC, C], bias [OC] or NULL.
 * out[N,OC] = inp[N,C] weight^T + bias */
void matmul_forward(moe_real *out, const moe_real *inp, const moe_real *weight,
                    const moe_real *bias, int N, int C, int OC);
/* dinp [N,C] written (skipped if NULL); dweight [OC,C] and dbias [OC] added
 * (skipped if NULL). */
void matmul_backward(moe_real *dinp, moe_real *dweight, moe_real *dbias, const moe_real *dout,
                     const moe_real *inp, const moe_real *weight, int N, int C, int OC);

/* --- Embedding: out[N,C] = table[ids[n]]; ids must be in [0, V). */
void embedding_forward(moe_real *out, const int32_t *ids, const moe_real *table, int N, int C);
/* dtable [V,C] added. */
void embedding_backward(moe_real *dtable, const moe_real *dout, const int32_t *ids, int N, int C);

/* --- LayerNorm over the last dim C. mean, rstd [N] saved. bias may be NULL. */
void layernorm_forward(moe_real *out, moe_real *mean, moe_real *rstd, const moe_real *inp,
                       const moe_real *weight, const moe_real *bias, int N, int C, float eps);
void layernorm_backward(moe_real *dinp, moe_real *dweight, moe_real *dbias, const moe_real *dout,
                        const moe_real *inp, const moe_real *weight, const moe_real *mean,
                        const moe_real *rstd, int N, int C);

/* --- RMSNorm: out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps). */
void rmsnorm_forward(moe_real *out, moe_real *rstd, const moe_real *inp, const moe_real *weight,
                     int N, int C, float eps);
void rmsnorm_backward(moe_real *dinp, moe_real *dweight, const moe_real *dout, const moe_real *inp,
                      const moe_real *weight, const moe_real *rstd, int N, int C);

/* --- Rotary position embedding (rotate-half convention of HF Llama/Mixtral):
 * x [B,T,H,hd] (rows of stride row_stride elements between tokens, so it can
 * work in place inside a fused qkv buffer); position of token t is
 * pos0 + t. hd must be even. out may alias inp. Only the first H*hd elements
 * of each row are read or written. */
void rope_forward(moe_real *out, const moe_real *inp, int B, int T, int H, int hd, int row_stride,
                  int pos0, float theta);
/* The inverse rotation; dinp may alias dout. */
void rope_backward(moe_real *dinp, const moe_real *dout, int B, int T, int H, int hd,
                   int row_stride, int pos0, float theta);

/* --- Scaled dot-product attention with grouped-query heads.
 * q [B,T,H,hd] with token stride q_stride; k, v [B,T,KVH,hd] with stride
 * kv_stride (H % KVH == 0; head h reads kv head h / (H/KVH)).
 * causal: token t sees 0..t. pad_mask [B,T] (1 = real token, 0 = padding) or
 * NULL: padded keys are never attended. Rows whose keys are all masked give 0.
 * att [B,H,T,T] saves the probabilities; out [B,T,H,hd] (stride H*hd). */
void attention_forward(moe_real *out, moe_real *att, const moe_real *q, const moe_real *k,
                       const moe_real *v, const uint8_t *pad_mask, int B, int T, int H, int KVH,
                       int hd, int q_stride, int kv_stride, int causal);
/* dq, dk, dv written with the same strides as q, k, v; datt [B,H,T,T] scratch.
 * causal: as given to the forward; 1 skips the masked upper triangle (whose
 * probabilities are 0) and leaves it unwritten in datt. 0 is always correct. */
void attention_backward(moe_real *dq, moe_real *dk, moe_real *dv, moe_real *datt,
                        const moe_real *dout, const moe_real *q, const moe_real *k,
                        const moe_real *v, const moe_real *att, int B, int T, int H, int KVH,
                        int hd, int q_stride, int kv_stride, int causal);

/* --- Pointwise activations over N elements. GELU is the exact erf form
 * (PyTorch's default). out may alias inp in forward. */
void relu_forward(moe_real *out, const moe_real *inp, long N);
void relu_backward(moe_real *dinp, const moe_real *dout, const moe_real *inp, long N);
void gelu_forward(moe_real *out, const moe_real *inp, long N);
void gelu_backward(moe_real *dinp, const moe_real *dout, const moe_real *inp, long N);
void silu_forward(moe_real *out, const moe_real *inp, long N);
void silu_backward(moe_real *dinp, const moe_real *dout, const moe_real *inp, long N);
/* SwiGLU: out = silu(a) * b. */
void swiglu_forward(moe_real *out, const moe_real *a, const moe_real *b, long N);
void swiglu_backward(moe_real *da, moe_real *db, const moe_real *dout, const moe_real *a,
                     const moe_real *b, long N);

/* --- Sequence pooling for classifiers. inp [B,T,D] -> out [B,D]: the row
 * at t = 0 ([CLS]), or with mean = 1 the mean over rows whose pad_mask [B,T]
 * is 1 (NULL: all rows; a sequence of only padding gives 0). Backward
 * writes dinp (0 where nothing flowed). */
void pool_forward(moe_real *out, const moe_real *inp, const uint8_t *pad_mask, int B, int T, int D,
                  int mean);
void pool_backward(moe_real *dinp, const moe_real *dout, const uint8_t *pad_mask, int B, int T,
                   int D, int mean);

/* --- Row gather/scatter: out[r] = inp[rows[r]] for r < n; scatter writes
 * out [N,D] with zeros except out[rows[r]] = inp[r]. Used to run MoE layers
 * on the real tokens of a padded batch only. */
void rows_gather(moe_real *out, const moe_real *inp, const int *rows, int n, int D);
void rows_scatter(moe_real *out, const moe_real *inp, const int *rows, int n, int N, int D);

/* --- Fixed sinusoidal positions (Vaswani et al.): table [S,D], row t holds
 * sin(t w_j) at 2j and cos(t w_j) at 2j+1, w_j = 10000^(-2j/D). */
void sinusoid_positions(moe_real *table, int S, int D);

/* --- Inverted dropout with probability p: mask [N] saves 0 or 1/(1-p).
 * Draws one u64 from rng per call (p > 0); the mask does not depend on the
 * thread count. p <= 0: identity (mask 1); p >= 1: everything dropped. */
void dropout_forward(moe_real *out, moe_real *mask, const moe_real *inp, float p, long N,
                     moe_rng *rng);
void dropout_backward(moe_real *dinp, const moe_real *dout, const moe_real *mask, long N);

/* --- Residual: out = a + b; backward adds dout into da and db. */
void residual_forward(moe_real *out, const moe_real *a, const moe_real *b, long N);
void residual_backward(moe_real *da, moe_real *db, const moe_real *dout, long N);

/* --- Softmax cross-entropy over V classes, mean over counted rows.
 * Hard labels: targets [N]; rows whose target == ignore_index are not counted.
 * probs [N,V] saved. Returns the mean loss (0 when no row counts) and stores
 * the number of counted rows in *count. A target outside [0, V) other than
 * ignore_index is not counted and makes the loss NaN. */
double crossentropy_forward(moe_real *probs, const moe_real *logits, const int32_t *targets, int N,
                            int V, int ignore_index, int *count);
/* dlogits [N,V] written = scale * (probs - onehot) / count; ignored rows 0. */
void crossentropy_backward(moe_real *dlogits, const moe_real *probs, const int32_t *targets, int N,
                           int V, int ignore_index, int count, float scale);
/* Soft labels: target_probs [N,V] (rows sum to 1), optional row weights [N]
 * (NULL = 1). loss = sum_n w_n * -sum_v p log q / sum_n w_n. */
double crossentropy_soft_forward(moe_real *probs, const moe_real *logits,
                                 const moe_real *target_probs, const moe_real *weights, int N,
                                 int V);
void crossentropy_soft_backward(moe_real *dlogits, const moe_real *probs,
                                const moe_real *target_probs, const moe_real *weights, int N, int V,
                                float scale);

/* --- Attention of n new tokens over a KV cache (inference, batch 1).
 * q [n, H, hd] with row stride q_stride; kc, vc [S, KVH * hd] hold positions
 * 0 .. pos0 + n - 1 (the new tokens' keys already written). Token i sees
 * positions 0 .. pos0 + i. scores [pos0 + n] scratch; out [n, H * hd]. */
void attention_cached_forward(moe_real *out, moe_real *scores, const moe_real *q, int q_stride,
                              const moe_real *kc, const moe_real *vc, int n, int pos0, int H,
                              int KVH, int hd);

/* --- Row softmax in place over the last dim (used by routers and sampling). */
/* One row: out [V] = softmax(x [V]) (out may alias x); returns log(sum(exp(x)))
 * (NaN when a logit is NaN). */
double softmax_row(moe_real *out, const moe_real *x, int V);
void softmax_rows(moe_real *x, int N, int V);

/* ===== Vision ops (the CNN families): NCHW tensors, batch first. ===== */

/* Output length of a convolution or pooling window along one axis:
 * (in + 2 pad - k) / stride + 1 (floor, PyTorch's ceil_mode=False). Needs
 * in + 2 pad >= k. */
int conv2d_out_size(int in, int k, int stride, int pad);

/* --- 2-D convolution (cross-correlation, like PyTorch): inp [N,C,H,W],
 * weight [OC, C/groups, KH, KW], bias [OC] or NULL, out [N,OC,OH,OW] with
 * OH = conv2d_out_size(H, KH, stride, pad), OW likewise; the same stride and
 * zero padding on both axes. C and OC must be multiples of groups; output
 * channel o reads input channels of group o / (OC/groups). Depthwise
 * (groups == C == OC) runs a direct loop; everything else im2col + gemm()
 * per image, images in parallel.
 * scratch: conv2d_scratch_elems(...) elements (never 0), shared by forward
 * and backward. The size counts one slice per OpenMP thread
 * (omp_get_max_threads()), so ask for it with the thread count the kernels
 * will run with (per step, not once at start-up), and call the kernels
 * outside any parallel region: they parallelise themselves and pick their
 * slice by thread number. */
size_t conv2d_scratch_elems(int C, int H, int W, int OC, int KH, int KW, int stride, int pad,
                            int groups);
void conv2d_forward(moe_real *out, moe_real *scratch, const moe_real *inp, const moe_real *weight,
                    const moe_real *bias, int N, int C, int H, int W, int OC, int KH, int KW,
                    int stride, int pad, int groups);
/* dinp [N,C,H,W] written (skipped if NULL); dweight and dbias added
 * (each skipped if NULL). */
void conv2d_backward(moe_real *dinp, moe_real *dweight, moe_real *dbias, moe_real *scratch,
                     const moe_real *dout, const moe_real *inp, const moe_real *weight, int N,
                     int C, int H, int W, int OC, int KH, int KW, int stride, int pad, int groups);

/* The depthwise kernel conv2d_* run when groups == C == OC (weight
 * [C,1,KH,KW]); call those, which also add dbias. Exposed for the tests
 * and benchmarks that compare it with the general path. */
size_t conv2d_depthwise_scratch_elems(int H, int W, int KH, int KW, int stride, int pad);
void conv2d_depthwise_forward(moe_real *out, moe_real *scratch, const moe_real *inp,
                              const moe_real *weight, const moe_real *bias, int N, int C, int H,
                              int W, int KH, int KW, int stride, int pad);
void conv2d_depthwise_backward(moe_real *dinp, moe_real *dweight, moe_real *scratch,
                               const moe_real *dout, const moe_real *inp, const moe_real *weight,
                               int N, int C, int H, int W, int KH, int KW, int stride, int pad);

/* --- 2-D pooling over each [H,W] plane with a K x K window, stride and
 * padding (pad <= K/2, as PyTorch requires); out [N,C,OH,OW] with OH =
 * conv2d_out_size(H, K, stride, pad).
 * Max: padding never wins; argmax [N,C,OH,OW] saves the index h*W + w of
 * the maximum inside its plane (PyTorch's return_indices; the first one
 * on ties, a NaN wins). */
void maxpool2d_forward(moe_real *out, int32_t *argmax, const moe_real *inp, int N, int C, int H,
                       int W, int K, int stride, int pad);
/* dinp [N,C,H,W] written. */
void maxpool2d_backward(moe_real *dinp, const moe_real *dout, const int32_t *argmax, int N, int C,
                        int H, int W, int K, int stride, int pad);
/* Average: the window sum divided by K*K, padding counted as zeros
 * (PyTorch's default count_include_pad=True). */
void avgpool2d_forward(moe_real *out, const moe_real *inp, int N, int C, int H, int W, int K,
                       int stride, int pad);
void avgpool2d_backward(moe_real *dinp, const moe_real *dout, int N, int C, int H, int W, int K,
                        int stride, int pad);
/* Global average: inp [N,C,S] (S = H*W) -> out [N,C]; dinp written. */
void global_avgpool_forward(moe_real *out, const moe_real *inp, int N, int C, int S);
void global_avgpool_backward(moe_real *dinp, const moe_real *dout, int N, int C, int S);

/* --- Batch normalisation over inp [N,C,S] per channel (S = H*W; S = 1 is
 * BatchNorm1d on [N,C]). weight, bias [C] or NULL (1 and 0).
 * training: normalise with the batch's mean and biased variance, save them
 * as mean, rstd [C] (rstd = 1/sqrt(var + eps)) and, when running_mean and
 * running_var [C] are not NULL, move them as PyTorch does:
 * running = (1 - momentum) running + momentum batch, with the UNBIASED
 * variance (N*S/(N*S-1) var; N*S must be > 1, which PyTorch enforces).
 * inference: normalise with running_mean and running_var (required, left
 * unchanged), which are copied to mean and rstd so that backward needs
 * nothing else.
 * PyTorch's defaults are momentum 0.1, eps 1e-5. */
void batchnorm_forward(moe_real *out, moe_real *mean, moe_real *rstd, moe_real *running_mean,
                       moe_real *running_var, const moe_real *inp, const moe_real *weight,
                       const moe_real *bias, int N, int C, int S, int training, float momentum,
                       float eps);
/* training as in the forward: 1 differentiates through the batch
 * statistics, 0 treats mean and rstd as constants. dinp written (skipped
 * if NULL); dweight, dbias added (skipped if NULL). */
void batchnorm_backward(moe_real *dinp, moe_real *dweight, moe_real *dbias, const moe_real *dout,
                        const moe_real *inp, const moe_real *weight, const moe_real *mean,
                        const moe_real *rstd, int N, int C, int S, int training);

#endif
