/* Run configuration: defaults, JSON in and out, --set. Everything walks the
 * table in config_table.c; this file only knows JSON objects and sections. */
#include "config_table.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 128

/* MoE layers are as wide as the model; the width is not a key of its own. */
static void sync_derived(moe_run_config *c) {
    c->model.moe.d_model = c->model.d_model;
}

void moe_config_defaults(moe_run_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < cfg_n_fields; i++) cfg_set_default(c, &cfg_fields[i]);
    sync_derived(c);
}

/* Applies the members of obj, found at section ("" = root), to c. */
static moe_status apply_object(moe_run_config *c, const cJSON *obj, const char *section,
                               const char *origin) {
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        char key[KEY_MAX];
        if (section[0])
            snprintf(key, sizeof key, "%s.%s", section, item->string);
        else
            snprintf(key, sizeof key, "%s", item->string);
        const cfg_field *f = cfg_find(key);
        moe_status st;
        if (f) {
            st = cfg_assign(c, f, item, origin);
        } else if (cfg_is_section(key)) {
            if (!cJSON_IsObject(item)) {
                char valid[700];
                cfg_section_keys(key, valid, sizeof valid);
                return moe_error(MOE_ERR_INVALID,
                                 "config %s: \"%s\" expects an object with keys: %s", origin, key,
                                 valid);
            }
            st = apply_object(c, item, key, origin);
        } else {
            st = cfg_unknown_key(key, origin);
        }
        if (st != MOE_OK) return st;
    }
    return MOE_OK;
}

/* Parses text; on malformed JSON the message gives line, column and what
 * follows the error position. */
static moe_status parse_json(cJSON **out, const char *text, const char *origin) {
    const char *end = NULL;
    *out = cJSON_ParseWithOpts(text, &end, 1);
    if (*out) return MOE_OK;
    if (!end) return moe_error(MOE_ERR_NOMEM, "config %s: out of memory parsing JSON", origin);
    long line = 1, col = 1;
    for (const char *p = text; p < end; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char near[24];
    size_t n = 0;
    for (const char *p = end; *p && n + 1 < sizeof near; p++)
        near[n++] = isprint((unsigned char)*p) ? *p : ' ';
    near[n] = '\0';
    return moe_error(MOE_ERR_INVALID,
                     "config %s: malformed JSON at line %ld, column %ld (byte %ld)%s%s%s", origin,
                     line, col, (long)(end - text), n ? " near \"" : " (unexpected end)", near,
                     n ? "\"" : "");
}

/* Applies text's object found at section to a copy of c; c changes only on success. */
static moe_status apply_text(moe_run_config *c, const char *text, const char *section,
                             const char *origin) {
    if (!origin) origin = "<json>";
    if (!text) return moe_error(MOE_ERR_INVALID, "config %s: no JSON text given", origin);
    cJSON *root;
    moe_status st = parse_json(&root, text, origin);
    if (st != MOE_OK) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return moe_error(MOE_ERR_INVALID, "config %s: the document must be a JSON object {...}",
                         origin);
    }
    moe_run_config tmp = *c;
    st = apply_object(&tmp, root, section, origin);
    cJSON_Delete(root);
    if (st != MOE_OK) return st;
    sync_derived(&tmp);
    *c = tmp;
    return MOE_OK;
}

moe_status moe_config_from_json(moe_run_config *c, const char *json_text, const char *origin) {
    return apply_text(c, json_text, "", origin);
}

moe_status moe_model_config_from_json(moe_model_config *m, const char *json_text,
                                      const char *origin) {
    moe_run_config tmp;
    moe_config_defaults(&tmp);
    tmp.model = *m;
    moe_status st = apply_text(&tmp, json_text, "model", origin);
    if (st == MOE_OK) *m = tmp.model;
    return st;
}

moe_status moe_config_load(moe_run_config *c, const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return moe_error(MOE_ERR_IO, "config %s: cannot open (%s); check the path", path,
                         strerror(errno));
    char *text = NULL;
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    if (size >= 0 && fseek(fp, 0, SEEK_SET) == 0) text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, fp) != (size_t)size) {
        int nomem = size >= 0 && !text;
        free(text);
        fclose(fp);
        if (nomem)
            return moe_error(MOE_ERR_NOMEM, "config %s: no memory for %ld bytes", path, size);
        return moe_error(MOE_ERR_IO, "config %s: cannot read the file", path);
    }
    fclose(fp);
    text[size] = '\0';
    moe_status st = moe_config_from_json(c, text, path);
    free(text);
    return st;
}

/* Trims spaces at both ends of s in place. */
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* The text after '=' as a cJSON value of the field's type. Text that does
 * not parse becomes a string, so the type error shows what was given. */
static cJSON *set_value(const cfg_field *f, const char *text) {
    size_t n = strlen(text);
    if (f->type == CFG_STRING || f->type == CFG_ENUM) {
        if (n >= 2 && text[0] == '"' && text[n - 1] == '"') { /* quotes optional */
            char *s = malloc(n - 1);
            if (!s) return NULL;
            memcpy(s, text + 1, n - 2);
            s[n - 2] = '\0';
            cJSON *v = cJSON_CreateString(s);
            free(s);
            return v;
        }
        return cJSON_CreateString(text);
    }
    cJSON *v = NULL;
    if (f->type == CFG_INT_LIST && text[0] != '[') { /* "100,200" or "" */
        char *wrapped = malloc(n + 3);
        if (!wrapped) return NULL;
        snprintf(wrapped, n + 3, "[%s]", text);
        v = cJSON_Parse(wrapped);
        free(wrapped);
    } else {
        v = cJSON_Parse(text);
    }
    return v ? v : cJSON_CreateString(text);
}

moe_status moe_config_set(moe_run_config *c, const char *assignment) {
    const char *origin = "--set";
    const char *eq = assignment ? strchr(assignment, '=') : NULL;
    if (!eq)
        return moe_error(MOE_ERR_INVALID,
                         "config %s: expected key=value (e.g. model.n_layer=4), got \"%s\"", origin,
                         assignment ? assignment : "(null)");
    char key_buf[KEY_MAX];
    size_t klen = (size_t)(eq - assignment);
    if (klen >= sizeof key_buf) klen = sizeof key_buf - 1;
    memcpy(key_buf, assignment, klen);
    key_buf[klen] = '\0';
    const char *key = trim(key_buf);
    char *val_buf = strdup(eq + 1);
    if (!val_buf) return moe_error(MOE_ERR_NOMEM, "config %s: out of memory", origin);
    const char *val = trim(val_buf);

    moe_status st;
    const cfg_field *f = cfg_find(key);
    if (!f) {
        if (cfg_is_section(key) && key[0]) {
            char valid[700];
            cfg_section_keys(key, valid, sizeof valid);
            st = moe_error(MOE_ERR_INVALID,
                           "config %s: \"%s\" is a section; set one of its keys: %s", origin, key,
                           valid);
        } else {
            st = cfg_unknown_key(key, origin);
        }
        free(val_buf);
        return st;
    }
    cJSON *v = set_value(f, val);
    free(val_buf);
    if (!v) return moe_error(MOE_ERR_NOMEM, "config %s: out of memory", origin);
    moe_run_config tmp = *c;
    st = cfg_assign(&tmp, f, v, origin);
    cJSON_Delete(v);
    if (st != MOE_OK) return st;
    sync_derived(&tmp);
    *c = tmp;
    return MOE_OK;
}

/* The object at the dotted path under root, created when missing. */
static cJSON *object_at(cJSON *root, const char *path, size_t len) {
    cJSON *obj = root;
    while (len > 0 && obj) {
        size_t n = strcspn(path, ".");
        if (n > len) n = len;
        char name[KEY_MAX];
        snprintf(name, sizeof name, "%.*s", (int)n, path);
        cJSON *next = cJSON_GetObjectItemCaseSensitive(obj, name);
        if (!next) next = cJSON_AddObjectToObject(obj, name);
        obj = next;
        path += n;
        len -= n;
        if (len > 0) { /* skip the dot */
            path++;
            len--;
        }
    }
    return obj;
}

/* Pretty JSON of every field under prefix ("" = all, "model." = the model
 * object), keys relative to it, nested as in the file format. */
static char *dump(const moe_run_config *c, const char *prefix) {
    size_t np = strlen(prefix);
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    for (int i = 0; i < cfg_n_fields; i++) {
        const cfg_field *f = &cfg_fields[i];
        if (strncmp(f->key, prefix, np) != 0) continue;
        const char *rel = f->key + np, *leaf = strrchr(rel, '.');
        cJSON *obj = object_at(root, rel, leaf ? (size_t)(leaf - rel) : 0);
        cJSON *v = cfg_value_json(c, f);
        if (!obj || !v || !cJSON_AddItemToObject(obj, leaf ? leaf + 1 : rel, v)) {
            cJSON_Delete(v);
            cJSON_Delete(root);
            return NULL;
        }
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

char *moe_config_to_json(const moe_run_config *c) {
    char *s = dump(c, "");
    if (!s) moe_error(MOE_ERR_NOMEM, "moe_config_to_json: out of memory");
    return s;
}

char *moe_model_config_to_json(const moe_model_config *m) {
    moe_run_config tmp;
    moe_config_defaults(&tmp);
    tmp.model = *m;
    char *s = dump(&tmp, "model.");
    if (!s) moe_error(MOE_ERR_NOMEM, "moe_model_config_to_json: out of memory");
    return s;
}
