/* JSON parsing with the line and column of the first error. */
#include "io/jsonutil.h"

#include <ctype.h>

moe_status json_parse_located(cJSON **out, const char *text, const char *origin) {
    const char *end = NULL;
    *out = cJSON_ParseWithOpts(text, &end, 1);
    if (*out) return MOE_OK;
    if (!end) return moe_error(MOE_ERR_NOMEM, "%s: out of memory parsing JSON", origin);
    long line = 1, col = 1;
    for (const char *p = text; p < end; p++) {
        col = *p == '\n' ? 1 : col + 1;
        line += *p == '\n';
    }
    char near[24];
    size_t n = 0;
    for (const char *p = end; *p && n + 1 < sizeof near; p++)
        near[n++] = isprint((unsigned char)*p) ? *p : ' ';
    near[n] = '\0';
    return moe_error(MOE_ERR_FORMAT, "%s: malformed JSON at line %ld, column %ld%s%s%s", origin,
                     line, col, n ? " near \"" : " (unexpected end)", near, n ? "\"" : "");
}
