/* What every benchmark program needs: a monotonic clock, and sorting of
 * timings so the median (v[n / 2]) and the best (v[0]) can be read. */
#ifndef MOE_BENCH_UTIL_H
#define MOE_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

static inline double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline void bench_sort(double *v, size_t n) {
    qsort(v, n, sizeof *v, bench_cmp_double);
}

#endif
