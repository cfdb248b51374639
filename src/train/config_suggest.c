/* The unknown-key message: the closest valid key by edit distance and the
 * keys valid where the unknown one was found. */
#include "config_table.h"

#include <stdio.h>
#include <string.h>

#define KEY_MAX 128

/* Levenshtein distance of two short strings (longer ones are cut). */
static int edit_distance(const char *a, const char *b) {
    int row[KEY_MAX + 1];
    size_t na = strlen(a), nb = strlen(b);
    if (na > KEY_MAX) na = KEY_MAX;
    if (nb > KEY_MAX) nb = KEY_MAX;
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

static const char *leaf_of(const char *key) {
    const char *dot = strrchr(key, '.');
    return dot ? dot + 1 : key;
}

/* The valid key nearest to key: whole-key distance, or the same leaf name in
 * another section (model.top_k -> model.moe.top_k). NULL when none is close. */
static const char *closest_key(const char *key) {
    const char *leaf = leaf_of(key), *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; i < cfg_n_fields; i++) {
        const char *k = cfg_fields[i].key;
        int d = edit_distance(key, k);
        int dl = edit_distance(leaf, leaf_of(k)) + 1;
        if (dl < d) d = dl;
        if (d < best_d) {
            best_d = d;
            best = k;
        }
    }
    int limit = (int)strlen(leaf) / 3;
    if (limit < 2) limit = 2;
    return best_d <= limit ? best : NULL;
}

moe_status cfg_unknown_key(const char *key, const char *origin) {
    /* the deepest existing section the key sits in */
    char section[KEY_MAX];
    snprintf(section, sizeof section, "%s", key);
    for (;;) {
        char *dot = strrchr(section, '.');
        if (!dot) {
            section[0] = '\0';
            break;
        }
        *dot = '\0';
        if (cfg_is_section(section)) break;
    }
    char valid[700], hint[200] = ";";
    cfg_section_keys(section, valid, sizeof valid);
    const char *near = closest_key(key);
    if (strcmp(key, "model.moe.d_model") == 0)
        snprintf(hint, sizeof hint, " (MoE layers take their width from \"model.d_model\");");
    else if (near)
        snprintf(hint, sizeof hint, "; did you mean \"%s\"?", near);
    if (section[0])
        return moe_error(MOE_ERR_INVALID,
                         "config %s: unknown key \"%s\"%s valid keys in \"%s\": %s", origin, key,
                         hint, section, valid);
    return moe_error(MOE_ERR_INVALID, "config %s: unknown key \"%s\"%s valid top-level keys: %s",
                     origin, key, hint, valid);
}
