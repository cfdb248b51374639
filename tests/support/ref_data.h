/* Reference tensors written by scripts/ref/ (python) (refio.py), read by the
 * parity tests. Format: "MOEREF01", u32 count, then per tensor: u32 name
 * length, name, u32 ndim, i64 dims[ndim], f64 data[numel] (little endian). */
#ifndef MOE_TEST_REF_DATA_H
#define MOE_TEST_REF_DATA_H

#include "moe/core.h"

#include <stdint.h>

typedef struct ref_tensor {
    char *name;      /* as written by the script */
    int ndim;        /* number of dims */
    int64_t dims[8]; /* shape */
    int64_t numel;   /* product of dims */
    double *data;    /* numel values */
} ref_tensor;

typedef struct ref_file {
    ref_tensor *t; /* all tensors in file order */
    int n;         /* count */
} ref_file;

/* 0 on success; prints the reason otherwise. */
int ref_load(ref_file *f, const char *path);
void ref_free(ref_file *f);
/* The tensor called name, or NULL (and a message) if missing. */
const ref_tensor *ref_get(const ref_file *f, const char *name);
/* A scalar (numel must be 1). Missing: NAN. */
double ref_scalar(const ref_file *f, const char *name);
/* Copies (converting) into dst, which holds t->numel values. */
void ref_to_real(moe_real *dst, const ref_tensor *t);
void ref_to_int(int32_t *dst, const ref_tensor *t);
/* Counts elements with |got - want| > atol + rtol * |want|, prints the worst
 * one with what; returns that count (0 = match). */
long ref_compare(const char *what, const moe_real *got, const double *want, long n, double atol,
                 double rtol);
/* The same for double values (printed with 17 digits). */
long ref_compare_f64(const char *what, const double *got, const double *want, long n, double atol,
                     double rtol);

#endif
