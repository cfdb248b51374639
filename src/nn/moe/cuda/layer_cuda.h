/* The MoE layer on the GPU (include/moe/layer.h's function, composed from
 * the launchers of src/ops/cuda/cuda_ops.h):
 *
 *   logits = x gate^T / temperature (fp32) -> router (softmax, top-k)
 *   -> capacity and dispatch -> grouped GEMMs w1 (w3) -> activation
 *   -> grouped GEMM w2 -> combine -> out [T, D]
 *
 * plus the Switch and z auxiliary losses. One workspace per layer, sized once
 * for T_max tokens, holds everything forward saves for backward, so forward
 * and backward allocate nothing and never wait for the GPU: the data-dependent
 * counts (rows per expert, kept pairs) stay on the device.
 * moe_layer_cuda_stats() reads them back for logging (it synchronises; call
 * it outside the step).
 *
 * What it does not do (moe_layer_cuda_supported says which field): sigmoid
 * scores, noisy gating, expert biases, a shared expert, the variance and cv
 * losses, the non-finite fallback and round-robin routing. */
#ifndef MOE_NN_MOE_LAYER_CUDA_H
#define MOE_NN_MOE_LAYER_CUDA_H

#include "moe/layer.h"
#include "ops/cuda/cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MOE_OK when the GPU layer computes cfg; MOE_ERR_INVALID for a config
 * moe_layer_config_check rejects; MOE_ERR_UNSUPPORTED, with a message naming
 * the field, for a valid config it does not do. Needs no GPU. */
moe_status moe_layer_cuda_supported(const moe_layer_config *cfg);

/* The weights the layer reads, device pointers in the workspace's dt (the
 * compute copies; the fp32 masters live with the optimizer). */
typedef struct moe_layer_cuda_params {
    const void *gate; /* [E, D] router */
    const void *w1;   /* [E, F, D] up projection */
    const void *w3;   /* [E, F, D] gate projection (SwiGLU only, else unused) */
    const void *w2;   /* [E, D, F] down projection */
} moe_layer_cuda_params;

/* Parameter gradients, fp32 device pointers, ADDED to (+=); a NULL one is
 * not computed. */
typedef struct moe_layer_cuda_grads {
    float *gate, *w1, *w3, *w2;
} moe_layer_cuda_grads;

/* The workspace. Its fields are device buffers filled by forward and backward;
 * callers (tests, logging) may read them but never write them. Rows r >= R of
 * the permuted buffers (R = offsets[E], on the device) hold stale values. */
typedef struct moe_layer_cuda_ws {
    moe_cuda *ctx;
    moe_layer_config cfg; /* a copy, checked by moe_layer_cuda_supported */
    moe_dtype dt;
    int T_max; /* the most tokens one call may pass */
    int R_cap; /* rows of the permuted buffers: R_max of T_max */
    /* the last forward: T, capacity, R_max (host), and its input */
    int T, capacity, R_max;
    const void *x; /* [T, D] dt, the caller's; unchanged until backward */
    int h_live;    /* h still holds forward's activation (backward turns it into dh) */
    void *arena;   /* one device allocation holding every buffer below */
    size_t arena_bytes;
    /* router (fp32 unless said) */
    float *logits;    /* [T, E] x gate^T / temperature */
    float *scores;    /* [T, E] softmax */
    float *lse;       /* [T] logsumexp */
    int32_t *chosen;  /* [T, k] best first */
    float *weights;   /* [T, k] */
    int32_t *routed;  /* [E] pairs chosen per expert, before capacity */
    float *prob_sum;  /* [E] sum over tokens of the scores */
    float *z_sum;     /* [1] sum over tokens of lse^2 */
    float *aux;       /* [3] switch, z, weighted total */
    float *dP, *dz;   /* [E], [1]: d aux[2] / d prob_sum, d aux[2] / d z_sum */
    float *dw;        /* [T, k] gradient of the weights */
    float *dlogits;   /* [T, E] */
    void *dlogits_dt; /* [T, E] dt: dlogits cast for the bf16 GEMMs (== dlogits in fp32) */
    /* dispatch */
    int32_t *kept;     /* [E] pairs kept per expert */
    int32_t *offsets;  /* [E + 1] first row of each expert; offsets[E] = R */
    int32_t *row_of;   /* [T * k] row of pair t*k+j, -1 when dropped */
    int32_t *token_of; /* [R_cap] token of each row */
    void *scratch;     /* dispatch scratch */
    size_t scratch_bytes;
    /* experts, dt */
    void *xp;         /* [R_cap, D] gathered inputs */
    void *ha, *hb;    /* [R_cap, F] x W1^T, x W3^T (hb: SwiGLU only) */
    void *h;          /* [R_cap, F] activation; backward reuses it for dh */
    void *y;          /* [R_cap, D] expert outputs */
    void *dy;         /* [R_cap, D] */
    void *dha, *dhb;  /* [R_cap, F] (dhb: SwiGLU only) */
    void *dxp, *dxp3; /* [R_cap, D] dha W1, dhb W3 (dxp3: SwiGLU only) */
} moe_layer_cuda_ws;

/* The permuted-buffer rows for T tokens: T*k when dropless, else
 * min(T*k, E*capacity) with capacity = ceil(cf*T*k/E) (capacity.c). */
long moe_layer_cuda_rows(const moe_layer_config *cfg, int T);

/* A workspace for up to T_max tokens of cfg in dt (everything allocated
 * here, once). *out is NULL on failure. */
moe_status moe_layer_cuda_workspace_create(moe_layer_cuda_ws **out, moe_cuda *ctx,
                                           const moe_layer_config *cfg, int T_max, moe_dtype dt);
void moe_layer_cuda_workspace_destroy(moe_layer_cuda_ws *ws);
/* Fills every workspace buffer with the byte 0xff (NaN in fp32 and bf16), so
 * a test sees any value read before it was written. Synchronises; tests
 * only. */
moe_status moe_layer_cuda_workspace_poison(moe_layer_cuda_ws *ws);

/* out [T, D] (dt) written, from x [T, D] (dt), 1 <= T <= T_max. Enqueues
 * only: no host sync. The auxiliary losses are computed (aux[]) with their
 * gradients for daux = 1. training is accepted for symmetry with the CPU
 * layer; without noise it changes nothing. Keep x unchanged until
 * backward. */
moe_status moe_layer_cuda_forward(moe_layer_cuda_ws *ws, const moe_layer_cuda_params *p, void *out,
                                  const void *x, int T, int training);

/* After forward: dx [T, D] (dt) written, grads added, from dout [T, D] (dt);
 * daux = d(total loss) / d(aux[2]), usually 1 (host). Enqueues only. */
moe_status moe_layer_cuda_backward(moe_layer_cuda_ws *ws, const moe_layer_cuda_params *p,
                                   const moe_layer_cuda_grads *g, void *dx, const void *dout,
                                   float daux);

/* What the last forward measured, on the host. */
typedef struct moe_layer_cuda_stats {
    int n_tokens;  /* T */
    int n_pairs;   /* T * k */
    int n_rows;    /* R: kept pairs */
    int n_dropped; /* pairs over capacity */
    int n_experts; /* E: entries used below */
    float aux_switch, aux_z, aux_total;
    int routed[256];      /* pairs chosen per expert */
    int kept[256];        /* pairs kept per expert */
    float mean_prob[256]; /* mean router probability */
} moe_layer_cuda_stats;
/* Downloads the last forward's statistics (synchronises the stream). */
moe_status moe_layer_cuda_stats_read(moe_layer_cuda_ws *ws, moe_layer_cuda_stats *out);

#ifdef __cplusplus
}
#endif
#endif
