/* DeepMoE's channel gates: how many are zero and what skipping them saves. */
#include "moe/analysis.h"

#include <cjson/cJSON.h>
#include <string.h>

void moe_gate_sparsity_init(moe_gate_sparsity *s) {
    memset(s, 0, sizeof *s);
}

void moe_gate_sparsity_add(moe_gate_sparsity *s, int l, const moe_real *g, int B, int C,
                           double flops_per_channel) {
    if (l < 0 || l >= MOE_MAX_GATED) return;
    if (l >= s->n_layers) s->n_layers = l + 1;
    s->channels[l] = C;
    s->flops_per_channel[l] = flops_per_channel;
    int64_t zero = 0;
    for (long i = 0; i < (long)B * C; i++) zero += g[i] == 0;
    s->zero[l] += zero;
    if (l == 0) s->examples += B;
}

/* Zero gates per example of layer l, on average. */
static double zero_per_example(const moe_gate_sparsity *s, int l) {
    return s->examples > 0 ? (double)s->zero[l] / (double)s->examples : 0;
}

void moe_gate_sparsity_flops(const moe_gate_sparsity *s, double *skippable, double *gated_total) {
    *skippable = *gated_total = 0;
    for (int l = 0; l < s->n_layers; l++) {
        *skippable += zero_per_example(s, l) * s->flops_per_channel[l];
        *gated_total += s->channels[l] * s->flops_per_channel[l];
    }
}

cJSON *moe_gate_sparsity_json(const moe_gate_sparsity *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON *layers = o ? cJSON_AddArrayToObject(o, "layers") : NULL;
    if (!layers) return cJSON_Delete(o), NULL;
    double zero = 0, gates = 0;
    for (int l = 0; l < s->n_layers; l++) {
        cJSON *j = cJSON_CreateObject();
        if (!j || !cJSON_AddItemToArray(layers, j)) return cJSON_Delete(o), NULL;
        double z = zero_per_example(s, l), C = s->channels[l];
        cJSON_AddNumberToObject(j, "channels", C);
        cJSON_AddNumberToObject(j, "zero_fraction", C > 0 ? z / C : 0);
        cJSON_AddNumberToObject(j, "flops", C * s->flops_per_channel[l]);
        cJSON_AddNumberToObject(j, "skippable_flops", z * s->flops_per_channel[l]);
        zero += z;
        gates += C;
    }
    double skip, total;
    moe_gate_sparsity_flops(s, &skip, &total);
    cJSON_AddNumberToObject(o, "zero_fraction", gates > 0 ? zero / gates : 0);
    cJSON_AddNumberToObject(o, "gated_conv_flops", total);
    cJSON_AddNumberToObject(o, "skippable_flops", skip);
    cJSON_AddNumberToObject(o, "skippable_fraction", total > 0 ? skip / total : 0);
    return o;
}
