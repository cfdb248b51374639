/* xoshiro256** (Blackman & Vigna), seeded with splitmix64. */
#include "moe/core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void moe_rng_seed(moe_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

uint64_t moe_rng_u64(moe_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float moe_rng_uniform(moe_rng *r) {
    return (float)(moe_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float moe_rng_normal(moe_rng *r) {
    /* 1 - u keeps the log argument in (0, 1] */
    double u1 = 1.0 - (double)(moe_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    double u2 = (double)(moe_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint32_t moe_rng_below(moe_rng *r, uint32_t n) {
    return (uint32_t)(((moe_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}
