/* A CSV file's cells through libcsv (quoting, escaped quotes, CR LF and
 * embedded newlines are its business), fed one physical line at a time so
 * every row knows its line number for error messages. */
#include "csv_internal.h"

#include <csv.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader {
    csv_grid *g;
    long line;        /* the physical line being parsed */
    int cells_in_row; /* cells of the row under way */
    int nomem;
} reader;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static void on_cell(void *s, size_t len, void *data) {
    reader *r = data;
    csv_grid *g = r->g;
    if (r->nomem) return;
    if (r->cells_in_row == 0) { /* a new row starts */
        size_t cap = (size_t)g->rows_cap, need = (size_t)g->n_rows + 1;
        size_t c1 = cap, c2 = cap, c3 = cap;
        if (!grow((void **)&g->row_first, &c1, need, sizeof *g->row_first) ||
            !grow((void **)&g->row_cells, &c2, need, sizeof *g->row_cells) ||
            !grow((void **)&g->row_line, &c3, need, sizeof *g->row_line)) {
            r->nomem = 1;
            return;
        }
        g->rows_cap = (int)c1;
        g->row_first[g->n_rows] = g->n_cells;
        g->row_cells[g->n_rows] = 0;
        g->row_line[g->n_rows] = r->line;
        g->n_rows++;
    }
    if (!grow((void **)&g->cell, &g->cells_cap, g->n_cells + 1, sizeof *g->cell) ||
        !grow((void **)&g->text, &g->text_cap, g->text_len + len + 1, 1)) {
        r->nomem = 1;
        return;
    }
    g->cell[g->n_cells++] = g->text_len;
    if (len) memcpy(g->text + g->text_len, s, len);
    g->text[g->text_len + len] = '\0';
    g->text_len += len + 1;
    g->row_cells[g->n_rows - 1]++;
    r->cells_in_row++;
}

static void on_row_end(int c, void *data) {
    (void)c;
    reader *r = data;
    r->cells_in_row = 0;
}

void csv_grid_free(csv_grid *g) {
    free(g->text);
    free(g->cell);
    free(g->row_first);
    free(g->row_cells);
    free(g->row_line);
    memset(g, 0, sizeof *g);
}

moe_status csv_grid_read(const char *path, csv_grid *g) {
    memset(g, 0, sizeof *g);
    if (!path || !*path)
        return moe_error(MOE_ERR_INVALID, "data.source csv needs data.path (the CSV file)");
    FILE *fp = fopen(path, "rb");
    if (!fp) return moe_error(MOE_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        fclose(fp);
        return moe_error(MOE_ERR_NOMEM, "%s: out of memory for the CSV parser", path);
    }
    reader r = {.g = g};
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    moe_status st = MOE_OK;
    while (st == MOE_OK && (len = getline(&buf, &cap, fp)) >= 0) {
        r.line++;
        const char *s = buf;
        if (r.line == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 BOM */
            s += 3;
            len -= 3;
        }
        if (csv_parse(&p, s, (size_t)len, on_cell, on_row_end, &r) != (size_t)len)
            st = moe_error(MOE_ERR_FORMAT,
                           "%s:%ld: not valid CSV (%s); quote a cell holding a "
                           "comma, a quote or a line break as \"...\" and double its quotes",
                           path, r.line, csv_strerror(csv_error(&p)));
        else if (r.nomem)
            st = moe_error(MOE_ERR_NOMEM, "%s:%ld: out of memory", path, r.line);
    }
    if (st == MOE_OK && ferror(fp))
        st = moe_error(MOE_ERR_IO, "%s: read error (%s)", path, strerror(errno));
    if (st == MOE_OK && csv_fini(&p, on_cell, on_row_end, &r) != 0)
        st = moe_error(MOE_ERR_FORMAT, "%s:%ld: a quoted cell is never closed (missing \")", path,
                       r.line);
    if (st == MOE_OK && r.nomem) st = moe_error(MOE_ERR_NOMEM, "%s: out of memory", path);
    csv_free(&p);
    free(buf);
    fclose(fp);
    if (st != MOE_OK) csv_grid_free(g);
    return st;
}
