/* One configuration field: type-checked assignment from a cJSON value, the
 * value back as cJSON, and its default. Messages name the key, what it
 * expects and what it got. */
#include "config_table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the field's storage inside c, typed */
#define FIELD(c, f, T) ((T *)field_ptr(c, (f)->offset))
#define CFIELD(c, f, T) ((const T *)cfield_ptr(c, (f)->offset))

static void *field_ptr(moe_run_config *c, size_t offset) {
    return (unsigned char *)c + offset;
}

static const void *cfield_ptr(const moe_run_config *c, size_t offset) {
    return (const unsigned char *)c + offset;
}

/* "string \"4\"", "number 4.5", "true", ... for messages */
static void describe(const cJSON *v, char *buf, size_t cap) {
    if (cJSON_IsString(v))
        snprintf(buf, cap, "string \"%.60s\"", v->valuestring);
    else if (cJSON_IsNumber(v))
        snprintf(buf, cap, "number %.17g", v->valuedouble);
    else if (cJSON_IsBool(v))
        snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v))
        snprintf(buf, cap, "null");
    else if (cJSON_IsArray(v))
        snprintf(buf, cap, "an array");
    else if (cJSON_IsObject(v))
        snprintf(buf, cap, "an object");
    else
        snprintf(buf, cap, "an invalid value");
}

static moe_status wrong_type(const cfg_field *f, const cJSON *v, const char *origin,
                             const char *expected) {
    char got[96];
    describe(v, got, sizeof got);
    return moe_error(MOE_ERR_INVALID, "config %s: \"%s\" expects %s, found %s", origin, f->key,
                     expected, got);
}

static moe_status out_of_range(const cfg_field *f, double x, const char *origin) {
    return moe_error(MOE_ERR_INVALID,
                     "config %s: \"%s\" = %.9g is out of range; allowed %.9g .. %.9g", origin,
                     f->key, x, f->min, f->max);
}

/* "\"a\", \"b\"" */
static void list_names(const char *const *names, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s\"%s\"", i ? ", " : "", names[i]);
}

static int name_index(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

static moe_status not_a_name(const cfg_field *f, const char *s, const char *origin) {
    char allowed[512];
    list_names(f->names, allowed, sizeof allowed);
    return moe_error(MOE_ERR_INVALID, "config %s: \"%s\" = \"%.60s\" is not one of: %s", origin,
                     f->key, s, allowed);
}

/* a JSON number that is a whole number inside the field's range */
static moe_status get_integer(const cfg_field *f, const cJSON *v, const char *origin, double *x) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return wrong_type(f, v, origin,
                          f->type == CFG_INT_LIST ? "an array of integers" : "an integer");
    *x = v->valuedouble;
    if (*x < f->min || *x > f->max) return out_of_range(f, *x, origin);
    return MOE_OK;
}

static moe_status assign_list(moe_run_config *c, const cfg_field *f, const cJSON *v,
                              const char *origin) {
    if (!cJSON_IsArray(v)) return wrong_type(f, v, origin, "an array of integers");
    int n = cJSON_GetArraySize(v);
    if (n > (int)f->size)
        return moe_error(MOE_ERR_INVALID, "config %s: \"%s\" has %d items; at most %zu allowed",
                         origin, f->key, n, f->size);
    /* written in place: callers assign to a copy they drop on error */
    int *items = FIELD(c, f, int), i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v) {
        double x = 0;
        moe_status st = get_integer(f, it, origin, &x);
        if (st != MOE_OK) return st;
        items[i++] = (int)x;
    }
    *(int *)field_ptr(c, f->count_offset) = n;
    return MOE_OK;
}

moe_status cfg_assign(moe_run_config *c, const cfg_field *f, const cJSON *v, const char *origin) {
    double x = 0;
    moe_status st;
    switch (f->type) {
    case CFG_INT:
    case CFG_U64:
        if ((st = get_integer(f, v, origin, &x)) != MOE_OK) return st;
        if (f->type == CFG_INT)
            *FIELD(c, f, int) = (int)x;
        else
            *FIELD(c, f, unsigned long long) = (unsigned long long)x;
        return MOE_OK;
    case CFG_FLOAT:
        if (!cJSON_IsNumber(v)) return wrong_type(f, v, origin, "a number");
        x = v->valuedouble;
        if (!isfinite(x) || x < f->min || x > f->max) return out_of_range(f, x, origin);
        *FIELD(c, f, float) = (float)x;
        return MOE_OK;
    case CFG_BOOL:
        if (cJSON_IsBool(v)) {
            *FIELD(c, f, int) = cJSON_IsTrue(v);
            return MOE_OK;
        }
        if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1)) {
            *FIELD(c, f, int) = (int)v->valuedouble;
            return MOE_OK;
        }
        return wrong_type(f, v, origin, "true or false");
    case CFG_STRING:
        if (!cJSON_IsString(v)) return wrong_type(f, v, origin, "a string");
        if (f->names && name_index(f->names, v->valuestring) < 0)
            return not_a_name(f, v->valuestring, origin);
        if (strlen(v->valuestring) >= f->size)
            return moe_error(MOE_ERR_INVALID,
                             "config %s: \"%s\" is too long (%zu characters, at most %zu)", origin,
                             f->key, strlen(v->valuestring), f->size - 1);
        strcpy(FIELD(c, f, char), v->valuestring);
        return MOE_OK;
    case CFG_ENUM: {
        char expected[600];
        if (!cJSON_IsString(v)) {
            char allowed[512];
            list_names(f->names, allowed, sizeof allowed);
            snprintf(expected, sizeof expected, "one of %s", allowed);
            return wrong_type(f, v, origin, expected);
        }
        int k = name_index(f->names, v->valuestring);
        if (k < 0) return not_a_name(f, v->valuestring, origin);
        *FIELD(c, f, int) = k;
        return MOE_OK;
    }
    case CFG_INT_LIST:
        return assign_list(c, f, v, origin);
    }
    return moe_error(MOE_ERR_INVALID, "config %s: \"%s\" has an unknown type", origin, f->key);
}

/* The shortest decimal that reads back as the same float, so dumps show
 * 0.0003 rather than 0.00030000001424923539. */
static double float_for_json(float x) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if ((float)strtod(buf, NULL) == x) break;
    }
    return strtod(buf, NULL);
}

cJSON *cfg_value_json(const moe_run_config *c, const cfg_field *f) {
    switch (f->type) {
    case CFG_INT:
        return cJSON_CreateNumber(*CFIELD(c, f, int));
    case CFG_U64:
        return cJSON_CreateNumber((double)*CFIELD(c, f, unsigned long long));
    case CFG_FLOAT:
        return cJSON_CreateNumber(float_for_json(*CFIELD(c, f, float)));
    case CFG_BOOL:
        return cJSON_CreateBool(*CFIELD(c, f, int) != 0);
    case CFG_STRING:
        return cJSON_CreateString(CFIELD(c, f, char));
    case CFG_ENUM: {
        int k = *CFIELD(c, f, int), n = 0;
        while (f->names[n]) n++;
        return cJSON_CreateString(k >= 0 && k < n ? f->names[k] : "?");
    }
    case CFG_INT_LIST: {
        int n = *(const int *)cfield_ptr(c, f->count_offset);
        if (n < 0) n = 0;
        if (n > (int)f->size) n = (int)f->size;
        return cJSON_CreateIntArray(CFIELD(c, f, int), n);
    }
    }
    return NULL;
}

void cfg_set_default(moe_run_config *c, const cfg_field *f) {
    switch (f->type) {
    case CFG_INT:
    case CFG_BOOL:
    case CFG_ENUM:
        *FIELD(c, f, int) = (int)f->def;
        break;
    case CFG_U64:
        *FIELD(c, f, unsigned long long) = (unsigned long long)f->def;
        break;
    case CFG_FLOAT:
        *FIELD(c, f, float) = (float)f->def;
        break;
    case CFG_STRING:
        snprintf(FIELD(c, f, char), f->size, "%s", f->def_str);
        break;
    case CFG_INT_LIST:
        *(int *)field_ptr(c, f->count_offset) = 0;
        break;
    }
}
