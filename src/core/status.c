/* Status codes and the per-thread last-error message. */
#include "moe/core.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

const char *moe_last_error(void) {
    return last_error;
}

const char *moe_status_name(moe_status s) {
    switch (s) {
    case MOE_OK:
        return "ok";
    case MOE_ERR_INVALID:
        return "invalid argument";
    case MOE_ERR_NOMEM:
        return "out of memory";
    case MOE_ERR_IO:
        return "i/o error";
    case MOE_ERR_FORMAT:
        return "malformed file";
    case MOE_ERR_NUMERIC:
        return "numeric error";
    case MOE_ERR_UNSUPPORTED:
        return "unsupported";
    case MOE_ERR_INTERRUPTED:
        return "interrupted";
    }
    return "unknown status";
}

moe_status moe_error(moe_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}
