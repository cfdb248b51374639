/* moe search: train one run per point of a grid over any config keys and
 * rank the runs by an objective read from each run's results.json. */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_AXES 8
#define MAX_VALUES 32

static void help(void) {
    printf("usage: moe search --config FILE --grid key=v1,v2,... [--grid ...]\n"
           "                  [--objective KEY] [--maximize] [--set key=value ...]\n"
           "                  [--out FILE] [--quiet]\n\n"
           "Trains one run per combination of the --grid values (any config keys, e.g.\n"
           "--grid model.moe.n_experts=2,3,4 --grid model.moe.top_k=1,2), each in its own\n"
           "run directory, and ranks them by KEY from each run's results.json (dotted\n"
           "for nested values; default best_val_loss, lower is better; --maximize for\n"
           "accuracies). Keys of the test split are refused: choosing on the test set\n"
           "would leak it. Writes the table as JSON (default <out_dir>/<name>-search.json).\n\n"
           "  --config FILE     the base config\n"
           "  --grid key=a,b    an axis of the grid (repeatable, up to %d axes of %d values)\n"
           "  --objective KEY   e.g. best_val_loss, final_val_accuracy, final_val_macro_f1\n"
           "  --maximize        higher objective is better\n"
           "  --set key=value   fixed overrides for every run\n"
           "  --out FILE        where the JSON table goes\n"
           "  --quiet           no progress lines from the runs\n",
           MAX_AXES, MAX_VALUES);
}

typedef struct axis {
    char key[128];
    char *values[MAX_VALUES]; /* into text */
    int n;
    char *text; /* strdup of the value list */
} axis;

static int parse_axis(const char *spec, axis *a) {
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof a->key || !eq[1]) {
        fprintf(stderr, "moe search: --grid wants key=v1,v2,..., got '%s'\n", spec);
        return 1;
    }
    memcpy(a->key, spec, (size_t)(eq - spec));
    a->key[eq - spec] = 0;
    a->text = strdup(eq + 1);
    if (!a->text) return 1;
    char *save = NULL;
    for (char *v = strtok_r(a->text, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
        if (a->n == MAX_VALUES) {
            fprintf(stderr, "moe search: --grid %s has more than %d values\n", a->key, MAX_VALUES);
            return 1;
        }
        a->values[a->n++] = v;
    }
    return a->n == 0;
}

/* Axis i's value at grid point p (axis 0 varies fastest). */
static const char *axis_value(const axis *ax, long p, int i) {
    for (int j = 0; j < i; j++) p /= ax[j].n;
    return ax[i].values[p % ax[i].n];
}

/* The objective from results.json: a dotted path to a number. */
static int read_objective(const char *run_dir, const char *key, double *v) {
    char path[1024];
    snprintf(path, sizeof path, "%s/results.json", run_dir);
    FILE *fp = fopen(path, "rb");
    if (!fp) return 1;
    char *text = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *t = realloc(text, cap = (cap + 4096) * 2);
            if (!t) break;
            text = t;
        }
        size_t got = fread(text + n, 1, 4096, fp);
        n += got;
        if (got == 0) break;
    }
    fclose(fp);
    if (!text) return 1;
    text[n] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *node = root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", key);
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part && node; part = strtok_r(NULL, ".", &save))
        node = cJSON_GetObjectItemCaseSensitive(node, part);
    int ok = cJSON_IsNumber(node);
    if (ok) *v = node->valuedouble;
    cJSON_Delete(root);
    return !ok;
}

int cmd_search(int argc, char **argv) {
    const char *config = NULL, *objective = "best_val_loss", *out = NULL;
    int maximize = 0, quiet = 0;
    cli_sets sets = {0}, grids = {0};
    const cli_opt opts[] = {{"config", CLI_STRING, &config, 0, 0},
                            {"grid", CLI_SETS, &grids, 0, 0},
                            {"objective", CLI_STRING, &objective, 0, 0},
                            {"maximize", CLI_FLAG, &maximize, 0, 0},
                            {"set", CLI_SETS, &sets, 0, 0},
                            {"out", CLI_STRING, &out, 0, 0},
                            {"quiet", CLI_FLAG, &quiet, 0, 0},
                            {0}};
    int rc = cli_parse("search", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    if (!config || grids.n == 0) {
        fprintf(stderr, "moe search: give --config FILE and at least one --grid (see --help)\n");
        return 2;
    }
    if (strncmp(objective, "test", 4) == 0) {
        fprintf(stderr,
                "moe search: --objective %s reads the test split; rank on validation "
                "(best_val_loss, final_val_accuracy, final_val_macro_f1) and report "
                "the test split once, for the chosen run\n",
                objective);
        return 2;
    }
    if (grids.n > MAX_AXES) {
        fprintf(stderr, "moe search: at most %d --grid axes\n", MAX_AXES);
        return 2;
    }
    moe_run_config base;
    if (cli_load_config("search", &base, config, &sets)) return 1;
    axis ax[MAX_AXES] = {0};
    long total = 1;
    int bad = 0;
    for (int i = 0; i < grids.n && !bad; i++) {
        bad = parse_axis(grids.v[i], &ax[i]);
        total *= ax[i].n;
    }
    /* every point is checked before any training starts */
    for (long p = 0; p < total && !bad; p++) {
        moe_run_config c = base;
        for (int i = 0; i < grids.n && !bad; i++) {
            char set[4096];
            snprintf(set, sizeof set, "%s=%s", ax[i].key, axis_value(ax, p, i));
            moe_status st = moe_config_set(&c, set);
            if (st == MOE_OK) st = moe_config_validate(&c);
            if (st != MOE_OK) bad = cli_fail("search", set, st);
        }
    }
    cJSON *table = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(table, "runs");
    cJSON_AddStringToObject(table, "objective", objective);
    cJSON_AddStringToObject(table, "direction", maximize ? "maximize" : "minimize");
    long best = -1;
    double best_v = 0;
    for (long p = 0; p < total && !bad; p++) {
        moe_run_config c = base;
        cJSON *row = cJSON_CreateObject(), *params = cJSON_AddObjectToObject(row, "params");
        fprintf(stderr, "search %ld/%ld:", p + 1, total);
        for (int i = 0; i < grids.n; i++) {
            const char *v = axis_value(ax, p, i);
            char set[4096];
            snprintf(set, sizeof set, "%s=%s", ax[i].key, v);
            moe_config_set(&c, set);
            cJSON_AddStringToObject(params, ax[i].key, v);
            fprintf(stderr, " %s", set);
        }
        fprintf(stderr, "\n");
        moe_train_opts topts = {.progress = quiet ? NULL : cli_progress, .alert = NULL};
        moe_train_result r;
        moe_status st = moe_train_run(&c, &topts, &r);
        if (!quiet) fprintf(stderr, "\n");
        cJSON_AddStringToObject(row, "run_dir", r.run_dir);
        double v = NAN;
        if (st != MOE_OK) {
            cJSON_AddStringToObject(row, "error", moe_last_error());
            fprintf(stderr, "moe search: run %ld failed: %s\n", p + 1, moe_last_error());
        } else if (read_objective(r.run_dir, objective, &v) || !isfinite(v)) {
            fprintf(stderr, "moe search: %s/results.json has no number at '%s'\n", r.run_dir,
                    objective);
            bad = 1;
        }
        if (isfinite(v)) {
            cJSON_AddNumberToObject(row, "objective", v);
            if (best < 0 || (maximize ? v > best_v : v < best_v)) {
                best = p;
                best_v = v;
            }
        }
        cJSON_AddItemToArray(runs, row);
    }
    if (best >= 0) {
        cJSON_AddNumberToObject(table, "best", (double)best);
        cJSON *b = cJSON_GetArrayItem(runs, (int)best);
        cJSON_AddItemToObject(table, "best_params",
                              cJSON_Duplicate(cJSON_GetObjectItem(b, "params"), 1));
        cJSON_AddStringToObject(table, "best_run_dir",
                                cJSON_GetObjectItem(b, "run_dir")->valuestring);
    }
    char *s = cJSON_Print(table);
    char path[1024];
    if (!out) snprintf(path, sizeof path, "%s/%s-search.json", base.out_dir, base.name);
    const char *where = out ? out : path;
    FILE *fp = s ? fopen(where, "w") : NULL;
    if (!fp || fprintf(fp, "%s\n", s) < 0 || fclose(fp) != 0) {
        fprintf(stderr, "moe search: cannot write %s\n", where);
        bad = 1;
    }
    if (s && !bad) printf("%s\nsearch table: %s\n", s, where);
    free(s);
    cJSON_Delete(table);
    for (int i = 0; i < grids.n; i++) free(ax[i].text);
    return bad || best < 0;
}
