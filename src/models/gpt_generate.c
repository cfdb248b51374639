/* Generation with a KV cache: the prompt is run once through every block
 * (keys and values stored per layer), then each new token costs one row. */
#include "models/gpt_internal.h"
#include "models/sampling.h"
#include "nn/norm.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct kv_cache {
    moe_real *k, *v; /* [L, S, KVH * hd] each */
    int len;         /* positions filled */
} kv_cache;

/* Runs n tokens at positions cache->len.. through the model; logits [V] of
 * the last one. */
static moe_status decode(gpt_model *m, kv_cache *cache, const int32_t *tokens, int n,
                         moe_real *logits, moe_arena *arena) {
    const moe_model_config *c = &m->cfg;
    int D = c->d_model, H = c->n_head, KVH = c->n_kv_head, hd = gpt_head_dim(c);
    int Q = m->qkv_dim, S = c->max_seq_len, pos0 = cache->len, kvw = KVH * hd;
    long ND = (long)n * D;
    moe_real *x, *ln, *mean, *rstd, *qkv, *attn, *tmp, *scores;
    ALLOC(x, ND);
    ALLOC(ln, ND);
    ALLOC(mean, n);
    ALLOC(rstd, n);
    ALLOC(qkv, (size_t)n * Q);
    ALLOC(attn, ND);
    ALLOC(tmp, ND);
    ALLOC(scores, S);
    embedding_forward(x, tokens, m->w.wte, n, D);
    const moe_real *pos = m->w.wpe ? m->w.wpe : m->sinusoid;
    if (pos)
        for (int t = 0; t < n; t++)
            residual_forward(x + (size_t)t * D, x + (size_t)t * D, pos + (size_t)(pos0 + t) * D, D);
    for (int l = 0; l < c->n_layer; l++) {
        const gpt_block_w *w = &m->w.blocks[l];
        moe_real *kc = cache->k + (size_t)l * S * kvw, *vc = cache->v + (size_t)l * S * kvw;
        norm_forward(c->norm, ln, mean, rstd, x, w->ln1_w, w->ln1_b, n, D, c->norm_eps);
        matmul_forward(qkv, ln, w->qkv_w, w->qkv_b, n, D, Q);
        if (c->pos == MOE_POS_ROPE) {
            rope_forward(qkv, qkv, 1, n, H, hd, Q, pos0, c->rope_theta);
            rope_forward(qkv + H * hd, qkv + H * hd, 1, n, KVH, hd, Q, pos0, c->rope_theta);
        }
        for (int t = 0; t < n; t++) {
            memcpy(kc + (size_t)(pos0 + t) * kvw, qkv + (size_t)t * Q + H * hd,
                   kvw * sizeof(moe_real));
            memcpy(vc + (size_t)(pos0 + t) * kvw, qkv + (size_t)t * Q + (H + KVH) * hd,
                   kvw * sizeof(moe_real));
        }
        attention_cached_forward(attn, scores, qkv, Q, kc, vc, n, pos0, H, KVH, hd);
        matmul_forward(tmp, attn, w->o_w, w->o_b, n, D, D);
        residual_forward(x, x, tmp, ND);
        norm_forward(c->norm, ln, mean, rstd, x, w->ln2_w, w->ln2_b, n, D, c->norm_eps);
        moe_status st;
        if (m->block_is_moe[l]) {
            moe_layer_cache *lc;
            moe_layer_stats *ls;
            st = moe_layer_forward(&c->moe, &w->moe, tmp, ln, n, 0, NULL, arena, &lc, &ls);
        } else {
            mlp_cache mc;
            st = mlp_forward(tmp, &mc, ln, w->w1, w->w3, w->w2, c->ffn_act, n, D, c->d_ff, arena);
        }
        if (st != MOE_OK) return st;
        residual_forward(x, x, tmp, ND);
    }
    cache->len += n;
    moe_real *last = x + (size_t)(n - 1) * D;
    norm_forward(c->norm, ln, mean, rstd, last, m->w.lnf_w, m->w.lnf_b, 1, D, c->norm_eps);
    matmul_forward(logits, ln, m->w.lm_head, NULL, 1, D, c->vocab_size);
    return MOE_OK;
}

moe_status gpt_generate(gpt_model *m, const int32_t *prompt, int n_prompt, int n_new,
                        const moe_sampling *s, moe_rng *rng, int32_t *out) {
    const moe_model_config *c = &m->cfg;
    int V = c->vocab_size, S = c->max_seq_len;
    if (n_prompt < 1) return moe_error(MOE_ERR_INVALID, "generate: the prompt is empty");
    if (c->bidirectional || c->post_ln)
        return moe_error(MOE_ERR_INVALID, "generate: needs a causal pre-norm decoder; this model "
                                          "is an encoder or post-norm (model.bidirectional, "
                                          "model.post_ln)");
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return moe_error(MOE_ERR_INVALID, "generate: prompt token %d at %d is outside [0, %d)",
                             prompt[i], i, V);
    size_t kv = (size_t)c->n_layer * S * c->n_kv_head * gpt_head_dim(c);
    kv_cache cache = {malloc(kv * sizeof(moe_real)), malloc(kv * sizeof(moe_real)), 0};
    moe_real *logits = malloc((size_t)V * sizeof(moe_real));
    moe_real *probs = malloc((size_t)V * sizeof(moe_real));
    int32_t *order = malloc((size_t)V * sizeof(int32_t));
    moe_arena arena;
    moe_arena_init(&arena);
    moe_status st = MOE_OK;
    if (!cache.k || !cache.v || !logits || !probs || !order) {
        st = moe_error(MOE_ERR_NOMEM, "generate: cannot allocate the KV cache");
        goto out_free;
    }
    memmove(out, prompt, (size_t)n_prompt * sizeof *out);
    int total = n_prompt;
    /* the context is the last min(total, S) tokens; rebuilt when full */
    int ctx = total < S ? total : S;
    st = decode(m, &cache, out + total - ctx, ctx, logits, &arena);
    for (int i = 0; i < n_new && st == MOE_OK; i++) {
        /* NaN logits would sample garbage that looks like text; +inf is an
         * answer for argmax but makes the softmax of sampling NaN */
        for (int v = 0; v < V; v++)
            if (isnan(logits[v]) || (s->temperature > 0 && isinf(logits[v]) && logits[v] > 0)) {
                st = moe_error(MOE_ERR_NUMERIC,
                               "generate: the logits of generated token %d are not finite "
                               "(NaN or infinite weights or router scores)",
                               i);
                goto out_free;
            }
        int32_t next = sample_token(logits, V, s, rng, probs, order);
        out[total++] = next;
        if (i == n_new - 1) break;
        moe_arena_reset(&arena);
        if (cache.len == S) { /* slide: keep the newest half of the window */
            cache.len = 0;
            ctx = S / 2 > 0 ? S / 2 : 1;
            st = decode(m, &cache, out + total - ctx, ctx, logits, &arena);
        } else {
            st = decode(m, &cache, &out[total - 1], 1, logits, &arena);
        }
    }
out_free:
    moe_arena_free(&arena);
    free(cache.k);
    free(cache.v);
    free(logits);
    free(probs);
    free(order);
    return st;
}
