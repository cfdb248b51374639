/* Row softmax in place, max-subtracted, sums in double. */
#include "ops/ops.h"

#include <math.h>

void softmax_rows(moe_real *x, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        moe_real *r = x + (long)n * V;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < V; j++)
            if (r[j] > mx) mx = r[j];
        for (int j = 0; j < V; j++) {
            double e = exp(r[j] - mx);
            r[j] = (moe_real)e;
            sum += e;
        }
        moe_real inv = (moe_real)(1.0 / sum);
        for (int j = 0; j < V; j++) r[j] *= inv;
    }
}
