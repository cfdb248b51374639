/* cnn_moe's initialisation: PyTorch's default layer initialisation, with
 * seed 000's near-zero gate output layer. */
#include "models/cnn_moe_internal.h"

#include <math.h>
#include <string.h>

/* fan_in of a weight: every dim but the first (PyTorch's
 * _calculate_fan_in_and_fan_out). */
static double fan_in(const moe_tensor_info *t) {
    double f = 1;
    for (int d = 1; d < t->ndim; d++) f *= (double)t->shape[d];
    return f;
}

/* PyTorch's defaults: conv and linear weights kaiming_uniform(a = sqrt 5),
 * i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases the same bound with the
 * weight's fan_in; batch norm weight 1, bias 0, running mean 0, variance 1;
 * the gate's last layer N(0, 0.01) with bias 0 (seed 000's uniform start).
 * One stream in table order, so the result depends on the seed only. */
void cnn_moe_init_weights(cnn_moe *m, uint64_t seed) {
    moe_rng rng;
    moe_rng_seed(&rng, seed);
    double bound = 0;
    for (int i = 0; i < m->table.count; i++) {
        const moe_tensor_info *t = &m->table.tensors[i];
        moe_real *p = m->params + t->offset;
        const char *name = t->name;
        int bn = strstr(name, ".bn.") != NULL;
        int gate_out = strncmp(name, "gate.fc2.", 9) == 0;
        int weight = strstr(name, ".weight") != NULL;
        if (weight && !bn) bound = 1.0 / sqrt(fan_in(t)); /* the bias that follows shares it */
        for (size_t j = 0; j < t->numel; j++) {
            if (bn)
                p[j] = (strstr(name, ".weight") || strstr(name, "running_var")) ? 1 : 0;
            else if (gate_out)
                p[j] = weight ? (moe_real)(0.01 * moe_rng_normal(&rng)) : 0;
            else
                p[j] = (moe_real)(bound * (2.0 * moe_rng_uniform(&rng) - 1.0));
        }
    }
}
