/* Global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_ (1.13):
 * coef = max_norm / (norm + 1e-6), applied only when it is below 1. */
#include "moe/optim.h"

#include <math.h>

double moe_grad_clip(moe_real *g, size_t n, float max_norm) {
    const long len = (long)n;
    double sum = 0.0; /* in double: millions of squares */
#pragma omp parallel for reduction(+ : sum) if (len > 8192)
    for (long i = 0; i < len; i++) sum += (double)g[i] * (double)g[i];
    const double norm = sqrt(sum);
    if (max_norm > 0) {
        const double coef = (double)max_norm / (norm + 1e-6);
        if (coef < 1.0) { /* false for NaN: the caller sees the NaN norm */
            const moe_real c = (moe_real)coef;
#pragma omp parallel for if (len > 8192)
            for (long i = 0; i < len; i++) g[i] *= c;
        }
    }
    return norm;
}
