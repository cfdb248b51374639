/* Private structure of seed 001's DeepMoE family (src/models/deepmoe*.c):
 * a VGG- or ResNet-style CNN whose convolutions have their output channels
 * scaled by gates relu(W_l e), e coming from a shallow embedding network.
 *
 * Every convolution of the main network is a "unit": conv (no bias, a BN
 * follows) -> batch norm -> [ReLU] -> [* gate]. The gate multiplies AFTER
 * the ReLU: y = g * relu(bn) (= relu(g * bn) since g >= 0), so a zero gate
 * makes the whole channel exactly 0 downstream and a sparse implementation
 * may skip its conv, BN and ReLU. (The original code gated the conv output
 * before BN, where a zero gate still leaves BN's shift in the channel.) */
#ifndef MOE_MODELS_DEEPMOE_INTERNAL_H
#define MOE_MODELS_DEEPMOE_INTERNAL_H

#include "models/family.h"
#include "ops/ops.h"

#define DM_EMB_CONVS 3                        /* embedding network depth */
#define DM_MAX_UNITS (1 + 3 * MOE_MAX_STAGES) /* ResNet: stem + 3 per block */
#define DM_MAX_GATES (1 + 2 * MOE_MAX_STAGES) /* ResNet: stem + 2 per block */
#define DM_BN_MOMENTUM 0.1f                   /* PyTorch's BatchNorm2d defaults */
#define DM_BN_EPS 1e-5f
/* Elementwise loops this short run on one thread: a parallel region's
 * start and barrier cost more than the work (and much more on a busy
 * machine, where a descheduled thread holds up the barrier). */
#define DM_PAR_MIN 32768L

/* What a table entry is: trained parameter, part of the embedding network
 * (frozen in the freeze phase), or a batch-norm running statistic. */
enum { DM_PARAM = 0, DM_EMBEDDING = 1, DM_BUFFER = 2 };

/* conv (k x k, stride, pad, no bias) -> BN -> [ReLU] -> [* gate]. */
typedef struct dm_unit {
    int cin, cout, H, W, OH, OW, k, stride, pad;
    int relu;                                    /* ReLU after the BN */
    int gate;                                    /* index among the gated convs, or -1 */
    int t_conv, t_bn_w, t_bn_b, t_rmean, t_rvar; /* table indices */
} dm_unit;

/* What a unit's forward saved. */
typedef struct dm_unit_acts {
    const moe_real *x;     /* [B, cin, H, W] input (another unit's buffer) */
    moe_real *conv;        /* [B, cout, OH*OW] conv output = BN input */
    moe_real *mean, *rstd; /* [cout] BN statistics used */
    moe_real *act;         /* [B, cout, OH*OW] relu(BN) (or BN without ReLU) */
    moe_real *y;           /* [B, cout, OH*OW] act * g, or act itself when ungated */
} dm_unit_acts;

/* ResNet basic block: u1 (stride s, ReLU, gate), u2 (no ReLU, gate), sc
 * (1x1 stride s + BN shortcut, or -1 for identity); out = relu(u2 + sc). */
typedef struct dm_block {
    int u1, u2, sc;
} dm_block;

/* Embedding conv: 3x3 stride 2 pad 1 with bias, then GELU. */
typedef struct dm_econv {
    int cin, cout, H, W, OH, OW;
    int t_w, t_b;
} dm_econv;

/* Gate l: g = relu(e W^T), W [C, emb_dim], multiplying unit `unit`. */
typedef struct dm_gate {
    int unit, C, t_w;
    double flops_per_channel; /* forward FLOPs per example of one output channel */
} dm_gate;

typedef struct deepmoe {
    moe_model_config cfg; /* as given */
    int resnet, gated, emb_dim, n_classes, l1_matrix;
    float lambda, mu, dropout;
    int in_c, in_h, in_w;             /* input image */
    int n_stages, ch[MOE_MAX_STAGES]; /* stage widths (wide applied) */
    moe_param_table table;
    moe_real *params, *grads; /* [table.total] each */
    unsigned char *kind;      /* [table.count] DM_PARAM / DM_EMBEDDING / DM_BUFFER */
    int n_units, n_blocks, n_gates;
    dm_unit units[DM_MAX_UNITS];
    dm_block blocks[MOE_MAX_STAGES];
    dm_gate gates[DM_MAX_GATES];
    dm_econv emb[DM_EMB_CONVS];
    int t_head_w, t_head_b;     /* embedding classifier [n_classes, emb_dim], [n_classes] */
    int t_cls_w, t_cls_b;       /* classifier [n_classes, C_last], [n_classes] */
    int c_last, h_last, w_last; /* feature map entering the global average pool */
    double fwd_flops;           /* forward FLOPs per example, dense */
    int frozen;                 /* freeze phase: CE only, embedding network fixed */

    /* the last forward (arena pointers) */
    int B, training, have_fwd;
    const moe_real *input; /* [B, in_c, in_h, in_w] caller's images */
    const int32_t *labels;
    size_t scratch_elems;
    moe_real *scratch; /* conv2d scratch, the largest conv's, shared by all */
    dm_unit_acts ua[DM_MAX_UNITS];
    moe_real *pool[MOE_MAX_STAGES];                 /* VGG: [B, C, H/2, W/2] after stage s */
    int32_t *argmax[MOE_MAX_STAGES];                /* VGG: max-pool indices */
    moe_real *block_out[MOE_MAX_STAGES];            /* ResNet: relu(u2 + shortcut) */
    moe_real *ez[DM_EMB_CONVS], *ea[DM_EMB_CONVS];  /* embedding conv outputs, pre/post GELU */
    moe_real *e;                                    /* [B, emb_dim] */
    moe_real *head_logits, *head_probs;             /* [B, n_classes] */
    moe_real *gpre[DM_MAX_GATES], *g[DM_MAX_GATES]; /* [B, C_l] */
    int l1_col[DM_MAX_GATES];                       /* matrix norm: the max column */
    moe_real *feat;                                 /* [B, C_last] pooled */
    moe_real *drop_mask;                            /* [B, C_last] or NULL */
    moe_real *dropped;                              /* classifier input */
    moe_real *logits, *probs;                       /* [B, n_classes] */
    int n_counted, n_counted_emb;
    double parts[2]; /* unweighted: gate_l1 (summed over layers), embedding_ce */
} deepmoe;

/* Arena allocation inside a function returning moe_status (needs `arena`). */
#define DM_ALLOC(ptr, count)                                                                       \
    do {                                                                                           \
        (ptr) = moe_arena_alloc(arena, (size_t)(count) * sizeof(*(ptr)));                          \
        if (!(ptr)) return MOE_ERR_NOMEM;                                                          \
    } while (0)

static inline moe_real *dm_p(const deepmoe *m, int t) {
    return m->params + m->table.tensors[t].offset;
}
static inline moe_real *dm_g(const deepmoe *m, int t) {
    return m->grads + m->table.tensors[t].offset;
}

/* deepmoe_build.c: resolves the config, builds the table and initialises. */
moe_status deepmoe_create(deepmoe **out, const moe_model_config *cfg, uint64_t seed);
void deepmoe_free(deepmoe *m);

/* deepmoe_unit.c: one unit's forward (into ua) and backward. dx may be NULL
 * (the image); dg [B, cout] gate gradient ADDED (NULL when ungated). */
moe_status deepmoe_unit_forward(deepmoe *m, int u, const moe_real *x, moe_arena *arena);
moe_status deepmoe_unit_backward(deepmoe *m, int u, const moe_real *dy, moe_real *dx, moe_real *dg,
                                 moe_arena *arena);

/* deepmoe_embed.c: the embedding network, the gates and the embedding head. */
moe_status deepmoe_embed_forward(deepmoe *m, const moe_real *x, moe_arena *arena);
/* dg[l] [B, C_l]: d loss / d g_l (from the network and the L1 term). Adds
 * gate weight gradients and, unless frozen, the embedding network's. */
moe_status deepmoe_embed_backward(deepmoe *m, moe_real *const *dg, float scale, moe_arena *arena);

/* deepmoe_gate_l1.c: the gate sparsity penalty of gate l (unweighted) and
 * its gradient added into dg [B, C_l] times coef. */
double deepmoe_gate_l1(deepmoe *m, int l);
void deepmoe_gate_l1_backward(const deepmoe *m, int l, moe_real *dg, double coef);

/* deepmoe_forward.c / deepmoe_backward.c */
moe_status deepmoe_forward(deepmoe *m, const moe_batch *b, int training, moe_rng *rng,
                           moe_arena *arena, double *task_loss, double *aux_loss);
moe_status deepmoe_backward(deepmoe *m, moe_arena *arena, float scale);

#endif
