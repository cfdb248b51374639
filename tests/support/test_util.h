/* cmocka and the helpers every test uses. */
#ifndef MOE_TEST_UTIL_H
#define MOE_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gradcheck.h"
#include "ref_data.h"

#include <math.h>

/* Fails the test unless |got - want| <= tol, in double precision (cmocka's
 * assert_float_equal converts to float). tol 0: bit-equal values. */
#define assert_close(got, want, tol) assert_close_at((got), (want), (tol), __FILE__, __LINE__)
static inline void assert_close_at(double got, double want, double tol, const char *file,
                                   int line) {
    if (fabs(got - want) <= tol) return;
    print_error("%.17g != %.17g (difference %.3g, tolerance %.3g)\n", got, want, fabs(got - want),
                tol);
    _fail(file, line);
}

#endif
