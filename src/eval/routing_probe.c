/* Routing probe: runs labelled text through the model (no training) and
 * records where its tokens go, per topic and per MoE layer, plus a stretch
 * of validation text with the expert of every token. The JSON is
 * routing.json (docs/monitoring.md); the report draws it. */
#include "moe/train.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* Per topic: kept pairs and summed gate weight per (MoE layer, expert). */
typedef struct topic_tally {
    double *pairs; /* [L, E] */
    double *gate;  /* [L, E] */
    long tokens;
} topic_tally;

static void tally_forward(const moe_model *m, int E, topic_tally *t) {
    int L = moe_model_moe_layers(m);
    for (int i = 0; i < L; i++) {
        const moe_layer_stats *s = moe_model_layer_stats(m, i);
        for (long p = 0; p < (long)s->n_tokens * s->top_k; p++) {
            int e = s->chosen[p];
            t->gate[i * E + e] += s->gate[p];
            if (s->kept_pair[p] >= 0) t->pairs[i * E + e] += 1;
        }
    }
    t->tokens += moe_model_layer_stats(m, 0)->n_tokens;
}

/* [[E values] per layer], pairs normalised to shares, gates to means. */
static cJSON *layer_rows(const double *v, int L, int E, int per_row_share, long tokens) {
    cJSON *rows = cJSON_CreateArray();
    for (int i = 0; i < L; i++) {
        double total = 0;
        for (int e = 0; e < E; e++) total += v[i * E + e];
        double div = per_row_share ? total : (double)tokens;
        cJSON *row = cJSON_CreateArray();
        for (int e = 0; e < E; e++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber(div > 0 ? v[i * E + e] / div : 0));
        cJSON_AddItemToArray(rows, row);
    }
    return rows;
}

static moe_status probe_topics(moe_model *m, const moe_corpus *c, const moe_topics *tp, int T,
                               int windows, moe_arena *arena, cJSON *root) {
    int L = moe_model_moe_layers(m), E = moe_model_config_of(m)->moe.n_experts;
    int32_t *x = malloc((size_t)windows * T * sizeof *x);
    double *buf = calloc((size_t)2 * L * E, sizeof *buf);
    cJSON *sub = cJSON_AddObjectToObject(root, "subsets");
    cJSON_AddStringToObject(sub, "kind", "topic");
    cJSON *labels = cJSON_AddArrayToObject(sub, "labels");
    cJSON *tokens = cJSON_AddArrayToObject(sub, "tokens");
    cJSON *frac = cJSON_AddArrayToObject(sub, "fraction");
    cJSON *gate = cJSON_AddArrayToObject(sub, "mean_gate");
    moe_status st = (x && buf) ? MOE_OK : moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    for (int l = 0; l < tp->n && st == MOE_OK; l++) {
        topic_tally t = {buf, buf + (size_t)L * E, 0};
        memset(buf, 0, (size_t)2 * L * E * sizeof *buf);
        for (int w = 0; w < windows; w++)
            moe_topics_window(c, tp, l, w, windows, T, x + (size_t)w * T);
        moe_arena_reset(arena);
        st = moe_model_forward(m, x, NULL, windows, T, 0, NULL, arena, NULL, NULL);
        if (st != MOE_OK) break;
        tally_forward(m, E, &t);
        cJSON_AddItemToArray(labels, cJSON_CreateString(tp->name[l]));
        cJSON_AddItemToArray(tokens, cJSON_CreateNumber((double)t.tokens));
        cJSON_AddItemToArray(frac, layer_rows(t.pairs, L, E, 1, t.tokens));
        cJSON_AddItemToArray(gate, layer_rows(t.gate, L, E, 0, t.tokens));
    }
    free(x);
    free(buf);
    return st;
}

/* The first n tokens of the validation split, each with its top-1 expert. */
static moe_status probe_sample(moe_model *m, const moe_corpus *c, int n, moe_arena *arena,
                               cJSON *root) {
    int32_t *x = malloc((size_t)n * sizeof *x);
    if (!x) return moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    for (int j = 0; j < n; j++) x[j] = c->bytes[c->n_train + (size_t)j];
    moe_arena_reset(arena);
    moe_status st = moe_model_forward(m, x, NULL, 1, n, 0, NULL, arena, NULL, NULL);
    if (st != MOE_OK) {
        free(x);
        return st;
    }
    cJSON *s = cJSON_AddObjectToObject(root, "sample");
    cJSON *toks = cJSON_AddArrayToObject(s, "tokens");
    for (int j = 0; j < n; j++) {
        /* byte tokens: non-ASCII bytes would make invalid UTF-8 */
        char ch[2] = {x[j] == '\n' || (x[j] >= 32 && x[j] < 127) ? (char)x[j] : '?', 0};
        cJSON_AddItemToArray(toks, cJSON_CreateString(ch));
    }
    cJSON *experts = cJSON_AddArrayToObject(s, "expert");
    cJSON *gates = cJSON_AddArrayToObject(s, "gate");
    for (int i = 0; i < moe_model_moe_layers(m); i++) {
        const moe_layer_stats *ls = moe_model_layer_stats(m, i);
        cJSON *er = cJSON_CreateArray(), *gr = cJSON_CreateArray();
        for (int j = 0; j < n; j++) {
            cJSON_AddItemToArray(er, cJSON_CreateNumber(ls->chosen[(size_t)j * ls->top_k]));
            cJSON_AddItemToArray(gr, cJSON_CreateNumber(ls->gate[(size_t)j * ls->top_k]));
        }
        cJSON_AddItemToArray(experts, er);
        cJSON_AddItemToArray(gates, gr);
    }
    free(x);
    return MOE_OK;
}

moe_status moe_routing_probe(moe_model *m, const moe_corpus *c, const moe_topics *topics, int T,
                             int windows, int sample_tokens, moe_arena *arena, long step,
                             char **json) {
    *json = NULL;
    const moe_model_config *mc = moe_model_config_of(m);
    int L = moe_model_moe_layers(m);
    if (L == 0) return moe_error(MOE_ERR_INVALID, "routing probe: the model has no MoE layer");
    cJSON *root = cJSON_CreateObject();
    if (!root) return moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    cJSON_AddNumberToObject(root, "step", (double)step);
    cJSON_AddNumberToObject(root, "n_experts", mc->moe.n_experts);
    cJSON_AddNumberToObject(root, "top_k", mc->moe.top_k);
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int i = 0; i < L; i++)
        cJSON_AddItemToArray(layers, cJSON_CreateNumber(moe_model_moe_layer_index(m, i)));
    moe_status st = MOE_OK;
    if (topics && topics->n > 0 && windows > 0)
        st = probe_topics(m, c, topics, T, windows, arena, root);
    size_t val = c->n - c->n_train;
    int n = sample_tokens < mc->max_seq_len ? sample_tokens : mc->max_seq_len;
    if (n > (int)val) n = (int)val;
    if (st == MOE_OK && n > 0) st = probe_sample(m, c, n, arena, root);
    if (st == MOE_OK) {
        *json = cJSON_Print(root);
        if (!*json) st = moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    }
    cJSON_Delete(root);
    return st;
}
