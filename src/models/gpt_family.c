/* The transformer as a model family: adapters from family.h's void*
 * interface to gpt_model. */
#include "models/family.h"
#include "models/gpt_internal.h"

#include <stdio.h>

static moe_status create(void **impl, const moe_model_config *cfg, uint64_t seed) {
    gpt_model *m = NULL;
    moe_status st = gpt_create(&m, cfg, seed);
    *impl = m;
    return st;
}
static void destroy(void *impl) {
    gpt_free(impl);
}
static const moe_param_table *table(const void *impl) {
    return &((const gpt_model *)impl)->table;
}
static moe_real *params(void *impl) {
    return ((gpt_model *)impl)->params;
}
static moe_real *grads(void *impl) {
    return ((gpt_model *)impl)->grads;
}
static size_t active_params(const void *impl) {
    return gpt_active_param_count(impl);
}
static double train_flops(const void *impl, int T) {
    return gpt_train_flops_per_token(impl, T);
}
static double all_experts_flops(const void *impl, int T) {
    return gpt_all_experts_flops_per_token(impl, T);
}
static moe_status forward(void *impl, const moe_batch *b, int training, moe_rng *rng,
                          moe_arena *arena, double *task_loss, double *aux_loss) {
    return gpt_forward_batch(impl, b, training, rng, arena, task_loss, aux_loss);
}
static moe_status backward(void *impl, moe_arena *arena, float scale) {
    return gpt_backward(impl, arena, scale);
}
static const moe_real *class_logits(const void *impl) {
    return gpt_class_logits(impl);
}
static int n_moe_layers(const void *impl) {
    return gpt_moe_layers(impl);
}
static const moe_layer_stats *layer_stats(const void *impl, int i) {
    return gpt_layer_stats(impl, i);
}
static int router_tensor(const void *impl, int i) {
    const gpt_model *m = impl;
    char name[MOE_MAX_NAME];
    snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.gate.weight",
             gpt_moe_layer_index(m, i));
    return moe_params_find(&m->table, name);
}
/* The annealed router temperature reaches every MoE layer. */
static void set_phase(void *impl, const family_phase *ph) {
    gpt_model *m = impl;
    if (ph->temperature > 0) m->cfg.moe.temperature = ph->temperature;
}

const model_family family_transformer = {
    .name = "transformer",
    .create = create,
    .destroy = destroy,
    .table = table,
    .params = params,
    .grads = grads,
    .active_params = active_params,
    .train_flops = train_flops,
    .all_experts_flops = all_experts_flops,
    .forward = forward,
    .backward = backward,
    .class_logits = class_logits,
    .n_moe_layers = n_moe_layers,
    .layer_stats = layer_stats,
    .router_tensor = router_tensor,
    .set_phase = set_phase,
};
