/* Private structure of seed 000's family "cnn_moe" (src/models/cnn_moe*.c):
 * a shared CNN, E convolutional experts with their own classifiers and a
 * temperature-scaled soft gate over them (docs/families.md).
 *
 *   x [B,Cin,H,W] -> per stage: conv3x3 -> BN2d -> ReLU -> maxpool 2x2 -> F [B,Cf,h,w]
 *   expert e: dw3x3(F) -> pw1x1 -> BN2d -> ReLU -> dropout -> GAP -> fc -> L_e [B,NC]
 *   gate: GAP(F) -> fc1 -> BN1d -> ReLU -> dropout -> fc2 -> /T (+ noise) -> softmax G [B,E]
 *   logits = sum_e G[:,e] L_e;  loss = CE(logits, y) + aux(G)
 *
 * Batch-norm running statistics are tensors of the table (buffers): the
 * optimizer skips them and checkpoints carry them. */
#ifndef MOE_MODELS_CNN_MOE_INTERNAL_H
#define MOE_MODELS_CNN_MOE_INTERNAL_H

#include "models/family.h"

#include <stdint.h>

#define CNN_MOE_BN_MOMENTUM 0.1f /* PyTorch's BatchNorm defaults */
#define CNN_MOE_BN_EPS 1e-5f
#define CNN_MOE_MAX_PARTS 4 /* unweighted aux terms of the code loss */

/* Arena allocation inside a function returning moe_status (needs `arena`);
 * the same pattern as the transformer's (src/models/gpt_internal.h). */
#define CNN_ALLOC(ptr, count)                                                                      \
    do {                                                                                           \
        (ptr) = moe_arena_alloc(arena, (size_t)(count) * sizeof(*(ptr)));                          \
        if (!(ptr)) return MOE_ERR_NOMEM;                                                          \
    } while (0)

/* One batch norm's tensors: weight, bias [C] (trained) and running mean,
 * running variance [C] (buffers; their "gradients" stay 0). */
typedef struct cnn_bn_w {
    moe_real *w, *b, *rm, *rv;
} cnn_bn_w;

typedef struct cnn_stage_w {
    moe_real *conv_w, *conv_b; /* [C, Cin, 3, 3], [C] */
    cnn_bn_w bn;
} cnn_stage_w;

typedef struct cnn_expert_w {
    moe_real *dw_w, *dw_b; /* [Cf, 1, 3, 3], [Cf] depthwise */
    moe_real *pw_w, *pw_b; /* [X, Cf, 1, 1], [X] pointwise */
    cnn_bn_w bn;           /* [X] */
    moe_real *fc_w, *fc_b; /* [NC, X], [NC] */
} cnn_expert_w;

typedef struct cnn_gate_w {
    moe_real *fc1_w, *fc1_b; /* [Hd, Cf], [Hd] */
    cnn_bn_w bn;             /* [Hd] */
    moe_real *fc2_w, *fc2_b; /* [E, Hd], [E] */
} cnn_gate_w;

/* Views into the parameter (or gradient) block. */
typedef struct cnn_w {
    cnn_stage_w stage[MOE_MAX_STAGES];
    cnn_expert_w *expert; /* [E], malloc'd at create */
    cnn_gate_w gate;
} cnn_w;

/* What one stage's forward saved. in [B,Cin,H,W] is the previous stage's
 * pool (or the batch's x). */
typedef struct cnn_stage_acts {
    const moe_real *in;
    moe_real *conv;        /* [B,C,H,W] batch-norm input */
    moe_real *mean, *rstd; /* [C] */
    moe_real *act;         /* [B,C,H,W] relu(bn(conv)) */
    moe_real *pool;        /* [B,C,H/2,W/2] */
    int32_t *argmax;       /* [B,C,H/2,W/2] */
} cnn_stage_acts;

typedef struct cnn_expert_acts {
    moe_real *dw;          /* [B,Cf,h,w] depthwise output, pointwise input */
    moe_real *pw;          /* [B,X,h,w] batch-norm input */
    moe_real *mean, *rstd; /* [X] */
    moe_real *act;         /* [B,X,h,w] relu(bn(pw)) */
    moe_real *mask;        /* [B,X,h,w] dropout mask, NULL when dropout is off */
    moe_real *pooled;      /* [B,X] classifier input */
} cnn_expert_acts;

typedef struct cnn_gate_acts {
    moe_real *in;          /* [B,Cf] pooled features */
    moe_real *h;           /* [B,Hd] fc1 output, batch-norm input */
    moe_real *mean, *rstd; /* [Hd] */
    moe_real *act;         /* [B,Hd] relu(bn(h)) */
    moe_real *mask;        /* [B,Hd] dropout mask or NULL */
    moe_real *drop;        /* [B,Hd] fc2 input (act itself without dropout) */
    moe_real *g;           /* [B,E] gate weights G */
} cnn_gate_acts;

typedef struct cnn_moe {
    moe_model_config cfg;
    /* shapes */
    int n_stages, ch[MOE_MAX_STAGES];           /* stage widths */
    int Cin, H, W;                              /* input image */
    int sh[MOE_MAX_STAGES], sw[MOE_MAX_STAGES]; /* spatial size entering stage s */
    int Cf, fh, fw;                             /* features F [Cf, fh, fw] */
    int E, X, Hd, NC;                           /* experts, expert width, gate hidden, classes */
    /* tensors */
    moe_param_table table;
    moe_real *params, *grads; /* [table.total] each */
    cnn_w w, g;               /* views into params and grads */
    unsigned char *buffer;    /* [table.count] 1 for running statistics */
    size_t n_buffer_elems;    /* elements of all buffers */
    int router;               /* table index of gate.fc2.weight */
    float temperature;        /* the gate's current T (set_phase) */
    /* last forward */
    int B, training, have_forward;
    float fwd_temperature; /* T of the last forward (set_phase may move temperature) */
    const int32_t *labels; /* [B] caller's buffers, kept for backward */
    moe_real *scratch;     /* conv2d scratch (forward and backward) */
    cnn_stage_acts st[MOE_MAX_STAGES];
    cnn_expert_acts *ex; /* [E], malloc'd at create */
    cnn_gate_acts gate;
    moe_real *expert_logits; /* [E,B,NC] */
    moe_real *logits;        /* [B,NC] the mixture */
    moe_real *probs;         /* [B,NC] softmax(logits) */
    const moe_real *ce_soft; /* [B,NC] targets of the soft CE, or NULL (hard labels) */
    const moe_real *ce_w;    /* [B] row weights of the soft CE, or NULL */
    int ce_count;            /* hard-label rows counted; -1 when no loss was asked */
    double *aux_work;        /* [2E] scratch of the aux losses */
    double parts[CNN_MOE_MAX_PARTS];
    moe_layer_stats stats;
} cnn_moe;

/* cnn_moe_table.c: checks the config and fills the shapes (default
 * channels [32, 64]); registers every tensor; points w's fields into base
 * (the parameter or the gradient block). */
moe_status cnn_moe_shape(cnn_moe *m, const moe_model_config *c);
moe_status cnn_moe_build_table(cnn_moe *m);
void cnn_moe_bind(const cnn_moe *m, cnn_w *w, moe_real *base);

/* cnn_moe_init.c: every tensor's initial value, deterministic from seed. */
void cnn_moe_init_weights(cnn_moe *m, uint64_t seed);

/* cnn_moe_forward.c / cnn_moe_backward.c */
moe_status cnn_moe_forward(void *impl, const moe_batch *b, int training, moe_rng *rng,
                           moe_arena *arena, double *task_loss, double *aux_loss);
moe_status cnn_moe_backward(void *impl, moe_arena *arena, float scale);

/* cnn_moe_aux.c: the auxiliary losses of the gate weights G [B,E], both
 * versions. Forward writes the unweighted terms to parts and returns their
 * weighted sum; backward writes dG = scale * d(weighted sum)/dG. work:
 * 2 E doubles of scratch. */
int cnn_moe_aux_parts(const moe_cnn_config *c, const char *const **names);
double cnn_moe_aux_forward(const moe_cnn_config *c, double *parts, double *work, const moe_real *G,
                           int B, int E);
void cnn_moe_aux_backward(const moe_cnn_config *c, moe_real *dG, double *work, const moe_real *G,
                          int B, int E, float scale);

/* cnn_moe_stats.c: routing of the last forward as a soft-gated MoE layer
 * (argmax expert per example), arrays in the arena. */
moe_status cnn_moe_fill_stats(cnn_moe *m, moe_arena *arena, double aux_total);

/* cnn_moe_flops.c: forward multiply-adds of one example (convs and linears). */
double cnn_moe_forward_macs(const cnn_moe *m);

#endif
