/* Masked-LM corruption of a batch: BERT's recipe (each chosen position
 * becomes [MASK] 80% of the time, a random regular token 10%, itself 10%)
 * or seed 003's (every chosen position becomes [MASK]). The loss is taken
 * at chosen positions only: targets hold the original token there and -1
 * elsewhere. */
#include "moe/data.h"

long moe_mlm_mask(int32_t *tokens, int32_t *targets, const uint8_t *pad_mask, long N, float prob,
                  moe_mlm_mode mode, int32_t mask_id, int32_t n_regular, moe_rng *rng) {
    long chosen = 0, candidates = 0, last = -1;
    for (long i = 0; i < N; i++) {
        targets[i] = -1;
        int maskable = (!pad_mask || pad_mask[i]) && tokens[i] >= 0 && tokens[i] < n_regular;
        if (!maskable) continue;
        candidates++;
        /* reservoir of one: a uniformly drawn candidate, used if none is chosen */
        if (moe_rng_below(rng, (uint32_t)candidates) == 0) last = i;
        if (moe_rng_uniform(rng) >= prob) continue;
        targets[i] = tokens[i];
        chosen++;
    }
    /* a batch with no masked position would have no loss: mask one */
    if (chosen == 0 && last >= 0) {
        targets[last] = tokens[last];
        chosen = 1;
    }
    for (long i = 0; i < N; i++) {
        if (targets[i] < 0) continue;
        float u = mode == MOE_MLM_ALL_MASK ? 0.0f : moe_rng_uniform(rng);
        if (u < 0.8f)
            tokens[i] = mask_id;
        else if (u < 0.9f)
            tokens[i] = (int32_t)moe_rng_below(rng, (uint32_t)n_regular);
        /* else: unchanged */
    }
    return chosen;
}
