/* Row softmax in place, max-subtracted, sums in double. */
#include "ops/ops.h"

#include "real_math.h"

#include <math.h>

void softmax_rows(moe_real *x, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        moe_real *r = x + (long)n * V;
        moe_real mx = -INFINITY;
        double sum = 0;
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < V; j++)
            if (r[j] > mx) mx = r[j];
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < V; j++) {
            moe_real e = real_exp(r[j] - mx);
            r[j] = e;
            sum += e;
        }
        moe_real inv = (moe_real)(1.0 / sum);
        for (int j = 0; j < V; j++) r[j] *= inv;
    }
}
