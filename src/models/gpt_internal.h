/* Private structure of the transformer family (src/models/gpt*.c), decoder
 * or encoder; include/moe/model.h's moe_model dispatches to it through
 * family_transformer (gpt_family.c). */
#ifndef MOE_MODELS_GPT_INTERNAL_H
#define MOE_MODELS_GPT_INTERNAL_H

#include "moe/model.h"
#include "nn/mlp.h"

/* Pointers to one block's tensors inside a block (parameters or gradients). */
typedef struct gpt_block_w {
    moe_real *ln1_w, *ln1_b; /* [D] input norm (bias NULL for RMSNorm) */
    moe_real *qkv_w, *qkv_b; /* [QKV, D], [QKV] fused q, k, v projections */
    moe_real *o_w, *o_b;     /* [D, D], [D] attention output projection */
    moe_real *ln2_w, *ln2_b; /* [D] FFN input norm */
    moe_layer_params moe;    /* MoE FFN (is_moe) */
    moe_real *w1, *w3, *w2;  /* dense FFN: [F, D], [F, D] (SwiGLU), [D, F] */
} gpt_block_w;

typedef struct gpt_w {
    moe_real *wte;           /* [V, D] token embedding */
    moe_real *wpe;           /* [S, D] learned positions or NULL */
    moe_real *lnf_w, *lnf_b; /* [D] final norm */
    moe_real *lm_head;       /* [V, D] or the same as wte when tied */
    moe_real *cls_w, *cls_b; /* [C, D], [C] classifier head (n_classes > 0) */
    gpt_block_w *blocks;     /* [L] */
} gpt_w;

/* What one block's forward saved for backward. Pre-norm:
 *   x_mid = x_in + drop(attn(ln1(x_in))), out = x_mid + drop(ffn(ln2(x_mid)));
 * post-norm (post_ln):
 *   x_mid = ln1(h1), h1 = x_in + drop(attn(x_in)); out = ln2(h2), h2 = x_mid + drop(ffn(x_mid)). */
typedef struct gpt_block_acts {
    moe_real *x_in;                      /* [N, D] residual stream entering the block */
    moe_real *ln1, *ln1_mean, *ln1_rstd; /* [N, D], [N], [N] (pre-norm: attention input) */
    moe_real *h1, *h2;                   /* [N, D] post-norm: sums before ln1 and ln2 */
    const moe_real *attn_in, *ffn_in;    /* what attention and the FFN read */
    moe_real *qkv;                       /* [N, QKV] after rotary */
    moe_real *att;                       /* [B, H, T, T] attention probabilities */
    moe_real *attn;                      /* [N, D] attention output before o_proj */
    moe_real *drop1;                     /* [N, D] dropout mask or NULL */
    moe_real *x_mid;                     /* [N, D] after the attention residual */
    moe_real *ln2, *ln2_mean, *ln2_rstd;
    moe_real *drop2;        /* [N, D] dropout mask or NULL */
    mlp_cache mlp;          /* dense FFN */
    moe_layer_cache *moe;   /* MoE FFN */
    moe_layer_stats *stats; /* MoE routing of this forward */
} gpt_block_acts;

typedef struct gpt_model gpt_model;

struct gpt_model {
    moe_model_config cfg;  /* as built (moe.d_model = d_model) */
    moe_param_table table; /* names, shapes, offsets */
    moe_real *params;      /* [table.total] one allocation */
    moe_real *grads;       /* [table.total] one allocation */
    gpt_w w, g;            /* views into params and grads */
    int *block_is_moe;     /* [L] */
    int n_moe;             /* MoE blocks */
    int *moe_block;        /* [n_moe] block index of MoE layer i */
    int qkv_dim;           /* (H + 2 KVH) * hd */
    /* last forward */
    int B, T, training;
    const int32_t *tokens;  /* [B, T] caller's buffer (kept for backward) */
    const int32_t *targets; /* [B, T] */
    moe_rng *rng;
    gpt_block_acts *acts; /* [L] in the arena */
    moe_real *x_final;    /* [N, D] residual stream after the last block */
    moe_real *lnf, *lnf_mean, *lnf_rstd;
    moe_real *logits;        /* [N, V] (NULL when only the classifier ran) */
    moe_real *probs;         /* [N, V] softmax of logits (loss) */
    int n_counted;           /* targets counted by the loss */
    moe_real *sinusoid;      /* [S, D] fixed positions (pos = sinusoidal), malloc'd */
    const uint8_t *pad_mask; /* [B, T] of the last forward, or NULL */
    const int32_t *labels;   /* [B] class labels of the last forward, or NULL */
    int *valid;              /* [n_valid] rows of real tokens (pad_mask set) */
    int n_valid;
    moe_real *pooled;     /* [B, D] classifier input */
    moe_real *cls_logits; /* [B, C] */
    moe_real *cls_probs;  /* [B, C] (loss) */
    int n_labels;         /* labels counted by the loss */
};

/* Arena allocation inside a function returning moe_status (needs `arena`). */
#define ALLOC(ptr, count)                                                                          \
    do {                                                                                           \
        (ptr) = moe_arena_alloc(arena, (size_t)(count) * sizeof(*(ptr)));                          \
        if (!(ptr)) return MOE_ERR_NOMEM;                                                          \
    } while (0)

int gpt_head_dim(const moe_model_config *c);

/* What include/moe/model.h documents for moe_model_*, on the transformer. */
moe_status gpt_create(gpt_model **m, const moe_model_config *cfg, uint64_t seed);
void gpt_free(gpt_model *m);
size_t gpt_param_count(const gpt_model *m);
size_t gpt_active_param_count(const gpt_model *m);
double gpt_train_flops_per_token(const gpt_model *m, int T);
double gpt_all_experts_flops_per_token(const gpt_model *m, int T);
moe_status gpt_forward_batch(gpt_model *m, const moe_batch *batch, int training, moe_rng *rng,
                             moe_arena *arena, double *task_loss, double *aux_loss);
moe_status gpt_backward(gpt_model *m, moe_arena *arena, float scale);
const moe_real *gpt_class_logits(const gpt_model *m);
const moe_real *gpt_logits(const gpt_model *m);
int gpt_moe_layers(const gpt_model *m);
const moe_layer_stats *gpt_layer_stats(const gpt_model *m, int i);
int gpt_moe_layer_index(const gpt_model *m, int i);
moe_status gpt_generate(gpt_model *m, const int32_t *prompt, int n_prompt, int n_new,
                        const moe_sampling *s, moe_rng *rng, int32_t *out);
int gpt_block_is_moe(const moe_model_config *c, int l);

#endif
