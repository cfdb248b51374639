/* The per-token routing trace of a transformer's last forward: which
 * experts each token went to in every MoE layer, with weights, whether each
 * pair was kept, and whether the routing fallback took the token. Shared by
 * `moe route` and `moe serve` ("trace": true). */
#include "moe/analysis.h"
#include "moe/model.h"
#include "moe/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    size_t len;
    unsigned cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        len = 2, cp = s[0] & 0x1F;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        len = 3, cp = s[0] & 0x0F;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n) return 0;
    for (size_t j = 1; j < len; j++) {
        if ((s[j] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[j] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

char *moe_token_display_text(const moe_tokenizer *tok, int32_t id) {
    char *s = NULL;
    if (tok && moe_tokenizer_token_text(tok, id, &s) == MOE_OK && s) {
        /* a BPE token may hold part of a character: JSON needs whole ones */
        size_t n = strlen(s);
        for (size_t i = 0; i < n;) {
            size_t l = utf8_seq((const unsigned char *)s + i, n - i);
            if (l == 0) {
                s[i++] = '?';
            } else {
                i += l;
            }
        }
        return s;
    }
    free(s);
    s = malloc(8);
    if (s) snprintf(s, 8, "%c", id >= 32 && id < 127 ? (char)id : '?');
    return s;
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
