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

#endif
