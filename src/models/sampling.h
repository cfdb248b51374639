/* Picking the next token from logits: greedy, temperature, top-k, top-p. */
#ifndef MOE_MODELS_SAMPLING_H
#define MOE_MODELS_SAMPLING_H

#include "moe/model.h"

/* logits [V] are not modified; probs [V] and order [V] are scratch. */
int32_t sample_token(const moe_real *logits, int V, const moe_sampling *s, moe_rng *rng,
                     moe_real *probs, int32_t *order);

#endif
