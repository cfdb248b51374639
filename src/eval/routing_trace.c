/* The per-token routing trace of a transformer's last forward: which
 * experts each token went to in every MoE layer, with weights, whether each
 * pair was kept, and whether the routing fallback took the token. Shared by
 * `moe route` and `moe serve` ("trace": true). */
#include "moe/analysis.h"
#include "moe/model.h"
#include "moe/tokenizer.h"

#include "io/utf8.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

char *moe_token_display_text(const moe_tokenizer *tok, int32_t id) {
    char *s = NULL;
    if (tok && moe_tokenizer_token_text(tok, id, &s) == MOE_OK && s) {
        /* a BPE token may hold part of a character: JSON needs whole ones */
        char *out = utf8_sanitize((const unsigned char *)s, strlen(s));
        free(s);
        return out;
    }
    free(s);
    /* byte-level: the byte as a character when it is one (ASCII), else U+FFFD */
    unsigned char b = id > 0 && id < 256 ? (unsigned char)id : 0x80;
    return utf8_sanitize(&b, 1);
}

int moe_routing_pair_served(const moe_layer_stats *s, long row, int slot) {
    const size_t p = (size_t)row * s->top_k + slot;
    if (s->kept_pair[p] < 0) return 0;
    return !(s->fallback && s->fallback[row] && s->gate[p] == 0);
}

cJSON *moe_routing_trace_json(const moe_model *m, const moe_tokenizer *tok, const int32_t *ids,
                              int n, long first_row) {
    cJSON *tokens = cJSON_CreateArray();
    for (int j = 0; j < n; j++) {
        cJSON *t = cJSON_CreateObject();
        char *text = moe_token_display_text(tok, ids[j]);
        cJSON_AddStringToObject(t, "text", text ? text : "");
        free(text);
        cJSON_AddNumberToObject(t, "id", ids[j]);
        cJSON *layers = cJSON_AddArrayToObject(t, "layers");
        const long row = first_row + j;
        for (int i = 0; i < moe_model_moe_layers(m); i++) {
            const moe_layer_stats *s = moe_model_layer_stats(m, i);
            cJSON *l = cJSON_CreateObject();
            cJSON_AddNumberToObject(l, "layer", moe_model_moe_layer_index(m, i));
            cJSON *ex = cJSON_AddArrayToObject(l, "experts");
            cJSON *w = cJSON_AddArrayToObject(l, "weights");
            cJSON *kept = cJSON_AddArrayToObject(l, "kept");
            for (int k = 0; k < s->top_k; k++) {
                size_t p = (size_t)row * s->top_k + k;
                cJSON_AddItemToArray(ex, cJSON_CreateNumber(s->chosen[p]));
                cJSON_AddItemToArray(w, cJSON_CreateNumber(s->gate[p]));
                cJSON_AddItemToArray(kept, cJSON_CreateBool(moe_routing_pair_served(s, row, k)));
            }
            cJSON_AddBoolToObject(l, "fallback", s->fallback && s->fallback[row]);
            cJSON_AddItemToArray(layers, l);
        }
        cJSON_AddItemToArray(tokens, t);
    }
    return tokens;
}
