/* Encoding (pre-tokenize, then BPE inside each chunk) and decoding.
 *
 * Inside a chunk, rounds as in gpt-3-encoder's bpe(): take the lowest rank
 * among adjacent pairs; of the pairs with that rank take the kind found
 * last in the chunk, and merge its occurrences left to right. (Only
 * gpt-3-encoder's comma-joined pair keys give two kinds of pair one rank,
 * docs/tokenizers.md.) A heap of (rank, position) over a linked list of
 * symbols makes a round cost its merges times log n rather than a pass over
 * the chunk, so long chunks stay O(n log n). */
#include "data/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct pair_entry {
    int32_t rank, pos;   /* pos: index of the left symbol */
    int32_t left, right; /* the two ids when pushed; stale once they differ */
} pair_entry;

/* Scratch for one chunk, reused across the chunks of one call. */
typedef struct bpe_work {
    int32_t *id, *next, *prev; /* symbols as a linked list; id -1: merged away */
    size_t cap;                /* symbols the arrays hold */
    pair_entry *heap;          /* 3 cap: the first pairs, then 2 per merge */
    pair_entry *batch;         /* cap: the live pairs of one rank */
    size_t n_heap;
} bpe_work;

static void work_free(bpe_work *w) {
    free(w->id);
    free(w->next);
    free(w->prev);
    free(w->heap);
    free(w->batch);
    memset(w, 0, sizeof *w);
}

static moe_status work_reserve(bpe_work *w, size_t n) {
    if (n <= w->cap) return MOE_OK;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n) cap *= 2;
    work_free(w);
    w->id = malloc(cap * sizeof *w->id);
    w->next = malloc(cap * sizeof *w->next);
    w->prev = malloc(cap * sizeof *w->prev);
    w->heap = malloc(3 * cap * sizeof *w->heap);
    w->batch = malloc(cap * sizeof *w->batch);
    if (!w->id || !w->next || !w->prev || !w->heap || !w->batch) {
        work_free(w);
        return moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory");
    }
    w->cap = cap;
    return MOE_OK;
}

static int entry_before(const pair_entry *a, const pair_entry *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_work *w, pair_entry e) {
    size_t i = w->n_heap++;
    while (i > 0 && entry_before(&e, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = e;
}

static pair_entry heap_pop(bpe_work *w) {
    pair_entry top = w->heap[0], last = w->heap[--w->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->n_heap) break;
        if (c + 1 < w->n_heap && entry_before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!entry_before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    w->heap[i] = last;
    return top;
}

/* Pushes the pair starting at symbol pos, if it has a rule. */
static void push_pair(const moe_tokenizer *t, bpe_work *w, int32_t pos) {
    if (pos < 0 || w->next[pos] < 0) return;
    int32_t nx = w->next[pos];
    int32_t r = tok_pairmap_get(&t->pair_rule, w->id[pos], w->id[nx]);
    if (r >= 0) heap_push(w, (pair_entry){t->rules[r].rank, pos, w->id[pos], w->id[nx]});
}

static int still_there(const bpe_work *w, const pair_entry *e) {
    int32_t nx = w->next[e->pos];
    return w->id[e->pos] == e->left && nx >= 0 && w->id[nx] == e->right;
}

/* Merges the pair at e->pos into out and pushes the pairs it forms. */
static void merge_at(const moe_tokenizer *t, bpe_work *w, const pair_entry *e, int32_t out) {
    int32_t pos = e->pos, gone = w->next[pos];
    w->id[pos] = out;
    w->id[gone] = -1;
    w->next[pos] = w->next[gone];
    if (w->next[gone] >= 0) w->prev[w->next[gone]] = pos;
    push_pair(t, w, w->prev[pos]);
    push_pair(t, w, pos);
}

/* BPE over one chunk; appends its ids to out[*n_out]. */
static void bpe_chunk(const moe_tokenizer *t, bpe_work *w, const uint8_t *s, size_t n, int32_t *out,
                      size_t *n_out) {
    int32_t len = (int32_t)n;
    for (int32_t i = 0; i < len; i++) {
        w->id[i] = t->byte_id[s[i]];
        w->prev[i] = i - 1;
        w->next[i] = i + 1 < len ? i + 1 : -1;
    }
    w->n_heap = 0;
    for (int32_t i = 0; i + 1 < len; i++) push_pair(t, w, i);
    while (w->n_heap) {
        pair_entry first = heap_pop(w);
        if (!still_there(w, &first)) continue;
        /* this round: every live pair of the lowest rank, in position order */
        size_t n_batch = 0;
        w->batch[n_batch++] = first;
        while (w->n_heap && w->heap[0].rank == first.rank) {
            pair_entry e = heap_pop(w);
            if (still_there(w, &e)) w->batch[n_batch++] = e;
        }
        const pair_entry *kind = &w->batch[n_batch - 1]; /* the kind found last */
        int32_t left = kind->left, right = kind->right;
        int32_t out_id = t->rules[tok_pairmap_get(&t->pair_rule, left, right)].out;
        for (size_t b = 0; b < n_batch; b++) {
            const pair_entry *e = &w->batch[b];
            if (e->left != left || e->right != right)
                continue; /* another kind of pair: next round */
            if (still_there(w, e)) merge_at(t, w, e, out_id);
        }
        for (size_t b = 0; b < n_batch; b++) /* the other kind waits for the next round */
            if ((w->batch[b].left != left || w->batch[b].right != right) &&
                still_there(w, &w->batch[b]))
                heap_push(w, w->batch[b]);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i]) out[(*n_out)++] = w->id[i];
}

/* Words recur, so one call remembers the ids of its short chunks: the
 * Bible encodes ~3x faster. Keys point into the text being encoded. */
#define CACHE_MAX_CHUNK 32
#define CACHE_MAX_ENTRIES (1 << 16)

typedef struct chunk_cache {
    tok_bytesmap index; /* chunk bytes -> entry */
    size_t *first;      /* [entry] where its ids start in the output */
    uint8_t *count;     /* [entry] how many */
    int32_t n;
} chunk_cache;

typedef struct encode_ctx {
    const moe_tokenizer *t;
    const uint8_t *text;
    bpe_work work;
    chunk_cache cache;
    int32_t *ids;
    size_t n_ids;
} encode_ctx;

static moe_status encode_chunk(void *user, size_t offset, size_t length) {
    encode_ctx *c = user;
    if (length == 1) {
        c->ids[c->n_ids++] = c->t->byte_id[c->text[offset]];
        return MOE_OK;
    }
    if (length > INT32_MAX)
        return moe_error(MOE_ERR_INVALID, "tokenizer: a %zu-byte chunk is over 2 GiB", length);
    chunk_cache *k = &c->cache;
    int32_t e = -1;
    moe_status st = MOE_OK;
    if (length <= CACHE_MAX_CHUNK && k->n < CACHE_MAX_ENTRIES) {
        st = tok_bytesmap_intern(&k->index, c->text + offset, length, k->n, &e);
        if (st != MOE_OK) return st;
        if (e < k->n) { /* seen before: its ids are in the output already */
            memcpy(c->ids + c->n_ids, c->ids + k->first[e], k->count[e] * sizeof *c->ids);
            c->n_ids += k->count[e];
            return MOE_OK;
        }
        k->n++;
    }
    size_t first = c->n_ids;
    st = work_reserve(&c->work, length);
    if (st == MOE_OK) bpe_chunk(c->t, &c->work, c->text + offset, length, c->ids, &c->n_ids);
    if (e >= 0) {
        k->first[e] = first;
        k->count[e] = (uint8_t)(c->n_ids - first);
    }
    return st;
}

moe_status moe_tokenizer_encode(const moe_tokenizer *t, const uint8_t *text, size_t n,
                                int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (n == 0) return MOE_OK;
    if (!text) return moe_error(MOE_ERR_INVALID, "tokenizer: encode of NULL text");
    /* a chunk never has more tokens than bytes */
    encode_ctx c = {.t = t, .text = text, .ids = malloc(n * sizeof(int32_t))};
    size_t entries = n < CACHE_MAX_ENTRIES ? n : CACHE_MAX_ENTRIES; /* <= one per chunk */
    c.cache.first = malloc(entries * sizeof *c.cache.first);
    c.cache.count = malloc(entries * sizeof *c.cache.count);
    moe_status st = tok_bytesmap_init(&c.cache.index, 16);
    if (st == MOE_OK && (!c.ids || !c.cache.first || !c.cache.count))
        st = moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory for %zu ids", n);
    if (st == MOE_OK) st = tok_pretok_split(t->pretok, text, n, encode_chunk, &c);
    work_free(&c.work);
    tok_bytesmap_free(&c.cache.index);
    free(c.cache.first);
    free(c.cache.count);
    if (st != MOE_OK) {
        free(c.ids);
        return st;
    }
    int32_t *fit = realloc(c.ids, (c.n_ids ? c.n_ids : 1) * sizeof *fit);
    if (fit) c.ids = fit; /* else the larger block is as good */
    *ids = c.ids;
    *n_ids = c.n_ids;
    return MOE_OK;
}

moe_status moe_tokenizer_decode(const moe_tokenizer *t, const int32_t *ids, size_t n, char **out,
                                size_t *len) {
    *out = NULL;
    *len = 0;
    size_t total = 0;
    const uint8_t *b;
    size_t nb;
    for (size_t i = 0; i < n; i++) {
        if (moe_tokenizer_token_bytes(t, ids[i], &b, &nb) != MOE_OK)
            return moe_error(MOE_ERR_INVALID,
                             "tokenizer: decode: id %d at position %zu is outside [0, %d)",
                             (int)ids[i], i, moe_tokenizer_vocab_size(t));
        total += nb;
    }
    char *s = malloc(total + 1);
    if (!s) return moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", total);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        moe_tokenizer_token_bytes(t, ids[i], &b, &nb);
        memcpy(s + at, b, nb);
        at += nb;
    }
    s[at] = '\0';
    *out = s;
    *len = total;
    return MOE_OK;
}
