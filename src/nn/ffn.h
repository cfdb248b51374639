/* The feed-forward net shared by dense blocks (nn/mlp.c), routed experts and
 * the shared expert (nn/moe): act(x W1^T + b1) W2^T + b2, or SwiGLU
 * (silu(x W1^T + b1) * (x W3^T + b3)) W2^T + b2, over n contiguous rows.
 * Bias pointers may be NULL (Llama/Mixtral style: always NULL for dense). */
#ifndef MOE_NN_FFN_H
#define MOE_NN_FFN_H

#include "moe/core.h"
#include "moe/layer.h"

/* Pointwise activation over n elements for a non-gated kind (RELU/GELU/SILU;
 * SWIGLU applies its silu half). */
void activation_forward(moe_activation act, moe_real *out, const moe_real *inp, long n);
void activation_backward(moe_activation act, moe_real *dinp, const moe_real *dout,
                         const moe_real *inp, long n);

/* y [n, D] written; a = x W1^T (+b1), b = x W3^T (+b3, SwiGLU only, else
 * unused and may be NULL), h = activation [n, F] written and saved for
 * backward. w1, w3 [F, D], w2 [D, F]. */
void ffn_forward(moe_real *y, moe_real *h, moe_real *a, moe_real *b, const moe_real *x,
                 const moe_real *w1, const moe_real *b1, const moe_real *w3, const moe_real *b3,
                 const moe_real *w2, const moe_real *b2, moe_activation act, int n, int D, int F);
/* dx [n, D] written; weight and bias grads added (NULL bias grads skipped);
 * dh, da, db [n, F] scratch (db SwiGLU only). h may be NULL: it is then
 * recomputed from a (and b), so forward callers need not keep it. */
void ffn_backward(moe_real *dx, moe_real *dw1, moe_real *db1, moe_real *dw3, moe_real *db3,
                  moe_real *dw2, moe_real *db2, moe_real *dh, moe_real *da, moe_real *db,
                  const moe_real *dy, const moe_real *h, const moe_real *a, const moe_real *b,
                  const moe_real *x, const moe_real *w1, const moe_real *w3, const moe_real *w2,
                  moe_activation act, int n, int D, int F);

#endif
