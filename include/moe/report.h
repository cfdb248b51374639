/* The HTML report of a training run: one self-contained page (plotly.js,
 * the data and the chart code inlined; it opens offline) drawn from the
 * files of a run directory only: metrics.jsonl, and where present
 * routing.json, model_info.json, results.json and config.json
 * (docs/monitoring.md). */
#ifndef MOE_REPORT_H
#define MOE_REPORT_H

#include "moe/core.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes the report of run_dir to out_path (NULL: run_dir/report.html),
 * atomically (a temporary file renamed into place). Sections whose files
 * are missing are left out. MOE_ERR_IO when run_dir is not a folder, has no
 * metrics.jsonl or plotly.js cannot be found; MOE_ERR_FORMAT (naming the
 * file and line) when a file is malformed. */
moe_status moe_report_write(const char *run_dir, const char *out_path);

/* Finds plotly.min.js, in this order: $MOE_PLOTLY_JS; the installed copy,
 * <folder of the running program>/../share/libmoe/plotly.min.js; the
 * source tree's node_modules/plotly.js-dist-min/plotly.min.js. Writes its
 * path into path[cap]. MOE_ERR_IO, saying to run `npm ci` in the source
 * tree or to set MOE_PLOTLY_JS, when none exists. */
moe_status moe_report_find_plotly(char *path, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
