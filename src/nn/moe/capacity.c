/* Expert capacity (GShard, Switch): C = ceil(capacity_factor * T * k / E)
 * pairs per expert. Pairs are admitted in token order (t ascending, then
 * slot j, i.e. best choice first within a token), so the earliest tokens
 * win; the rest are dropped and the token keeps only its residual. */
#include "moe_internal.h"

#include <limits.h>
#include <math.h>
#include <string.h>

int moe_capacity(const moe_layer_config *cfg, int T) {
    if (cfg->capacity_factor <= 0) return INT_MAX; /* dropless */
    double c = ceil((double)cfg->capacity_factor * T * cfg->top_k / cfg->n_experts);
    return c > INT_MAX ? INT_MAX : (int)c;
}

void moe_capacity_assign(moe_layer_cache *c, const moe_layer_config *cfg) {
    const int E = cfg->n_experts, k = cfg->top_k, T = c->T;
    const int cap = moe_capacity(cfg, T);
    memset(c->routed, 0, sizeof(int) * (size_t)E);
    memset(c->kept, 0, sizeof(int) * (size_t)E);
    c->n_dropped = 0;
    /* sequential: the admission order is the definition */
    for (long pr = 0; pr < (long)T * k; pr++) {
        int e = c->chosen[pr];
        c->routed[e]++;
        if (c->kept[e] < cap) {
            c->row_of[pr] = c->kept[e]++;
        } else {
            c->row_of[pr] = -1;
            c->n_dropped++;
        }
    }
}
