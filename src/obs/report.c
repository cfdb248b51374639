/* moe report: one self-contained HTML page per run. The page is a fixed
 * template with plotly.js, the CSS, the data (a JSON block) and the chart
 * code (src/obs/report_assets/report.js) inlined, so it opens offline. */
#include "moe/report.h"

#include "io/fsutil.h"
#include "obs/report_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>moe report</title>\n<style>\n";
static const char page_plotly[] = "</style>\n<script>\n";
static const char page_body[] =
    "\n</script>\n</head>\n<body>\n<main id=\"report\">"
    "<noscript>This report draws its charts with JavaScript.</noscript></main>\n"
    "<script type=\"application/json\" id=\"moe-data\">";
static const char page_code[] = "</script>\n<script>\n";
static const char page_end[] = "\n</script>\n</body>\n</html>\n";

/* The page being written; after the first failure every write is skipped
 * (fs_atomic_write has already removed the temporary file). */
typedef struct page {
    fs_atomic file;
    moe_status st;
} page;

static void put(page *p, const void *s, size_t n) {
    if (p->st == MOE_OK) p->st = fs_atomic_write(&p->file, s, n);
}

static void put_str(page *p, const char *s) {
    put(p, s, strlen(s));
}

/* Text inside a <script> element must not contain "</script" (it would end
 * the element) nor "<!--" (it changes how the browser looks for the end).
 * They are written as escapes that mean the same to the JSON or JavaScript
 * parser: in JSON (where '<' only occurs inside strings) "</" -> "<\/" and
 * "<!--" -> "\u003c!--"; in JavaScript "</script" -> "<\/script" and
 * "<!--" -> "\x3C!--". */
static void put_script_text(page *p, const char *s, size_t n, int is_json) {
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '<') continue;
        const char *replacement = NULL;
        size_t skip = 0;
        if (n - i >= 4 && !memcmp(s + i, "<!--", 4)) {
            replacement = is_json ? "\\u003c!--" : "\\x3C!--";
            skip = 4;
        } else if (is_json && n - i >= 2 && s[i + 1] == '/') {
            replacement = "<\\/";
            skip = 2;
        } else if (!is_json && n - i >= 8 && !strncasecmp(s + i, "</script", 8)) {
            replacement = "<\\/";
            skip = 2; /* keeps "script" as written */
        }
        if (!replacement) continue;
        put(p, s + from, i - from);
        put_str(p, replacement);
        from = i + skip;
        i += skip - 1;
    }
    put(p, s + from, n - from);
}

static moe_status write_page(const char *out_path, const char *plotly, size_t plotly_len,
                             const char *data_json) {
    page p;
    p.st = fs_atomic_open(&p.file, out_path);
    put_str(&p, page_head);
    put(&p, moe_report_css, moe_report_css_len);
    put_str(&p, page_plotly);
    put_script_text(&p, plotly, plotly_len, 0);
    put_str(&p, page_body);
    put_script_text(&p, data_json, strlen(data_json), 1);
    put_str(&p, page_code);
    put_script_text(&p, (const char *)moe_report_js, moe_report_js_len, 0);
    put_str(&p, page_end);
    if (p.st == MOE_OK) return fs_atomic_commit(&p.file);
    fs_atomic_abort(&p.file);
    return p.st;
}

moe_status moe_report_write(const char *run_dir, const char *out_path) {
    if (!run_dir || !run_dir[0])
        return moe_error(MOE_ERR_INVALID, "moe_report_write: no run directory given");
    cJSON *data = NULL;
    moe_status st = report_data_load(run_dir, &data);
    if (st != MOE_OK) return st;
    char plotly_path[4096];
    char *plotly = NULL, *data_json = NULL, *default_out = NULL;
    size_t plotly_len = 0;
    st = moe_report_find_plotly(plotly_path, sizeof plotly_path);
    if (st == MOE_OK) st = fs_read_file(plotly_path, &plotly, &plotly_len, NULL);
    if (st == MOE_OK && !(data_json = cJSON_PrintUnformatted(data)))
        st = moe_error(MOE_ERR_NOMEM, "report of %s: out of memory", run_dir);
    if (st == MOE_OK && !out_path) {
        default_out = fs_printf("%s/report.html", run_dir);
        if (!default_out) st = MOE_ERR_NOMEM;
        out_path = default_out;
    }
    if (st == MOE_OK) st = write_page(out_path, plotly, plotly_len, data_json);
    free(default_out);
    free(data_json);
    free(plotly);
    cJSON_Delete(data);
    return st;
}
