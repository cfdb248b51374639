/* moe_model: one family's network behind include/moe/model.h. The family
 * table (family.h) does the work; this file picks it from model.family and
 * answers what is common to all (sizes, zeroing gradients, the config). */
#include "models/family.h"
#include "models/gpt_internal.h"

#include <stdlib.h>
#include <string.h>

struct moe_model {
    moe_model_config cfg; /* as built */
    const model_family *fam;
    void *impl;
    /* [n_moe] statistics of a forward that ran elsewhere (the GPU copy of
     * this model), or NULL: moe_model_set_layer_stats */
    const moe_layer_stats *const *stats_from;
};

static const model_family *family_of(moe_model_family f) {
    switch (f) {
    case MOE_FAMILY_TRANSFORMER:
        return &family_transformer;
    case MOE_FAMILY_MLP_MOE:
        return &family_mlp_moe;
    case MOE_FAMILY_CNN_MOE:
        return &family_cnn_moe;
    case MOE_FAMILY_DEEPMOE:
        return &family_deepmoe;
    }
    return NULL;
}

moe_status moe_model_create(moe_model **out, const moe_model_config *cfg, uint64_t seed) {
    *out = NULL;
    const model_family *fam = family_of(cfg->family);
    if (!fam) return moe_error(MOE_ERR_INVALID, "model: unknown model.family %d", (int)cfg->family);
    moe_model *m = calloc(1, sizeof *m);
    if (!m) return moe_error(MOE_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->cfg.moe.d_model = cfg->d_model;
    m->fam = fam;
    moe_status st = fam->create(&m->impl, cfg, seed);
    if (st != MOE_OK) {
        free(m);
        return st;
    }
    *out = m;
    return MOE_OK;
}

void moe_model_free(moe_model *m) {
    if (!m) return;
    m->fam->destroy(m->impl);
    free(m);
}

const moe_model_config *moe_model_config_of(const moe_model *m) {
    return &m->cfg;
}
const moe_param_table *moe_model_table(const moe_model *m) {
    return m->fam->table(m->impl);
}
moe_real *moe_model_params(moe_model *m) {
    return m->fam->params(m->impl);
}
moe_real *moe_model_grads(moe_model *m) {
    return m->fam->grads(m->impl);
}
void moe_model_zero_grads(moe_model *m) {
    memset(moe_model_grads(m), 0, moe_model_table(m)->total * sizeof(moe_real));
}

/* Buffers (batch-norm statistics) are in the table but are not parameters. */
size_t moe_model_param_count(const moe_model *m) {
    const moe_param_table *t = moe_model_table(m);
    size_t n = 0;
    for (int i = 0; i < t->count; i++)
        if (!moe_model_tensor_is_buffer(m, i)) n += t->tensors[i].numel;
    return n;
}
size_t moe_model_active_param_count(const moe_model *m) {
    return m->fam->active_params ? m->fam->active_params(m->impl) : moe_model_param_count(m);
}
double moe_model_train_flops_per_token(const moe_model *m, int T) {
    return m->fam->train_flops(m->impl, T);
}
double moe_model_all_experts_flops_per_token(const moe_model *m, int T) {
    return m->fam->all_experts_flops(m->impl, T);
}

moe_status moe_model_forward_batch(moe_model *m, const moe_batch *batch, int training, moe_rng *rng,
                                   moe_arena *arena, double *task_loss, double *aux_loss) {
    double task = 0, aux = 0; /* callers may pass NULL; families always write both */
    m->stats_from = NULL;     /* this forward's statistics replace any set from elsewhere */
    moe_status st = m->fam->forward(m->impl, batch, training, rng, arena, &task, &aux);
    if (task_loss) *task_loss = task;
    if (aux_loss) *aux_loss = aux;
    return st;
}
moe_status moe_model_forward(moe_model *m, const int32_t *tokens, const int32_t *targets, int B,
                             int T, int training, moe_rng *rng, moe_arena *arena, double *ce_loss,
                             double *aux_loss) {
    moe_batch b = {.tokens = tokens, .targets = targets, .B = B, .T = T};
    return moe_model_forward_batch(m, &b, training, rng, arena, ce_loss, aux_loss);
}
moe_status moe_model_backward(moe_model *m, moe_arena *arena, float scale) {
    return m->fam->backward(m->impl, arena, scale);
}
const moe_real *moe_model_class_logits(const moe_model *m) {
    return m->fam->class_logits(m->impl);
}

int moe_model_moe_layers(const moe_model *m) {
    return m->fam->n_moe_layers ? m->fam->n_moe_layers(m->impl) : 0;
}
const moe_layer_stats *moe_model_layer_stats(const moe_model *m, int i) {
    if (m->stats_from) return m->stats_from[i];
    return m->fam->layer_stats ? m->fam->layer_stats(m->impl, i) : NULL;
}
void moe_model_set_layer_stats(moe_model *m, const moe_layer_stats *const *stats) {
    m->stats_from = stats;
}
int moe_model_moe_layer_index(const moe_model *m, int i) {
    return m->fam == &family_transformer ? gpt_moe_layer_index(m->impl, i) : i;
}

int moe_model_router_tensor(const moe_model *m, int i) {
    return m->fam->router_tensor ? m->fam->router_tensor(m->impl, i) : -1;
}

const moe_real *moe_model_logits(const moe_model *m) {
    return m->fam == &family_transformer ? gpt_logits(m->impl) : NULL;
}
moe_status moe_model_generate(moe_model *m, const int32_t *prompt, int n_prompt, int n_new,
                              const moe_sampling *s, moe_rng *rng, int32_t *out) {
    if (m->fam != &family_transformer)
        return moe_error(MOE_ERR_INVALID,
                         "generate: model.family \"%s\" is a classifier; only transformer "
                         "decoders generate text",
                         m->fam->name);
    return gpt_generate(m->impl, prompt, n_prompt, n_new, s, rng, out);
}

const char *moe_model_family_name(const moe_model *m) {
    return m->fam->name;
}

void moe_model_set_phase(moe_model *m, float temperature, int freeze_embedding) {
    family_phase ph = {temperature, freeze_embedding};
    if (m->fam->set_phase) m->fam->set_phase(m->impl, &ph);
}

float moe_model_final_temperature(const moe_model_config *c) {
    return c->temperature_schedule == MOE_TEMP_CONSTANT ? c->moe.temperature : c->temperature_end;
}

int moe_model_tensor_is_buffer(const moe_model *m, int tensor) {
    return m->fam->is_buffer ? m->fam->is_buffer(m->impl, tensor) : 0;
}
int moe_model_optimizer_skips(const moe_model *m, int tensor) {
    return m->fam->optimizer_skips ? m->fam->optimizer_skips(m->impl, tensor) : 0;
}
int moe_model_loss_parts(const moe_model *m, const char *const **names, const double **values) {
    return m->fam->loss_parts ? m->fam->loss_parts(m->impl, names, values) : 0;
}
int moe_model_expert_outputs(const moe_model *m, const moe_real **expert_scores,
                             const moe_real **gates) {
    return m->fam->expert_outputs ? m->fam->expert_outputs(m->impl, expert_scores, gates) : 0;
}
int moe_model_channel_gates(const moe_model *m, int l, const moe_real **g, int *C,
                            double *flops_per_channel) {
    return m->fam->channel_gates ? m->fam->channel_gates(m->impl, l, g, C, flops_per_channel) : 0;
}
