/* Finite-difference gradient checks in double precision (the MOE_DOUBLE
 * build). The caller provides a scalar loss of the op's output, usually
 * sum(out * r) for a fixed random r, and the analytic gradient. */
#ifndef MOE_TEST_GRADCHECK_H
#define MOE_TEST_GRADCHECK_H

#include "moe/core.h"

/* Evaluates the loss for the current contents of the checked buffers. */
typedef double (*gradcheck_loss_fn)(void *ctx);

/* Perturbs up to max_checks entries of x (all when n <= max_checks, else an
 * even spread) by +-eps, compares the central difference with analytic[i].
 * An entry passes when |a - fd| <= 1e-6 + 1e-5 * max(|a|, |fd|).
 * Prints the worst entry under name; returns the number that failed. */
int gradcheck(const char *name, moe_real *x, long n, const moe_real *analytic,
              gradcheck_loss_fn loss, void *ctx, int max_checks);

/* Fills x[n] with values uniform in [lo, hi) from a fixed seed. */
void fill_uniform(moe_real *x, long n, double lo, double hi, unsigned long long seed);

/* sum_i a[i] * b[i] in double */
double dot(const moe_real *a, const moe_real *b, long n);

#endif
