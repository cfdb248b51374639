/* Training backward of the GPU transformer: gpt_backward.c's pre-norm
 * decoder path in reverse, launcher by launcher. */
#include "models/cuda/gpt_cuda_internal.h"

#define TRY(call)                                                                                  \
    do {                                                                                           \
        moe_status st_ = (call);                                                                   \
        if (st_ != MOE_OK) return st_;                                                             \
    } while (0)

/* Block l's FFN backward: dout [N, D] -> g->dln (d ln2, written). */
static moe_status ffn_backward(gpt_cuda *g, int l, const void *dout, int N, float scale) {
    const gpt_cuda_block_off *o = &g->off.blocks[l];
    const gpt_cuda_block_acts *a = &g->acts[l];
    moe_cuda *ctx = g->ctx;
    const moe_dtype dt = g->dt;
    if (g->block_is_moe[l]) {
        moe_layer_cuda_params p = {gpt_cuda_C(g, o->gate), gpt_cuda_C(g, o->ew1),
                                   gpt_cuda_C(g, o->ew3), gpt_cuda_C(g, o->ew2)};
        moe_layer_cuda_grads gr = {gpt_cuda_G(g, o->gate), gpt_cuda_G(g, o->ew1),
                                   gpt_cuda_G(g, o->ew3), gpt_cuda_G(g, o->ew2)};
        /* the auxiliary losses enter the total loss with weight scale */
        return moe_layer_cuda_backward(a->ws, &p, &gr, g->dln, dout, scale);
    }
    const int D = g->D, F = g->F;
    const long nf = (long)N * F;
    const moe_activation act = g->cfg.ffn_act;
    /* out = hact W2^T: dh = dout W2, dW2 += dout^T hact */
    TRY(moe_cuda_matmul_backward(ctx, dt, g->dh, gpt_cuda_G(g, o->w2), NULL, dout, a->hact,
                                 gpt_cuda_C(g, o->w2), N, F, D));
    if (act == MOE_ACT_SWIGLU) {
        TRY(moe_cuda_swiglu_backward(ctx, dt, g->da, g->db, g->dh, a->h1, a->h3, nf));
        TRY(moe_cuda_matmul_backward(ctx, dt, g->dln, gpt_cuda_G(g, o->w1), NULL, g->da, a->ln2,
                                     gpt_cuda_C(g, o->w1), N, D, F));
        /* the W3 path's input gradient goes through dnorm (free here), then adds */
        TRY(moe_cuda_matmul_backward(ctx, dt, g->dnorm, gpt_cuda_G(g, o->w3), NULL, g->db, a->ln2,
                                     gpt_cuda_C(g, o->w3), N, D, F));
        return moe_cuda_residual_forward(ctx, dt, g->dln, g->dln, g->dnorm, (long)N * D);
    }
    moe_cuda_act k = act == MOE_ACT_RELU   ? MOE_CUDA_RELU
                     : act == MOE_ACT_GELU ? MOE_CUDA_GELU
                                           : MOE_CUDA_SILU;
    TRY(moe_cuda_act_backward(ctx, dt, k, g->da, g->dh, a->h1, nf));
    return moe_cuda_matmul_backward(ctx, dt, g->dln, gpt_cuda_G(g, o->w1), NULL, g->da, a->ln2,
                                    gpt_cuda_C(g, o->w1), N, D, F);
}

/* g->dx: gradient w.r.t. block l's output on entry, w.r.t. its input on
 * return (block_backward in gpt_backward.c, pre-norm). */
static moe_status block_backward(gpt_cuda *g, int l, float scale) {
    const moe_model_config *c = &g->cfg;
    const gpt_cuda_block_off *o = &g->off.blocks[l];
    const gpt_cuda_block_acts *a = &g->acts[l];
    moe_cuda *ctx = g->ctx;
    const moe_dtype dt = g->dt;
    const int B = g->B, T = g->T, N = B * T, D = g->D, H = g->H, KVH = g->KVH, hd = g->hd;
    const int Q = g->Q;
    const long ND = (long)N * D;
    /* out = x_mid + ffn(ln2(x_mid)) */
    TRY(ffn_backward(g, l, g->dx, N, scale));
    TRY(gpt_cuda_norm_backward(g, g->dnorm, gpt_cuda_G(g, o->ln2_w), gpt_cuda_G(g, o->ln2_b),
                               g->dln, a->x_mid, gpt_cuda_P(g, o->ln2_w), a->ln2_mean, a->ln2_rstd,
                               N));
    TRY(moe_cuda_residual_forward(ctx, dt, g->dx, g->dx, g->dnorm, ND)); /* d x_mid */
    /* x_mid = x_in + o_proj(attention(rope(qkv(ln1(x_in))))) */
    TRY(moe_cuda_matmul_backward(ctx, dt, g->dtmp, gpt_cuda_G(g, o->o_w), gpt_cuda_G(g, o->o_b),
                                 g->dx, a->attn, gpt_cuda_C(g, o->o_w), N, D, D));
    const void *q = a->qkv, *k = gpt_cuda_at(g, a->qkv, (long)H * hd);
    const void *v = gpt_cuda_at(g, a->qkv, (long)(H + KVH) * hd);
    void *dq = g->dqkv, *dk = gpt_cuda_at(g, g->dqkv, (long)H * hd);
    void *dv = gpt_cuda_at(g, g->dqkv, (long)(H + KVH) * hd);
    TRY(moe_cuda_attention_backward(ctx, dt, dq, dk, dv, g->dtmp, a->attn, q, k, v, a->lse, NULL, B,
                                    T, H, KVH, hd, Q, Q, 1, g->att_scratch));
    if (c->pos == MOE_POS_ROPE) {
        TRY(moe_cuda_rope_backward(ctx, dt, dq, dq, B, T, H, hd, Q, 0, c->rope_theta));
        TRY(moe_cuda_rope_backward(ctx, dt, dk, dk, B, T, KVH, hd, Q, 0, c->rope_theta));
    }
    TRY(moe_cuda_matmul_backward(ctx, dt, g->dln, gpt_cuda_G(g, o->qkv_w), gpt_cuda_G(g, o->qkv_b),
                                 g->dqkv, a->ln1, gpt_cuda_C(g, o->qkv_w), N, D, Q));
    TRY(gpt_cuda_norm_backward(g, g->dnorm, gpt_cuda_G(g, o->ln1_w), gpt_cuda_G(g, o->ln1_b),
                               g->dln, g->xs[l], gpt_cuda_P(g, o->ln1_w), a->ln1_mean, a->ln1_rstd,
                               N));
    return moe_cuda_residual_forward(ctx, dt, g->dx, g->dx, g->dnorm, ND); /* d x_in */
}

moe_status gpt_cuda_backward(gpt_cuda *g, float scale) {
    if (!g->has_forward || !g->has_targets || g->logits_are_grads)
        return moe_error(
            MOE_ERR_INVALID,
            "gpt_cuda_backward: needs a forward with targets first (once per forward)");
    moe_cuda *ctx = g->ctx;
    const moe_dtype dt = g->dt;
    const int N = g->B * g->T, D = g->D, V = g->V;
    /* dlogits = scale * (softmax - onehot) / count, written over the logits */
    TRY(moe_cuda_crossentropy(ctx, dt, g->loss, g->count, g->logits, g->logits, g->targets, N, V,
                              -1, scale, g->ce_scratch));
    g->logits_are_grads = 1;
    /* LM head: d lnf written (into dln), d lm_head added (the embedding's
     * gradient when tied: both uses add into one tensor) */
    TRY(moe_cuda_matmul_backward(ctx, dt, g->dln, gpt_cuda_G(g, g->off.lm_head), NULL, g->logits,
                                 g->lnf, gpt_cuda_C(g, g->off.lm_head), N, D, V));
    TRY(gpt_cuda_norm_backward(g, g->dx, gpt_cuda_G(g, g->off.lnf_w), gpt_cuda_G(g, g->off.lnf_b),
                               g->dln, g->xs[g->L], gpt_cuda_P(g, g->off.lnf_w), g->lnf_mean,
                               g->lnf_rstd, N));
    for (int l = g->L - 1; l >= 0; l--) TRY(block_backward(g, l, scale));
    TRY(moe_cuda_embedding_backward(ctx, dt, gpt_cuda_G(g, g->off.wte), g->dx, g->tokens, N, D));
    if (g->off.wpe >= 0)
        TRY(moe_cuda_embedding_backward(ctx, dt, gpt_cuda_G(g, g->off.wpe), g->dx, g->pos_ids, N,
                                        D));
    return MOE_OK;
}
