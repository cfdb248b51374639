/* Routing statistics of cnn_moe's soft gate in the shape the transformer's
 * MoE layers report (moe_layer_stats), so the trainer's monitoring reads
 * both alike: each example counts as one token routed top-1 to its
 * largest gate weight (nothing is ever dropped), mean_prob is the mean gate
 * weight per expert and router_entropy the mean entropy of G's rows. */
#include "models/cnn_moe_internal.h"

#include <math.h>
#include <string.h>

moe_status cnn_moe_fill_stats(cnn_moe *m, moe_arena *arena, double aux_total) {
    int B = m->B, E = m->E;
    const moe_real *G = m->gate.g;
    int *chosen, *kept, *count;
    moe_real *gate, *mean_prob;
    CNN_ALLOC(chosen, B);
    CNN_ALLOC(kept, B);
    CNN_ALLOC(gate, B);
    CNN_ALLOC(count, E);
    CNN_ALLOC(mean_prob, E);
    memset(count, 0, (size_t)E * sizeof *count);
    double entropy = 0;
    for (int e = 0; e < E; e++) mean_prob[e] = 0;
    for (int i = 0; i < B; i++) {
        const moe_real *g = G + (long)i * E;
        int best = 0;
        for (int e = 0; e < E; e++) {
            if (g[e] > g[best]) best = e;
            mean_prob[e] += g[e];
            if (g[e] > 0) entropy -= (double)g[e] * log((double)g[e]);
        }
        chosen[i] = best;
        gate[i] = g[best];
        kept[i] = i; /* every pair is kept */
        count[best]++;
    }
    for (int e = 0; e < E; e++) mean_prob[e] /= (moe_real)B;
    moe_layer_stats *s = &m->stats;
    memset(s, 0, sizeof *s);
    s->n_tokens = B;
    s->n_pairs = B;
    s->n_dropped = 0;
    s->expert_tokens = count;
    s->top_k = 1;
    s->chosen = chosen;
    s->gate = gate;
    s->kept_pair = kept;
    s->mean_prob = mean_prob;
    s->router_entropy = entropy / B;
    s->aux_total = aux_total; /* the family's own terms (loss_parts); aux_switch etc. stay 0 */
    return MOE_OK;
}
