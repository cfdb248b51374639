/* Training forward of the GPU transformer: gpt_forward.c's pre-norm decoder
 * path, launcher by launcher. */
#include "models/cuda/gpt_cuda_internal.h"

#define TRY(call)                                                                                  \
    do {                                                                                           \
        moe_status st_ = (call);                                                                   \
        if (st_ != MOE_OK) return st_;                                                             \
    } while (0)

/* As check_ids in gpt_forward.c. */
static moe_status check_ids(const gpt_cuda *g, const int32_t *tokens, const int32_t *targets,
                            long N) {
    for (long i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= g->V)
            return moe_error(MOE_ERR_INVALID,
                             "token %d at position %ld is outside the vocabulary [0, %d)",
                             tokens[i], i, g->V);
        if (targets && (targets[i] < -1 || targets[i] >= g->V))
            return moe_error(MOE_ERR_INVALID,
                             "target %d at position %ld is outside [0, %d) (use -1 to ignore)",
                             targets[i], i, g->V);
    }
    return MOE_OK;
}

/* The FFN of block l on ln2 into out [N, D]: dense (mlp_forward) or MoE. */
static moe_status ffn_forward(gpt_cuda *g, int l, void *out, int N, int training) {
    const gpt_cuda_block_off *o = &g->off.blocks[l];
    gpt_cuda_block_acts *a = &g->acts[l];
    moe_cuda *ctx = g->ctx;
    const moe_dtype dt = g->dt;
    if (g->block_is_moe[l]) {
        moe_layer_cuda_params p = {gpt_cuda_C(g, o->gate), gpt_cuda_C(g, o->ew1),
                                   gpt_cuda_C(g, o->ew3), gpt_cuda_C(g, o->ew2)};
        return moe_layer_cuda_forward(a->ws, &p, out, a->ln2, N, training);
    }
    const int D = g->D, F = g->F;
    const long nf = (long)N * F;
    const moe_activation act = g->cfg.ffn_act;
    /* ffn_forward (nn/ffn.c): h1 = x W1^T, h = act(h1) or silu(h1) * (x W3^T) */
    TRY(moe_cuda_matmul_forward(ctx, dt, a->h1, a->ln2, gpt_cuda_C(g, o->w1), NULL, N, D, F));
    if (act == MOE_ACT_SWIGLU) {
        TRY(moe_cuda_matmul_forward(ctx, dt, a->h3, a->ln2, gpt_cuda_C(g, o->w3), NULL, N, D, F));
        TRY(moe_cuda_swiglu_forward(ctx, dt, a->hact, a->h1, a->h3, nf));
    } else {
        moe_cuda_act k = act == MOE_ACT_RELU   ? MOE_CUDA_RELU
                         : act == MOE_ACT_GELU ? MOE_CUDA_GELU
                                               : MOE_CUDA_SILU;
        TRY(moe_cuda_act_forward(ctx, dt, k, a->hact, a->h1, nf));
    }
    return moe_cuda_matmul_forward(ctx, dt, out, a->hact, gpt_cuda_C(g, o->w2), NULL, N, F, D);
}

/* Pre-norm block l: x_mid = x_in + attn(ln1(x_in)); x_out = x_mid + ffn(ln2(x_mid)).
 * tmp [N, D] is scratch. */
static moe_status block_forward(gpt_cuda *g, int l, void *x_out, const void *x_in, void *tmp,
                                int training) {
    const moe_model_config *c = &g->cfg;
    const gpt_cuda_block_off *o = &g->off.blocks[l];
    gpt_cuda_block_acts *a = &g->acts[l];
    moe_cuda *ctx = g->ctx;
    const moe_dtype dt = g->dt;
    const int B = g->B, T = g->T, N = B * T, D = g->D, H = g->H, KVH = g->KVH, hd = g->hd;
    const int Q = g->Q;
    const long ND = (long)N * D;
    TRY(gpt_cuda_norm_forward(g, a->ln1, a->ln1_mean, a->ln1_rstd, x_in, gpt_cuda_P(g, o->ln1_w),
                              gpt_cuda_P(g, o->ln1_b), N));
    TRY(moe_cuda_matmul_forward(ctx, dt, a->qkv, a->ln1, gpt_cuda_C(g, o->qkv_w),
                                gpt_cuda_P(g, o->qkv_b), N, D, Q));
    void *q = a->qkv, *k = gpt_cuda_at(g, a->qkv, (long)H * hd);
    void *v = gpt_cuda_at(g, a->qkv, (long)(H + KVH) * hd);
    if (c->pos == MOE_POS_ROPE) {
        TRY(moe_cuda_rope_forward(ctx, dt, q, q, B, T, H, hd, Q, 0, c->rope_theta));
        TRY(moe_cuda_rope_forward(ctx, dt, k, k, B, T, KVH, hd, Q, 0, c->rope_theta));
    }
    TRY(moe_cuda_attention_forward(ctx, dt, a->attn, a->lse, q, k, v, NULL, B, T, H, KVH, hd, Q, Q,
                                   1));
    TRY(moe_cuda_matmul_forward(ctx, dt, tmp, a->attn, gpt_cuda_C(g, o->o_w), gpt_cuda_P(g, o->o_b),
                                N, D, D));
    TRY(moe_cuda_residual_forward(ctx, dt, a->x_mid, x_in, tmp, ND));
    TRY(gpt_cuda_norm_forward(g, a->ln2, a->ln2_mean, a->ln2_rstd, a->x_mid,
                              gpt_cuda_P(g, o->ln2_w), gpt_cuda_P(g, o->ln2_b), N));
    TRY(ffn_forward(g, l, tmp, N, training));
    return moe_cuda_residual_forward(ctx, dt, x_out, a->x_mid, tmp, ND);
}

moe_status gpt_cuda_forward(gpt_cuda *g, const int32_t *tokens, const int32_t *targets, int B,
                            int T, int training) {
    if (B < 1 || T < 1 || B > g->B_max || T > g->T_max)
        return moe_error(MOE_ERR_INVALID,
                         "gpt_cuda_forward: batch %d x %d; the model was created for up to "
                         "%d x %d",
                         B, T, g->B_max, g->T_max);
    const int N = B * T, D = g->D;
    TRY(check_ids(g, tokens, targets, (long)N));
    if (moe_cuda_attention_scratch(B, T, g->H, g->KVH, g->hd) > g->att_scratch_bytes ||
        moe_cuda_crossentropy_scratch(N) > g->ce_scratch_bytes)
        return moe_error(MOE_ERR_INVALID,
                         "gpt_cuda_forward: scratch sized for %d x %d is too "
                         "small for %d x %d",
                         g->B_max, g->T_max, B, T);
    moe_cuda *ctx = g->ctx;
    const moe_dtype dt = g->dt;
    g->has_forward = 0;
    g->B = B;
    g->T = T;
    g->has_targets = targets != NULL;
    g->logits_are_grads = 0;
    /* host -> device copies are enqueued; they read the host buffers before
     * the call returns (pageable memory is staged) */
    TRY(moe_cuda_upload(ctx, g->tokens, tokens, (size_t)N * sizeof(int32_t)));
    if (targets) TRY(moe_cuda_upload(ctx, g->targets, targets, (size_t)N * sizeof(int32_t)));
    /* embed: token rows, plus learned position rows 0..T-1 per sequence */
    void *x = g->xs[0];
    TRY(moe_cuda_embedding_forward(ctx, dt, x, g->tokens, gpt_cuda_C(g, g->off.wte), N, D));
    if (g->off.wpe >= 0) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) g->h_ids[(long)b * T + t] = t;
        TRY(moe_cuda_upload(ctx, g->pos_ids, g->h_ids, (size_t)N * sizeof(int32_t)));
        /* the position rows go through dln (free until backward) */
        TRY(moe_cuda_embedding_forward(ctx, dt, g->dln, g->pos_ids, gpt_cuda_C(g, g->off.wpe), N,
                                       D));
        TRY(moe_cuda_residual_forward(ctx, dt, x, x, g->dln, (long)N * D));
    }
    for (int l = 0; l < g->L; l++)
        TRY(block_forward(g, l, g->xs[l + 1], g->xs[l], g->dtmp, training));
    TRY(gpt_cuda_norm_forward(g, g->lnf, g->lnf_mean, g->lnf_rstd, g->xs[g->L],
                              gpt_cuda_P(g, g->off.lnf_w), gpt_cuda_P(g, g->off.lnf_b), N));
    TRY(moe_cuda_matmul_forward(ctx, dt, g->logits, g->lnf, gpt_cuda_C(g, g->off.lm_head), NULL, N,
                                D, g->V));
    if (targets)
        TRY(moe_cuda_crossentropy(ctx, dt, g->loss, g->count, NULL, g->logits, g->targets, N, g->V,
                                  -1, 1.0f, g->ce_scratch));
    g->has_forward = 1;
    return MOE_OK;
}
