/* Per-step bump allocator. Chunks are added while a step runs for the first
 * time; reset() replaces them by one block of the high-water size. A chunk
 * remembers the arena offset it started at, so release() can tell which
 * chunks lie wholly after a mark. */
#include "moe/core.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 64
#define ARENA_MIN_CHUNK (1u << 20)

struct moe_arena_chunk {
    moe_arena_chunk *next; /* older chunk */
    size_t cap;            /* usable bytes in data */
    size_t used;           /* bytes handed out from this chunk */
    size_t base;           /* arena->used when the chunk was added */
    unsigned char *data;   /* ARENA_ALIGN-aligned */
};

static moe_arena_chunk *chunk_new(size_t cap) {
    moe_arena_chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->data = aligned_alloc(ARENA_ALIGN, (cap + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN);
    if (!c->data) {
        free(c);
        return NULL;
    }
    c->cap = cap;
    c->used = 0;
    c->next = NULL;
    return c;
}

void moe_arena_init(moe_arena *a) {
    memset(a, 0, sizeof *a);
}

void *moe_arena_alloc(moe_arena *a, size_t bytes) {
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need == 0) need = ARENA_ALIGN;
    moe_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > ARENA_MIN_CHUNK ? need : ARENA_MIN_CHUNK;
        if (c && cap < 2 * c->cap) cap = 2 * c->cap;
        moe_arena_chunk *n = chunk_new(cap);
        if (!n) {
            moe_error(MOE_ERR_NOMEM, "arena: cannot allocate %zu bytes", cap);
            return NULL;
        }
        n->next = c;
        n->base = a->used;
        a->head = c = n;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used += need;
    if (a->used > a->high_water) a->high_water = a->used;
    return p;
}

void *moe_arena_calloc(moe_arena *a, size_t bytes) {
    void *p = moe_arena_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

static void free_chunks(moe_arena_chunk *c) {
    while (c) {
        moe_arena_chunk *next = c->next;
        free(c->data);
        free(c);
        c = next;
    }
}

moe_status moe_arena_reset(moe_arena *a) {
    a->used = 0;
    if (!a->head) return MOE_OK;
    if (a->head->next) { /* several chunks: fold into one of the high-water size */
        free_chunks(a->head);
        a->head = chunk_new(a->high_water);
        if (!a->head)
            return moe_error(MOE_ERR_NOMEM, "arena: cannot allocate %zu bytes", a->high_water);
    }
    a->head->used = 0;
    a->head->base = 0;
    return MOE_OK;
}

size_t moe_arena_mark(const moe_arena *a) {
    return a->used;
}

/* Chunks added after the mark hold only released memory: free them (this
 * happens in the first step only; later steps run in one block). The chunk
 * that holds the mark is rewound to it. */
void moe_arena_release(moe_arena *a, size_t mark) {
    if (mark > a->used) return; /* not a mark of this arena's current state */
    while (a->head && a->head->base > mark) {
        moe_arena_chunk *old = a->head;
        a->head = old->next;
        free(old->data);
        free(old);
    }
    if (a->head) a->head->used = mark - a->head->base;
    a->used = mark;
}

int moe_arena_blocks(const moe_arena *a) {
    int n = 0;
    for (const moe_arena_chunk *c = a->head; c; c = c->next) n++;
    return n;
}

void moe_arena_free(moe_arena *a) {
    free_chunks(a->head);
    memset(a, 0, sizeof *a);
}
