/* The report's data: every file of a run directory that the page draws
 * from, gathered into one JSON object. Files are embedded as their raw text
 * (after checking they parse), so the page shows the numbers exactly as the
 * trainer wrote them. */
#include "obs/report_internal.h"

#include "io/fsutil.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* data[key] = the JSON object in run_dir/file; nothing when the file is
 * missing (its sections are left out of the page). */
static moe_status add_json_file(cJSON *data, const char *run_dir, const char *file,
                                const char *key) {
    char *path = fs_printf("%s/%s", run_dir, file);
    if (!path) return MOE_ERR_NOMEM;
    char *text = NULL;
    int missing = 0;
    moe_status st = fs_read_file(path, &text, NULL, &missing);
    if (st != MOE_OK) {
        free(path);
        return missing ? MOE_OK : st;
    }
    const char *err = NULL;
    cJSON *obj = cJSON_ParseWithOpts(text, &err, 1);
    if (!cJSON_IsObject(obj)) {
        long at = err && err >= text ? (long)(err - text) : 0;
        st = moe_error(MOE_ERR_FORMAT,
                       "%s: not a JSON object (malformed near byte %ld); "
                       "remove or rewrite it (format in docs/monitoring.md)",
                       path, at);
    } else if (!cJSON_AddRawToObject(data, key, text)) {
        st = moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
    }
    cJSON_Delete(obj);
    free(text);
    free(path);
    return st;
}

/* data[key] = [each line of run_dir/file as its raw JSON]; nothing when the
 * file is missing. A line that is not a JSON object is an error naming it. */
static moe_status add_jsonl_file(cJSON *data, const char *run_dir, const char *file,
                                 const char *key) {
    char *path = fs_printf("%s/%s", run_dir, file);
    if (!path) return MOE_ERR_NOMEM;
    char *text = NULL;
    int missing = 0;
    moe_status st = fs_read_file(path, &text, NULL, &missing);
    if (st != MOE_OK) {
        free(path);
        return missing ? MOE_OK : st;
    }
    cJSON *list = cJSON_AddArrayToObject(data, key);
    int line = 0;
    for (char *s = text, *next; st == MOE_OK && list && s && *s; s = next) {
        next = strchr(s, '\n');
        if (next) *next++ = 0;
        line++;
        if (!*s) continue;
        cJSON *obj = cJSON_Parse(s);
        if (!cJSON_IsObject(obj))
            st = moe_error(MOE_ERR_FORMAT, "%s line %d: not a JSON object; remove the line", path,
                           line);
        else if (!cJSON_AddItemToArray(list, cJSON_CreateRaw(s)))
            st = moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
        cJSON_Delete(obj);
    }
    free(text);
    free(path);
    return list ? st : MOE_ERR_NOMEM;
}

moe_status report_data_load(const char *run_dir, cJSON **data) {
    *data = NULL;
    if (!fs_is_dir(run_dir))
        return moe_error(MOE_ERR_IO,
                         "%s %s; expected a run directory written by moe train "
                         "(holding metrics.jsonl)",
                         run_dir, fs_exists(run_dir) ? "is not a directory" : "does not exist");
    cJSON *d = cJSON_CreateObject();
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!d || !cJSON_AddStringToObject(d, "run_dir", run_dir) ||
        !cJSON_AddStringToObject(d, "generated_utc", stamp)) {
        cJSON_Delete(d);
        return moe_error(MOE_ERR_NOMEM, "report of %s: out of memory", run_dir);
    }
    char *metrics = fs_printf("%s/metrics.jsonl", run_dir);
    moe_status st = metrics ? report_metrics_load(metrics, d) : MOE_ERR_NOMEM;
    free(metrics);
    static const char *const files[][2] = {{"routing.json", "routing"},
                                           {"model_info.json", "model_info"},
                                           {"results.json", "results"},
                                           {"config.json", "config"}};
    for (size_t i = 0; st == MOE_OK && i < sizeof files / sizeof *files; i++)
        st = add_json_file(d, run_dir, files[i][0], files[i][1]);
    if (st == MOE_OK) st = add_jsonl_file(d, run_dir, "analysis.jsonl", "analysis");
    if (st != MOE_OK) {
        cJSON_Delete(d);
        return st;
    }
    *data = d;
    return MOE_OK;
}
