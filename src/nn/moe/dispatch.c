/* Dispatch: a counting sort of the kept (token, slot) pairs by expert, so
 * every expert's rows are contiguous (offsets [E+1]) and in token order
 * (perm [R]); then the input rows are gathered into xp [R, D]. */
#include "moe_internal.h"

#include <string.h>

void moe_dispatch_forward(moe_layer_cache *c, const moe_real *x, int E, int k, int D) {
    const long P = (long)c->T * k;
    c->offsets[0] = 0;
    for (int e = 0; e < E; e++) c->offsets[e + 1] = c->offsets[e] + c->kept[e];
    c->R = c->offsets[E];
    /* capacity gave each kept pair its rank inside its expert */
    for (long pr = 0; pr < P; pr++) {
        if (c->row_of[pr] < 0) continue;
        c->row_of[pr] += c->offsets[c->chosen[pr]];
        c->perm[c->row_of[pr]] = (int)pr;
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < c->R; r++)
        memcpy(c->xp + (size_t)r * D, x + (size_t)(c->perm[r] / k) * D, sizeof(moe_real) * D);
}

void moe_dispatch_backward(moe_real *dx, const moe_real *dxp, const int *row_of, int T, int k,
                           int D) {
    /* per token: each token owns its dx row, so no races */
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        moe_real *d = dx + (size_t)t * D;
        for (int j = 0; j < k; j++) {
            int r = row_of[(size_t)t * k + j];
            if (r < 0) continue;
            const moe_real *s = dxp + (size_t)r * D;
            for (int i = 0; i < D; i++) d[i] += s[i];
        }
    }
}
