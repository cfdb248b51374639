/* Math in the element type (moe_real). exp: expf in the float build (several times faster
 * than the double exp), exp in the double build. Sums stay in double. */
#ifndef MOE_OPS_REAL_MATH_H
#define MOE_OPS_REAL_MATH_H

#include "moe/core.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline moe_real real_exp(moe_real x) {
#ifdef MOE_DOUBLE
    return exp(x);
#else
    return expf(x);
#endif
}

/* square root in the element type: sqrtf rounds exactly like torch's float
 * sqrt and vectorises (double sqrt plus conversions did not) */
static inline moe_real real_sqrt(moe_real x) {
#ifdef MOE_DOUBLE
    return sqrt(x);
#else
    return sqrtf(x);
#endif
}

/* exp that loops can vectorise (libm's expf is an opaque call): Cody-Waite
 * reduction x = n ln2 + r, Cephes' degree-7 polynomial for e^r, 2^n built in
 * the exponent bits. Within 2 ulp of expf; x is clamped to [-87, 88] so 2^n
 * stays a normal float (e^-87 ~ 1.6e-38: callers that saturate, such as the
 * sigmoid, are unaffected). NaN stays NaN. Double build: exp. */
static inline moe_real real_exp_simd(moe_real x) {
#ifdef MOE_DOUBLE
    return exp(x);
#else
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504088896341f + shift;
    float n = t - shift;
    int32_t ti;
    memcpy(&ti, &t, sizeof ti);
    int32_t ni = ti - 0x4B400000; /* n as an integer: low bits of t */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f;
    /* unsigned: a NaN x gives a wild ni, and its bits must not be UB (the result is NaN anyway) */
    uint32_t bits = ((uint32_t)ni + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
#endif
}

#endif
