/* Inverted dropout. The caller's RNG gives one 64-bit seed per call; each
 * block of elements then draws from its own stream seeded by (seed, block),
 * so the mask is the same for any thread count. */
#include "ops/ops.h"

#include <string.h>

#define DROPOUT_BLOCK 4096L

void dropout_forward(moe_real *out, moe_real *mask, const moe_real *inp, float p, long N,
                     moe_rng *rng) {
    if (p <= 0) {
        for (long i = 0; i < N; i++) mask[i] = 1;
        if (out != inp) memmove(out, inp, (size_t)N * sizeof(moe_real));
        return;
    }
    uint64_t seed = moe_rng_u64(rng);
    /* p >= 1 drops everything (mask 0 rather than the infinite 1/(1-p)). */
    moe_real keep_scale = p < 1 ? (moe_real)(1.0 / (1.0 - p)) : 0;
    long nblocks = (N + DROPOUT_BLOCK - 1) / DROPOUT_BLOCK;
#pragma omp parallel for schedule(static)
    for (long blk = 0; blk < nblocks; blk++) {
        moe_rng r;
        moe_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(blk + 1)));
        long end = (blk + 1) * DROPOUT_BLOCK < N ? (blk + 1) * DROPOUT_BLOCK : N;
        for (long i = blk * DROPOUT_BLOCK; i < end; i++) {
            mask[i] = moe_rng_uniform(&r) >= p ? keep_scale : 0;
            out[i] = inp[i] * mask[i];
        }
    }
}

void dropout_backward(moe_real *dinp, const moe_real *dout, const moe_real *mask, long N) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < N; i++) dinp[i] = dout[i] * mask[i];
}
