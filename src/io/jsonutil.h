/* Parsing a JSON file's text with an error that says where it broke.
 * Internal to libmoe. */
#ifndef MOE_IO_JSONUTIL_H
#define MOE_IO_JSONUTIL_H

#include "moe/core.h"

#include <cjson/cJSON.h>

/* Parses text (NUL-terminated); on malformed JSON, MOE_ERR_FORMAT with
 * "<origin>: malformed JSON at line L, column C near "..."". */
moe_status json_parse_located(cJSON **out, const char *text, const char *origin);

#endif
