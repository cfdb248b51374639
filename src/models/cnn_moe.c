/* Seed 000's family "cnn_moe": creation and the model_family entry points
 * (shapes and tensors in cnn_moe_table.c, initialisation in
 * cnn_moe_init.c, the network in cnn_moe_forward.c and cnn_moe_backward.c). */
#include "models/cnn_moe_internal.h"

#include <stdlib.h>
#include <string.h>

static void destroy(void *impl) {
    cnn_moe *m = impl;
    if (!m) return;
    moe_params_free(&m->table);
    free(m->params);
    free(m->grads);
    free(m->w.expert);
    free(m->g.expert);
    free(m->ex);
    free(m->buffer);
    free(m);
}

static moe_status create(void **out, const moe_model_config *cfg, uint64_t seed) {
    *out = NULL;
    cnn_moe *m = calloc(1, sizeof *m);
    if (!m) return moe_error(MOE_ERR_NOMEM, "cnn_moe: out of memory");
    m->cfg = *cfg;
    moe_status st = cnn_moe_shape(m, cfg);
    if (st != MOE_OK) {
        free(m);
        return st;
    }
    m->temperature = cfg->moe.temperature;
    moe_params_init(&m->table);
    st = cnn_moe_build_table(m);
    if (st != MOE_OK) {
        destroy(m);
        return st;
    }
    m->params = calloc(m->table.total, sizeof(moe_real));
    m->grads = calloc(m->table.total, sizeof(moe_real));
    m->w.expert = calloc((size_t)m->E, sizeof(cnn_expert_w));
    m->g.expert = calloc((size_t)m->E, sizeof(cnn_expert_w));
    m->ex = calloc((size_t)m->E, sizeof(cnn_expert_acts));
    m->buffer = calloc((size_t)m->table.count, 1);
    if (!m->params || !m->grads || !m->w.expert || !m->g.expert || !m->ex || !m->buffer) {
        size_t total = m->table.total;
        destroy(m);
        return moe_error(MOE_ERR_NOMEM, "cnn_moe: out of memory for %zu parameters", total);
    }
    for (int i = 0; i < m->table.count; i++) {
        m->buffer[i] = strstr(m->table.tensors[i].name, ".running_") != NULL;
        if (m->buffer[i]) m->n_buffer_elems += m->table.tensors[i].numel;
    }
    cnn_moe_bind(m, &m->w, m->params);
    cnn_moe_bind(m, &m->g, m->grads);
    cnn_moe_init_weights(m, seed);
    m->ce_count = -1;
    *out = m;
    return MOE_OK;
}

static const moe_param_table *table(const void *impl) {
    return &((const cnn_moe *)impl)->table;
}

static moe_real *params(void *impl) {
    return ((cnn_moe *)impl)->params;
}

static moe_real *grads(void *impl) {
    return ((cnn_moe *)impl)->grads;
}

/* Forward multiply-adds x 2, training (forward + backward) x 3; the same
 * for the dense count since no expert is ever skipped. T is unused. */
static double train_flops(const void *impl, int T) {
    (void)T;
    return 6.0 * cnn_moe_forward_macs(impl);
}

static const moe_real *class_logits(const void *impl) {
    const cnn_moe *m = impl;
    return m->have_forward ? m->logits : NULL;
}

static int n_moe_layers(const void *impl) {
    (void)impl;
    return 1;
}

static const moe_layer_stats *layer_stats(const void *impl, int i) {
    const cnn_moe *m = impl;
    return i == 0 && m->have_forward ? &m->stats : NULL;
}

static int router_tensor(const void *impl, int i) {
    const cnn_moe *m = impl;
    return i == 0 ? m->router : -1;
}

static void set_phase(void *impl, const family_phase *ph) {
    cnn_moe *m = impl;
    if (ph && ph->temperature > 0) m->temperature = ph->temperature;
}

static int is_buffer(const void *impl, int tensor) {
    const cnn_moe *m = impl;
    return tensor >= 0 && tensor < m->table.count && m->buffer[tensor];
}

static int loss_parts(const void *impl, const char *const **names, const double **values) {
    const cnn_moe *m = impl;
    if (values) *values = m->parts;
    return cnn_moe_aux_parts(&m->cfg.cnn, names);
}

static int expert_outputs(const void *impl, const moe_real **expert_scores,
                          const moe_real **gates) {
    const cnn_moe *m = impl;
    if (expert_scores) *expert_scores = m->have_forward ? m->expert_logits : NULL;
    if (gates) *gates = m->have_forward ? m->gate.g : NULL;
    return m->E;
}

const model_family family_cnn_moe = {
    .name = "cnn_moe",
    .create = create,
    .destroy = destroy,
    .table = table,
    .params = params,
    .grads = grads,
    .train_flops = train_flops,
    .all_experts_flops = train_flops,
    .forward = cnn_moe_forward,
    .backward = cnn_moe_backward,
    .class_logits = class_logits,
    .n_moe_layers = n_moe_layers,
    .layer_stats = layer_stats,
    .router_tensor = router_tensor,
    .set_phase = set_phase,
    .is_buffer = is_buffer,
    .optimizer_skips = is_buffer, /* nothing is frozen by phase in this family */
    .loss_parts = loss_parts,
    .expert_outputs = expert_outputs,
    .channel_gates = NULL,
};
