/* Token embedding lookup; backward scatters rows into the table. */
#include "ops/ops.h"

#include <omp.h>
#include <string.h>

void embedding_forward(moe_real *out, const int32_t *ids, const moe_real *table, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (long)n * C, table + (long)ids[n] * C, (size_t)C * sizeof(moe_real));
}

void embedding_backward(moe_real *dtable, const moe_real *dout, const int32_t *ids, int N, int C) {
    /* Repeated ids would race if rows were split among threads, so each
     * thread owns a slice of columns and walks all rows in order. */
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int c0 = (int)((long)C * t / nt), c1 = (int)((long)C * (t + 1) / nt);
        for (int n = 0; n < N; n++) {
            moe_real *d = dtable + (long)ids[n] * C;
            const moe_real *g = dout + (long)n * C;
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}
