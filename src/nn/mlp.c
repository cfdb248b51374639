/* Dense feed-forward block over N rows: three (or two) GEMMs and a pointwise
 * activation. */
#include "nn/mlp.h"

#include "ops/ops.h"

void activation_forward(moe_activation act, moe_real *out, const moe_real *inp, long n) {
    switch (act) {
    case MOE_ACT_RELU: relu_forward(out, inp, n); break;
    case MOE_ACT_GELU: gelu_forward(out, inp, n); break;
    case MOE_ACT_SILU:
    case MOE_ACT_SWIGLU: silu_forward(out, inp, n); break;
    }
}

void activation_backward(moe_activation act, moe_real *dinp, const moe_real *dout,
                         const moe_real *inp, long n) {
    switch (act) {
    case MOE_ACT_RELU: relu_backward(dinp, dout, inp, n); break;
    case MOE_ACT_GELU: gelu_backward(dinp, dout, inp, n); break;
    case MOE_ACT_SILU:
    case MOE_ACT_SWIGLU: silu_backward(dinp, dout, inp, n); break;
    }
}

moe_status mlp_forward(moe_real *out, mlp_cache *cache, const moe_real *x, const moe_real *w1,
                       const moe_real *w3, const moe_real *w2, moe_activation act, int N, int D,
                       int F, moe_arena *arena) {
    size_t nf = (size_t)N * F * sizeof(moe_real);
    int glu = act == MOE_ACT_SWIGLU;
    cache->h1 = moe_arena_alloc(arena, nf);
    cache->h3 = glu ? moe_arena_alloc(arena, nf) : NULL;
    cache->hact = moe_arena_alloc(arena, nf);
    if (!cache->h1 || !cache->hact || (glu && !cache->h3)) return MOE_ERR_NOMEM;
    matmul_forward(cache->h1, x, w1, NULL, N, D, F);
    if (glu) {
        matmul_forward(cache->h3, x, w3, NULL, N, D, F);
        swiglu_forward(cache->hact, cache->h1, cache->h3, (long)N * F);
    } else {
        activation_forward(act, cache->hact, cache->h1, (long)N * F);
    }
    matmul_forward(out, cache->hact, w2, NULL, N, F, D);
    return MOE_OK;
}

moe_status mlp_backward(moe_real *dx, moe_real *dw1, moe_real *dw3, moe_real *dw2,
                        const moe_real *dout, const mlp_cache *cache, const moe_real *x,
                        const moe_real *w1, const moe_real *w3, const moe_real *w2,
                        moe_activation act, int N, int D, int F, moe_arena *arena) {
    size_t nf = (size_t)N * F * sizeof(moe_real);
    int glu = act == MOE_ACT_SWIGLU;
    moe_real *dhact = moe_arena_alloc(arena, nf);
    moe_real *dh1 = moe_arena_alloc(arena, nf);
    moe_real *dh3 = glu ? moe_arena_alloc(arena, nf) : NULL;
    moe_real *dx3 = glu ? moe_arena_alloc(arena, (size_t)N * D * sizeof(moe_real)) : NULL;
    if (!dhact || !dh1 || (glu && (!dh3 || !dx3))) return MOE_ERR_NOMEM;
    matmul_backward(dhact, dw2, NULL, dout, cache->hact, w2, N, F, D);
    if (glu) {
        swiglu_backward(dh1, dh3, dhact, cache->h1, cache->h3, (long)N * F);
        matmul_backward(dx3, dw3, NULL, dh3, x, w3, N, D, F);
    } else {
        activation_backward(act, dh1, dhact, cache->h1, (long)N * F);
    }
    matmul_backward(dx, dw1, NULL, dh1, x, w1, N, D, F);
    if (glu) residual_forward(dx, dx, dx3, (long)N * D);
    return MOE_OK;
}
