/* A table's class column as class ids and names. Non-negative integers are
 * the ids themselves (what scikit-learn's files and most exports hold, and
 * stable across files: class 3 is class 3 even where class 2 is absent);
 * any other value makes the whole column names, numbered in byte order of
 * the distinct names so the numbering does not depend on the row order. */
#include "csv_internal.h"
#include "dataset_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CSV_MAX_INT_CLASS 65535

/* a non-negative decimal integer up to CSV_MAX_INT_CLASS, else -1 */
static long small_int(const char *s) {
    if (!*s) return -1;
    long v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) return -1;
        v = v * 10 + (*s - '0');
        if (v > CSV_MAX_INT_CLASS) return -1;
    }
    return v;
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char **names_alloc(int n) {
    return calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
}

static moe_status int_labels(const csv_grid *g, int col, const char *col_name, const char *path,
                             char *const *int_names, int n_int_names, int32_t *labels,
                             char ***names, int *n_classes) {
    int n = g->n_rows - 1, k = 0;
    for (int i = 0; i < n; i++) {
        long v = small_int(csv_cell(g, i + 1, col));
        if (int_names && v >= n_int_names)
            return moe_error(MOE_ERR_FORMAT,
                             "%s:%ld: column %d (\"%s\"): class %ld, but the header names %d "
                             "classes (0 to %d)",
                             path, g->row_line[i + 1], col, col_name, v, n_int_names,
                             n_int_names - 1);
        labels[i] = (int32_t)v;
        if (v + 1 > k) k = (int)v + 1;
    }
    if (int_names) k = n_int_names;
    char **nm = names_alloc(k);
    if (!nm) return moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
    for (int c = 0; c < k; c++) {
        char num[16];
        snprintf(num, sizeof num, "%d", c);
        if (!(nm[c] = strdup(int_names ? int_names[c] : num))) {
            names_free(nm, k);
            return moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    *names = nm;
    *n_classes = k;
    return MOE_OK;
}

static moe_status string_labels(const csv_grid *g, int col, const char *path, int32_t *labels,
                                char ***names, int *n_classes) {
    int n = g->n_rows - 1;
    const char **sorted = malloc((size_t)(n > 0 ? n : 1) * sizeof *sorted);
    if (!sorted) return moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) sorted[i] = csv_cell(g, i + 1, col);
    qsort(sorted, (size_t)n, sizeof *sorted, by_string);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[k - 1]) != 0) sorted[k++] = sorted[i];
    char **nm = names_alloc(k);
    moe_status st = nm ? MOE_OK : moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
    for (int c = 0; st == MOE_OK && c < k; c++)
        if (!(nm[c] = strdup(sorted[c]))) st = moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; st == MOE_OK && i < n; i++) {
        const char *v = csv_cell(g, i + 1, col);
        const char **hit = bsearch(&v, sorted, (size_t)k, sizeof *sorted, by_string);
        labels[i] = (int32_t)(hit - sorted);
    }
    free(sorted);
    if (st != MOE_OK) {
        names_free(nm, k);
        return st;
    }
    *names = nm;
    *n_classes = k;
    return MOE_OK;
}

moe_status csv_labels(const csv_grid *g, int col, const char *col_name, const char *path,
                      char *const *int_names, int n_int_names, int32_t *labels, char ***names,
                      int *n_classes) {
    int n = g->n_rows - 1, ints = 1;
    for (int i = 0; i < n; i++) {
        const char *v = csv_cell(g, i + 1, col);
        if (!*v)
            return moe_error(MOE_ERR_FORMAT,
                             "%s:%ld: column %d (\"%s\"): the class is missing (an empty cell)",
                             path, g->row_line[i + 1], col, col_name);
        if (small_int(v) < 0) ints = 0;
    }
    if (int_names && !ints) { /* scikit-learn's format promises integer classes */
        for (int i = 0; i < n; i++)
            if (small_int(csv_cell(g, i + 1, col)) < 0)
                return moe_error(MOE_ERR_FORMAT,
                                 "%s:%ld: column %d (\"%s\"): class \"%s\" is no class number "
                                 "(0 to %d), as the header's class names need",
                                 path, g->row_line[i + 1], col, col_name, csv_cell(g, i + 1, col),
                                 n_int_names - 1);
    }
    return ints ? int_labels(g, col, col_name, path, int_names, n_int_names, labels, names,
                             n_classes)
                : string_labels(g, col, path, labels, names, n_classes);
}
