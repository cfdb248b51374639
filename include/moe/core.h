/* libmoe core: status codes, errors, the seeded RNG, the per-step arena.
 * Every library call that can fail returns a moe_status and leaves a message
 * for moe_last_error(); the library never exits. */
#ifndef MOE_CORE_H
#define MOE_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The element type of every parameter and activation. float, except in the
 * double-precision build (MOE_DOUBLE) that only the gradient checks link. */
#ifdef MOE_DOUBLE
typedef double moe_real;
#else
typedef float moe_real;
#endif

typedef enum moe_status {
    MOE_OK = 0,
    MOE_ERR_INVALID,     /* bad argument, config value or shape */
    MOE_ERR_NOMEM,       /* allocation failed */
    MOE_ERR_IO,          /* file missing, unreadable or unwritable */
    MOE_ERR_FORMAT,      /* file present but malformed, truncated or corrupted */
    MOE_ERR_NUMERIC,     /* NaN or Inf where a finite number was needed */
    MOE_ERR_UNSUPPORTED, /* valid request this build cannot do */
    MOE_ERR_INTERRUPTED, /* stopped on request (signal, early stop) */
} moe_status;

/* The message of the last failed call on this thread ("" if none). */
const char *moe_last_error(void);
/* A short name for a status ("invalid argument", ...). */
const char *moe_status_name(moe_status s);
/* Records a formatted message for moe_last_error() and returns s. */
moe_status moe_error(moe_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- RNG: xoshiro256**, seeded through splitmix64; same seed, same stream. */
typedef struct moe_rng {
    uint64_t s[4]; /* generator state; saved in checkpoints */
} moe_rng;

void moe_rng_seed(moe_rng *r, uint64_t seed);
uint64_t moe_rng_u64(moe_rng *r);
/* uniform in [0, 1) with 24 random bits (float) */
float moe_rng_uniform(moe_rng *r);
/* standard normal (Box-Muller, one value per call) */
float moe_rng_normal(moe_rng *r);
/* uniform integer in [0, n) */
uint32_t moe_rng_below(moe_rng *r, uint32_t n);

/* --- Arena: bump allocator for one step's activations. It grows while the
 * first step measures what it needs; reset() then folds the chunks into one
 * block, so later steps never call malloc. */
typedef struct moe_arena_chunk moe_arena_chunk;
typedef struct moe_arena {
    moe_arena_chunk *head; /* newest chunk first */
    size_t used;           /* bytes handed out since the last reset */
    size_t high_water;     /* most bytes ever in use between resets */
} moe_arena;

void moe_arena_init(moe_arena *a);
/* 64-byte aligned, uninitialised; NULL (and an error) only when out of memory */
void *moe_arena_alloc(moe_arena *a, size_t bytes);
/* Like alloc, zero-filled. */
void *moe_arena_calloc(moe_arena *a, size_t bytes);
/* Forgets every allocation; keeps (and merges) the memory. */
moe_status moe_arena_reset(moe_arena *a);
/* Scoped scratch: mark() returns the current position; release(mark) frees
 * every allocation made after it (LIFO: release the newest mark first; a
 * mark taken before an earlier release is invalid). Correct also when the
 * arena added chunks after the mark. Lets backward reuse one layer's scratch
 * for the next; high_water still records the peak, so reset() sizes the one
 * block for the largest layer rather than for the sum. */
size_t moe_arena_mark(const moe_arena *a);
void moe_arena_release(moe_arena *a, size_t mark);
/* Number of memory blocks held (1 after the first reset: no more mallocs). */
int moe_arena_blocks(const moe_arena *a);
void moe_arena_free(moe_arena *a);

/* Threads OpenMP and OpenBLAS use (0: their default). */
void moe_set_threads(int n);

#ifdef __cplusplus
}
#endif
#endif
