/* Row softmax in place, max-subtracted, sums in double. */
#include "ops/ops.h"

#include "core/real_math.h"

#include <math.h>

double softmax_row(moe_real *out, const moe_real *x, int V) {
    if (V <= 0) return 0;
    moe_real mx = -INFINITY;
    double sum = 0;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < V; j++)
        if (x[j] > mx) mx = x[j];
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) {
        moe_real e = real_exp_simd(x[j] - mx); /* vectorises */
        out[j] = e;
        sum += e;
    }
    moe_real inv = (moe_real)(1.0 / sum);
    for (int j = 0; j < V; j++) out[j] *= inv;
    /* sum >= 1 (the max contributes exp(0)) unless a logit was NaN */
    if (!(sum >= 1)) return NAN;
    return log(sum) + mx;
}

void softmax_rows(moe_real *x, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) softmax_row(x + (long)n * V, x + (long)n * V, V);
}
