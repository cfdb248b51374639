/* Open-addressing hash maps of the tokenizers: id pairs -> int32 (merge
 * rules, pair counts) and byte strings -> int32 (unique chunks, GPT-2's
 * token strings). Linear probing, doubled at half full. */
#include "data/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY_PAIR UINT64_MAX

static uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static size_t capacity_for(size_t expected) {
    size_t cap = 16;
    while (cap < 2 * expected) cap *= 2;
    return cap;
}

static uint64_t pair_key(int32_t a, int32_t b) {
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

moe_status tok_pairmap_init(tok_pairmap *m, size_t expected) {
    m->cap = capacity_for(expected);
    m->n = 0;
    m->keys = malloc(m->cap * sizeof *m->keys);
    m->vals = malloc(m->cap * sizeof *m->vals);
    if (!m->keys || !m->vals) {
        tok_pairmap_free(m);
        return moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory for a pair table");
    }
    memset(m->keys, 0xff, m->cap * sizeof *m->keys);
    return MOE_OK;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t pair_slot(const tok_pairmap *m, uint64_t key) {
    size_t i = mix64(key) & (m->cap - 1);
    while (m->keys[i] != EMPTY_PAIR && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    return i;
}

int32_t tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b) {
    size_t i = pair_slot(m, pair_key(a, b));
    return m->keys[i] == EMPTY_PAIR ? -1 : m->vals[i];
}

static moe_status pairmap_grow(tok_pairmap *m) {
    tok_pairmap bigger;
    moe_status st = tok_pairmap_init(&bigger, m->cap);
    if (st != MOE_OK) return st;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != EMPTY_PAIR) {
            size_t j = pair_slot(&bigger, m->keys[i]);
            bigger.keys[j] = m->keys[i];
            bigger.vals[j] = m->vals[i];
        }
    bigger.n = m->n;
    tok_pairmap_free(m);
    *m = bigger;
    return MOE_OK;
}

moe_status tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t v) {
    if (2 * (m->n + 1) > m->cap) {
        moe_status st = pairmap_grow(m);
        if (st != MOE_OK) return st;
    }
    uint64_t key = pair_key(a, b);
    size_t i = pair_slot(m, key);
    if (m->keys[i] == EMPTY_PAIR) m->n++;
    m->keys[i] = key;
    m->vals[i] = v;
    return MOE_OK;
}

/* ---- byte strings ------------------------------------------------------- */

static uint64_t hash_bytes(const uint8_t *p, size_t n) { /* FNV-1a, then mixed */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return mix64(h ^ n);
}

moe_status tok_bytesmap_init(tok_bytesmap *m, size_t expected) {
    m->cap = capacity_for(expected);
    m->n = 0;
    m->ptr = malloc(m->cap * sizeof *m->ptr);
    m->len = malloc(m->cap * sizeof *m->len);
    m->hash = malloc(m->cap * sizeof *m->hash);
    m->vals = malloc(m->cap * sizeof *m->vals);
    if (!m->ptr || !m->len || !m->hash || !m->vals) {
        tok_bytesmap_free(m);
        return moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory for a string table");
    }
    memset(m->vals, 0xff, m->cap * sizeof *m->vals);
    return MOE_OK;
}

void tok_bytesmap_free(tok_bytesmap *m) {
    free(m->ptr);
    free(m->len);
    free(m->hash);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static size_t bytes_slot(const tok_bytesmap *m, const uint8_t *key, size_t n, uint64_t h) {
    size_t i = h & (m->cap - 1);
    while (m->vals[i] >= 0 &&
           !(m->hash[i] == h && m->len[i] == n && (n == 0 || !memcmp(m->ptr[i], key, n))))
        i = (i + 1) & (m->cap - 1);
    return i;
}

int32_t tok_bytesmap_get(const tok_bytesmap *m, const uint8_t *key, size_t n) {
    return m->vals[bytes_slot(m, key, n, hash_bytes(key, n))];
}

static moe_status bytesmap_grow(tok_bytesmap *m) {
    tok_bytesmap bigger;
    moe_status st = tok_bytesmap_init(&bigger, m->cap);
    if (st != MOE_OK) return st;
    for (size_t i = 0; i < m->cap; i++)
        if (m->vals[i] >= 0) {
            size_t j = m->hash[i] & (bigger.cap - 1);
            while (bigger.vals[j] >= 0) j = (j + 1) & (bigger.cap - 1);
            bigger.ptr[j] = m->ptr[i];
            bigger.len[j] = m->len[i];
            bigger.hash[j] = m->hash[i];
            bigger.vals[j] = m->vals[i];
        }
    bigger.n = m->n;
    tok_bytesmap_free(m);
    *m = bigger;
    return MOE_OK;
}

moe_status tok_bytesmap_intern(tok_bytesmap *m, const uint8_t *key, size_t n, int32_t fresh,
                               int32_t *value) {
    if (2 * (m->n + 1) > m->cap) {
        moe_status st = bytesmap_grow(m);
        if (st != MOE_OK) return st;
    }
    uint64_t h = hash_bytes(key, n);
    size_t i = bytes_slot(m, key, n, h);
    if (m->vals[i] < 0) {
        m->ptr[i] = key;
        m->len[i] = n;
        m->hash[i] = h;
        m->vals[i] = fresh;
        m->n++;
    }
    *value = m->vals[i];
    return MOE_OK;
}
