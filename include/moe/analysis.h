/* What the seed families' experts do, accumulated over an evaluation:
 * - expert analysis (seed 000, 002): an experts x classes matrix of each
 *   expert's own accuracy (its own argmax, as if it alone answered) and one
 *   of its mean gate weight, per true class;
 * - gate sparsity (seed 001): per gated conv, the share of channel gates
 *   that are exactly zero and the forward FLOPs those zero channels let a
 *   sparse implementation skip.
 * docs/families.md defines every number. */
#ifndef MOE_ANALYSIS_H
#define MOE_ANALYSIS_H

#include "moe/core.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

typedef struct moe_expert_analysis {
    int n_experts, n_classes;
    int64_t *right;   /* [E, C] examples of class c expert e alone gets right */
    double *gate;     /* [E, C] sum of expert e's gate weights over class c's examples */
    int64_t *support; /* [C] examples of class c */
} moe_expert_analysis;

moe_status moe_expert_analysis_init(moe_expert_analysis *a, int n_experts, int n_classes);
void moe_expert_analysis_free(moe_expert_analysis *a);
/* One batch: scores [E, B, C] (each expert's own class scores), gates
 * [B, E], labels [B] (< 0 skipped). */
void moe_expert_analysis_add(moe_expert_analysis *a, const moe_real *scores, const moe_real *gates,
                             const int32_t *labels, int B);
/* {"accuracy": [[E x C]], "gate": [[E x C]], "support": [C], "classes": [...],
 * "top_classes": [[each expert's classes by own accuracy, best first]]}. */
struct cJSON *moe_expert_analysis_json(const moe_expert_analysis *a,
                                       const char *const *class_names);

#define MOE_MAX_GATED 64

typedef struct moe_gate_sparsity {
    int n_layers;                            /* gated convs */
    int channels[MOE_MAX_GATED];             /* C_l */
    double flops_per_channel[MOE_MAX_GATED]; /* forward FLOPs per example of one channel */
    int64_t zero[MOE_MAX_GATED];             /* gates exactly 0, over all examples */
    int64_t examples;
} moe_gate_sparsity;

void moe_gate_sparsity_init(moe_gate_sparsity *s);
/* One batch of B examples: layer l's gates [B, C_l]. */
void moe_gate_sparsity_add(moe_gate_sparsity *s, int l, const moe_real *g, int B, int C,
                           double flops_per_channel);
/* Forward FLOPs per example the zero gates make skippable, and the gated
 * convs' FLOPs in all (per example). */
void moe_gate_sparsity_flops(const moe_gate_sparsity *s, double *skippable, double *gated_total);
/* {"layers": [{"channels", "zero_fraction", "flops", "skippable_flops"}], "zero_fraction",
 * "gated_conv_flops", "skippable_flops", "skippable_fraction"}. */
struct cJSON *moe_gate_sparsity_json(const moe_gate_sparsity *s);

/* Routing trace of a transformer's last forward (moe route, moe serve):
 * for tokens ids[0..n), which sit at rows first_row.. of every MoE layer's
 * statistics (the row of token t of sequence b is b * T + t without a
 * padding mask; with one, rows count real tokens only), an array of
 * {"text", "id", "layers": [{"layer", "experts": [k, best first],
 * "weights": [k], "kept": [k bools], "fallback": bool}]}. Texts come from
 * tok (NULL: byte-level), made valid UTF-8 as moe_token_display_text does. */
struct moe_model;
struct moe_tokenizer;
struct cJSON *moe_routing_trace_json(const struct moe_model *m, const struct moe_tokenizer *tok,
                                     const int32_t *ids, int n, long first_row);
/* Whether pair (token row, slot) of a layer's last forward carried
 * traffic: kept, and not one of the weight-0 slots a fallback token's other
 * k - 1 choices are filled with (those keep the pair count fixed but send
 * nothing). Served-routing metrics count only these; traces mark the
 * others "kept": false. */
struct moe_layer_stats;
int moe_routing_pair_served(const struct moe_layer_stats *s, long row, int slot);
/* A token's text for JSON: tok's bytes with each byte that is not part of
 * a valid UTF-8 character (and NUL) replaced by U+FFFD; byte-level when tok
 * is NULL: an ASCII byte as itself, any other id U+FFFD. malloc'd. */
char *moe_token_display_text(const struct moe_tokenizer *tok, int32_t id);

#ifdef __cplusplus
}
#endif
#endif
