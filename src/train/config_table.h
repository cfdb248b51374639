/* Internal: the table behind include/moe/config.h. One row per key gives its
 * type, where it lives in moe_run_config, its default and its allowed range;
 * parsing, --set, range checks, defaults and dumping all walk this table, so
 * a new field is one row in config_table.c. */
#ifndef MOE_TRAIN_CONFIG_TABLE_H
#define MOE_TRAIN_CONFIG_TABLE_H

#include "moe/config.h"

#include <cjson/cJSON.h>
#include <stddef.h>

typedef enum cfg_type {
    CFG_INT,      /* int */
    CFG_U64,      /* unsigned long long, integral JSON number up to 2^53 */
    CFG_FLOAT,    /* float, finite */
    CFG_BOOL,     /* int 0/1; JSON true/false (0 and 1 accepted) */
    CFG_STRING,   /* char[size]; names, when set, lists the allowed values */
    CFG_ENUM,     /* an int-sized C enum; names[value] is its JSON string */
    CFG_INT_LIST, /* int[size] with an int count at count_offset */
} cfg_type;

typedef struct cfg_field {
    const char *key;          /* dotted path from the root object */
    cfg_type type;            /* how the value is stored and spelled */
    size_t offset;            /* of the value in moe_run_config */
    size_t size;              /* STRING: capacity in bytes; INT_LIST: max items */
    size_t count_offset;      /* INT_LIST: offset of the item count */
    double min, max;          /* inclusive range of numbers (list items too) */
    const char *const *names; /* ENUM names by value / allowed STRINGs; NULL-ended */
    double def;               /* default of numbers, bools and enums */
    const char *def_str;      /* default of STRINGs */
} cfg_field;

extern const cfg_field cfg_fields[];
extern const int cfg_n_fields;

/* The field with this dotted key, or NULL. */
const cfg_field *cfg_find(const char *key);
/* 1 when key names a section ("model", "model.moe", "train.optim"); "" is the root. */
int cfg_is_section(const char *key);
/* Writes the direct children of a section ("n_experts, top_k, ...") into buf. */
void cfg_section_keys(const char *section, char *buf, size_t cap);
/* The unknown-key error: closest valid key and the keys of its section. */
moe_status cfg_unknown_key(const char *key, const char *origin);

/* Stores v in c's field after checking its type and range. */
moe_status cfg_assign(moe_run_config *c, const cfg_field *f, const cJSON *v, const char *origin);
/* The field's value as a new cJSON item (NULL when out of memory). */
cJSON *cfg_value_json(const moe_run_config *c, const cfg_field *f);
/* Sets the field to its default. */
void cfg_set_default(moe_run_config *c, const cfg_field *f);

#endif
