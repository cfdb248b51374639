/* Central-difference gradient checks. */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>

int gradcheck(const char *name, moe_real *x, long n, const moe_real *analytic,
              gradcheck_loss_fn loss, void *ctx, int max_checks) {
#ifndef MOE_DOUBLE
    fprintf(stderr, "gradcheck %s: needs the MOE_DOUBLE build\n", name);
    return 1;
#endif
    const double eps = 1e-6;
    long stride = n <= max_checks ? 1 : n / max_checks;
    int failed = 0;
    double worst = 0;
    long worst_i = -1;
    double worst_a = 0, worst_fd = 0;
    for (long i = 0; i < n; i += stride) {
        moe_real saved = x[i];
        x[i] = saved + eps;
        double lp = loss(ctx);
        x[i] = saved - eps;
        double lm = loss(ctx);
        x[i] = saved;
        double fd = (lp - lm) / (2 * eps);
        double a = analytic[i];
        double err = fabs(a - fd);
        double lim = 1e-6 + 1e-5 * fmax(fabs(a), fabs(fd));
        if (!(err <= lim)) failed++;
        double ratio = isnan(err) ? INFINITY : err / lim;
        if (ratio > worst || worst_i < 0) {
            worst = ratio;
            worst_i = i;
            worst_a = a;
            worst_fd = fd;
        }
    }
    if (failed)
        fprintf(stderr, "gradcheck %s: %d entries off; worst [%ld] analytic %.10g fd %.10g\n", name,
                failed, worst_i, worst_a, worst_fd);
    return failed;
}

void fill_uniform(moe_real *x, long n, double lo, double hi, unsigned long long seed) {
    moe_rng r;
    moe_rng_seed(&r, seed);
    for (long i = 0; i < n; i++)
        x[i] = (moe_real)(lo + (hi - lo) * ((double)(moe_rng_u64(&r) >> 11) / 9007199254740992.0));
}

double dot(const moe_real *a, const moe_real *b, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}
