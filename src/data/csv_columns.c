/* Column references in the data config (label_column, prob_columns,
 * weight_column): a header name, matched exactly and preferred, or a
 * 0-based index; lists are comma-separated and may hold inclusive ranges
 * "a:b" of names or indices. */
#include "csv_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* s without leading and trailing blanks, copied into out */
static void trimmed(const char *s, size_t len, char *out, size_t size) {
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && isspace((unsigned char)s[len - 1])) len--;
    if (len >= size) len = size - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

static int is_index(const char *s) {
    if (!*s || strlen(s) > 9) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

moe_status csv_column_ref(const char *ref, char *const *names, int n_cols, const char *key,
                          const char *path, int *col) {
    char r[512];
    trimmed(ref, strlen(ref), r, sizeof r);
    int found = -1;
    for (int c = 0; c < n_cols; c++)
        if (strcmp(names[c], r) == 0) {
            if (found >= 0)
                return moe_error(MOE_ERR_INVALID,
                                 "%s \"%s\": %s has two columns of that name (%d and %d); give "
                                 "the 0-based index instead",
                                 key, r, path, found, c);
            found = c;
        }
    if (found < 0 && is_index(r)) {
        found = atoi(r);
        if (found >= n_cols)
            return moe_error(MOE_ERR_INVALID, "%s \"%s\": %s has only %d columns (0 to %d)", key, r,
                             path, n_cols, n_cols - 1);
    }
    if (found < 0) {
        char list[512] = "";
        size_t used = 0;
        for (int c = 0; c < n_cols && used + 4 < sizeof list; c++) {
            int w = snprintf(list + used, sizeof list - used, "%s\"%s\"", c ? ", " : "", names[c]);
            if (w < 0) break;
            used += (size_t)w < sizeof list - used ? (size_t)w : sizeof list - used - 1;
        }
        return moe_error(MOE_ERR_INVALID,
                         "%s \"%s\": no such column in %s (a name or a 0-based index; the "
                         "columns: %s)",
                         key, r, path, list);
    }
    *col = found;
    return MOE_OK;
}

/* One list item: a column, or a range of them, appended to cols. */
static moe_status add_item(const char *item, char *const *names, int n_cols, const char *key,
                           const char *path, int *cols, int *n) {
    int a, b;
    const char *colon = strchr(item, ':');
    moe_status st;
    int named = 0; /* a name that holds a colon itself is a name, not a range */
    for (int c = 0; c < n_cols && colon; c++) named |= strcmp(names[c], item) == 0;
    if (colon && !named) {
        char lo[512], hi[512];
        trimmed(item, (size_t)(colon - item), lo, sizeof lo);
        trimmed(colon + 1, strlen(colon + 1), hi, sizeof hi);
        if ((st = csv_column_ref(lo, names, n_cols, key, path, &a)) != MOE_OK) return st;
        if ((st = csv_column_ref(hi, names, n_cols, key, path, &b)) != MOE_OK) return st;
        if (a > b)
            return moe_error(MOE_ERR_INVALID,
                             "%s \"%s\": the range runs backwards (column %d to %d); write "
                             "first:last",
                             key, item, a, b);
    } else {
        if ((st = csv_column_ref(item, names, n_cols, key, path, &a)) != MOE_OK) return st;
        b = a;
    }
    for (int c = a; c <= b; c++) {
        for (int i = 0; i < *n; i++)
            if (cols[i] == c)
                return moe_error(MOE_ERR_INVALID, "%s: column %d (\"%s\") is listed twice", key, c,
                                 names[c]);
        cols[(*n)++] = c;
    }
    return MOE_OK;
}

moe_status csv_column_list(const char *spec, char *const *names, int n_cols, const char *key,
                           const char *path, int **cols, int *n) {
    *n = 0;
    *cols = malloc((size_t)(n_cols > 0 ? n_cols : 1) * sizeof **cols);
    if (!*cols) return moe_error(MOE_ERR_NOMEM, "%s: out of memory", key);
    moe_status st = MOE_OK;
    for (const char *s = spec; st == MOE_OK;) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char item[512];
        trimmed(s, len, item, sizeof item);
        if (!*item)
            st = moe_error(MOE_ERR_INVALID, "%s \"%s\": an empty item (two commas in a row?)", key,
                           spec);
        else
            st = add_item(item, names, n_cols, key, path, *cols, n);
        if (!end) break;
        s = end + 1;
    }
    if (st != MOE_OK) {
        free(*cols);
        *cols = NULL;
        *n = 0;
    }
    return st;
}
