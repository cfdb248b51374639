/* Token sampling. Greedy when temperature is 0; otherwise the softmax of
 * logits / temperature, cut to the top_k most likely and then to the
 * smallest prefix with mass >= top_p, renormalised. */
#include "models/sampling.h"

#include <math.h>
#include <stdlib.h>

static int32_t argmax(const moe_real *x, int V) {
    int32_t best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int32_t sample_token(const moe_real *logits, int V, const moe_sampling *s, moe_rng *rng,
                     moe_real *probs, int32_t *order) {
    if (s->temperature <= 0) return argmax(logits, V);
    moe_real *p = probs;
    int32_t *idx = order; /* candidate ids, most likely first */
    moe_real maxv = logits[argmax(logits, V)];
    double sum = 0;
    for (int i = 0; i < V; i++) {
        p[i] = (moe_real)exp((logits[i] - maxv) / s->temperature);
        sum += p[i];
    }
    for (int i = 0; i < V; i++) p[i] = (moe_real)(p[i] / sum);
    /* candidates by probability: selection sort up to the cut (V is small) */
    int k = (s->top_k > 0 && s->top_k < V) ? s->top_k : V;
    float top_p = (s->top_p > 0 && s->top_p < 1) ? s->top_p : 1.0f;
    int n = 0;
    double mass = 0;
    for (int i = 0; i < V; i++) idx[i] = i;
    while (n < k && mass < top_p) {
        int best = n;
        for (int j = n + 1; j < V; j++)
            if (p[idx[j]] > p[idx[best]]) best = j;
        int32_t t = idx[n];
        idx[n] = idx[best];
        idx[best] = t;
        mass += p[idx[n]];
        n++;
    }
    double u = moe_rng_uniform(rng) * mass, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += p[idx[i]];
        if (u < acc) return idx[i];
    }
    return idx[n - 1];
}
