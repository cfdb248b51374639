/* Internals of the byte-level BPE tokenizers (include/moe/tokenizer.h):
 * the tokenizer object, the GPT-2 pre-tokenizer, the hash maps that training
 * and encoding share. Internal to libmoe. */
#ifndef MOE_DATA_TOKENIZER_INTERNAL_H
#define MOE_DATA_TOKENIZER_INTERNAL_H

#include "moe/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

/* ---- hash map (left id, right id) -> int32 (tokenizer_maps.c) ---------- */
typedef struct tok_pairmap {
    uint64_t *keys; /* (left << 32 | right); UINT64_MAX marks an empty slot */
    int32_t *vals;
    size_t cap, n; /* slots (a power of two), entries */
} tok_pairmap;

moe_status tok_pairmap_init(tok_pairmap *m, size_t expected);
void tok_pairmap_free(tok_pairmap *m);
/* The value of (a, b), or -1. */
int32_t tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b);
/* Inserts or overwrites. */
moe_status tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t v);

/* ---- hash map byte string -> int32 (tokenizer_maps.c). Keys point into
 * memory the caller keeps alive. */
typedef struct tok_bytesmap {
    const uint8_t **ptr;
    size_t *len;
    uint64_t *hash;
    int32_t *vals; /* -1 marks an empty slot */
    size_t cap, n;
} tok_bytesmap;

moe_status tok_bytesmap_init(tok_bytesmap *m, size_t expected);
void tok_bytesmap_free(tok_bytesmap *m);
/* The value of key[0, n), or -1. */
int32_t tok_bytesmap_get(const tok_bytesmap *m, const uint8_t *key, size_t n);
/* *value = the value of key if present, else inserts fresh (>= 0) and sets
 * *value = fresh. */
moe_status tok_bytesmap_intern(tok_bytesmap *m, const uint8_t *key, size_t n, int32_t fresh,
                               int32_t *value);

/* ---- the GPT-2 pre-tokenizer (tokenizer_pretok.c) ----------------------- */
typedef struct tok_pretok tok_pretok;

moe_status tok_pretok_create(tok_pretok **p);
void tok_pretok_free(tok_pretok *p);
/* Calls chunk(user, offset, length) for each pre-token of text[0, n), in
 * order; the chunks tile the text. Stops at the first status other than
 * MOE_OK and returns it. */
typedef moe_status (*tok_chunk_fn)(void *user, size_t offset, size_t length);
moe_status tok_pretok_split(const tok_pretok *p, const uint8_t *text, size_t n, tok_chunk_fn chunk,
                            void *user);

/* ---- the unique pre-tokenized chunks of a text (tokenizer_words.c) ------ */
typedef struct tok_words {
    int32_t n;      /* unique chunks ("words") */
    int64_t *count; /* [n] occurrences in the text */
    size_t *start;  /* [n] word w's symbols: sym[start[w], start[w] + len[w]) */
    int32_t *len;   /* [n] symbols now (merges shorten words in place) */
    int32_t *sym;   /* the symbols, first the bytes */
} tok_words;

/* Splits text with the pre-tokenizer and counts each distinct chunk. */
moe_status tok_words_count(tok_words *w, const tok_pretok *p, const uint8_t *text, size_t n);
void tok_words_free(tok_words *w);

/* ---- the tokenizer ------------------------------------------------------ */
typedef enum tok_kind { TOK_BYTE_BPE, TOK_GPT2 } tok_kind;

/* What merging an adjacent pair does: its rank (lower merges first) and
 * the token it makes. */
typedef struct tok_rule {
    int32_t rank, out;
} tok_rule;

typedef struct tok_merge {
    int32_t left, right;
} tok_merge;

struct moe_tokenizer {
    tok_kind kind;
    int n_base;           /* ids of the vocabulary proper; specials follow */
    int32_t byte_id[256]; /* the token of each single byte */
    uint8_t *blob;        /* token i's bytes: blob[off[i], off[i + 1]) */
    size_t *off;          /* [n_base + 1] */
    int n_merges;         /* the merge list, in rank order (what save writes) */
    tok_merge *merges;    /* [n_merges] */
    tok_rule *rules;      /* [n_rules] what each mergeable pair does */
    int n_rules, cap_rules;
    tok_pairmap pair_rule; /* (left, right) -> index into rules */
    tok_pretok *pretok;
};

/* An empty tokenizer of n_base ids with the pre-tokenizer compiled; the
 * caller fills byte_id, the token bytes (blob, off), merges and rules. */
moe_status tok_alloc(moe_tokenizer **t, tok_kind kind, int n_base);
/* Adds a rule for the pair (left, right), replacing an earlier one. */
moe_status tok_add_rule(moe_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t out);
/* A byte-bpe tokenizer from its merge list: merge i makes id 256 + i from
 * two ids below it. The path names the source in errors (NULL: trained). */
moe_status tok_from_merges(moe_tokenizer **t, const tok_merge *merges, int n_merges,
                           const char *path);

#endif
