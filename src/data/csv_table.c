/* A CSV table as a data set: a header row of column names (or
 * scikit-learn's bundled format, whose first row is "n_samples,n_features,
 * class names..."), one target (a class column, or probability columns
 * read as soft labels), an optional weight column, and every other column
 * a numeric feature. Each bad cell is an error naming the file, the line
 * and the column: tables are small enough that a silent guess (a missing
 * value read as 0, a NaN) costs more than it saves. */
#include "csv_internal.h"
#include "dataset_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROLE_FEATURE, ROLE_LABEL, ROLE_PROB, ROLE_WEIGHT };

typedef struct table {
    const char *path;
    csv_grid g;
    int n_cols;
    char **col_names;      /* [n_cols] */
    char **sk_class_names; /* scikit-learn format: the header's class names, else NULL */
    int n_sk_classes;
    int *role; /* [n_cols] */
    int label_col, weight_col;
    int *prob_cols, n_prob; /* in the order the config lists them */
} table;

static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

/* scikit-learn's bundled tables (datasets/data/iris.csv, wine_data.csv):
 * "150,4,setosa,versicolor,virginica", then n_samples rows of n_features numbers and a class
 * number. All of it must agree, so a table whose header merely starts with two numbers is not
 * mistaken for one. */
static int sklearn_header(const csv_grid *g, int *n_features, int *n_classes) {
    if (g->n_rows < 2 || g->row_cells[0] < 3) return 0;
    const char *ns = csv_cell(g, 0, 0), *nf = csv_cell(g, 0, 1);
    if (!all_digits(ns) || !all_digits(nf) || strlen(ns) > 9 || strlen(nf) > 9) return 0;
    if (atol(ns) != g->n_rows - 1 || atol(nf) < 1 || g->row_cells[1] != atol(nf) + 1) return 0;
    *n_features = atoi(nf);
    *n_classes = g->row_cells[0] - 2;
    return 1;
}

static char **strings_alloc(int n) {
    return calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
}

/* The column names (and, for scikit-learn's format, the class names). */
static moe_status read_header(table *t) {
    const csv_grid *g = &t->g;
    int nf = 0, nk = 0;
    int sk = sklearn_header(g, &nf, &nk);
    t->n_cols = sk ? nf + 1 : g->row_cells[0];
    t->col_names = strings_alloc(t->n_cols);
    if (!t->col_names) return moe_error(MOE_ERR_NOMEM, "%s: out of memory", t->path);
    for (int c = 0; c < t->n_cols; c++) {
        char name[32];
        /* scikit-learn's loaders call the class column "target" */
        if (sk && c < nf) snprintf(name, sizeof name, "feature_%d", c);
        if (sk && c == nf) snprintf(name, sizeof name, "target");
        if (!(t->col_names[c] = strdup(sk ? name : csv_cell(g, 0, c))))
            return moe_error(MOE_ERR_NOMEM, "%s: out of memory", t->path);
    }
    if (sk) {
        t->n_sk_classes = nk;
        if (!(t->sk_class_names = strings_alloc(nk)))
            return moe_error(MOE_ERR_NOMEM, "%s: out of memory", t->path);
        for (int k = 0; k < nk; k++)
            if (!(t->sk_class_names[k] = strdup(csv_cell(g, 0, 2 + k))))
                return moe_error(MOE_ERR_NOMEM, "%s: out of memory", t->path);
    }
    return MOE_OK;
}

/* Which column is what, from the config. */
static moe_status assign_roles(table *t, const moe_data_config *cfg) {
    moe_status st;
    t->role = calloc((size_t)t->n_cols, sizeof *t->role); /* ROLE_FEATURE */
    if (!t->role) return moe_error(MOE_ERR_NOMEM, "%s: out of memory", t->path);
    t->label_col = t->weight_col = -1;
    if (cfg->prob_columns[0]) {
        if (cfg->label_column[0])
            return moe_error(MOE_ERR_INVALID,
                             "data.label_column \"%s\" and data.prob_columns \"%s\": the target "
                             "is one or the other; leave data.label_column empty",
                             cfg->label_column, cfg->prob_columns);
        st = csv_column_list(cfg->prob_columns, t->col_names, t->n_cols, "data.prob_columns",
                             t->path, &t->prob_cols, &t->n_prob);
        if (st != MOE_OK) return st;
        if (t->n_prob < 2)
            return moe_error(MOE_ERR_INVALID,
                             "data.prob_columns \"%s\": %d column; a distribution needs at least "
                             "2",
                             cfg->prob_columns, t->n_prob);
        for (int i = 0; i < t->n_prob; i++) t->role[t->prob_cols[i]] = ROLE_PROB;
    } else {
        if (!cfg->label_column[0])
            t->label_col = t->n_cols - 1;
        else if ((st = csv_column_ref(cfg->label_column, t->col_names, t->n_cols,
                                      "data.label_column", t->path, &t->label_col)) != MOE_OK)
            return st;
        t->role[t->label_col] = ROLE_LABEL;
    }
    if (cfg->weight_column[0]) {
        st = csv_column_ref(cfg->weight_column, t->col_names, t->n_cols, "data.weight_column",
                            t->path, &t->weight_col);
        if (st != MOE_OK) return st;
        if (t->role[t->weight_col] != ROLE_FEATURE)
            return moe_error(MOE_ERR_INVALID,
                             "data.weight_column \"%s\": column %d (\"%s\") is already the %s",
                             cfg->weight_column, t->weight_col, t->col_names[t->weight_col],
                             t->role[t->weight_col] == ROLE_LABEL
                                 ? "class column (the last, when data.label_column is empty)"
                                 : "a probability column");
        t->role[t->weight_col] = ROLE_WEIGHT;
    }
    int dim = 0;
    for (int c = 0; c < t->n_cols; c++) dim += t->role[c] == ROLE_FEATURE;
    if (dim == 0)
        return moe_error(MOE_ERR_INVALID,
                         "%s: no feature column is left (%d columns, all of them "
                         "targets or weights)",
                         t->path, t->n_cols);
    return MOE_OK;
}

/* A finite number filling the whole cell (blanks around it allowed). */
static moe_status number(const table *t, int row, int col, float *out) {
    const char *s = csv_cell(&t->g, row, col);
    long line = t->g.row_line[row];
    const char *name = t->col_names[col];
    const char *p = s;
    while (isspace((unsigned char)*p)) p++;
    if (!*p)
        return moe_error(MOE_ERR_FORMAT,
                         "%s:%ld: column %d (\"%s\"): a missing value (an empty "
                         "cell); fill it in or drop the row",
                         t->path, line, col, name);
    char *end;
    double v = strtod(p, &end);
    while (end != p && isspace((unsigned char)*end)) end++;
    if (end == p || *end)
        return moe_error(MOE_ERR_FORMAT, "%s:%ld: column %d (\"%s\"): \"%s\" is not a number",
                         t->path, line, col, name, s);
    float f = (float)v;
    if (!isfinite(f))
        return moe_error(MOE_ERR_NUMERIC,
                         "%s:%ld: column %d (\"%s\"): \"%s\" is not a finite number (NaN, "
                         "infinite or beyond float range)",
                         t->path, line, col, name, s);
    *out = f;
    return MOE_OK;
}

/* Row r's probability columns: non-negative, not all zero, scaled to sum
 * 1; the label is the most probable class (the first, on a tie). */
static moe_status soft_row(const table *t, int r, float *soft, int32_t *label) {
    double sum = 0;
    for (int k = 0; k < t->n_prob; k++) {
        int c = t->prob_cols[k];
        moe_status st = number(t, r, c, &soft[k]);
        if (st != MOE_OK) return st;
        if (soft[k] < 0)
            return moe_error(MOE_ERR_FORMAT,
                             "%s:%ld: column %d (\"%s\"): probability %g is negative", t->path,
                             t->g.row_line[r], c, t->col_names[c], soft[k]);
        sum += soft[k];
    }
    if (!(sum > 0))
        return moe_error(MOE_ERR_FORMAT,
                         "%s:%ld: the probability columns (data.prob_columns) are all zero; a "
                         "row needs some probability mass",
                         t->path, t->g.row_line[r]);
    int best = 0;
    for (int k = 0; k < t->n_prob; k++) {
        soft[k] = (float)(soft[k] / sum);
        if (soft[k] > soft[best]) best = k;
    }
    *label = best;
    return MOE_OK;
}

static moe_status fill(table *t, dataset_full *f) {
    const csv_grid *g = &t->g;
    int n = g->n_rows - 1, dim = 0;
    for (int c = 0; c < t->n_cols; c++) dim += t->role[c] == ROLE_FEATURE;
    moe_status st = dataset_alloc(&f->all, n, dim, t->n_prob, t->n_prob > 0, t->weight_col >= 0);
    if (st != MOE_OK) return st;
    moe_dataset *d = &f->all;
    for (int r = 1; r <= n && st == MOE_OK; r++) {
        float *x = d->x + (size_t)(r - 1) * (size_t)dim;
        for (int c = 0, j = 0; c < t->n_cols && st == MOE_OK; c++)
            if (t->role[c] == ROLE_FEATURE) st = number(t, r, c, &x[j++]);
        if (st == MOE_OK && t->weight_col >= 0) {
            float *w = &d->weights[r - 1];
            st = number(t, r, t->weight_col, w);
            if (st == MOE_OK && *w < 0)
                st = moe_error(MOE_ERR_FORMAT, "%s:%ld: column %d (\"%s\"): weight %g is negative",
                               t->path, g->row_line[r], t->weight_col, t->col_names[t->weight_col],
                               *w);
        }
        if (st == MOE_OK && t->n_prob)
            st = soft_row(t, r, d->soft + (size_t)(r - 1) * (size_t)t->n_prob, &d->labels[r - 1]);
    }
    if (st != MOE_OK) return st;
    if (t->n_prob) {
        if (!(f->class_names = strings_alloc(t->n_prob)))
            return moe_error(MOE_ERR_NOMEM, "%s: out of memory", t->path);
        for (int k = 0; k < t->n_prob; k++)
            if (!(f->class_names[k] = strdup(t->col_names[t->prob_cols[k]])))
                return moe_error(MOE_ERR_NOMEM, "%s: out of memory", t->path);
    } else {
        /* the header's class names belong to its own class column only */
        int sk = t->sk_class_names && t->label_col == t->n_cols - 1;
        st = csv_labels(g, t->label_col, t->col_names[t->label_col], t->path,
                        sk ? t->sk_class_names : NULL, sk ? t->n_sk_classes : 0, d->labels,
                        &f->class_names, &d->n_classes);
        if (st != MOE_OK) return st;
        if (d->n_classes < 2)
            return moe_error(MOE_ERR_INVALID,
                             "%s: column %d (\"%s\") holds a single class (\"%s\"); a classifier "
                             "needs two or more (is data.label_column the right column?)",
                             t->path, t->label_col, t->col_names[t->label_col], f->class_names[0]);
    }
    if (!(f->feature_names = strings_alloc(dim)))
        return moe_error(MOE_ERR_NOMEM, "%s: out of memory", t->path);
    for (int c = 0, j = 0; c < t->n_cols; c++)
        if (t->role[c] == ROLE_FEATURE && !(f->feature_names[j++] = strdup(t->col_names[c])))
            return moe_error(MOE_ERR_NOMEM, "%s: out of memory", t->path);
    return MOE_OK;
}

static moe_status check_shape(const table *t) {
    const csv_grid *g = &t->g;
    if (g->n_rows < 2)
        return moe_error(MOE_ERR_FORMAT, "%s: %s; a table needs a header row and data rows",
                         t->path, g->n_rows ? "only a header row" : "empty");
    for (int r = 1; r < g->n_rows; r++)
        if (g->row_cells[r] != t->n_cols)
            return moe_error(MOE_ERR_FORMAT, "%s:%ld: %d columns, but the header has %d", t->path,
                             g->row_line[r], g->row_cells[r], t->n_cols);
    return MOE_OK;
}

moe_status csv_table_load(dataset_full *f, const moe_data_config *cfg) {
    memset(f, 0, sizeof *f);
    table t;
    memset(&t, 0, sizeof t);
    t.path = cfg->path;
    moe_status st = csv_grid_read(cfg->path, &t.g);
    if (st != MOE_OK) return st;
    if (t.g.n_rows == 0)
        st = moe_error(MOE_ERR_FORMAT, "%s: empty; a table needs a header row and data rows",
                       t.path);
    if (st == MOE_OK) st = read_header(&t);
    if (st == MOE_OK) st = check_shape(&t);
    if (st == MOE_OK) st = assign_roles(&t, cfg);
    if (st == MOE_OK) st = fill(&t, f);
    if (st != MOE_OK) dataset_full_free(f);
    names_free(t.col_names, t.n_cols);
    names_free(t.sk_class_names, t.n_sk_classes);
    free(t.role);
    free(t.prob_cols);
    csv_grid_free(&t.g);
    return st;
}
