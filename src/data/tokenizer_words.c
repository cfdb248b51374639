/* Training's view of a text: each distinct pre-tokenized chunk once, with
 * how often it occurs, as a sequence of byte symbols that merges rewrite.
 * Natural text has far fewer distinct chunks than chunks (the Bible: ~1 M
 * chunks, ~30 k distinct), so pairs are counted over these. */
#include "data/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct count_ctx {
    const uint8_t *text;
    tok_bytesmap seen; /* chunk bytes -> word index */
    size_t *first;     /* [cap] offset of each word's first occurrence */
    int32_t *len;      /* [cap] */
    int64_t *count;    /* [cap] */
    size_t cap;
    int32_t n;
} count_ctx;

static moe_status grow(count_ctx *c) {
    size_t cap = c->cap ? 2 * c->cap : 4096;
    size_t *first = realloc(c->first, cap * sizeof *first);
    if (first) c->first = first;
    int32_t *len = realloc(c->len, cap * sizeof *len);
    if (len) c->len = len;
    int64_t *count = realloc(c->count, cap * sizeof *count);
    if (count) c->count = count;
    if (!first || !len || !count)
        return moe_error(MOE_ERR_NOMEM, "tokenizer training: out of memory");
    c->cap = cap;
    return MOE_OK;
}

static moe_status count_chunk(void *user, size_t offset, size_t length) {
    count_ctx *c = user;
    if (length > INT32_MAX)
        return moe_error(MOE_ERR_INVALID, "tokenizer training: a %zu-byte chunk is over 2 GiB",
                         length);
    if ((size_t)c->n == c->cap) {
        moe_status st = grow(c);
        if (st != MOE_OK) return st;
    }
    int32_t w;
    moe_status st = tok_bytesmap_intern(&c->seen, c->text + offset, length, c->n, &w);
    if (st != MOE_OK) return st;
    if (w == c->n) { /* new */
        if (c->n == INT32_MAX)
            return moe_error(MOE_ERR_INVALID, "tokenizer training: over 2^31 distinct chunks");
        c->first[w] = offset;
        c->len[w] = (int32_t)length;
        c->count[w] = 0;
        c->n++;
    }
    c->count[w]++;
    return MOE_OK;
}

moe_status tok_words_count(tok_words *w, const tok_pretok *p, const uint8_t *text, size_t n) {
    memset(w, 0, sizeof *w);
    count_ctx c = {.text = text};
    moe_status st = tok_bytesmap_init(&c.seen, 1 << 16);
    if (st == MOE_OK) st = tok_pretok_split(p, text, n, count_chunk, &c);
    size_t total = 0;
    for (int32_t i = 0; st == MOE_OK && i < c.n; i++) total += (size_t)c.len[i];
    if (st == MOE_OK) {
        w->n = c.n;
        w->count = c.count;
        w->len = c.len;
        w->start = malloc((c.n > 0 ? (size_t)c.n : 1) * sizeof *w->start);
        w->sym = malloc((total ? total : 1) * sizeof *w->sym);
        c.count = NULL;
        c.len = NULL;
        if (!w->start || !w->sym)
            st = moe_error(MOE_ERR_NOMEM, "tokenizer training: out of memory for %zu symbols",
                           total);
    }
    size_t at = 0;
    for (int32_t i = 0; st == MOE_OK && i < w->n; i++) {
        w->start[i] = at;
        for (int32_t k = 0; k < w->len[i]; k++) w->sym[at++] = text[c.first[i] + (size_t)k];
    }
    tok_bytesmap_free(&c.seen);
    free(c.first);
    free(c.len);
    free(c.count);
    if (st != MOE_OK) tok_words_free(w);
    return st;
}

void tok_words_free(tok_words *w) {
    free(w->count);
    free(w->start);
    free(w->len);
    free(w->sym);
    memset(w, 0, sizeof *w);
}
