/* Residual connection: out = a + b. */
#include "ops/ops.h"

void residual_forward(moe_real *out, const moe_real *a, const moe_real *b, long N) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < N; i++) out[i] = a[i] + b[i];
}

/* Adds rather than writes: the residual stream's gradient usually already
 * holds the other branch's contribution. */
void residual_backward(moe_real *da, moe_real *db, const moe_real *dout, long N) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < N; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}
