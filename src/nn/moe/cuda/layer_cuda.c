/* The MoE layer on the GPU: the orchestration of layer.c with the CUDA
 * launchers (cuda_ops.h) in place of the CPU steps. Host code only: every
 * call below enqueues on the context's stream; nothing here waits for the
 * GPU except moe_layer_cuda_stats_read and the test-only poison. */
#include "nn/moe/cuda/layer_cuda.h"
#include "nn/moe/moe_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define TRY(call)                                                                                  \
    do {                                                                                           \
        moe_status st_ = (call);                                                                   \
        if (st_ != MOE_OK) return st_;                                                             \
    } while (0)

moe_status moe_layer_cuda_supported(const moe_layer_config *cfg) {
    moe_status st = moe_layer_config_check(cfg);
    if (st != MOE_OK) return st;
    const char *field = NULL, *what = NULL;
    if (cfg->score != MOE_SCORE_SOFTMAX)
        field = "score", what = "routes with softmax scores only";
    else if (cfg->routing != MOE_ROUTE_TOPK)
        field = "routing", what = "routes by top-k only (no round robin)";
    else if (cfg->noisy)
        field = "noisy", what = "has no noisy gating";
    else if (cfg->expert_bias)
        field = "expert_bias", what = "has no expert biases";
    else if (cfg->shared_d_ff)
        field = "shared_d_ff", what = "has no shared expert";
    else if (cfg->var_coef != 0)
        field = "var_coef", what = "has no variance loss (switch and z only)";
    else if (cfg->cv_coef != 0)
        field = "cv_coef", what = "has no cv^2 loss (switch and z only)";
    else if (cfg->fallback)
        field = "fallback", what = "has no non-finite fallback";
    else if (cfg->n_experts > 256)
        field = "n_experts", what = "routes over at most 256 experts";
    else if (cfg->top_k > 8)
        field = "top_k", what = "routes each token to at most 8 experts";
    if (field)
        return moe_error(MOE_ERR_UNSUPPORTED,
                         "moe.%s: the GPU MoE layer %s; change moe.%s or run the layer on the CPU",
                         field, what, field);
    return MOE_OK;
}

long moe_layer_cuda_rows(const moe_layer_config *cfg, int T) {
    const long pairs = (long)T * cfg->top_k;
    const int cap = moe_capacity(cfg, T);
    if (cap == INT_MAX) return pairs; /* dropless */
    const long most = (long)cfg->n_experts * cap;
    return most < pairs ? most : pairs;
}

/* Next buffer of the arena: offsets aligned to 256 bytes. With base NULL it
 * only counts (the sizing pass). */
static void *take(char *base, size_t *off, size_t bytes) {
    size_t o = (*off + 255) & ~(size_t)255;
    *off = o + (bytes ? bytes : 1);
    return base ? base + o : NULL;
}

/* Points every buffer of ws into base (or only sizes them when base is
 * NULL); returns the bytes needed. */
static size_t layout(moe_layer_cuda_ws *ws, char *base) {
    const moe_layer_config *cfg = &ws->cfg;
    const size_t T = (size_t)ws->T_max, E = (size_t)cfg->n_experts, k = (size_t)cfg->top_k;
    const size_t D = (size_t)cfg->d_model, F = (size_t)cfg->d_ff, R = (size_t)ws->R_cap;
    const size_t ds = moe_dtype_size(ws->dt);
    const int glu = cfg->act == MOE_ACT_SWIGLU;
    size_t off = 0;
    ws->logits = take(base, &off, T * E * 4);
    ws->scores = take(base, &off, T * E * 4);
    ws->lse = take(base, &off, T * 4);
    ws->chosen = take(base, &off, T * k * 4);
    ws->weights = take(base, &off, T * k * 4);
    ws->routed = take(base, &off, E * 4);
    ws->prob_sum = take(base, &off, E * 4);
    ws->z_sum = take(base, &off, 4);
    ws->aux = take(base, &off, 3 * 4);
    ws->dP = take(base, &off, E * 4);
    ws->dz = take(base, &off, 4);
    ws->dw = take(base, &off, T * k * 4);
    ws->dlogits = take(base, &off, T * E * 4);
    ws->dlogits_dt = ws->dt == MOE_DT_F32 ? (void *)ws->dlogits : take(base, &off, T * E * ds);
    ws->kept = take(base, &off, E * 4);
    ws->offsets = take(base, &off, (E + 1) * 4);
    ws->row_of = take(base, &off, T * k * 4);
    ws->token_of = take(base, &off, R * 4);
    ws->scratch = take(base, &off, ws->scratch_bytes);
    ws->xp = take(base, &off, R * D * ds);
    ws->ha = take(base, &off, R * F * ds);
    ws->hb = glu ? take(base, &off, R * F * ds) : NULL;
    ws->h = take(base, &off, R * F * ds);
    ws->y = take(base, &off, R * D * ds);
    ws->dy = take(base, &off, R * D * ds);
    ws->dha = take(base, &off, R * F * ds);
    ws->dhb = glu ? take(base, &off, R * F * ds) : NULL;
    ws->dxp = take(base, &off, R * D * ds);
    ws->dxp3 = glu ? take(base, &off, R * D * ds) : NULL;
    return off;
}

moe_status moe_layer_cuda_workspace_create(moe_layer_cuda_ws **out, moe_cuda *ctx,
                                           const moe_layer_config *cfg, int T_max, moe_dtype dt) {
    if (!out) return moe_error(MOE_ERR_INVALID, "moe_layer_cuda_workspace_create: out is NULL");
    *out = NULL;
    if (!ctx || !cfg)
        return moe_error(MOE_ERR_INVALID, "moe_layer_cuda_workspace_create: NULL ctx or cfg");
    moe_status st = moe_layer_cuda_supported(cfg);
    if (st != MOE_OK) return st;
    if (dt != MOE_DT_F32 && dt != MOE_DT_BF16)
        return moe_error(MOE_ERR_INVALID, "moe_layer_cuda_workspace_create: dt = %d", (int)dt);
    const long E = cfg->n_experts, k = cfg->top_k, D = cfg->d_model, F = cfg->d_ff;
    const long width = D > F ? D : F;
    if (T_max < 1 || (long)T_max * k > INT_MAX || (long)T_max * E > INT_MAX ||
        (long)T_max * D > INT_MAX)
        return moe_error(MOE_ERR_INVALID,
                         "moe_layer_cuda_workspace_create: T_max = %d: need 1 <= T_max and "
                         "T_max * max(k, E, d_model) < 2^31",
                         T_max);
    const long R_cap = moe_layer_cuda_rows(cfg, T_max);
    if (R_cap * width > INT_MAX)
        return moe_error(MOE_ERR_INVALID,
                         "moe_layer_cuda_workspace_create: %ld rows of width %ld exceed 2^31 "
                         "elements per tensor: use fewer tokens per call",
                         R_cap, width);
    moe_layer_cuda_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return moe_error(MOE_ERR_NOMEM, "moe_layer_cuda_workspace_create: out of memory");
    ws->ctx = ctx;
    ws->cfg = *cfg;
    ws->dt = dt;
    ws->T_max = T_max;
    ws->R_cap = (int)R_cap;
    ws->scratch_bytes = moe_cuda_dispatch_scratch(T_max, (int)k, (int)E);
    ws->arena_bytes = layout(ws, NULL);
    void *arena = NULL;
    if ((st = moe_cuda_alloc(ctx, &arena, ws->arena_bytes)) != MOE_OK) {
        free(ws);
        return st;
    }
    ws->arena = arena;
    layout(ws, arena);
    *out = ws;
    return MOE_OK;
}

void moe_layer_cuda_workspace_destroy(moe_layer_cuda_ws *ws) {
    if (!ws) return;
    moe_cuda_free(ws->ctx, ws->arena);
    free(ws);
}

moe_status moe_layer_cuda_workspace_poison(moe_layer_cuda_ws *ws) {
    const size_t chunk = (size_t)64 << 20;
    size_t n = ws->arena_bytes < chunk ? ws->arena_bytes : chunk;
    unsigned char *h = malloc(n ? n : 1);
    if (!h) return moe_error(MOE_ERR_NOMEM, "moe_layer_cuda_workspace_poison: out of memory");
    memset(h, 0xff, n);
    moe_status st = MOE_OK;
    for (size_t o = 0; o < ws->arena_bytes && st == MOE_OK; o += n) {
        size_t b = ws->arena_bytes - o < n ? ws->arena_bytes - o : n;
        st = moe_cuda_upload(ws->ctx, (char *)ws->arena + o, h, b);
    }
    if (st == MOE_OK) st = moe_cuda_sync(ws->ctx);
    free(h);
    ws->T = 0; /* whatever forward saved is gone */
    ws->h_live = 0;
    return st;
}

static moe_status check_params(const moe_layer_cuda_ws *ws, const moe_layer_cuda_params *p,
                               const char *fn) {
    if (!p) return moe_error(MOE_ERR_INVALID, "%s: params is NULL", fn);
    const int glu = ws->cfg.act == MOE_ACT_SWIGLU;
    const char *missing = !p->gate        ? "gate"
                          : !p->w1        ? "w1"
                          : !p->w2        ? "w2"
                          : glu && !p->w3 ? "w3"
                                          : NULL;
    if (missing)
        return moe_error(MOE_ERR_INVALID, "%s: params.%s is NULL but the config uses it", fn,
                         missing);
    return MOE_OK;
}

static moe_cuda_act cuda_act(moe_activation a) {
    return a == MOE_ACT_RELU ? MOE_CUDA_RELU : a == MOE_ACT_GELU ? MOE_CUDA_GELU : MOE_CUDA_SILU;
}

moe_status moe_layer_cuda_forward(moe_layer_cuda_ws *ws, const moe_layer_cuda_params *p, void *out,
                                  const void *x, int T, int training) {
    (void)training; /* no noise on the GPU: training and inference route alike */
    static const char fn[] = "moe_layer_cuda_forward";
    if (!ws || !out || !x) return moe_error(MOE_ERR_INVALID, "%s: NULL workspace, out or x", fn);
    TRY(check_params(ws, p, fn));
    if (T < 1 || T > ws->T_max)
        return moe_error(MOE_ERR_INVALID, "%s: T = %d tokens, the workspace holds 1 .. %d", fn, T,
                         ws->T_max);
    const moe_layer_config *cfg = &ws->cfg;
    const int E = cfg->n_experts, k = cfg->top_k, D = cfg->d_model, F = cfg->d_ff;
    const int glu = cfg->act == MOE_ACT_SWIGLU;
    const moe_dtype dt = ws->dt;
    moe_cuda *ctx = ws->ctx;
    const int cap = moe_capacity(cfg, T);
    const long Rm = moe_layer_cuda_rows(cfg, T); /* <= R_cap: rows grow with T */
    if (Rm > ws->R_cap || moe_cuda_dispatch_scratch(T, k, E) > ws->scratch_bytes)
        return moe_error(MOE_ERR_INVALID, "%s: T = %d needs more rows or scratch than T_max = %d",
                         fn, T, ws->T_max);
    ws->T = 0; /* a forward that fails half-way leaves nothing for backward */
    ws->h_live = 0;
    const float inv_temp = (float)(1.0 / cfg->temperature);

    /* router: logits [T,E] (fp32) = x gate^T / temperature; scores, top-k, weights */
    TRY(moe_cuda_gemm(ctx, 0, 1, T, E, D, inv_temp, x, D, p->gate, D, dt, 0.0f, ws->logits,
                      MOE_DT_F32, E));
    TRY(moe_cuda_router_forward(ctx, ws->scores, ws->lse, ws->chosen, ws->weights, ws->routed,
                                ws->prob_sum, ws->z_sum, ws->logits, T, E, k,
                                cfg->topk_before_softmax, cfg->renormalize));
    TRY(moe_cuda_aux_loss(ctx, ws->aux, ws->dP, ws->dz, ws->routed, ws->prob_sum, ws->z_sum, T, E,
                          k, cfg->switch_divide_by_k, cfg->switch_coef, cfg->z_coef, 1.0f));

    /* capacity, permutation, gather: xp [R,D] */
    TRY(moe_cuda_dispatch_forward(ctx, dt, ws->xp, ws->kept, ws->offsets, ws->row_of, ws->token_of,
                                  x, ws->chosen, T, D, E, k, cap, ws->scratch));

    /* experts. The pointwise passes cover all Rm rows: rows >= R hold stale
     * values that no GEMM reads and nothing combines. */
    const long RF = Rm * F;
    TRY(moe_cuda_grouped_forward(ctx, dt, ws->ha, ws->xp, p->w1, ws->offsets, E, (int)Rm, D, F));
    if (glu) {
        TRY(moe_cuda_grouped_forward(ctx, dt, ws->hb, ws->xp, p->w3, ws->offsets, E, (int)Rm, D,
                                     F));
        TRY(moe_cuda_swiglu_forward(ctx, dt, ws->h, ws->ha, ws->hb, RF));
    } else {
        TRY(moe_cuda_act_forward(ctx, dt, cuda_act(cfg->act), ws->h, ws->ha, RF));
    }
    TRY(moe_cuda_grouped_forward(ctx, dt, ws->y, ws->h, p->w2, ws->offsets, E, (int)Rm, F, D));

    /* out [T,D] = sum over kept pairs of weight * y[row] (0 for fully dropped tokens) */
    TRY(moe_cuda_combine_forward(ctx, dt, out, ws->y, ws->weights, ws->row_of, T, D, k, 0));

    ws->T = T;
    ws->capacity = cap;
    ws->R_max = (int)Rm;
    ws->x = x;
    ws->h_live = 1;
    return MOE_OK;
}

moe_status moe_layer_cuda_backward(moe_layer_cuda_ws *ws, const moe_layer_cuda_params *p,
                                   const moe_layer_cuda_grads *g, void *dx, const void *dout,
                                   float daux) {
    static const char fn[] = "moe_layer_cuda_backward";
    if (!ws || !g || !dx || !dout)
        return moe_error(MOE_ERR_INVALID, "%s: NULL workspace, grads, dx or dout", fn);
    TRY(check_params(ws, p, fn));
    if (ws->T < 1 || !ws->h_live)
        return moe_error(MOE_ERR_INVALID,
                         "%s: no forward to go back through (one backward per forward)", fn);
    const moe_layer_config *cfg = &ws->cfg;
    const int E = cfg->n_experts, k = cfg->top_k, D = cfg->d_model, F = cfg->d_ff;
    const int glu = cfg->act == MOE_ACT_SWIGLU, T = ws->T, Rm = ws->R_max;
    const moe_dtype dt = ws->dt;
    moe_cuda *ctx = ws->ctx;
    const float inv_temp = (float)(1.0 / cfg->temperature);
    const long RF = (long)Rm * F;

    /* combine: dy [R,D] = weight * dout[token]; dw [T,k] = dout . y[row] */
    TRY(moe_cuda_combine_backward(ctx, dt, ws->dy, ws->dw, dout, ws->y, ws->weights, ws->row_of, T,
                                  D, k));

    /* router. The auxiliary gradients again, for this daux (the values in
     * aux[] come out unchanged: same counts and sums). */
    TRY(moe_cuda_aux_loss(ctx, ws->aux, ws->dP, ws->dz, ws->routed, ws->prob_sum, ws->z_sum, T, E,
                          k, cfg->switch_divide_by_k, cfg->switch_coef, cfg->z_coef, daux));
    TRY(moe_cuda_router_backward(ctx, ws->dlogits, ws->dw, cfg->switch_coef != 0 ? ws->dP : NULL,
                                 cfg->z_coef != 0 ? ws->dz : NULL, ws->scores, ws->lse, ws->chosen,
                                 ws->weights, T, E, k, cfg->topk_before_softmax, cfg->renormalize));
    /* logits = x gate^T / temperature: the 1/temperature rides on alpha. The
     * GEMMs read both operands in dt, so bf16 casts dlogits first. */
    if (dt != MOE_DT_F32)
        TRY(moe_cuda_cast(ctx, ws->dlogits_dt, dt, ws->dlogits, MOE_DT_F32, (long)T * E));
    if (g->gate) /* dgate [E,D] += dlogits^T [E,T] x [T,D] */
        TRY(moe_cuda_gemm(ctx, 1, 0, E, D, T, inv_temp, ws->dlogits_dt, E, ws->x, D, dt, 1.0f,
                          g->gate, MOE_DT_F32, D));
    /* dx [T,D] = dlogits gate (written; the experts' part is added below) */
    TRY(moe_cuda_gemm(ctx, 0, 0, T, D, E, inv_temp, ws->dlogits_dt, E, p->gate, D, dt, 0.0f, dx, dt,
                      D));

    /* experts: w2, then the activation, then w1 (and w3) */
    if (g->w2) /* dW2 [E,D,F] += dy^T h */
        TRY(moe_cuda_grouped_backward_weight(ctx, dt, g->w2, ws->dy, ws->h, ws->offsets, E, Rm, F,
                                             D));
    void *dh = ws->h; /* h is dead once dW2 is enqueued (stream order): dh takes its place */
    ws->h_live = 0;
    TRY(moe_cuda_grouped_backward_input(ctx, dt, dh, ws->dy, p->w2, ws->offsets, E, Rm, F, D));
    if (glu)
        TRY(moe_cuda_swiglu_backward(ctx, dt, ws->dha, ws->dhb, dh, ws->ha, ws->hb, RF));
    else
        TRY(moe_cuda_act_backward(ctx, dt, cuda_act(cfg->act), ws->dha, dh, ws->ha, RF));
    if (g->w1) /* dW1 [E,F,D] += dha^T xp */
        TRY(moe_cuda_grouped_backward_weight(ctx, dt, g->w1, ws->dha, ws->xp, ws->offsets, E, Rm, D,
                                             F));
    if (glu && g->w3)
        TRY(moe_cuda_grouped_backward_weight(ctx, dt, g->w3, ws->dhb, ws->xp, ws->offsets, E, Rm, D,
                                             F));
    /* dxp = dha W1 (+ dhb W3), scattered back into dx: dispatch_backward
     * adds, so each half goes straight into dx without a sum buffer. */
    TRY(moe_cuda_grouped_backward_input(ctx, dt, ws->dxp, ws->dha, p->w1, ws->offsets, E, Rm, D,
                                        F));
    TRY(moe_cuda_dispatch_backward(ctx, dt, dx, ws->dxp, ws->row_of, T, D, k));
    if (glu) {
        TRY(moe_cuda_grouped_backward_input(ctx, dt, ws->dxp3, ws->dhb, p->w3, ws->offsets, E, Rm,
                                            D, F));
        TRY(moe_cuda_dispatch_backward(ctx, dt, dx, ws->dxp3, ws->row_of, T, D, k));
    }
    return MOE_OK;
}

moe_status moe_layer_cuda_stats_read(moe_layer_cuda_ws *ws, moe_layer_cuda_stats *out) {
    if (!ws || !out) return moe_error(MOE_ERR_INVALID, "moe_layer_cuda_stats_read: NULL argument");
    if (ws->T < 1) return moe_error(MOE_ERR_INVALID, "moe_layer_cuda_stats_read: no forward yet");
    const int E = ws->cfg.n_experts, k = ws->cfg.top_k, T = ws->T;
    memset(out, 0, sizeof *out);
    float aux[3], prob_sum[256];
    TRY(moe_cuda_download(ws->ctx, aux, ws->aux, sizeof aux));
    TRY(moe_cuda_download(ws->ctx, out->routed, ws->routed, sizeof(int) * (size_t)E));
    TRY(moe_cuda_download(ws->ctx, out->kept, ws->kept, sizeof(int) * (size_t)E));
    TRY(moe_cuda_download(ws->ctx, prob_sum, ws->prob_sum, sizeof(float) * (size_t)E));
    out->n_tokens = T;
    out->n_pairs = T * k;
    out->n_experts = E;
    for (int e = 0; e < E; e++) {
        out->n_rows += out->kept[e];
        out->mean_prob[e] = prob_sum[e] / (float)T;
    }
    out->n_dropped = out->n_pairs - out->n_rows;
    out->aux_switch = aux[0];
    out->aux_z = aux[1];
    out->aux_total = aux[2];
    return MOE_OK;
}
