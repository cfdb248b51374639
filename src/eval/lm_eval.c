/* Language-model evaluation and routing balance figures. */
#include "moe/train.h"

#include <math.h>
#include <stdlib.h>

moe_status moe_eval_lm(moe_model *m, const moe_corpus *c, int B, int T, int n_batches,
                       moe_arena *arena, double *val_loss) {
    int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
    moe_status st = MOE_OK;
    double sum = 0;
    if (!x || !y) {
        st = moe_error(MOE_ERR_NOMEM, "eval: out of memory");
        goto out;
    }
    for (int i = 0; i < n_batches && st == MOE_OK; i++) {
        double ce = 0;
        moe_corpus_val_batch(c, B, T, i, n_batches, x, y);
        moe_arena_reset(arena);
        st = moe_model_forward(m, x, y, B, T, 0, NULL, arena, &ce, NULL);
        sum += ce;
    }
    *val_loss = sum / (n_batches > 0 ? n_batches : 1);
out:
    free(x);
    free(y);
    return st;
}

void moe_routing_balance(const moe_layer_stats *s, int n_experts, double *cv,
                         double *max_over_mean) {
    double mean = 0, var = 0, mx = 0;
    for (int e = 0; e < n_experts; e++) {
        mean += s->expert_tokens[e];
        if (s->expert_tokens[e] > mx) mx = s->expert_tokens[e];
    }
    mean /= n_experts;
    for (int e = 0; e < n_experts; e++) var += pow(s->expert_tokens[e] - mean, 2);
    var /= n_experts;
    *cv = mean > 0 ? sqrt(var) / mean : 0;
    *max_over_mean = mean > 0 ? mx / mean : 0;
}
