/* A POST /v1/train body -> the run config a job trains with. The client
 * chooses the model and the recipe; the server chooses where things go:
 * outputs land in the job's folder, and every file the config names must
 * resolve inside the data directory. */
#include "serve/jobs_internal.h"

#include "train/config_table.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int jobs_thread_budget(int requested) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    if (requested <= 0) return cores >= 2 ? (int)(cores / 2) : 1;
    return requested > cores ? (int)cores : requested;
}

/* The config key a library message is about: the key of an "unknown key"
 * message, else its first word that is a key. "config" when none is. */
static void key_of_message(const char *msg, char *key, size_t cap) {
    const char *unknown = strstr(msg, "unknown key \"");
    if (unknown) {
        unknown += strlen("unknown key \"");
        size_t n = strcspn(unknown, "\"");
        snprintf(key, cap, "%.*s", (int)n, unknown);
        return;
    }
    for (const char *p = msg; *p;) {
        size_t n = 0;
        while (p[n] && (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '.')) n++;
        if (n > 0 && n < 128) {
            char word[128];
            memcpy(word, p, n);
            word[n] = '\0';
            while (n > 0 && word[n - 1] == '.') word[--n] = '\0'; /* a sentence's full stop */
            if (strchr(word, '.') && cfg_find(word)) {
                snprintf(key, cap, "%s", word);
                return;
            }
        }
        p += n ? n : 1;
    }
    snprintf(key, cap, "config");
}

/* 400 for a library error: the key it names and its message. */
static moe_status config_fail(serve_error *err, const char *key) {
    char found[128];
    if (!key) {
        key_of_message(moe_last_error(), found, sizeof found);
        key = found;
    }
    return serve_fail(err, 400, key, "%s", moe_last_error());
}

/* One "set" entry through moe_config_set: numbers, strings, booleans and
 * integer arrays, spelled as --set would take them. */
static moe_status apply_set(moe_run_config *cfg, const cJSON *item, serve_error *err) {
    const char *key = item->string;
    if (!key[0] || strchr(key, '=') || strlen(key) > 100)
        return serve_fail(err, 400, "set", "\"set\" keys are config keys such as \"train.steps\"");
    char *value = NULL;
    if (cJSON_IsString(item))
        value = strdup(item->valuestring);
    else if (cJSON_IsBool(item))
        value = strdup(cJSON_IsTrue(item) ? "true" : "false");
    else if (cJSON_IsNumber(item) || cJSON_IsArray(item))
        value = cJSON_PrintUnformatted(item);
    else
        return serve_fail(err, 400, key, "set \"%s\": give a number, string, boolean or array",
                          key);
    if (!value) return serve_fail(err, 500, key, "out of memory");
    size_t n = strlen(key) + strlen(value) + 2;
    char *assignment = malloc(n);
    moe_status st = MOE_ERR_NOMEM;
    if (assignment) {
        snprintf(assignment, n, "%s=%s", key, value);
        st = moe_config_set(cfg, assignment);
    }
    free(assignment);
    free(value);
    if (st == MOE_ERR_NOMEM) return serve_fail(err, 500, key, "out of memory");
    return st == MOE_OK ? MOE_OK : config_fail(err, key);
}

/* "config": a preset name (configs_dir/<name>.json) or a config object. */
static moe_status apply_config(const struct serve_jobs *js, moe_run_config *cfg,
                               const cJSON *config, serve_error *err) {
    if (cJSON_IsString(config)) {
        const char *preset = config->valuestring;
        if (!serve_name_valid(preset))
            return serve_fail(err, 400, "config",
                              "\"config\" names a preset: letters, digits, '_', '.', '-'");
        size_t n = strlen(js->configs_dir) + strlen(preset) + 8;
        char *path = malloc(n);
        if (!path) return serve_fail(err, 500, "config", "out of memory");
        snprintf(path, n, "%s/%s.json", js->configs_dir, preset);
        moe_status st = MOE_ERR_IO;
        if (access(path, R_OK) == 0) st = moe_config_load(cfg, path);
        free(path);
        if (st == MOE_ERR_IO)
            return serve_fail(err, 400, "config", "no preset named \"%s\" on this server", preset);
        return st == MOE_OK ? MOE_OK : config_fail(err, NULL);
    }
    if (cJSON_IsObject(config)) {
        char *text = cJSON_PrintUnformatted(config);
        if (!text) return serve_fail(err, 500, "config", "out of memory");
        moe_status st = moe_config_from_json(cfg, text, "body");
        free(text);
        return st == MOE_OK ? MOE_OK : config_fail(err, NULL);
    }
    return serve_fail(err, 400, "config", "\"config\" must be a preset name or a config object");
}

/* path (absolute, or relative to the data directory) must resolve inside
 * it; the field then holds the resolved path, so the trainer opens what
 * was checked. One message whether the file is missing or outside, so the
 * answer tells nothing about files outside. */
static moe_status sandbox_path(const struct serve_jobs *js, const char *key, char *field,
                               size_t cap, serve_error *err) {
    char joined[PATH_MAX * 2], real[PATH_MAX];
    if (field[0] == '/')
        snprintf(joined, sizeof joined, "%s", field);
    else
        snprintf(joined, sizeof joined, "%s/%s", js->data_real, field);
    size_t root = strlen(js->data_real);
    int inside = realpath(joined, real) != NULL &&
                 (strcmp(js->data_real, "/") == 0 ||
                  (strncmp(real, js->data_real, root) == 0 && (real[root] == '/' || !real[root])));
    if (!inside)
        return serve_fail(err, 400, key,
                          "%s \"%.120s\" is not a file inside the server's data directory "
                          "(paths are relative to it)",
                          key, field);
    if (strlen(real) >= cap) return serve_fail(err, 400, key, "%s: the path is too long", key);
    snprintf(field, cap, "%s", real);
    return MOE_OK;
}

/* The server's choices over the client's: outputs, files, threads. */
static moe_status sandbox(const struct serve_jobs *js, moe_run_config *cfg, const char *out_dir,
                          const char *name, serve_error *err) {
    if (strlen(out_dir) >= sizeof cfg->out_dir)
        return serve_fail(err, 500, "", "the state directory's path is too long");
    snprintf(cfg->out_dir, sizeof cfg->out_dir, "%s", out_dir);
    snprintf(cfg->name, sizeof cfg->name, "%s", name);
    moe_status st = MOE_OK;
    if (cfg->data.path[0])
        st = sandbox_path(js, "data.path", cfg->data.path, sizeof cfg->data.path, err);
    const char *tok = cfg->data.tokenizer;
    if (st == MOE_OK && tok[0] && strcmp(tok, "bytes") != 0 && strcmp(tok, "gpt2") != 0)
        st = sandbox_path(js, "data.tokenizer", cfg->data.tokenizer, sizeof cfg->data.tokenizer,
                          err);
    if (st == MOE_OK && cfg->train.init_from[0])
        st = sandbox_path(js, "train.init_from", cfg->train.init_from, sizeof cfg->train.init_from,
                          err);
    cfg->train.threads = jobs_thread_budget(cfg->train.threads);
    return st;
}

moe_status jobs_build_config(const struct serve_jobs *js, const char *body, size_t len,
                             const char *out_dir, moe_run_config *cfg, char *name, size_t name_cap,
                             serve_error *err) {
    moe_config_defaults(cfg);
    static const char *const keys[] = {"config", "set", "name", NULL};
    cJSON *root = NULL;
    moe_status st =
        serve_parse_object(body, len, keys, "\"config\", \"set\" and \"name\"", &root, err);
    if (st != MOE_OK) return st;
    const cJSON *item, *config = cJSON_GetObjectItemCaseSensitive(root, "config"),
                       *set = cJSON_GetObjectItemCaseSensitive(root, "set"),
                       *jname = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (st == MOE_OK && jname && !(cJSON_IsString(jname) && serve_name_valid(jname->valuestring)))
        st = serve_fail(err, 400, "name",
                        "\"name\": 1 to 63 letters, digits, '_', '.', '-', starting with a letter "
                        "or digit");
    if (st == MOE_OK && set && !cJSON_IsObject(set))
        st = serve_fail(err, 400, "set", "\"set\" must be an object {\"train.steps\": 100, ...}");
    if (st == MOE_OK && config) st = apply_config(js, cfg, config, err);
    if (st == MOE_OK && set) cJSON_ArrayForEach(item, set) {
            if ((st = apply_set(cfg, item, err)) != MOE_OK) break;
        }
    if (st == MOE_OK) { /* the job's name: given, else the config's, else the preset's */
        const char *n = jname                         ? jname->valuestring
                        : serve_name_valid(cfg->name) ? cfg->name
                        : cJSON_IsString(config)      ? config->valuestring
                                                      : "job";
        snprintf(name, name_cap, "%s", n);
        st = sandbox(js, cfg, out_dir, name, err);
    }
    if (st == MOE_OK && moe_config_validate(cfg) != MOE_OK) st = config_fail(err, NULL);
    cJSON_Delete(root);
    return st;
}
