/* Routing statistics of one forward: kept pairs per expert, drops, mean
 * router probability (filled by aux_loss.c into c->P) and router entropy.
 * Entropy is of the softmax over all E; for sigmoid routers, of the scores
 * normalised to sum to 1. */
#include "moe_internal.h"

#include <math.h>
#include <string.h>

moe_status moe_stats_forward(moe_layer_cache *c, const moe_layer_config *cfg, moe_arena *arena) {
    const int E = cfg->n_experts, T = c->T;
    moe_layer_stats *st = moe_arena_calloc(arena, sizeof *st);
    if (!st) return MOE_ERR_NOMEM;
    st->expert_tokens = moe_arena_alloc(arena, sizeof(int) * (size_t)E);
    if (!st->expert_tokens) return MOE_ERR_NOMEM;
    memcpy(st->expert_tokens, c->kept, sizeof(int) * (size_t)E);
    st->n_tokens = T;
    st->n_pairs = T * cfg->top_k;
    st->n_dropped = c->n_dropped;
    st->top_k = cfg->top_k;
    st->chosen = c->chosen;
    st->gate = c->weights;
    st->kept_pair = c->row_of;
    st->mean_prob = c->P;
    st->n_fallback = c->n_fallback;
    st->fallback = c->fallback;
    double ent = 0;
#pragma omp parallel for reduction(+ : ent) schedule(static)
    for (int t = 0; t < T; t++) {
        const moe_real *s = c->scores + (size_t)t * E;
        double sum = 0, h = 0;
        for (int e = 0; e < E; e++) sum += s[e];
        for (int e = 0; e < E; e++) {
            double q = s[e] / sum;
            if (q > 0) h -= q * log(q);
        }
        ent += h;
    }
    st->router_entropy = ent / T;
    c->stats = st;
    return MOE_OK;
}
