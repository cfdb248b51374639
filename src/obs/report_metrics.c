/* metrics.jsonl of a run directory, split by line kind for the report. */
#include "obs/report_internal.h"

#include "io/fsutil.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_TRAIN, KIND_EVAL, KIND_ALERT, N_KINDS };
static const char *const kind_names[N_KINDS] = {"train", "eval", "alert"};
static const char *const list_names[N_KINDS] = {"train", "eval", "alerts"};

static int is_blank(const char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return *s == '\0';
}

/* Checks one line and appends its raw text to the list of its kind. */
static moe_status add_line(cJSON *lists[N_KINDS], const char *path, int line_no, const char *line,
                           int complete) {
    if (is_blank(line)) return MOE_OK;
    const char *err = NULL;
    cJSON *obj = cJSON_ParseWithOpts(line, &err, 1);
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        if (!complete) return MOE_OK; /* the trainer is still writing it */
        long column = err && err >= line ? (long)(err - line) + 1 : 1;
        return moe_error(MOE_ERR_FORMAT,
                         "%s line %d: not a JSON object (malformed near column %ld); "
                         "expected one JSON object per line as docs/monitoring.md describes",
                         path, line_no, column);
    }
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(obj, "kind");
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(obj, "step");
    moe_status st = MOE_OK;
    if (!cJSON_IsString(kind) || !cJSON_IsNumber(step)) {
        st = moe_error(MOE_ERR_FORMAT,
                       "%s line %d: no string \"kind\" or no number \"step\"; every line "
                       "needs both (kind \"train\", \"eval\" or \"alert\", docs/monitoring.md)",
                       path, line_no);
    } else {
        for (int k = 0; k < N_KINDS; k++) {
            if (strcmp(kind->valuestring, kind_names[k]) != 0) continue;
            cJSON *raw = cJSON_CreateRaw(line);
            if (!raw) {
                st = moe_error(MOE_ERR_NOMEM, "%s line %d: out of memory", path, line_no);
                break;
            }
            cJSON_AddItemToArray(lists[k], raw);
        }
    }
    cJSON_Delete(obj);
    return st;
}

moe_status report_metrics_load(const char *path, cJSON *data) {
    char *text = NULL;
    int missing = 0;
    moe_status st = fs_read_file(path, &text, NULL, &missing);
    if (st != MOE_OK && missing)
        return moe_error(MOE_ERR_IO,
                         "%s not found; expected a run directory written by moe train, "
                         "which holds metrics.jsonl",
                         path);
    if (st != MOE_OK) return st;
    cJSON *lists[N_KINDS];
    for (int k = 0; k < N_KINDS; k++) lists[k] = cJSON_CreateArray();
    for (int k = 0; k < N_KINDS; k++)
        if (!lists[k]) st = moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
    char *line = text;
    for (int line_no = 1; st == MOE_OK && *line; line_no++) {
        char *end = strchr(line, '\n');
        int complete = end != NULL;
        if (!end) end = line + strlen(line);
        char *next = complete ? end + 1 : end;
        if (end > line && end[-1] == '\r') end--;
        *end = '\0';
        st = add_line(lists, path, line_no, line, complete);
        line = next;
    }
    free(text);
    for (int k = 0; k < N_KINDS; k++) {
        if (st == MOE_OK && cJSON_GetArraySize(lists[k]) > 0)
            cJSON_AddItemToObject(data, list_names[k], lists[k]);
        else
            cJSON_Delete(lists[k]);
    }
    return st;
}
