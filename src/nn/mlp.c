/* Dense feed-forward block over N rows: the shared FFN (nn/ffn.c) without
 * biases, with its saved activations and scratch taken from the arena. */
#include "nn/mlp.h"

moe_status mlp_forward(moe_real *out, mlp_cache *cache, const moe_real *x, const moe_real *w1,
                       const moe_real *w3, const moe_real *w2, moe_activation act, int N, int D,
                       int F, moe_arena *arena) {
    size_t nf = (size_t)N * F * sizeof(moe_real);
    int glu = act == MOE_ACT_SWIGLU;
    cache->h1 = moe_arena_alloc(arena, nf);
    cache->h3 = glu ? moe_arena_alloc(arena, nf) : NULL;
    if (!cache->h1 || (glu && !cache->h3)) return MOE_ERR_NOMEM;
    /* the activation is scratch: backward recomputes it from h1 (and h3) */
    size_t mark = moe_arena_mark(arena);
    moe_real *hact = moe_arena_alloc(arena, nf);
    if (!hact) return MOE_ERR_NOMEM;
    ffn_forward(out, hact, cache->h1, cache->h3, x, w1, NULL, glu ? w3 : NULL, NULL, w2, NULL, act,
                N, D, F);
    moe_arena_release(arena, mark);
    return MOE_OK;
}

moe_status mlp_backward(moe_real *dx, moe_real *dw1, moe_real *dw3, moe_real *dw2,
                        const moe_real *dout, const mlp_cache *cache, const moe_real *x,
                        const moe_real *w1, const moe_real *w3, const moe_real *w2,
                        moe_activation act, int N, int D, int F, moe_arena *arena) {
    size_t nf = (size_t)N * F * sizeof(moe_real);
    int glu = act == MOE_ACT_SWIGLU;
    moe_real *dh = moe_arena_alloc(arena, nf);
    moe_real *da = moe_arena_alloc(arena, nf);
    moe_real *db = glu ? moe_arena_alloc(arena, nf) : NULL;
    if (!dh || !da || (glu && !db)) return MOE_ERR_NOMEM;
    ffn_backward(dx, dw1, NULL, glu ? dw3 : NULL, NULL, dw2, NULL, dh, da, db, dout, NULL,
                 cache->h1, cache->h3, x, w1, glu ? w3 : NULL, w2, act, N, D, F);
    return MOE_OK;
}
