/* Routing probe: runs labelled text through the model (no training) and
 * records where its tokens go, per topic and per MoE layer, plus a stretch
 * of validation text with the expert of every token. The JSON is
 * routing.json (docs/monitoring.md); the report draws it. */
#include "moe/text_data.h"
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

/* One labelled subset: a batch routed through the model. */
typedef struct probe_subset {
    const char *name;
    moe_batch batch;
} probe_subset;

static moe_status probe_subsets(moe_model *m, const char *kind, const probe_subset *subs, int n,
                                moe_arena *arena, cJSON *root) {
    int L = moe_model_moe_layers(m), E = moe_model_config_of(m)->moe.n_experts;
    double *buf = calloc((size_t)2 * L * E, sizeof *buf);
    if (!buf) return moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    cJSON *sub = cJSON_AddObjectToObject(root, "subsets");
    cJSON_AddStringToObject(sub, "kind", kind);
    cJSON *labels = cJSON_AddArrayToObject(sub, "labels");
    cJSON *tokens = cJSON_AddArrayToObject(sub, "tokens");
    cJSON *frac = cJSON_AddArrayToObject(sub, "fraction");
    cJSON *gate = cJSON_AddArrayToObject(sub, "mean_gate");
    moe_status st = MOE_OK;
    for (int l = 0; l < n && st == MOE_OK; l++) {
        topic_tally t = {buf, buf + (size_t)L * E, 0};
        memset(buf, 0, (size_t)2 * L * E * sizeof *buf);
        moe_arena_reset(arena);
        st = moe_model_forward_batch(m, &subs[l].batch, 0, NULL, arena, NULL, NULL);
        if (st != MOE_OK) break;
        tally_forward(m, E, &t);
        cJSON_AddItemToArray(labels, cJSON_CreateString(subs[l].name));
        cJSON_AddItemToArray(tokens, cJSON_CreateNumber((double)t.tokens));
        cJSON_AddItemToArray(frac, layer_rows(t.pairs, L, E, 1, t.tokens));
        cJSON_AddItemToArray(gate, layer_rows(t.gate, L, E, 0, t.tokens));
    }
    free(buf);
    return st;
}

/* Windows of each topic of a byte corpus, as subsets. */
static moe_status probe_topics(moe_model *m, const moe_corpus *c, const moe_topics *tp, int T,
                               int windows, moe_arena *arena, cJSON *root) {
    int32_t *x = malloc((size_t)tp->n * windows * T * sizeof *x);
    probe_subset subs[MOE_MAX_TOPICS];
    if (!x) return moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    for (int l = 0; l < tp->n; l++) {
        int32_t *xl = x + (size_t)l * windows * T;
        for (int w = 0; w < windows; w++)
            moe_topics_window(c, tp, l, w, windows, T, xl + (size_t)w * T);
        subs[l] = (probe_subset){tp->name[l], {xl, NULL, NULL, NULL, windows, T, NULL, NULL, NULL}};
    }
    moe_status st = probe_subsets(m, "topic", subs, tp->n, arena, root);
    free(x);
    return st;
}

/* One row of tokens with each token's top-1 expert and gate per layer;
 * strings[j] is how token j is shown. */
static moe_status probe_row(moe_model *m, const int32_t *x, int n, char *const *strings,
                            moe_arena *arena, cJSON *root) {
    moe_arena_reset(arena);
    moe_batch b = {x, NULL, NULL, NULL, 1, n, NULL, NULL, NULL};
    moe_status st = moe_model_forward_batch(m, &b, 0, NULL, arena, NULL, NULL);
    if (st != MOE_OK) return st;
    cJSON *s = cJSON_AddObjectToObject(root, "sample");
    cJSON *toks = cJSON_AddArrayToObject(s, "tokens");
    for (int j = 0; j < n; j++) cJSON_AddItemToArray(toks, cJSON_CreateString(strings[j]));
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
    return MOE_OK;
}

/* The first n bytes of the validation split, each a token. */
static moe_status probe_sample(moe_model *m, const moe_corpus *c, int n, moe_arena *arena,
                               cJSON *root) {
    int32_t *x = malloc((size_t)n * sizeof *x);
    char *chars = malloc((size_t)n * 2);
    char **strings = malloc((size_t)n * sizeof *strings);
    moe_status st = MOE_OK;
    if (!x || !chars || !strings) {
        st = moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    } else {
        for (int j = 0; j < n; j++) {
            x[j] = c->bytes[c->n_train + (size_t)j];
            /* byte tokens: non-ASCII bytes would make invalid UTF-8 */
            chars[2 * j] = x[j] == '\n' || (x[j] >= 32 && x[j] < 127) ? (char)x[j] : '?';
            chars[2 * j + 1] = 0;
            strings[j] = chars + 2 * j;
        }
        st = probe_row(m, x, n, strings, arena, root);
    }
    free(x);
    free(chars);
    free(strings);
    return st;
}

static cJSON *probe_root(const moe_model *m, long step) {
    const moe_model_config *mc = moe_model_config_of(m);
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddNumberToObject(root, "step", (double)step);
    cJSON_AddNumberToObject(root, "n_experts", mc->moe.n_experts);
    cJSON_AddNumberToObject(root, "top_k", mc->moe.top_k);
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int i = 0; i < moe_model_moe_layers(m); i++)
        cJSON_AddItemToArray(layers, cJSON_CreateNumber(moe_model_moe_layer_index(m, i)));
    return root;
}

/* Prints root into *json (on success) and frees it. */
static moe_status probe_finish(cJSON *root, moe_status st, char **json) {
    if (st == MOE_OK) {
        *json = cJSON_Print(root);
        if (!*json) st = moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    }
    cJSON_Delete(root);
    return st;
}

moe_status moe_routing_probe(moe_model *m, const moe_corpus *c, const moe_topics *topics, int T,
                             int windows, int sample_tokens, moe_arena *arena, long step,
                             char **json) {
    *json = NULL;
    if (moe_model_moe_layers(m) == 0)
        return moe_error(MOE_ERR_INVALID, "routing probe: the model has no MoE layer");
    cJSON *root = probe_root(m, step);
    if (!root) return moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    moe_status st = MOE_OK;
    if (topics && topics->n > 0 && windows > 0)
        st = probe_topics(m, c, topics, T, windows, arena, root);
    size_t val = c->n - c->n_train;
    int max = moe_model_config_of(m)->max_seq_len;
    int n = sample_tokens < max ? sample_tokens : max;
    if (n > (int)val) n = (int)val;
    if (st == MOE_OK && n > 0) st = probe_sample(m, c, n, arena, root);
    return probe_finish(root, st, json);
}

/* Rows of the first `per_group` validation examples of group g. */
static int group_rows(const moe_text_data *d, int g, int per_group, int T, int32_t *x,
                      uint8_t *pad) {
    const moe_text_set *s = &d->split[MOE_TEXT_VAL];
    int B = 0;
    for (size_t i = 0; i < s->n && B < per_group; i++) {
        if (s->ex[i].group != g) continue;
        moe_text_row(d, &s->ex[i], T, x + (size_t)B * T, pad + (size_t)B * T);
        B++;
    }
    return B;
}

/* The first validation example as [CLS] + tokens, shown through tok. */
static moe_status probe_text_sample(moe_model *m, const moe_text_data *d, const moe_tokenizer *tok,
                                    int n_max, moe_arena *arena, cJSON *root) {
    const moe_text_example *ex = &d->split[MOE_TEXT_VAL].ex[0];
    int n = ex->n + 1 < n_max ? ex->n + 1 : n_max;
    int32_t *x = malloc((size_t)n * sizeof *x);
    char **strings = calloc((size_t)n, sizeof *strings);
    moe_status st =
        x && strings ? MOE_OK : moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    for (int j = 0; j < n && st == MOE_OK; j++) {
        x[j] = j == 0 ? d->cls_id : ex->ids[j - 1];
        st = moe_tokenizer_token_text(tok, x[j], &strings[j]);
    }
    if (st == MOE_OK) st = probe_row(m, x, n, strings, arena, root);
    for (int j = 0; strings && j < n; j++) free(strings[j]);
    free(strings);
    free(x);
    return st;
}

moe_status moe_routing_probe_text(moe_model *m, const moe_text_data *d, const moe_tokenizer *tok,
                                  int T, int per_group, int sample_tokens, moe_arena *arena,
                                  long step, char **json) {
    *json = NULL;
    if (moe_model_moe_layers(m) == 0)
        return moe_error(MOE_ERR_INVALID, "routing probe: the model has no MoE layer");
    cJSON *root = probe_root(m, step);
    int G = d->n_groups;
    int32_t *x = malloc((size_t)G * (per_group > 0 ? per_group : 1) * T * sizeof *x);
    uint8_t *pad = malloc((size_t)G * (per_group > 0 ? per_group : 1) * T);
    probe_subset subs[MOE_TEXT_MAX_CLASSES];
    moe_status st =
        root && x && pad ? MOE_OK : moe_error(MOE_ERR_NOMEM, "routing probe: out of memory");
    int n = 0;
    for (int g = 0; g < G && st == MOE_OK && per_group > 0; g++) {
        size_t at = (size_t)n * per_group * T;
        int B = group_rows(d, g, per_group, T, x + at, pad + at);
        if (B > 0)
            subs[n++] = (probe_subset){d->group_name[g],
                                       {x + at, NULL, NULL, pad + at, B, T, NULL, NULL, NULL}};
    }
    if (st == MOE_OK && n > 0) st = probe_subsets(m, "class", subs, n, arena, root);
    int max = moe_model_config_of(m)->max_seq_len;
    int ns = sample_tokens < max ? sample_tokens : max;
    if (st == MOE_OK && ns > 1 && d->split[MOE_TEXT_VAL].n > 0)
        st = probe_text_sample(m, d, tok, ns, arena, root);
    free(x);
    free(pad);
    if (!root) return st;
    return probe_finish(root, st, json);
}
