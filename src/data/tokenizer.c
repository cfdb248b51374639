/* The tokenizer object: building one from a merge list, freeing it, and
 * what it tells about its tokens (ids, bytes, display text, specials). */
#include "data/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SPECIAL_NAMES[MOE_TOK_N_SPECIAL] = {"[CLS]", "[SEP]", "[PAD]", "[MASK]"};

moe_status tok_alloc(moe_tokenizer **t, tok_kind kind, int n_base) {
    *t = calloc(1, sizeof **t);
    if (!*t) return moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory");
    (*t)->kind = kind;
    (*t)->n_base = n_base;
    moe_status st = tok_pairmap_init(&(*t)->pair_rule, (size_t)n_base);
    if (st == MOE_OK) st = tok_pretok_create(&(*t)->pretok);
    if (st != MOE_OK) {
        moe_tokenizer_free(*t);
        *t = NULL;
    }
    return st;
}

void moe_tokenizer_free(moe_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->off);
    free(t->merges);
    free(t->rules);
    tok_pairmap_free(&t->pair_rule);
    tok_pretok_free(t->pretok);
    free(t);
}

moe_status tok_add_rule(moe_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t out) {
    int32_t i = tok_pairmap_get(&t->pair_rule, left, right);
    if (i >= 0) {
        t->rules[i] = (tok_rule){rank, out};
        return MOE_OK;
    }
    if (t->n_rules == t->cap_rules) {
        int cap = t->cap_rules ? 2 * t->cap_rules : 256;
        tok_rule *bigger = realloc(t->rules, (size_t)cap * sizeof *bigger);
        if (!bigger) return moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory");
        t->rules = bigger;
        t->cap_rules = cap;
    }
    t->rules[t->n_rules] = (tok_rule){rank, out};
    return tok_pairmap_put(&t->pair_rule, left, right, t->n_rules++);
}

moe_status tok_from_merges(moe_tokenizer **t, const tok_merge *merges, int n_merges,
                           const char *path) {
    const char *where = path ? path : "trained tokenizer";
    int n_base = 256 + n_merges;
    moe_status st = tok_alloc(t, TOK_BYTE_BPE, n_base);
    if (st != MOE_OK) return st;
    moe_tokenizer *k = *t;
    k->n_merges = n_merges;
    k->merges = malloc((size_t)(n_merges ? n_merges : 1) * sizeof *k->merges);
    k->off = malloc(((size_t)n_base + 1) * sizeof *k->off);
    if (!k->merges || !k->off) st = moe_error(MOE_ERR_NOMEM, "%s: out of memory", where);
    /* first the offsets, checking that each merge uses earlier ids */
    for (int i = 0; st == MOE_OK && i <= 256; i++) {
        if (i < 256) k->byte_id[i] = i;
        k->off[i] = (size_t)i;
    }
    for (int i = 0; st == MOE_OK && i < n_merges; i++) {
        int32_t id = 256 + i, l = merges[i].left, r = merges[i].right;
        if (l < 0 || l >= id || r < 0 || r >= id) {
            st = moe_error(MOE_ERR_FORMAT,
                           "%s: merge %d is [%d, %d] but may only use ids below %d (the 256 "
                           "bytes and earlier merges)",
                           where, i, (int)l, (int)r, (int)id);
            break;
        }
        k->merges[i] = merges[i];
        k->off[id + 1] = k->off[id] + (k->off[l + 1] - k->off[l]) + (k->off[r + 1] - k->off[r]);
        st = tok_add_rule(k, l, r, i, id);
    }
    if (st == MOE_OK && !(k->blob = malloc(k->off[n_base])))
        st = moe_error(MOE_ERR_NOMEM, "%s: out of memory", where);
    for (int i = 0; st == MOE_OK && i < n_base; i++) {
        if (i < 256) {
            k->blob[i] = (uint8_t)i;
            continue;
        }
        tok_merge m = merges[i - 256];
        size_t nl = k->off[m.left + 1] - k->off[m.left];
        memcpy(k->blob + k->off[i], k->blob + k->off[m.left], nl);
        memcpy(k->blob + k->off[i] + nl, k->blob + k->off[m.right],
               k->off[m.right + 1] - k->off[m.right]);
    }
    if (st != MOE_OK) {
        moe_tokenizer_free(k);
        *t = NULL;
    }
    return st;
}

int moe_tokenizer_vocab_size(const moe_tokenizer *t) {
    return t->n_base + MOE_TOK_N_SPECIAL;
}

int32_t moe_tokenizer_special(const moe_tokenizer *t, moe_special_token kind) {
    return (int)kind >= 0 && kind < MOE_TOK_N_SPECIAL ? t->n_base + (int32_t)kind : -1;
}

const char *moe_tokenizer_special_name(moe_special_token kind) {
    return (int)kind >= 0 && kind < MOE_TOK_N_SPECIAL ? SPECIAL_NAMES[kind] : NULL;
}

const char *moe_tokenizer_kind(const moe_tokenizer *t) {
    return t->kind == TOK_GPT2 ? "gpt2" : "byte-bpe";
}

moe_status moe_tokenizer_token_bytes(const moe_tokenizer *t, int32_t id, const uint8_t **bytes,
                                     size_t *n) {
    if (id < 0 || id >= moe_tokenizer_vocab_size(t))
        return moe_error(MOE_ERR_INVALID, "tokenizer: token id %d is outside [0, %d)", (int)id,
                         moe_tokenizer_vocab_size(t));
    if (id >= t->n_base) {
        const char *name = SPECIAL_NAMES[id - t->n_base];
        *bytes = (const uint8_t *)name;
        *n = strlen(name);
    } else {
        *bytes = t->blob + t->off[id];
        *n = t->off[id + 1] - t->off[id];
    }
    return MOE_OK;
}

/* Length of the valid UTF-8 character at s[0, n) if it is printable (not a
 * C0/C1 control), else 0. */
static size_t printable_utf8(const uint8_t *s, size_t n) {
    if (s[0] >= 0x20 && s[0] < 0x7f) return 1;
    if (s[0] < 0xc2 || s[0] > 0xf4) return 0;
    size_t len = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    uint32_t cp = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) cp = cp << 6 | (s[i] & 0x3f);
    static const uint32_t smallest[5] = {0, 0, 0xa0, 0x800, 0x10000}; /* no C1, no overlong */
    if (cp < smallest[len] || (cp >= 0xd800 && cp < 0xe000) || cp > 0x10ffff) return 0;
    return len;
}

moe_status moe_tokenizer_token_text(const moe_tokenizer *t, int32_t id, char **out) {
    const uint8_t *b;
    size_t n;
    moe_status st = moe_tokenizer_token_bytes(t, id, &b, &n);
    if (st != MOE_OK) return st;
    char *s = malloc(4 * n + 1), *w = s; /* \xHH is the longest form of a byte */
    if (!s) return moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < n;) {
        size_t len = b[i] == '\\' ? 0 : printable_utf8(b + i, n - i);
        if (len) {
            memcpy(w, b + i, len);
            w += len;
            i += len;
            continue;
        }
        switch (b[i]) {
        case '\n':
            w += sprintf(w, "\\n");
            break;
        case '\t':
            w += sprintf(w, "\\t");
            break;
        case '\r':
            w += sprintf(w, "\\r");
            break;
        case '\\':
            w += sprintf(w, "\\\\");
            break;
        default:
            w += sprintf(w, "\\x%02x", b[i]);
        }
        i++;
    }
    *w = '\0';
    *out = s;
    return MOE_OK;
}
