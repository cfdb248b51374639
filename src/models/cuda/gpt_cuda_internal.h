/* Private structure of the GPU transformer (gpt_cuda*.c). */
#ifndef MOE_MODELS_GPT_CUDA_INTERNAL_H
#define MOE_MODELS_GPT_CUDA_INTERNAL_H

#include "models/cuda/gpt_cuda.h"

/* Element offsets of one block's tensors in the parameter table (the same
 * in the masters, the compute copy and the gradients), -1 when absent. */
typedef struct gpt_cuda_block_off {
    long ln1_w, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_w, ln2_b;
    long gate, ew1, ew3, ew2; /* MoE: router, experts */
    long w1, w3, w2;          /* dense FFN */
} gpt_cuda_block_off;

typedef struct gpt_cuda_off {
    long wte, wpe, lnf_w, lnf_b, lm_head; /* lm_head == wte when tied */
    gpt_cuda_block_off *blocks;           /* [L] */
} gpt_cuda_off;

/* What block l's forward saves for backward (device, dt unless said). */
typedef struct gpt_cuda_block_acts {
    void *ln1;                  /* [N, D] attention input */
    float *ln1_mean, *ln1_rstd; /* [N] (mean: LayerNorm only) */
    void *qkv;                  /* [N, Q] after rotary */
    float *lse;                 /* [B, H, T] attention log-sum-exp */
    void *attn;                 /* [N, D] attention output before o_proj */
    void *x_mid;                /* [N, D] after the attention residual */
    void *ln2;                  /* [N, D] FFN input */
    float *ln2_mean, *ln2_rstd; /* [N] */
    void *h1, *h3, *hact;       /* dense FFN: [N, F] x W1^T, x W3^T (SwiGLU), activation */
    moe_layer_cuda_ws *ws;      /* MoE FFN */
} gpt_cuda_block_acts;

struct gpt_cuda {
    moe_cuda *ctx;
    moe_model_config cfg; /* as the CPU model holds it (moe.d_model set) */
    moe_dtype dt;
    size_t dsz;   /* bytes per dt element */
    size_t total; /* parameters in the table */
    int B_max, T_max;
    int D, V, L, H, KVH, hd, Q, F;
    int *block_is_moe; /* [L] */
    int n_moe;
    int *moe_block; /* [n_moe] block of MoE layer i */
    gpt_cuda_off off;
    /* parameters: fp32 masters, dt copy (== master in fp32), fp32 grads,
     * AdamW moments; all [total] in the table's layout */
    float *master;
    void *copy;
    float *grads;
    float *adam_m, *adam_v;
    long step;    /* AdamW updates done */
    float *sumsq; /* [1] sum of squared grads of the last optim_step */
    int has_norm; /* an optim_step ran (sumsq is valid) */
    /* inputs of the last forward */
    int B, T, has_targets, has_forward, logits_are_grads;
    int32_t *tokens, *targets, *pos_ids; /* [N_max] device */
    int32_t *h_ids;                      /* [N_max] host staging for the position ids */
    /* activations */
    void **xs; /* [L + 1] residual stream entering block l; xs[L] = after the last block */
    gpt_cuda_block_acts *acts; /* [L] */
    void *lnf;                 /* [N, D] */
    float *lnf_mean, *lnf_rstd;
    void *logits; /* [N, V]; backward overwrites it with dlogits */
    float *loss;  /* [1] mean cross-entropy */
    int *count;   /* [1] counted targets */
    void *ce_scratch;
    size_t ce_scratch_bytes;
    /* backward scratch */
    void *dx, *dln, *dnorm, *dtmp; /* [N, D] */
    void *dqkv;                    /* [N, Q] */
    void *dh, *da, *db;            /* [N, F] dense FFN */
    void *att_scratch;
    size_t att_scratch_bytes;
    /* every device allocation, freed by destroy */
    void **allocs;
    int n_allocs, cap_allocs;
};

/* Device pointer to element i of a dt buffer. */
static inline void *gpt_cuda_at(const gpt_cuda *g, const void *p, long i) {
    return (char *)p + (size_t)i * g->dsz;
}
/* The fp32 master, the dt copy and the fp32 gradient of a tensor (NULL when
 * its offset is -1). */
static inline float *gpt_cuda_P(const gpt_cuda *g, long off) {
    return off < 0 ? NULL : g->master + off;
}
static inline void *gpt_cuda_C(const gpt_cuda *g, long off) {
    return off < 0 ? NULL : gpt_cuda_at(g, g->copy, off);
}
static inline float *gpt_cuda_G(const gpt_cuda *g, long off) {
    return off < 0 ? NULL : g->grads + off;
}

/* Norm of the config's kind: LayerNorm (mean and bias used) or RMSNorm. */
moe_status gpt_cuda_norm_forward(gpt_cuda *g, void *out, float *mean, float *rstd, const void *inp,
                                 const float *w, const float *b, int N);
moe_status gpt_cuda_norm_backward(gpt_cuda *g, void *dinp, float *dw, float *db, const void *dout,
                                  const void *inp, const float *w, const float *mean,
                                  const float *rstd, int N);

#endif
