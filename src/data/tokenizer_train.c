/* Byte-level BPE training over the distinct chunks of a text.
 *
 * Pair counts are kept incrementally: each pair knows the words it occurs
 * in, so a merge rewrites only those words and changes only their pairs'
 * counts. A max-heap of (count, pair) with lazy deletion picks the next
 * merge: the highest count, ties to the smallest (left, right) ids, so the
 * result depends on nothing but the text and the arguments. */
#include "data/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct pair_set {
    tok_pairmap index; /* (left, right) -> pair number */
    int32_t *left, *right;
    int64_t *count;   /* occurrences over the text (word counts summed) */
    int64_t *delta;   /* change during the current merge */
    uint8_t *touched; /* delta is in the touched list */
    int32_t **words;  /* words the pair occurs in (may repeat a word once stale) */
    int32_t *n_words, *cap_words;
    int32_t n, cap;
    int32_t *touched_list, n_touched;
} pair_set;

typedef struct heap_entry {
    int64_t count;
    int32_t pair;
} heap_entry;

typedef struct trainer {
    tok_words w;
    pair_set p;
    heap_entry *heap;
    size_t n_heap, cap_heap;
    int32_t *merged_in; /* [words] last merge that rewrote the word */
} trainer;

#define NOMEM() moe_error(MOE_ERR_NOMEM, "tokenizer training: out of memory")

static moe_status grow_array(void **a, size_t elem, size_t cap) {
    void *bigger = realloc(*a, elem * cap);
    if (!bigger) return NOMEM();
    *a = bigger;
    return MOE_OK;
}

static moe_status pairs_grow(pair_set *p) {
    size_t cap = p->cap ? 2 * (size_t)p->cap : 1 << 16;
    moe_status st = MOE_OK;
    void **arrays[] = {(void **)&p->left,    (void **)&p->right,     (void **)&p->count,
                       (void **)&p->delta,   (void **)&p->touched,   (void **)&p->words,
                       (void **)&p->n_words, (void **)&p->cap_words, (void **)&p->touched_list};
    size_t sizes[] = {sizeof *p->left,    sizeof *p->right,     sizeof *p->count,
                      sizeof *p->delta,   sizeof *p->touched,   sizeof *p->words,
                      sizeof *p->n_words, sizeof *p->cap_words, sizeof *p->touched_list};
    for (size_t i = 0; st == MOE_OK && i < sizeof sizes / sizeof sizes[0]; i++)
        st = grow_array(arrays[i], sizes[i], cap);
    if (st == MOE_OK) p->cap = (int32_t)cap;
    return st;
}

/* The pair number of (a, b), created with count 0 if new. */
static moe_status pair_of(pair_set *p, int32_t a, int32_t b, int32_t *out) {
    int32_t i = tok_pairmap_get(&p->index, a, b);
    if (i < 0) {
        if (p->n == p->cap) {
            moe_status st = pairs_grow(p);
            if (st != MOE_OK) return st;
        }
        i = p->n++;
        p->left[i] = a;
        p->right[i] = b;
        p->count[i] = p->delta[i] = 0;
        p->touched[i] = 0;
        p->words[i] = NULL;
        p->n_words[i] = p->cap_words[i] = 0;
        moe_status st = tok_pairmap_put(&p->index, a, b, i);
        if (st != MOE_OK) return st;
    }
    *out = i;
    return MOE_OK;
}

static moe_status add_word(pair_set *p, int32_t pair, int32_t word) {
    int32_t n = p->n_words[pair];
    if (n && p->words[pair][n - 1] == word) return MOE_OK;
    if (n == p->cap_words[pair]) {
        int32_t cap = n ? 2 * n : 4;
        moe_status st = grow_array((void **)&p->words[pair], sizeof(int32_t), (size_t)cap);
        if (st != MOE_OK) return st;
        p->cap_words[pair] = cap;
    }
    p->words[pair][p->n_words[pair]++] = word;
    return MOE_OK;
}

static void add_delta(pair_set *p, int32_t pair, int64_t d) {
    if (!p->touched[pair]) {
        p->touched[pair] = 1;
        p->touched_list[p->n_touched++] = pair;
    }
    p->delta[pair] += d;
}

/* heap order: higher count first, then smaller left id, then smaller right */
static int heap_before(const pair_set *p, heap_entry x, heap_entry y) {
    if (x.count != y.count) return x.count > y.count;
    if (p->left[x.pair] != p->left[y.pair]) return p->left[x.pair] < p->left[y.pair];
    return p->right[x.pair] < p->right[y.pair];
}

static moe_status heap_push(trainer *tr, heap_entry e) {
    if (tr->n_heap == tr->cap_heap) {
        size_t cap = tr->cap_heap ? 2 * tr->cap_heap : 1 << 16;
        moe_status st = grow_array((void **)&tr->heap, sizeof *tr->heap, cap);
        if (st != MOE_OK) return st;
        tr->cap_heap = cap;
    }
    size_t i = tr->n_heap++;
    while (i > 0 && heap_before(&tr->p, e, tr->heap[(i - 1) / 2])) {
        tr->heap[i] = tr->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    tr->heap[i] = e;
    return MOE_OK;
}

static heap_entry heap_pop(trainer *tr) {
    heap_entry top = tr->heap[0], last = tr->heap[--tr->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= tr->n_heap) break;
        if (c + 1 < tr->n_heap && heap_before(&tr->p, tr->heap[c + 1], tr->heap[c])) c++;
        if (!heap_before(&tr->p, tr->heap[c], last)) break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    tr->heap[i] = last;
    return top;
}

/* The pair with the highest count (ties: smallest ids), or -1 if none. */
static moe_status best_pair(trainer *tr, int32_t *best) {
    *best = -1;
    while (tr->n_heap) {
        heap_entry e = heap_pop(tr);
        int64_t now = tr->p.count[e.pair];
        if (e.count == now) {
            *best = e.pair;
            return MOE_OK;
        }
        /* stale: the count fell since (rises push a fresh entry) */
        if (e.count > now && now > 0) {
            moe_status st = heap_push(tr, (heap_entry){now, e.pair});
            if (st != MOE_OK) return st;
        }
    }
    return MOE_OK;
}

static moe_status count_initial_pairs(trainer *tr) {
    for (int32_t w = 0; w < tr->w.n; w++) {
        const int32_t *s = tr->w.sym + tr->w.start[w];
        for (int32_t k = 0; k + 1 < tr->w.len[w]; k++) {
            int32_t pair;
            moe_status st = pair_of(&tr->p, s[k], s[k + 1], &pair);
            if (st == MOE_OK) st = add_word(&tr->p, pair, w);
            if (st != MOE_OK) return st;
            tr->p.count[pair] += tr->w.count[w];
        }
    }
    for (int32_t i = 0; i < tr->p.n; i++) {
        moe_status st = heap_push(tr, (heap_entry){tr->p.count[i], i});
        if (st != MOE_OK) return st;
    }
    return MOE_OK;
}

/* Rewrites word w with (a, b) -> z, recording the pair count changes. */
static moe_status merge_word(trainer *tr, int32_t w, int32_t a, int32_t b, int32_t z) {
    int32_t *s = tr->w.sym + tr->w.start[w], len = tr->w.len[w];
    int64_t c = tr->w.count[w];
    int found = 0;
    for (int32_t k = 0; k + 1 < len && !found; k++) found = s[k] == a && s[k + 1] == b;
    if (!found) return MOE_OK; /* stale entry: an earlier merge changed the word */
    moe_status st = MOE_OK;
    for (int32_t k = 0; k + 1 < len; k++)
        add_delta(&tr->p, tok_pairmap_get(&tr->p.index, s[k], s[k + 1]), -c);
    int32_t n = 0; /* merge left to right, in place */
    for (int32_t k = 0; k < len; k++) {
        if (k + 1 < len && s[k] == a && s[k + 1] == b) {
            s[n++] = z;
            k++;
        } else
            s[n++] = s[k];
    }
    tr->w.len[w] = n;
    for (int32_t k = 0; st == MOE_OK && k + 1 < n; k++) {
        int32_t pair;
        st = pair_of(&tr->p, s[k], s[k + 1], &pair);
        if (st == MOE_OK && (s[k] == z || s[k + 1] == z)) st = add_word(&tr->p, pair, w);
        if (st == MOE_OK) add_delta(&tr->p, pair, c);
    }
    return st;
}

/* Applies merge number m, (left, right) of pair `pair`, making id z. */
static moe_status apply_merge(trainer *tr, int32_t pair, int32_t m, int32_t z) {
    pair_set *p = &tr->p;
    int32_t a = p->left[pair], b = p->right[pair];
    int32_t *words = p->words[pair], n_words = p->n_words[pair];
    p->words[pair] = NULL; /* no word gains (a, b) again: z is new */
    p->n_words[pair] = p->cap_words[pair] = 0;
    moe_status st = MOE_OK;
    for (int32_t i = 0; st == MOE_OK && i < n_words; i++) {
        int32_t w = words[i];
        if (tr->merged_in[w] == m) continue;
        tr->merged_in[w] = m;
        st = merge_word(tr, w, a, b, z);
    }
    free(words);
    for (int32_t i = 0; i < p->n_touched; i++) {
        int32_t q = p->touched_list[i];
        int64_t d = p->delta[q];
        p->count[q] += d;
        p->delta[q] = 0;
        p->touched[q] = 0;
        if (st == MOE_OK && d > 0) st = heap_push(tr, (heap_entry){p->count[q], q});
    }
    p->n_touched = 0;
    return st;
}

static void trainer_free(trainer *tr) {
    tok_words_free(&tr->w);
    for (int32_t i = 0; i < tr->p.n; i++) free(tr->p.words[i]);
    free(tr->p.left);
    free(tr->p.right);
    free(tr->p.count);
    free(tr->p.delta);
    free(tr->p.touched);
    free(tr->p.words);
    free(tr->p.n_words);
    free(tr->p.cap_words);
    free(tr->p.touched_list);
    tok_pairmap_free(&tr->p.index);
    free(tr->heap);
    free(tr->merged_in);
}

moe_status moe_tokenizer_train(moe_tokenizer **t, const uint8_t *text, size_t n, int vocab_size,
                               int min_count) {
    *t = NULL;
    int min_vocab = 256 + MOE_TOK_N_SPECIAL;
    if (vocab_size < min_vocab)
        return moe_error(MOE_ERR_INVALID,
                         "tokenizer training: vocab_size %d is below %d (256 bytes and %d special "
                         "tokens)",
                         vocab_size, min_vocab, MOE_TOK_N_SPECIAL);
    if (!text && n) return moe_error(MOE_ERR_INVALID, "tokenizer training: NULL text");
    if (min_count <= 0) min_count = 2;
    int max_merges = vocab_size - min_vocab;
    trainer tr = {0};
    tok_pretok *pretok = NULL;
    tok_merge *merges = malloc((size_t)(max_merges ? max_merges : 1) * sizeof *merges);
    moe_status st = merges ? tok_pretok_create(&pretok) : NOMEM();
    if (st == MOE_OK) st = tok_words_count(&tr.w, pretok, text, n);
    tok_pretok_free(pretok);
    if (st == MOE_OK) st = tok_pairmap_init(&tr.p.index, 1 << 16);
    if (st == MOE_OK && !(tr.merged_in = malloc((tr.w.n ? (size_t)tr.w.n : 1) * sizeof(int32_t))))
        st = NOMEM();
    for (int32_t w = 0; st == MOE_OK && w < tr.w.n; w++) tr.merged_in[w] = -1;
    if (st == MOE_OK) st = count_initial_pairs(&tr);
    int n_merges = 0;
    while (st == MOE_OK && n_merges < max_merges) {
        int32_t best;
        st = best_pair(&tr, &best);
        if (st != MOE_OK || best < 0 || tr.p.count[best] < min_count) break;
        merges[n_merges] = (tok_merge){tr.p.left[best], tr.p.right[best]};
        st = apply_merge(&tr, best, n_merges, 256 + n_merges);
        n_merges++;
    }
    trainer_free(&tr);
    if (st == MOE_OK) st = tok_from_merges(t, merges, n_merges, NULL);
    free(merges);
    return st;
}
