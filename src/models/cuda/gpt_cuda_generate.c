/* gpt_cuda_generate: moe_model_generate's decoding on the GPU, without a KV
 * cache yet: every new token runs the whole context window through the model
 * (so each token costs a forward over up to max_seq_len tokens). The window
 * moves as the CPU's KV cache does (gpt_generate.c: when it is full, the
 * newest half is kept), so both devices see the same contexts; the sampling
 * is the CPU's (sampling.c) on the last row's logits. */
#include "models/cuda/gpt_cuda.h"
#include "models/sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

moe_status gpt_cuda_generate(gpt_cuda *g, const moe_model_config *c, const int32_t *prompt,
                             int n_prompt, int n_new, const moe_sampling *s, moe_rng *rng,
                             int32_t *out) {
    const int V = c->vocab_size, S = c->max_seq_len;
    if (n_prompt < 1) return moe_error(MOE_ERR_INVALID, "generate: the prompt is empty");
    float *logits = malloc((size_t)V * sizeof *logits);
    moe_real *probs = malloc((size_t)V * sizeof *probs);
    int32_t *order = malloc((size_t)V * sizeof *order);
    moe_status st = MOE_OK;
    if (!logits || !probs || !order) st = moe_error(MOE_ERR_NOMEM, "generate: out of memory");
    if (st == MOE_OK) memmove(out, prompt, (size_t)n_prompt * sizeof *out);
    int total = n_prompt, len = total < S ? total : S; /* len: the window, as the CPU cache */
    for (int i = 0; i < n_new && st == MOE_OK; i++) {
        st = gpt_cuda_forward(g, out + total - len, NULL, 1, len, 0);
        if (st == MOE_OK) st = gpt_cuda_read_logits(g, len - 1, 1, logits);
        if (st != MOE_OK) break;
        for (int v = 0; v < V; v++) /* as gpt_generate: never sample from NaN */
            if (isnan(logits[v]) || (s->temperature > 0 && isinf(logits[v]) && logits[v] > 0)) {
                st = moe_error(MOE_ERR_NUMERIC,
                               "generate: the logits of generated token %d are not finite "
                               "(NaN or infinite weights or router scores)",
                               i);
                break;
            }
        if (st != MOE_OK) break;
        out[total++] = sample_token(logits, V, s, rng, probs, order);
        len = len == S ? (S / 2 > 0 ? S / 2 : 1) : len + 1;
    }
    free(logits);
    free(probs);
    free(order);
    return st;
}
