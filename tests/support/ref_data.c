/* Reader for the reference tensors of the parity tests. */
#include "ref_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_exact(FILE *fp, void *dst, size_t n) {
    return fread(dst, 1, n, fp) == n ? 0 : -1;
}

int ref_load(ref_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "ref: cannot open %s (was scripts/ref run? needs python3-torch)\n", path);
        return -1;
    }
    char magic[8];
    uint32_t count;
    if (read_exact(fp, magic, 8) || memcmp(magic, "MOEREF01", 8) || read_exact(fp, &count, 4)) {
        fprintf(stderr, "ref: %s is not a reference file\n", path);
        fclose(fp);
        return -1;
    }
    f->t = calloc(count, sizeof *f->t);
    for (uint32_t i = 0; i < count; i++) {
        ref_tensor *t = &f->t[i];
        uint32_t len, ndim;
        if (read_exact(fp, &len, 4) || len > 4096) goto bad;
        t->name = calloc(len + 1, 1);
        if (read_exact(fp, t->name, len) || read_exact(fp, &ndim, 4) || ndim > 8) goto bad;
        t->ndim = (int)ndim;
        t->numel = 1;
        for (uint32_t d = 0; d < ndim; d++) {
            if (read_exact(fp, &t->dims[d], 8) || t->dims[d] < 0) goto bad;
            t->numel *= t->dims[d];
        }
        t->data = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(double));
        if (read_exact(fp, t->data, (size_t)t->numel * sizeof(double))) goto bad;
        f->n++;
    }
    fclose(fp);
    return 0;
bad:
    fprintf(stderr, "ref: %s is truncated or corrupt at tensor %d\n", path, f->n);
    fclose(fp);
    f->n++;
    ref_free(f);
    return -1;
}

void ref_free(ref_file *f) {
    for (int i = 0; i < f->n; i++) {
        free(f->t[i].name);
        free(f->t[i].data);
    }
    free(f->t);
    memset(f, 0, sizeof *f);
}

const ref_tensor *ref_get(const ref_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    fprintf(stderr, "ref: no tensor named %s\n", name);
    return NULL;
}

double ref_scalar(const ref_file *f, const char *name) {
    const ref_tensor *t = ref_get(f, name);
    return (t && t->numel == 1) ? t->data[0] : NAN;
}

void ref_to_real(moe_real *dst, const ref_tensor *t) {
    for (int64_t i = 0; i < t->numel; i++) dst[i] = (moe_real)t->data[i];
}

void ref_to_int(int32_t *dst, const ref_tensor *t) {
    for (int64_t i = 0; i < t->numel; i++) dst[i] = (int32_t)llround(t->data[i]);
}

static double real_at(const void *values, long i) {
    return (double)((const moe_real *)values)[i];
}

static double f64_at(const void *values, long i) {
    return ((const double *)values)[i];
}

/* ref_compare over values read by at(); digits: precision of the message */
static long compare(const char *what, const void *got, double (*at)(const void *, long), int digits,
                    const double *want, long n, double atol, double rtol) {
    long bad = 0, worst = -1;
    double worst_excess = 0;
    for (long i = 0; i < n; i++) {
        double err = fabs(at(got, i) - want[i]);
        double lim = atol + rtol * fabs(want[i]);
        if (!(err <= lim)) {
            bad++;
            double excess = isnan(err) ? INFINITY : err / lim;
            if (worst < 0 || excess > worst_excess) {
                worst = i;
                worst_excess = excess;
            }
        }
    }
    if (bad)
        fprintf(stderr, "%s: %ld of %ld differ; worst [%ld] got %.*g want %.*g\n", what, bad, n,
                worst, digits, at(got, worst), digits, want[worst]);
    return bad;
}

long ref_compare(const char *what, const moe_real *got, const double *want, long n, double atol,
                 double rtol) {
    return compare(what, got, real_at, 8, want, n, atol, rtol);
}

long ref_compare_f64(const char *what, const double *got, const double *want, long n, double atol,
                     double rtol) {
    return compare(what, got, f64_at, 17, want, n, atol, rtol);
}
