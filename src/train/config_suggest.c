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

static void consider(const char *key, const char *cand, char *best, size_t cap, int *best_d) {
    int d = edit_distance(key, cand);
    int dl = edit_distance(leaf_of(key), leaf_of(cand)) + 1;
    if (dl < d) d = dl;
    if (d < *best_d) {
        *best_d = d;
        snprintf(best, cap, "%s", cand);
    }
}

/* The valid key or section nearest to key: whole-key distance, or the same
 * leaf name in another section (model.top_k -> model.moe.top_k). Writes it to
 * best and returns 1 when one is close enough. */
static int closest_key(const char *key, char *best, size_t cap) {
    int best_d = 1 << 30;
    for (int i = 0; i < cfg_n_fields; i++) {
        const char *k = cfg_fields[i].key;
        char section[KEY_MAX];
        for (const char *dot = strchr(k, '.'); dot; dot = strchr(dot + 1, '.')) {
            snprintf(section, sizeof section, "%.*s", (int)(dot - k), k);
            consider(key, section, best, cap, &best_d);
        }
        consider(key, k, best, cap, &best_d);
    }
    int limit = (int)strlen(leaf_of(key)) / 3;
    if (limit < 2) limit = 2;
    return best_d <= limit;
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
    char near[KEY_MAX];
    int has_near = closest_key(key, near, sizeof near);
    if (strcmp(key, "model.moe.d_model") == 0)
        snprintf(hint, sizeof hint, " (MoE layers take their width from \"model.d_model\");");
    else if (has_near)
        snprintf(hint, sizeof hint, "; did you mean \"%s\"?", near);
    if (section[0])
        return moe_error(MOE_ERR_INVALID,
                         "config %s: unknown key \"%s\"%s valid keys in \"%s\": %s", origin, key,
                         hint, section, valid);
    return moe_error(MOE_ERR_INVALID, "config %s: unknown key \"%s\"%s valid top-level keys: %s",
                     origin, key, hint, valid);
}
