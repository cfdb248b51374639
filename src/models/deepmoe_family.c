/* DeepMoE as a model family (family.h): the adapters, phases, buffers,
 * loss parts, channel gates and FLOP counts.
 *
 * FLOPs are as executed: every channel is computed (dense), so train_flops
 * and all_experts_flops are the same, 3 x the forward (forward + backward).
 * What the gates would let a sparse implementation skip is reported per
 * gated conv by channel_gates: each zero gate saves flops_per_channel.
 * Every parameter takes part in every example as executed, so
 * active_params is the dispatcher's default (all of them). */
#include "models/deepmoe_internal.h"

static moe_status create(void **impl, const moe_model_config *cfg, uint64_t seed) {
    deepmoe *m = NULL;
    moe_status st = deepmoe_create(&m, cfg, seed);
    *impl = m;
    return st;
}
static void destroy(void *impl) {
    deepmoe_free(impl);
}
static const moe_param_table *table(const void *impl) {
    return &((const deepmoe *)impl)->table;
}
static moe_real *params(void *impl) {
    return ((deepmoe *)impl)->params;
}
static moe_real *grads(void *impl) {
    return ((deepmoe *)impl)->grads;
}

static double train_flops(const void *impl, int T) {
    (void)T;
    return 3.0 * ((const deepmoe *)impl)->fwd_flops;
}
static moe_status forward(void *impl, const moe_batch *b, int training, moe_rng *rng,
                          moe_arena *arena, double *task_loss, double *aux_loss) {
    return deepmoe_forward(impl, b, training, rng, arena, task_loss, aux_loss);
}
static moe_status backward(void *impl, moe_arena *arena, float scale) {
    return deepmoe_backward(impl, arena, scale);
}
static const moe_real *class_logits(const void *impl) {
    const deepmoe *m = impl;
    return m->have_fwd ? m->logits : NULL;
}
/* Channel gating routes no tokens: no MoE layer statistics. */
static int n_moe_layers(const void *impl) {
    (void)impl;
    return 0;
}
static const moe_layer_stats *layer_stats(const void *impl, int i) {
    (void)impl;
    (void)i;
    return NULL;
}
static int router_tensor(const void *impl, int i) {
    (void)impl;
    (void)i;
    return -1;
}
static void set_phase(void *impl, const family_phase *ph) {
    ((deepmoe *)impl)->frozen = ph->freeze_embedding != 0;
}
static int is_buffer(const void *impl, int tensor) {
    const deepmoe *m = impl;
    return tensor >= 0 && tensor < m->table.count && m->kind[tensor] == DM_BUFFER;
}
static int optimizer_skips(const void *impl, int tensor) {
    const deepmoe *m = impl;
    if (tensor < 0 || tensor >= m->table.count) return 0;
    return m->kind[tensor] == DM_BUFFER || (m->frozen && m->kind[tensor] == DM_EMBEDDING);
}
static int loss_parts(const void *impl, const char *const **names, const double **values) {
    static const char *const part_names[] = {"gate_l1", "embedding_ce"};
    const deepmoe *m = impl;
    if (names) *names = part_names;
    if (values) *values = m->parts;
    return m->gated ? 2 : 0;
}
static int channel_gates(const void *impl, int l, const moe_real **g, int *C,
                         double *flops_per_channel) {
    const deepmoe *m = impl;
    int ok = l >= 0 && l < m->n_gates;
    if (g) *g = ok && m->have_fwd ? m->g[l] : NULL;
    if (C) *C = ok ? m->gates[l].C : 0;
    if (flops_per_channel) *flops_per_channel = ok ? m->gates[l].flops_per_channel : 0;
    return m->n_gates;
}

const model_family family_deepmoe = {
    .name = "deepmoe",
    .create = create,
    .destroy = destroy,
    .table = table,
    .params = params,
    .grads = grads,
    .train_flops = train_flops,
    .all_experts_flops = train_flops,
    .forward = forward,
    .backward = backward,
    .class_logits = class_logits,
    .n_moe_layers = n_moe_layers,
    .layer_stats = layer_stats,
    .router_tensor = router_tensor,
    .set_phase = set_phase,
    .is_buffer = is_buffer,
    .optimizer_skips = optimizer_skips,
    .loss_parts = loss_parts,
    .expert_outputs = NULL,
    .channel_gates = channel_gates,
};
