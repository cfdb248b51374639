/* One knob for both thread pools; with the OpenMP build of OpenBLAS they are
 * the same pool, so they never oversubscribe the cores. */
#include "moe/core.h"

#include <cblas.h>
#include <omp.h>

void moe_set_threads(int n) {
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}
