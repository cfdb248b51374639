/* Where moe report finds plotly.min.js, which it inlines into every page. */
#include "moe/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLOTLY_IN_NODE_MODULES "node_modules/plotly.js-dist-min/plotly.min.js"

static moe_status found(char *path, size_t cap, const char *candidate) {
    if ((size_t)snprintf(path, cap, "%s", candidate) >= cap)
        return moe_error(MOE_ERR_INVALID, "plotly.js path %s is longer than %zu bytes", candidate,
                         cap);
    return MOE_OK;
}

moe_status moe_report_find_plotly(char *path, size_t cap) {
    if (!path || cap == 0) return moe_error(MOE_ERR_INVALID, "moe_report_find_plotly: no buffer");
    const char *env = getenv("MOE_PLOTLY_JS");
    if (env && *env) {
        if (access(env, R_OK) == 0) return found(path, cap, env);
        return moe_error(MOE_ERR_IO,
                         "MOE_PLOTLY_JS=%s cannot be read; point it at a plotly.min.js "
                         "(node_modules/plotly.js-dist-min/plotly.min.js after `npm ci`)",
                         env);
    }
    /* installed: <prefix>/bin/moe next to <prefix>/share/libmoe/ */
    char exe[4096], installed[4200] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(installed, sizeof installed, "%s/../share/libmoe/plotly.min.js", exe);
        if (access(installed, R_OK) == 0) return found(path, cap, installed);
    }
    const char *source_dir = "<source tree>";
#ifdef MOE_SOURCE_DIR
    source_dir = MOE_SOURCE_DIR;
    if (access(MOE_SOURCE_DIR "/" PLOTLY_IN_NODE_MODULES, R_OK) == 0)
        return found(path, cap, MOE_SOURCE_DIR "/" PLOTLY_IN_NODE_MODULES);
#endif
    return moe_error(MOE_ERR_IO,
                     "plotly.min.js not found (MOE_PLOTLY_JS is unset; tried %s and %s/%s); "
                     "run `npm ci` in the libmoe source tree %s or set MOE_PLOTLY_JS to a "
                     "plotly.min.js",
                     installed[0] ? installed : "the installed share/libmoe/", source_dir,
                     PLOTLY_IN_NODE_MODULES, source_dir);
}
