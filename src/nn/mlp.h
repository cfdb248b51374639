/* A dense feed-forward block: act(x W1^T) W2^T, or SwiGLU
 * (silu(x W1^T) * (x W3^T)) W2^T. No biases (Llama/Mixtral style). The math
 * is nn/ffn.c (also the experts'); this adds arena-backed buffers. */
#ifndef MOE_NN_MLP_H
#define MOE_NN_MLP_H

#include "moe/core.h"
#include "moe/layer.h"
#include "nn/ffn.h"

/* Saved activations of one forward. */
typedef struct mlp_cache {
    moe_real *h1; /* [N, F] x W1^T */
    moe_real *h3; /* [N, F] x W3^T (SwiGLU) or NULL */
} mlp_cache;

/* out [N, D] written. w1, w3 [F, D], w2 [D, F]. Buffers from arena. */
moe_status mlp_forward(moe_real *out, mlp_cache *cache, const moe_real *x, const moe_real *w1,
                       const moe_real *w3, const moe_real *w2, moe_activation act, int N, int D,
                       int F, moe_arena *arena);
/* dx [N, D] written; dw1, dw3, dw2 added. Scratch from arena. */
moe_status mlp_backward(moe_real *dx, moe_real *dw1, moe_real *dw3, moe_real *dw2,
                        const moe_real *dout, const mlp_cache *cache, const moe_real *x,
                        const moe_real *w1, const moe_real *w3, const moe_real *w2,
                        moe_activation act, int N, int D, int F, moe_arena *arena);

#endif
