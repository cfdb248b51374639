/* CSV tables for the dense data sets: the cells of a file as libcsv parses
 * them (csv_read.c), column references (csv_columns.c), the class column's
 * values (csv_labels.c); csv_table.c turns them into a data set. */
#ifndef MOE_CSV_INTERNAL_H
#define MOE_CSV_INTERNAL_H

#include "moe/core.h"

#include <stddef.h>
#include <stdint.h>

/* Every row's cells, as NUL-terminated strings back to back in one buffer. */
typedef struct csv_grid {
    char *text; /* the cells' bytes, each followed by a NUL */
    size_t text_len, text_cap;
    size_t *cell; /* [n_cells] offsets into text */
    size_t n_cells, cells_cap;
    size_t *row_first; /* [n_rows] index of the row's first cell */
    int *row_cells;    /* [n_rows] cells in the row */
    long *row_line;    /* [n_rows] 1-based line of the file the row is on (where its
                          first cell ends, for a quoted cell spanning lines) */
    int n_rows, rows_cap;
} csv_grid;

/* Parses path with libcsv (strict: a stray quote is an error); blank lines
 * are skipped and a UTF-8 byte-order mark is dropped. */
moe_status csv_grid_read(const char *path, csv_grid *g);
void csv_grid_free(csv_grid *g);

static inline const char *csv_cell(const csv_grid *g, int row, int col) {
    return g->text + g->cell[g->row_first[row] + (size_t)col];
}

/* A column given by name (exact, preferred) or 0-based index, among
 * names[n_cols]; errors name the config key and the file. */
moe_status csv_column_ref(const char *ref, char *const *names, int n_cols, const char *key,
                          const char *path, int *col);
/* A comma-separated list of references or inclusive ranges "a:b" (names or
 * indices) into *cols (malloc'd, in the order given), *n of them; no column
 * twice. */
moe_status csv_column_list(const char *spec, char *const *names, int n_cols, const char *key,
                           const char *path, int **cols, int *n);

/* The class column: column col of data rows 1..n (row 0 is the header).
 * Non-negative integers below 65536 are the class ids (names "0".."max",
 * or int_names[k] when given: then ids must be below k); anything else is
 * a name, and the distinct names in byte order get ids 0, 1, ...
 * labels[n], *names[*n_classes] (malloc'd). */
moe_status csv_labels(const csv_grid *g, int col, const char *col_name, const char *path,
                      char *const *int_names, int n_int_names, int32_t *labels, char ***names,
                      int *n_classes);

#endif
