/* Internal pieces of moe report: the run directory's files gathered into
 * one JSON "data" object, and the page's embedded JavaScript and CSS. */
#ifndef MOE_OBS_REPORT_INTERNAL_H
#define MOE_OBS_REPORT_INTERNAL_H

#include "moe/core.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Adds to data the arrays "train", "eval" and "alerts": the lines of the
 * metrics.jsonl at path of kind "train", "eval" and "alert", each kept as
 * its raw text (a cJSON raw item) so every number reaches the page exactly
 * as written. An empty array is left out. Lines of other kinds are
 * skipped; a last line without its newline that does not parse is being
 * written and is skipped too. */
moe_status report_metrics_load(const char *path, cJSON *data);

/* The data object of a run directory: "run_dir", "generated_utc", the
 * metrics arrays above and, for each file present, "routing",
 * "model_info", "results", "config" (raw text, validated as JSON objects). */
moe_status report_data_load(const char *run_dir, cJSON **data);

/* src/obs/report_assets/, compiled in by cmake/embed.cmake. */
extern const unsigned char moe_report_js[];
extern const size_t moe_report_js_len;
extern const unsigned char moe_report_css[];
extern const size_t moe_report_css_len;

#endif
