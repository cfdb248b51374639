/* exp in the element type: expf in the float build (several times faster
 * than the double exp), exp in the double build. Sums stay in double. */
#ifndef MOE_OPS_REAL_MATH_H
#define MOE_OPS_REAL_MATH_H

#include "moe/core.h"

#include <math.h>

static inline moe_real real_exp(moe_real x) {
#ifdef MOE_DOUBLE
    return exp(x);
#else
    return expf(x);
#endif
}

#endif
