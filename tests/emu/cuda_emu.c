/* EMULATED CUDA: a host emulation of every launcher of src/ops/cuda/cuda_ops.h,
 * so that CI (no GPU) can execute the C orchestration code of the CUDA
 * backend (src/nn/moe/cuda, src/models/cuda) against the CPU reference.
 *
 * This is NOT the GPU: no kernel of src/ops/cuda (the .cu files) runs here. A pass of an
 * emu_* test proves the composition logic (buffer wiring, gradients added or
 * written, temperature and scale handling, dtype handling), nothing about the
 * CUDA kernels.
 *
 * "Device pointers" are host allocations from moe_cuda_alloc, filled with
 * 0xff (NaN in fp32 and bf16) so unwritten values show. The emulation is
 * stricter than a GPU where it can be: every device pointer a launcher
 * touches must lie in a live allocation with room for the extent the header
 * gives it (a GPU would read or write out of bounds), host pointers given to
 * upload/download must not be device memory, GEMM outputs must not overlap
 * their inputs, data-dependent indices (chosen, row_of, offsets, ids) are
 * range-checked, attention backward checks that out and lse are still the
 * forward's, and scratch buffers are checked and scribbled over. Each
 * such failure returns MOE_ERR_INVALID with a message starting "emulated
 * CUDA". What it cannot see: stream ordering (everything here is
 * synchronous, so a missing moe_cuda_sync before reusing a host buffer goes
 * unnoticed) and the kernels' own rounding.
 *
 * Arithmetic: each op converts its dt inputs to fp32 temporaries, runs the
 * CPU reference of src/ops/ops.h where one exists, and stores the result in
 * dt (bf16 rounds to nearest even, once). The MoE launchers (router, dispatch,
 * combine, grouped GEMMs, auxiliary losses) and AdamW follow the header text,
 * with router.c's tie-breaking and train/optim.c's AdamW arithmetic. */
#include "ops/cuda/cuda_ops.h"
#include "ops/ops.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(moe_real) == sizeof(float), "the emulation needs the fp32 build");

#define EMU "emulated CUDA"

/* ---- allocations: the emulated device memory ----------------------------- */

struct moe_cuda {
    int device;
};

typedef struct emu_block {
    char *p;
    size_t n;
} emu_block;
static emu_block *emu_blocks;
static size_t emu_nblocks, emu_capblocks;

static void *emu_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, EMU ": out of host memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

/* The allocation holding p, or NULL. */
static const emu_block *emu_find(const void *p) {
    const char *c = (const char *)p;
    for (size_t i = 0; i < emu_nblocks; i++)
        if (c >= emu_blocks[i].p && c < emu_blocks[i].p + (emu_blocks[i].n ? emu_blocks[i].n : 1))
            return &emu_blocks[i];
    return NULL;
}

/* p must be device memory with bytes available from p on. */
static moe_status emu_dev(const void *p, size_t bytes, const char *fn, const char *what) {
    if (!bytes) return MOE_OK; /* nothing is touched */
    if (!p) return moe_error(MOE_ERR_INVALID, EMU " %s: %s is NULL", fn, what);
    const emu_block *b = emu_find(p);
    if (!b)
        return moe_error(MOE_ERR_INVALID,
                         EMU " %s: %s (%p) is not device memory from moe_cuda_alloc", fn, what, p);
    size_t off = (size_t)((const char *)p - b->p);
    if (bytes > b->n - off)
        return moe_error(MOE_ERR_INVALID,
                         EMU " %s: %s needs %zu bytes but its allocation has %zu left (of %zu)", fn,
                         what, bytes, b->n - off, b->n);
    return MOE_OK;
}

static int emu_overlap(const void *a, size_t an, const void *b, size_t bn) {
    const char *x = a, *y = b;
    return an && bn && x < y + bn && y < x + an;
}

#define TRY(call)                                                                                  \
    do {                                                                                           \
        moe_status st_ = (call);                                                                   \
        if (st_ != MOE_OK) return st_;                                                             \
    } while (0)
#define DEV(p, bytes, what) TRY(emu_dev((p), (bytes), fn, (what)))
/* an optional pointer: checked when not NULL */
#define DEV_OPT(p, bytes, what)                                                                    \
    do {                                                                                           \
        if (p) DEV(p, bytes, what);                                                                \
    } while (0)
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) return moe_error(MOE_ERR_INVALID, EMU " %s: requires %s", fn, #cond);         \
    } while (0)
#define CHECK_CTX()                                                                                \
    do {                                                                                           \
        if (!ctx) return moe_error(MOE_ERR_INVALID, EMU " %s: NULL context", fn);                  \
    } while (0)
#define CHECK_DT(dt)                                                                               \
    do {                                                                                           \
        if ((dt) != MOE_DT_F32 && (dt) != MOE_DT_BF16)                                             \
            return moe_error(MOE_ERR_INVALID, EMU " %s: dtype %d", fn, (int)(dt));                 \
    } while (0)

/* ---- dtypes and conversions ---------------------------------------------- */

static inline float ld(const void *p, moe_dtype dt, long i) {
    return dt == MOE_DT_F32 ? ((const float *)p)[i] : moe_bf16_to_float(((const uint16_t *)p)[i]);
}

static inline void st(void *p, moe_dtype dt, long i, float v) {
    if (dt == MOE_DT_F32)
        ((float *)p)[i] = v;
    else
        ((uint16_t *)p)[i] = moe_bf16_from_float(v);
}

/* Bytes of a [rows, cols] matrix with row stride ld elements of dt. */
static size_t extent(long rows, long cols, long stride, moe_dtype dt) {
    if (rows <= 0 || cols <= 0) return 0;
    return (size_t)((rows - 1) * stride + cols) * moe_dtype_size(dt);
}

static size_t nbytes(long n, moe_dtype dt) {
    return n > 0 ? (size_t)n * moe_dtype_size(dt) : 0;
}

/* fp32 copy [rows, cols] (compact) of a strided dt matrix. */
static float *load_rows(const void *p, moe_dtype dt, long rows, long cols, long stride) {
    float *out = emu_xmalloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof *out);
    for (long r = 0; r < rows; r++)
        for (long c = 0; c < cols; c++) out[r * cols + c] = ld(p, dt, r * stride + c);
    return out;
}

static float *load(const void *p, moe_dtype dt, long n) {
    return load_rows(p, dt, 1, n, n);
}

static void store_rows(void *p, moe_dtype dt, const float *x, long rows, long cols, long stride) {
    for (long r = 0; r < rows; r++)
        for (long c = 0; c < cols; c++) st(p, dt, r * stride + c, x[r * cols + c]);
}

static void store(void *p, moe_dtype dt, const float *x, long n) {
    store_rows(p, dt, x, 1, n, n);
}

static float *zeros(long n) {
    float *z = emu_xmalloc((size_t)(n > 0 ? n : 1) * sizeof *z);
    memset(z, 0, (size_t)(n > 0 ? n : 1) * sizeof *z);
    return z;
}

/* ---- context and memory ---------------------------------------------------- */

int moe_cuda_device_count(char *why, size_t n) {
    (void)why, (void)n;
    return 1;
}

static const char emu_description[] = "host emulation (no GPU): emulated CUDA launchers";

moe_status moe_cuda_device_describe(int device, char *buf, size_t n) {
    if (device != 0)
        return moe_error(MOE_ERR_INVALID, EMU ": no device %d (the emulation has device 0)",
                         device);
    if (buf && n) snprintf(buf, n, "%s", emu_description);
    return MOE_OK;
}

const char *moe_cuda_runtime_string(void) {
    return "emulated";
}

moe_status moe_cuda_create(moe_cuda **out, int device) {
    if (!out) return moe_error(MOE_ERR_INVALID, EMU " moe_cuda_create: out is NULL");
    *out = NULL;
    if (device != 0)
        return moe_error(MOE_ERR_INVALID, EMU " moe_cuda_create: no device %d", device);
    moe_cuda *c = calloc(1, sizeof *c);
    if (!c) return moe_error(MOE_ERR_NOMEM, EMU " moe_cuda_create: out of memory");
    *out = c;
    return MOE_OK;
}

void moe_cuda_destroy(moe_cuda *ctx) {
    free(ctx);
}

void moe_cuda_describe(const moe_cuda *ctx, char *buf, size_t n) {
    (void)ctx;
    if (buf && n) snprintf(buf, n, "%s", emu_description);
}

void *moe_cuda_stream(moe_cuda *ctx) {
    (void)ctx;
    return NULL;
}

moe_status moe_cuda_sync(moe_cuda *ctx) {
    static const char fn[] = "moe_cuda_sync";
    CHECK_CTX();
    return MOE_OK;
}

moe_status moe_cuda_alloc(moe_cuda *ctx, void **ptr, size_t bytes) {
    static const char fn[] = "moe_cuda_alloc";
    CHECK_CTX();
    if (!ptr) return moe_error(MOE_ERR_INVALID, EMU " %s: ptr is NULL", fn);
    *ptr = NULL;
    char *p = malloc(bytes ? bytes : 1);
    if (!p)
        return moe_error(MOE_ERR_NOMEM, EMU ": cannot allocate %.1f MiB of (host) memory",
                         (double)bytes / (1u << 20));
    memset(p, 0xff, bytes ? bytes : 1); /* NaN in fp32 and bf16 */
    if (emu_nblocks == emu_capblocks) {
        size_t cap = emu_capblocks ? 2 * emu_capblocks : 64;
        emu_block *b = realloc(emu_blocks, cap * sizeof *b);
        if (!b) {
            free(p);
            return moe_error(MOE_ERR_NOMEM, EMU " %s: out of memory", fn);
        }
        emu_blocks = b, emu_capblocks = cap;
    }
    emu_blocks[emu_nblocks++] = (emu_block){p, bytes};
    *ptr = p;
    return MOE_OK;
}

void moe_cuda_free(moe_cuda *ctx, void *ptr) {
    (void)ctx;
    if (!ptr) return;
    for (size_t i = 0; i < emu_nblocks; i++)
        if (emu_blocks[i].p == ptr) {
            free(ptr);
            emu_blocks[i] = emu_blocks[--emu_nblocks];
            return;
        }
    fprintf(stderr, EMU " moe_cuda_free: %p is not the start of a live allocation\n", ptr);
    abort(); /* cudaFree would fail; a double free or a host pointer is a bug */
}

moe_status moe_cuda_upload(moe_cuda *ctx, void *dst, const void *host_src, size_t bytes) {
    static const char fn[] = "moe_cuda_upload";
    CHECK_CTX();
    if (!bytes) return MOE_OK;
    DEV(dst, bytes, "dst");
    if (!host_src || emu_find(host_src))
        return moe_error(MOE_ERR_INVALID, EMU " %s: the host source is NULL or device memory", fn);
    memcpy(dst, host_src, bytes);
    return MOE_OK;
}

moe_status moe_cuda_download(moe_cuda *ctx, void *host_dst, const void *src, size_t bytes) {
    static const char fn[] = "moe_cuda_download";
    CHECK_CTX();
    if (!bytes) return MOE_OK;
    DEV(src, bytes, "src");
    if (!host_dst || emu_find(host_dst))
        return moe_error(MOE_ERR_INVALID, EMU " %s: the host destination is NULL or device memory",
                         fn);
    memcpy(host_dst, src, bytes);
    return MOE_OK;
}

moe_status moe_cuda_copy(moe_cuda *ctx, void *dst, const void *src, size_t bytes) {
    static const char fn[] = "moe_cuda_copy";
    CHECK_CTX();
    if (!bytes) return MOE_OK;
    DEV(dst, bytes, "dst");
    DEV(src, bytes, "src");
    memmove(dst, src, bytes);
    return MOE_OK;
}

moe_status moe_cuda_zero(moe_cuda *ctx, void *ptr, size_t bytes) {
    static const char fn[] = "moe_cuda_zero";
    CHECK_CTX();
    if (!bytes) return MOE_OK;
    DEV(ptr, bytes, "ptr");
    memset(ptr, 0, bytes);
    return MOE_OK;
}

moe_status moe_cuda_cast(moe_cuda *ctx, void *out, moe_dtype out_dt, const void *inp,
                         moe_dtype in_dt, long n) {
    static const char fn[] = "moe_cuda_cast";
    CHECK_CTX();
    CHECK_DT(out_dt);
    CHECK_DT(in_dt);
    if (n <= 0) return MOE_OK;
    DEV(out, nbytes(n, out_dt), "out");
    DEV(inp, nbytes(n, in_dt), "inp");
    if (out_dt == in_dt) {
        memmove(out, inp, nbytes(n, out_dt));
        return MOE_OK;
    }
    if (emu_overlap(out, nbytes(n, out_dt), inp, nbytes(n, in_dt)))
        return moe_error(MOE_ERR_INVALID, EMU " %s: out overlaps inp", fn);
    for (long i = 0; i < n; i++) st(out, out_dt, i, ld(inp, in_dt, i));
    return MOE_OK;
}

/* ---- dense GEMM ------------------------------------------------------------ */

moe_status moe_cuda_gemm(moe_cuda *ctx, int trans_a, int trans_b, int M, int N, int K, float alpha,
                         const void *A, int lda, const void *B, int ldb, moe_dtype ab_dt,
                         float beta, void *C, moe_dtype c_dt, int ldc) {
    static const char fn[] = "moe_cuda_gemm";
    CHECK_CTX();
    REQUIRE(M >= 0 && N >= 0 && K >= 0);
    CHECK_DT(ab_dt);
    CHECK_DT(c_dt);
    if (M == 0 || N == 0) return MOE_OK;
    /* stored shapes: A [ar, ac], B [br, bc] */
    const long ar = trans_a ? K : M, ac = trans_a ? M : K;
    const long br = trans_b ? N : K, bc = trans_b ? K : N;
    /* cuBLAS rejects leading dimensions below the stored row length */
    REQUIRE(lda >= (ac > 1 ? ac : 1) && ldb >= (bc > 1 ? bc : 1) && ldc >= N);
    const size_t an = extent(ar, ac, lda, ab_dt), bn = extent(br, bc, ldb, ab_dt);
    const size_t cn = extent(M, N, ldc, c_dt);
    if (an) DEV(A, an, "A");
    if (bn) DEV(B, bn, "B");
    DEV(C, cn, "C");
    if (emu_overlap(C, cn, A, an) || emu_overlap(C, cn, B, bn))
        return moe_error(MOE_ERR_INVALID, EMU " %s: C overlaps A or B", fn);
    float *c = beta != 0 ? load_rows(C, c_dt, M, N, ldc) : zeros((long)M * N);
    if (K > 0) {
        float *a = load_rows(A, ab_dt, ar, ac, lda), *b = load_rows(B, ab_dt, br, bc, ldb);
        gemm(trans_a, trans_b, M, N, K, alpha, a, (int)ac, b, (int)bc, beta, c, N);
        free(a), free(b);
    } else {
        for (long i = 0; i < (long)M * N; i++) c[i] *= beta;
    }
    store_rows(C, c_dt, c, M, N, ldc);
    free(c);
    return MOE_OK;
}

moe_status moe_cuda_matmul_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp,
                                   const void *weight, const float *bias, int N, int C, int OC) {
    static const char fn[] = "moe_cuda_matmul_forward";
    CHECK_CTX();
    CHECK_DT(dt);
    REQUIRE(N >= 0 && C >= 0 && OC >= 0);
    if (N == 0 || OC == 0) return MOE_OK;
    const long NC = (long)N * C, OCC = (long)OC * C, NO = (long)N * OC;
    DEV(out, nbytes(NO, dt), "out");
    if (C > 0) DEV(inp, nbytes(NC, dt), "inp");
    if (C > 0) DEV(weight, nbytes(OCC, dt), "weight");
    DEV_OPT(bias, (size_t)OC * 4, "bias");
    if (emu_overlap(out, nbytes(NO, dt), inp, nbytes(NC, dt)) ||
        emu_overlap(out, nbytes(NO, dt), weight, nbytes(OCC, dt)))
        return moe_error(MOE_ERR_INVALID, EMU " %s: out overlaps inp or weight", fn);
    float *x = load(inp, dt, NC), *w = load(weight, dt, OCC), *o = zeros(NO);
    matmul_forward(o, x, w, bias, N, C, OC);
    store(out, dt, o, NO);
    free(x), free(w), free(o);
    return MOE_OK;
}

moe_status moe_cuda_matmul_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, float *dweight,
                                    float *dbias, const void *dout, const void *inp,
                                    const void *weight, int N, int C, int OC) {
    static const char fn[] = "moe_cuda_matmul_backward";
    CHECK_CTX();
    CHECK_DT(dt);
    REQUIRE(N >= 0 && C >= 0 && OC >= 0);
    const long NC = (long)N * C, OCC = (long)OC * C, NO = (long)N * OC;
    if (NO > 0) DEV(dout, nbytes(NO, dt), "dout");
    if (dinp && NC > 0) {
        DEV(dinp, nbytes(NC, dt), "dinp");
        if (OCC > 0) DEV(weight, nbytes(OCC, dt), "weight");
    }
    if (dweight && OCC > 0) {
        DEV(dweight, (size_t)OCC * 4, "dweight");
        if (NC > 0) DEV(inp, nbytes(NC, dt), "inp");
    }
    if (dbias && OC > 0) DEV(dbias, (size_t)OC * 4, "dbias");
    float *go = load(dout, dt, NO);
    float *x = dweight && NC > 0 ? load(inp, dt, NC) : NULL;
    float *w = dinp && OCC > 0 ? load(weight, dt, OCC) : NULL;
    float *gi = dinp ? zeros(NC) : NULL;
    if (N > 0) {
        if (dinp) {
            if (OC > 0) gemm(0, 0, N, C, OC, 1, go, OC, w, C, 0, gi, C);
            /* OC == 0: dinp = 0 */
        }
        if (dweight && OC > 0 && C > 0) gemm(1, 0, OC, C, N, 1, go, OC, x, C, 1, dweight, C);
        if (dbias)
            for (int o = 0; o < OC; o++) {
                float s = 0;
                for (int n = 0; n < N; n++) s += go[(long)n * OC + o];
                dbias[o] += s;
            }
    }
    if (dinp) store(dinp, dt, gi, NC);
    free(go), free(x), free(w), free(gi);
    return MOE_OK;
}

/* ---- dense ops -------------------------------------------------------------- */

moe_status moe_cuda_embedding_forward(moe_cuda *ctx, moe_dtype dt, void *out, const int32_t *ids,
                                      const void *table, int N, int C) {
    static const char fn[] = "moe_cuda_embedding_forward";
    CHECK_CTX();
    CHECK_DT(dt);
    REQUIRE(N >= 0 && C >= 0);
    if (N == 0 || C == 0) return MOE_OK;
    DEV(out, nbytes((long)N * C, dt), "out");
    DEV(ids, (size_t)N * 4, "ids");
    int vmax = -1;
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0)
            return moe_error(MOE_ERR_INVALID, EMU " %s: ids[%d] = %d (the caller checks ids)", fn,
                             n, ids[n]);
        if (ids[n] > vmax) vmax = ids[n];
    }
    const long rows = (long)vmax + 1;
    DEV(table, nbytes(rows * C, dt), "table (rows up to the largest id)");
    float *t = load(table, dt, rows * C), *o = zeros((long)N * C);
    embedding_forward(o, ids, t, N, C);
    store(out, dt, o, (long)N * C);
    free(t), free(o);
    return MOE_OK;
}

moe_status moe_cuda_embedding_backward(moe_cuda *ctx, moe_dtype dt, float *dtable, const void *dout,
                                       const int32_t *ids, int N, int C) {
    static const char fn[] = "moe_cuda_embedding_backward";
    CHECK_CTX();
    CHECK_DT(dt);
    REQUIRE(N >= 0 && C >= 0);
    if (N == 0 || C == 0) return MOE_OK;
    DEV(dout, nbytes((long)N * C, dt), "dout");
    DEV(ids, (size_t)N * 4, "ids");
    int vmax = -1;
    for (int n = 0; n < N; n++) {
        if (ids[n] < 0) return moe_error(MOE_ERR_INVALID, EMU " %s: ids[%d] = %d", fn, n, ids[n]);
        if (ids[n] > vmax) vmax = ids[n];
    }
    DEV(dtable, ((size_t)vmax + 1) * (size_t)C * 4, "dtable (rows up to the largest id)");
    float *g = load(dout, dt, (long)N * C);
    embedding_backward(dtable, g, ids, N, C);
    free(g);
    return MOE_OK;
}

static moe_status norm_check(const char *fn, moe_dtype dt, int N, int C) {
    CHECK_DT(dt);
    REQUIRE(N >= 0 && C >= 1);
    return MOE_OK;
}

moe_status moe_cuda_layernorm_forward(moe_cuda *ctx, moe_dtype dt, void *out, float *mean,
                                      float *rstd, const void *inp, const float *weight,
                                      const float *bias, int N, int C, float eps) {
    static const char fn[] = "moe_cuda_layernorm_forward";
    CHECK_CTX();
    TRY(norm_check(fn, dt, N, C));
    if (N == 0) return MOE_OK;
    const long n = (long)N * C;
    DEV(out, nbytes(n, dt), "out");
    DEV(mean, (size_t)N * 4, "mean");
    DEV(rstd, (size_t)N * 4, "rstd");
    DEV(inp, nbytes(n, dt), "inp");
    DEV(weight, (size_t)C * 4, "weight");
    DEV_OPT(bias, (size_t)C * 4, "bias");
    float *x = load(inp, dt, n), *o = zeros(n);
    layernorm_forward(o, mean, rstd, x, weight, bias, N, C, eps);
    store(out, dt, o, n);
    free(x), free(o);
    return MOE_OK;
}

moe_status moe_cuda_layernorm_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, float *dweight,
                                       float *dbias, const void *dout, const void *inp,
                                       const float *weight, const float *mean, const float *rstd,
                                       int N, int C) {
    static const char fn[] = "moe_cuda_layernorm_backward";
    CHECK_CTX();
    TRY(norm_check(fn, dt, N, C));
    if (N == 0) return MOE_OK;
    const long n = (long)N * C;
    DEV(dinp, nbytes(n, dt), "dinp");
    DEV(dweight, (size_t)C * 4, "dweight");
    DEV_OPT(dbias, (size_t)C * 4, "dbias");
    DEV(dout, nbytes(n, dt), "dout");
    DEV(inp, nbytes(n, dt), "inp");
    DEV(weight, (size_t)C * 4, "weight");
    DEV(mean, (size_t)N * 4, "mean");
    DEV(rstd, (size_t)N * 4, "rstd");
    float *g = load(dout, dt, n), *x = load(inp, dt, n), *gi = zeros(n);
    layernorm_backward(gi, dweight, dbias, g, x, weight, mean, rstd, N, C);
    store(dinp, dt, gi, n);
    free(g), free(x), free(gi);
    return MOE_OK;
}

moe_status moe_cuda_rmsnorm_forward(moe_cuda *ctx, moe_dtype dt, void *out, float *rstd,
                                    const void *inp, const float *weight, int N, int C, float eps) {
    static const char fn[] = "moe_cuda_rmsnorm_forward";
    CHECK_CTX();
    TRY(norm_check(fn, dt, N, C));
    if (N == 0) return MOE_OK;
    const long n = (long)N * C;
    DEV(out, nbytes(n, dt), "out");
    DEV(rstd, (size_t)N * 4, "rstd");
    DEV(inp, nbytes(n, dt), "inp");
    DEV(weight, (size_t)C * 4, "weight");
    float *x = load(inp, dt, n), *o = zeros(n);
    rmsnorm_forward(o, rstd, x, weight, N, C, eps);
    store(out, dt, o, n);
    free(x), free(o);
    return MOE_OK;
}

moe_status moe_cuda_rmsnorm_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, float *dweight,
                                     const void *dout, const void *inp, const float *weight,
                                     const float *rstd, int N, int C) {
    static const char fn[] = "moe_cuda_rmsnorm_backward";
    CHECK_CTX();
    TRY(norm_check(fn, dt, N, C));
    if (N == 0) return MOE_OK;
    const long n = (long)N * C;
    DEV(dinp, nbytes(n, dt), "dinp");
    DEV(dweight, (size_t)C * 4, "dweight");
    DEV(dout, nbytes(n, dt), "dout");
    DEV(inp, nbytes(n, dt), "inp");
    DEV(weight, (size_t)C * 4, "weight");
    DEV(rstd, (size_t)N * 4, "rstd");
    float *g = load(dout, dt, n), *x = load(inp, dt, n), *gi = zeros(n);
    rmsnorm_backward(gi, dweight, g, x, weight, rstd, N, C);
    store(dinp, dt, gi, n);
    free(g), free(x), free(gi);
    return MOE_OK;
}

static moe_status act_check(const char *fn, moe_dtype dt, moe_cuda_act act, long n) {
    CHECK_DT(dt);
    REQUIRE(n >= 0);
    REQUIRE(act == MOE_CUDA_RELU || act == MOE_CUDA_GELU || act == MOE_CUDA_SILU);
    return MOE_OK;
}

moe_status moe_cuda_act_forward(moe_cuda *ctx, moe_dtype dt, moe_cuda_act act, void *out,
                                const void *inp, long n) {
    static const char fn[] = "moe_cuda_act_forward";
    CHECK_CTX();
    TRY(act_check(fn, dt, act, n));
    if (n == 0) return MOE_OK;
    DEV(out, nbytes(n, dt), "out");
    DEV(inp, nbytes(n, dt), "inp");
    float *x = load(inp, dt, n), *o = zeros(n);
    if (act == MOE_CUDA_RELU)
        relu_forward(o, x, n);
    else if (act == MOE_CUDA_GELU)
        gelu_forward(o, x, n);
    else
        silu_forward(o, x, n);
    store(out, dt, o, n);
    free(x), free(o);
    return MOE_OK;
}

moe_status moe_cuda_act_backward(moe_cuda *ctx, moe_dtype dt, moe_cuda_act act, void *dinp,
                                 const void *dout, const void *inp, long n) {
    static const char fn[] = "moe_cuda_act_backward";
    CHECK_CTX();
    TRY(act_check(fn, dt, act, n));
    if (n == 0) return MOE_OK;
    DEV(dinp, nbytes(n, dt), "dinp");
    DEV(dout, nbytes(n, dt), "dout");
    DEV(inp, nbytes(n, dt), "inp");
    float *g = load(dout, dt, n), *x = load(inp, dt, n), *gi = zeros(n);
    if (act == MOE_CUDA_RELU)
        relu_backward(gi, g, x, n);
    else if (act == MOE_CUDA_GELU)
        gelu_backward(gi, g, x, n);
    else
        silu_backward(gi, g, x, n);
    store(dinp, dt, gi, n);
    free(g), free(x), free(gi);
    return MOE_OK;
}

moe_status moe_cuda_swiglu_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *a,
                                   const void *b, long n) {
    static const char fn[] = "moe_cuda_swiglu_forward";
    CHECK_CTX();
    CHECK_DT(dt);
    REQUIRE(n >= 0);
    if (n == 0) return MOE_OK;
    DEV(out, nbytes(n, dt), "out");
    DEV(a, nbytes(n, dt), "a");
    DEV(b, nbytes(n, dt), "b");
    float *x = load(a, dt, n), *y = load(b, dt, n), *o = zeros(n);
    swiglu_forward(o, x, y, n);
    store(out, dt, o, n);
    free(x), free(y), free(o);
    return MOE_OK;
}

moe_status moe_cuda_swiglu_backward(moe_cuda *ctx, moe_dtype dt, void *da, void *db,
                                    const void *dout, const void *a, const void *b, long n) {
    static const char fn[] = "moe_cuda_swiglu_backward";
    CHECK_CTX();
    CHECK_DT(dt);
    REQUIRE(n >= 0);
    if (n == 0) return MOE_OK;
    DEV(da, nbytes(n, dt), "da");
    DEV(db, nbytes(n, dt), "db");
    DEV(dout, nbytes(n, dt), "dout");
    DEV(a, nbytes(n, dt), "a");
    DEV(b, nbytes(n, dt), "b");
    float *g = load(dout, dt, n), *x = load(a, dt, n), *y = load(b, dt, n);
    float *gx = zeros(n), *gy = zeros(n);
    swiglu_backward(gx, gy, g, x, y, n);
    store(da, dt, gx, n);
    store(db, dt, gy, n);
    free(g), free(x), free(y), free(gx), free(gy);
    return MOE_OK;
}

moe_status moe_cuda_residual_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *a,
                                     const void *b, long n) {
    static const char fn[] = "moe_cuda_residual_forward";
    CHECK_CTX();
    CHECK_DT(dt);
    REQUIRE(n >= 0);
    if (n == 0) return MOE_OK;
    DEV(out, nbytes(n, dt), "out");
    DEV(a, nbytes(n, dt), "a");
    DEV(b, nbytes(n, dt), "b");
    float *x = load(a, dt, n), *y = load(b, dt, n), *o = zeros(n);
    residual_forward(o, x, y, n);
    store(out, dt, o, n);
    free(x), free(y), free(o);
    return MOE_OK;
}

moe_status moe_cuda_residual_backward(moe_cuda *ctx, moe_dtype dt, void *da, void *db,
                                      const void *dout, long n) {
    static const char fn[] = "moe_cuda_residual_backward";
    CHECK_CTX();
    CHECK_DT(dt);
    REQUIRE(n >= 0);
    if (n == 0) return MOE_OK;
    DEV(da, nbytes(n, dt), "da");
    DEV(db, nbytes(n, dt), "db");
    DEV(dout, nbytes(n, dt), "dout");
    /* da += dout, then db += dout, one after the other (as an elementwise
     * kernel does: da == db adds twice) */
    for (int pass = 0; pass < 2; pass++) {
        void *p = pass ? db : da;
        float *acc = load(p, dt, n), *g = load(dout, dt, n), *dummy = zeros(n);
        residual_backward(acc, dummy, g, n);
        store(p, dt, acc, n);
        free(acc), free(g), free(dummy);
    }
    return MOE_OK;
}

static moe_status rope_check(const char *fn, moe_dtype dt, int B, int T, int H, int hd,
                             int row_stride) {
    CHECK_DT(dt);
    REQUIRE(B >= 0 && T >= 0 && H >= 0);
    REQUIRE(hd >= 2 && hd % 2 == 0);
    REQUIRE((long)row_stride >= (long)H * hd);
    return MOE_OK;
}

static moe_status rope_run(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp, int B, int T,
                           int H, int hd, int row_stride, int pos0, float theta, int inverse,
                           const char *fn) {
    CHECK_CTX();
    TRY(rope_check(fn, dt, B, T, H, hd, row_stride));
    const long rows = (long)B * T, w = (long)H * hd;
    if (rows == 0 || w == 0) return MOE_OK;
    DEV(out, extent(rows, w, row_stride, dt), "out");
    DEV(inp, extent(rows, w, row_stride, dt), "inp");
    float *x = load_rows(inp, dt, rows, w, row_stride), *o = zeros(rows * w);
    if (inverse)
        rope_backward(o, x, B, T, H, hd, (int)w, pos0, theta);
    else
        rope_forward(o, x, B, T, H, hd, (int)w, pos0, theta);
    store_rows(out, dt, o, rows, w, row_stride);
    free(x), free(o);
    return MOE_OK;
}

moe_status moe_cuda_rope_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp, int B,
                                 int T, int H, int hd, int row_stride, int pos0, float theta) {
    return rope_run(ctx, dt, out, inp, B, T, H, hd, row_stride, pos0, theta, 0,
                    "moe_cuda_rope_forward");
}

moe_status moe_cuda_rope_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, const void *dout, int B,
                                  int T, int H, int hd, int row_stride, int pos0, float theta) {
    return rope_run(ctx, dt, dinp, dout, B, T, H, hd, row_stride, pos0, theta, 1,
                    "moe_cuda_rope_backward");
}

/* ---- cross-entropy ---------------------------------------------------------- */

/* As the GPU's: a 16-byte head and one float per row. */
size_t moe_cuda_crossentropy_scratch(int N) {
    return 16 + (size_t)(N > 0 ? N : 0) * sizeof(float);
}

/* Scratch must be there, big enough, and holds nothing between calls. */
static moe_status scratch_use(void *scratch, size_t bytes, const char *fn) {
    DEV(scratch, bytes, "scratch");
    memset(scratch, 0xff, bytes);
    return MOE_OK;
}

moe_status moe_cuda_crossentropy(moe_cuda *ctx, moe_dtype dt, float *loss, int *count,
                                 void *dlogits, const void *logits, const int32_t *targets, int N,
                                 int V, int ignore_index, float scale, void *scratch) {
    static const char fn[] = "moe_cuda_crossentropy";
    CHECK_CTX();
    CHECK_DT(dt);
    REQUIRE(N >= 0 && V >= 1);
    REQUIRE(loss != NULL && scratch != NULL);
    const long n = (long)N * V;
    DEV(loss, 4, "loss");
    DEV_OPT(count, sizeof(int), "count");
    if (N > 0) {
        DEV(logits, nbytes(n, dt), "logits");
        DEV(targets, (size_t)N * 4, "targets");
        DEV_OPT(dlogits, nbytes(n, dt), "dlogits");
    }
    TRY(scratch_use(scratch, moe_cuda_crossentropy_scratch(N), fn));
    float *x = load(logits, dt, n), *probs = zeros(n);
    int cnt = 0;
    double l = crossentropy_forward(probs, x, targets, N, V, ignore_index, &cnt);
    *loss = (float)l;
    if (count) *count = cnt;
    if (dlogits && N > 0) {
        float *g = zeros(n);
        crossentropy_backward(g, probs, targets, N, V, ignore_index, cnt, scale);
        store(dlogits, dt, g, n);
        free(g);
    }
    free(x), free(probs);
    return MOE_OK;
}

/* ---- sum of squares and AdamW --------------------------------------------- */

moe_status moe_cuda_sumsq(moe_cuda *ctx, float *out, const float *g, long n) {
    static const char fn[] = "moe_cuda_sumsq";
    CHECK_CTX();
    REQUIRE(n >= 0);
    DEV(out, 4, "out");
    if (n > 0) DEV(g, (size_t)n * 4, "g");
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)g[i] * g[i];
    *out = (float)s;
    return MOE_OK;
}

moe_status moe_cuda_adamw_step(moe_cuda *ctx, float *param, const float *grad, float *m, float *v,
                               void *copy, moe_dtype copy_dt, long n, const moe_cuda_adamw *h,
                               const float *sumsq) {
    static const char fn[] = "moe_cuda_adamw_step";
    CHECK_CTX();
    REQUIRE(n >= 0 && h != NULL);
    REQUIRE(h->step >= 1);
    if (copy) CHECK_DT(copy_dt);
    if (n == 0) return MOE_OK;
    const size_t b = (size_t)n * 4;
    DEV(param, b, "param");
    DEV(grad, b, "grad");
    DEV(m, b, "m");
    DEV(v, b, "v");
    DEV_OPT(copy, nbytes(n, copy_dt), "copy");
    DEV_OPT(sumsq, 4, "sumsq");
    /* clip as moe_grad_clip: coef = max_norm / (norm + 1e-6) when below 1 */
    float clip = 1;
    int clipping = 0;
    if (sumsq && h->max_norm > 0) {
        double coef = (double)h->max_norm / (sqrt((double)*sumsq) + 1e-6);
        if (coef < 1.0) clip = (float)coef, clipping = 1;
    }
    /* step_adam (train/optim.c), decoupled, in its float arithmetic */
    const double b1 = h->beta1, b2 = h->beta2, t = (double)h->step;
    const float eps = h->eps;
    const float decay = (float)(1.0 - (double)h->lr * h->weight_decay);
    const float step_size = (float)(h->lr / (1.0 - pow(b1, t)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(b2, t));
    const float c1 = (float)(1.0 - b1), c2 = (float)(1.0 - b2);
    const float fb1 = (float)b1, fb2 = (float)b2;
    for (long i = 0; i < n; i++) {
        float gi = clipping ? grad[i] * clip : grad[i], pi = param[i] * decay;
        float mi = m[i] * fb1 + c1 * gi, vi = v[i] * fb2 + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        param[i] = pi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
        if (copy) st(copy, copy_dt, i, param[i]);
    }
    return MOE_OK;
}

/* ---- attention -------------------------------------------------------------- */

static moe_status attention_check(const char *fn, moe_dtype dt, int B, int T, int H, int KVH,
                                  int hd, int q_stride, int kv_stride) {
    CHECK_DT(dt);
    REQUIRE(B >= 0 && T >= 0 && H >= 1 && KVH >= 1 && H % KVH == 0);
    REQUIRE(hd >= 8 && hd <= 128 && hd % 8 == 0);
    REQUIRE((long)q_stride >= (long)H * hd && (long)kv_stride >= (long)KVH * hd);
    return MOE_OK;
}

/* A flash-style backward keeps one float per query row (rowsum(dO * O)). */
size_t moe_cuda_attention_scratch(int B, int T, int H, int KVH, int hd) {
    (void)KVH, (void)hd;
    size_t n = (size_t)(B > 0 ? B : 0) * (size_t)(T > 0 ? T : 0) * (size_t)(H > 0 ? H : 0) * 4;
    return n > 16 ? n : 16;
}

/* lse [B,H,T] (fp32) of the scaled scores over the keys each row sees, in
 * double, from the fp32 copies qf [B*T, H*hd] and kf [B*T, KVH*hd]; -inf for
 * a row whose keys are all masked. */
static void attention_lse(float *lse, const float *qf, const float *kf, const uint8_t *pad_mask,
                          int B, int T, int H, int KVH, int hd, int causal) {
    const long qw = (long)H * hd, kw = (long)KVH * hd;
    const double scale = 1.0 / sqrt((double)hd);
    const int group = H / KVH;
    double *s = emu_xmalloc((size_t)(T > 0 ? T : 1) * sizeof *s);
    for (int b = 0; b < B; b++)
        for (int hh = 0; hh < H; hh++)
            for (int t = 0; t < T; t++) {
                const float *qr = qf + ((long)b * T + t) * qw + (long)hh * hd;
                const int last = causal ? t + 1 : T;
                double mx = -INFINITY;
                for (int j = 0; j < last; j++) {
                    s[j] = -INFINITY;
                    if (pad_mask && !pad_mask[(long)b * T + j]) continue;
                    const float *kr = kf + ((long)b * T + j) * kw + (long)(hh / group) * hd;
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += (double)qr[i] * kr[i];
                    s[j] = d * scale;
                    if (s[j] > mx) mx = s[j];
                }
                double r = -INFINITY;
                if (mx > -INFINITY) {
                    double z = 0;
                    for (int j = 0; j < last; j++)
                        if (s[j] > -INFINITY) z += exp(s[j] - mx);
                    r = mx + log(z);
                }
                lse[((long)b * H + hh) * T + t] = (float)r;
            }
    free(s);
}

/* Whether got and want [n] agree: the same infinities, else within tol
 * relative (NaN never agrees). Index of the first disagreement, or -1. */
static long first_mismatch(const float *got, const float *want, long n, double tol) {
    for (long i = 0; i < n; i++) {
        if (isinf(want[i]) || isinf(got[i])) {
            if (got[i] != want[i]) return i;
            continue;
        }
        if (!(fabs((double)got[i] - want[i]) <= tol * (1.0 + fabs((double)want[i])))) return i;
    }
    return -1;
}

moe_status moe_cuda_attention_forward(moe_cuda *ctx, moe_dtype dt, void *out, float *lse,
                                      const void *q, const void *k, const void *v,
                                      const uint8_t *pad_mask, int B, int T, int H, int KVH, int hd,
                                      int q_stride, int kv_stride, int causal) {
    static const char fn[] = "moe_cuda_attention_forward";
    CHECK_CTX();
    TRY(attention_check(fn, dt, B, T, H, KVH, hd, q_stride, kv_stride));
    const long rows = (long)B * T, qw = (long)H * hd, kw = (long)KVH * hd;
    if (rows == 0) return MOE_OK;
    DEV(out, nbytes(rows * qw, dt), "out");
    DEV(lse, (size_t)B * H * T * 4, "lse");
    DEV(q, extent(rows, qw, q_stride, dt), "q");
    DEV(k, extent(rows, kw, kv_stride, dt), "k");
    DEV(v, extent(rows, kw, kv_stride, dt), "v");
    DEV_OPT(pad_mask, (size_t)rows, "pad_mask");
    float *qf = load_rows(q, dt, rows, qw, q_stride), *kf = load_rows(k, dt, rows, kw, kv_stride);
    float *vf = load_rows(v, dt, rows, kw, kv_stride), *o = zeros(rows * qw);
    float *att = zeros((long)B * H * T * T);
    attention_forward(o, att, qf, kf, vf, pad_mask, B, T, H, KVH, hd, (int)qw, (int)kw, causal);
    attention_lse(lse, qf, kf, pad_mask, B, T, H, KVH, hd, causal);
    store(out, dt, o, rows * qw);
    free(qf), free(kf), free(vf), free(o), free(att);
    return MOE_OK;
}
moe_status moe_cuda_attention_backward(moe_cuda *ctx, moe_dtype dt, void *dq, void *dk, void *dv,
                                       const void *dout, const void *out, const void *q,
                                       const void *k, const void *v, const float *lse,
                                       const uint8_t *pad_mask, int B, int T, int H, int KVH,
                                       int hd, int q_stride, int kv_stride, int causal,
                                       void *scratch) {
    static const char fn[] = "moe_cuda_attention_backward";
    CHECK_CTX();
    TRY(attention_check(fn, dt, B, T, H, KVH, hd, q_stride, kv_stride));
    const long rows = (long)B * T, qw = (long)H * hd, kw = (long)KVH * hd;
    if (rows == 0) return MOE_OK;
    DEV(dq, extent(rows, qw, q_stride, dt), "dq");
    DEV(dk, extent(rows, kw, kv_stride, dt), "dk");
    DEV(dv, extent(rows, kw, kv_stride, dt), "dv");
    DEV(dout, nbytes(rows * qw, dt), "dout");
    DEV(out, nbytes(rows * qw, dt), "out");
    DEV(q, extent(rows, qw, q_stride, dt), "q");
    DEV(k, extent(rows, kw, kv_stride, dt), "k");
    DEV(v, extent(rows, kw, kv_stride, dt), "v");
    DEV(lse, (size_t)B * H * T * 4, "lse");
    DEV_OPT(pad_mask, (size_t)rows, "pad_mask");
    TRY(scratch_use(scratch, moe_cuda_attention_scratch(B, T, H, KVH, hd), fn));
    float *qf = load_rows(q, dt, rows, qw, q_stride), *kf = load_rows(k, dt, rows, kw, kv_stride);
    float *vf = load_rows(v, dt, rows, kw, kv_stride), *go = load(dout, dt, rows * qw);
    float *o = zeros(rows * qw), *att = zeros((long)B * H * T * T);
    float *datt = zeros((long)B * H * T * T);
    float *gq = zeros(rows * qw), *gk = zeros(rows * kw), *gv = zeros(rows * kw);
    /* the probabilities again (the GPU recomputes them from lse) */
    attention_forward(o, att, qf, kf, vf, pad_mask, B, T, H, KVH, hd, (int)qw, (int)kw, causal);
    /* a flash backward reads out and lse: they must still be this forward's
     * (a GPU given stale ones computes wrong gradients without a word) */
    float *want_lse = emu_xmalloc((size_t)B * H * T * sizeof *want_lse);
    attention_lse(want_lse, qf, kf, pad_mask, B, T, H, KVH, hd, causal);
    float *got_out = load(out, dt, rows * qw);
    /* loose bounds: a stale buffer is off by O(1), a bf16 rounding flip by 2^-8 */
    const double tol = dt == MOE_DT_BF16 ? 1e-2 : 1e-4;
    long bad_lse = first_mismatch(lse, want_lse, (long)B * H * T, 1e-4);
    long bad_out = -1;
    for (long i = 0; i < rows * qw && bad_out < 0; i++) {
        float w = dt == MOE_DT_BF16 ? moe_bf16_to_float(moe_bf16_from_float(o[i])) : o[i];
        if (first_mismatch(&got_out[i], &w, 1, tol) >= 0) bad_out = i;
    }
    free(want_lse), free(got_out);
    if (bad_lse >= 0 || bad_out >= 0) {
        free(qf), free(kf), free(vf), free(go), free(o), free(att), free(datt);
        free(gq), free(gk), free(gv);
        return moe_error(MOE_ERR_INVALID,
                         EMU " %s: %s element %ld is not what the forward on these q, k, v "
                             "gives (stale or wrong buffer)",
                         fn, bad_lse >= 0 ? "lse" : "out", bad_lse >= 0 ? bad_lse : bad_out);
    }
    attention_backward(gq, gk, gv, datt, go, qf, kf, vf, att, B, T, H, KVH, hd, (int)qw, (int)kw,
                       causal);
    store_rows(dq, dt, gq, rows, qw, q_stride);
    store_rows(dk, dt, gk, rows, kw, kv_stride);
    store_rows(dv, dt, gv, rows, kw, kv_stride);
    free(qf), free(kf), free(vf), free(go), free(o), free(att), free(datt);
    free(gq), free(gk), free(gv);
    return MOE_OK;
}

/* ---- MoE: router ------------------------------------------------------------ */

static moe_status router_check(int T, int E, int k, const char *fn) {
    REQUIRE(T >= 0);
    REQUIRE(E >= 1 && E <= 256);
    REQUIRE(k >= 1 && k <= 8 && k <= E);
    return MOE_OK;
}

/* router.c's top_n: best first, ties to the lower expert. */
static void top_n(int32_t *idx, const float *l, int E, int n) {
    for (int j = 0; j < n; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int used = 0;
            for (int m = 0; m < j; m++) used |= idx[m] == e;
            if (!used && (best < 0 || l[e] > l[best])) best = e;
        }
        idx[j] = best;
    }
}

moe_status moe_cuda_router_forward(moe_cuda *ctx, float *scores, float *lse, int32_t *chosen,
                                   float *weights, int32_t *routed, float *prob_sum, float *z_sum,
                                   const float *logits, int T, int E, int k,
                                   int topk_before_softmax, int renormalize) {
    static const char fn[] = "moe_cuda_router_forward";
    CHECK_CTX();
    TRY(router_check(T, E, k, fn));
    const size_t TE = (size_t)T * E * 4, Tk = (size_t)T * k * 4;
    if (T > 0) {
        DEV(scores, TE, "scores");
        DEV(lse, (size_t)T * 4, "lse");
        DEV(chosen, Tk, "chosen");
        DEV(weights, Tk, "weights");
        DEV(logits, TE, "logits");
    }
    DEV(routed, (size_t)E * 4, "routed");
    DEV(prob_sum, (size_t)E * 4, "prob_sum");
    DEV(z_sum, 4, "z_sum");
    double *ps = emu_xmalloc((size_t)E * sizeof *ps), zs = 0;
    for (int e = 0; e < E; e++) ps[e] = 0;
    for (int e = 0; e < E; e++) routed[e] = 0;
    for (int t = 0; t < T; t++) {
        const float *l = logits + (long)t * E;
        float *s = scores + (long)t * E, *w = weights + (long)t * k;
        int32_t *ch = chosen + (long)t * k;
        double L = softmax_row(s, l, E); /* router.c: lse and scores */
        lse[t] = (float)L;
        zs += (double)lse[t] * lse[t];
        for (int e = 0; e < E; e++) ps[e] += s[e];
        top_n(ch, l, E, k);
        for (int j = 0; j < k; j++) routed[ch[j]]++;
        if (topk_before_softmax) { /* softmax over the k chosen logits */
            double m = l[ch[0]], z = 0;
            for (int j = 0; j < k; j++) z += exp(l[ch[j]] - m);
            for (int j = 0; j < k; j++) w[j] = (float)(exp(l[ch[j]] - m) / z);
        } else {
            double S = 0;
            for (int j = 0; j < k; j++) S += s[ch[j]];
            for (int j = 0; j < k; j++) w[j] = renormalize ? (float)(s[ch[j]] / S) : s[ch[j]];
        }
    }
    for (int e = 0; e < E; e++) prob_sum[e] = (float)ps[e];
    *z_sum = (float)zs;
    free(ps);
    return MOE_OK;
}

moe_status moe_cuda_router_backward(moe_cuda *ctx, float *dlogits, const float *dw, const float *dP,
                                    const float *dz, const float *scores, const float *lse,
                                    const int32_t *chosen, const float *weights, int T, int E,
                                    int k, int topk_before_softmax, int renormalize) {
    static const char fn[] = "moe_cuda_router_backward";
    CHECK_CTX();
    TRY(router_check(T, E, k, fn));
    if (T == 0) return MOE_OK;
    const size_t TE = (size_t)T * E * 4, Tk = (size_t)T * k * 4;
    DEV(dlogits, TE, "dlogits");
    DEV(dw, Tk, "dw");
    DEV_OPT(dP, (size_t)E * 4, "dP");
    DEV_OPT(dz, 4, "dz");
    DEV(scores, TE, "scores");
    DEV(lse, (size_t)T * 4, "lse");
    DEV(chosen, Tk, "chosen");
    DEV(weights, Tk, "weights");
    double dp[256];
    for (int t = 0; t < T; t++) {
        float *dl = dlogits + (long)t * E;
        const float *s = scores + (long)t * E, *w = weights + (long)t * k, *g = dw + (long)t * k;
        const int32_t *ch = chosen + (long)t * k;
        double direct[256];
        for (int e = 0; e < E; e++) dp[e] = dP ? dP[e] : 0, direct[e] = 0;
        for (int j = 0; j < k; j++)
            if (ch[j] < 0 || ch[j] >= E)
                return moe_error(MOE_ERR_INVALID, EMU " %s: chosen[%d,%d] = %d", fn, t, j, ch[j]);
        double wd = 0;
        for (int j = 0; j < k; j++) wd += (double)w[j] * g[j];
        if (topk_before_softmax) {
            for (int j = 0; j < k; j++) direct[ch[j]] += w[j] * (g[j] - wd);
        } else if (renormalize) { /* w_j = s_j / S */
            double S = 0;
            for (int j = 0; j < k; j++) S += s[ch[j]];
            for (int j = 0; j < k; j++) dp[ch[j]] += (g[j] - wd) / S;
        } else {
            for (int j = 0; j < k; j++) dp[ch[j]] += g[j];
        }
        double sd = 0;
        for (int e = 0; e < E; e++) sd += s[e] * dp[e];
        const double a = dz ? (double)*dz * 2.0 * lse[t] : 0.0; /* d z_sum / d logits */
        for (int e = 0; e < E; e++) dl[e] = (float)(s[e] * (dp[e] - sd) + direct[e] + a * s[e]);
    }
    return MOE_OK;
}

moe_status moe_cuda_aux_loss(moe_cuda *ctx, float *aux, float *dP, float *dz, const int32_t *routed,
                             const float *prob_sum, const float *z_sum, int T, int E, int k,
                             int switch_divide_by_k, float switch_coef, float z_coef, float daux) {
    static const char fn[] = "moe_cuda_aux_loss";
    CHECK_CTX();
    TRY(router_check(T, E, k, fn));
    REQUIRE(T >= 1);
    DEV(aux, 3 * 4, "aux");
    DEV_OPT(dP, (size_t)E * 4, "dP");
    DEV_OPT(dz, 4, "dz");
    DEV(routed, (size_t)E * 4, "routed");
    DEV(prob_sum, (size_t)E * 4, "prob_sum");
    DEV(z_sum, 4, "z_sum");
    const double fden = switch_divide_by_k ? (double)T * k : (double)T;
    double sw = 0;
    for (int e = 0; e < E; e++) {
        double f = routed[e] / fden;
        sw += f * (prob_sum[e] / (double)T);
        if (dP) dP[e] = (float)((double)daux * switch_coef * E * f / T);
    }
    const double a0 = E * sw, a1 = (double)*z_sum / T;
    aux[0] = (float)a0;
    aux[1] = (float)a1;
    aux[2] = (float)(switch_coef * a0 + z_coef * a1);
    if (dz) *dz = (float)((double)daux * z_coef / T);
    return MOE_OK;
}

/* ---- MoE: dispatch and combine ------------------------------------------------ */

/* As the GPU's: a histogram of E ints per chunk of 256 pairs. */
size_t moe_cuda_dispatch_scratch(int T, int k, int E) {
    if (T < 0 || k < 0 || E < 0) return 0;
    size_t n = (size_t)(((long)T * k + 255) / 256) * (size_t)E * sizeof(int32_t);
    return n > 16 ? n : 16;
}

moe_status moe_cuda_dispatch_forward(moe_cuda *ctx, moe_dtype dt, void *xp, int32_t *kept,
                                     int32_t *offsets, int32_t *row_of, int32_t *token_of,
                                     const void *x, const int32_t *chosen, int T, int D, int E,
                                     int k, int capacity, void *scratch) {
    static const char fn[] = "moe_cuda_dispatch_forward";
    CHECK_CTX();
    CHECK_DT(dt);
    REQUIRE(T >= 0 && D >= 0);
    REQUIRE(E >= 1 && E <= 256);
    REQUIRE(k >= 1 && k <= 8 && k <= E);
    REQUIRE(capacity >= 0);
    const long P = (long)T * k;
    const long R_max = P < (long)E * capacity ? P : (long)E * capacity;
    DEV(kept, (size_t)E * 4, "kept");
    DEV(offsets, (size_t)(E + 1) * 4, "offsets");
    if (P > 0) {
        DEV(row_of, (size_t)P * 4, "row_of");
        DEV(chosen, (size_t)P * 4, "chosen");
    }
    if (R_max > 0) {
        DEV(token_of, (size_t)R_max * 4, "token_of [R_max]");
        DEV(xp, nbytes(R_max * D, dt), "xp [R_max, D]");
    }
    if (T > 0 && D > 0) DEV(x, nbytes((long)T * D, dt), "x");
    TRY(scratch_use(scratch, moe_cuda_dispatch_scratch(T, k, E), fn));
    for (long p = 0; p < P; p++)
        if (chosen[p] < 0 || chosen[p] >= E)
            return moe_error(MOE_ERR_INVALID, EMU " %s: chosen[%ld] = %d, outside [0, %d)", fn, p,
                             chosen[p], E);
    for (int e = 0; e < E; e++) kept[e] = 0;
    for (long p = 0; p < P; p++) { /* token order: the admission order */
        int e = chosen[p];
        row_of[p] = kept[e] < capacity ? kept[e]++ : -1;
    }
    offsets[0] = 0;
    for (int e = 0; e < E; e++) offsets[e + 1] = offsets[e] + kept[e];
    const size_t rb = nbytes(D, dt);
    for (long p = 0; p < P; p++) {
        if (row_of[p] < 0) continue;
        const int r = row_of[p] + offsets[chosen[p]];
        row_of[p] = r;
        token_of[r] = (int32_t)(p / k);
        memcpy((char *)xp + (size_t)r * rb, (const char *)x + (size_t)(p / k) * rb, rb);
    }
    return MOE_OK;
}

/* Rows of the permuted buffers that row_of [T*k] references (max + 1), after
 * checking every entry is -1 or a row. */
static moe_status rows_used(const int32_t *row_of, long P, long *rows, const char *fn) {
    long mx = -1;
    for (long p = 0; p < P; p++) {
        if (row_of[p] < -1)
            return moe_error(MOE_ERR_INVALID, EMU " %s: row_of[%ld] = %d", fn, p, row_of[p]);
        if (row_of[p] > mx) mx = row_of[p];
    }
    *rows = mx + 1;
    return MOE_OK;
}

static moe_status slots_check(const char *fn, moe_dtype dt, int T, int D, int k) {
    CHECK_DT(dt);
    REQUIRE(T >= 0 && D >= 0 && k >= 1 && k <= 8);
    return MOE_OK;
}

moe_status moe_cuda_dispatch_backward(moe_cuda *ctx, moe_dtype dt, void *dx, const void *dxp,
                                      const int32_t *row_of, int T, int D, int k) {
    static const char fn[] = "moe_cuda_dispatch_backward";
    CHECK_CTX();
    TRY(slots_check(fn, dt, T, D, k));
    const long P = (long)T * k;
    if (T == 0 || D == 0) return MOE_OK;
    DEV(dx, nbytes((long)T * D, dt), "dx");
    DEV(row_of, (size_t)P * 4, "row_of");
    long R = 0;
    TRY(rows_used(row_of, P, &R, fn));
    if (R > 0) DEV(dxp, nbytes(R * D, dt), "dxp (rows row_of references)");
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++) {
            float s = ld(dx, dt, (long)t * D + i);
            for (int j = 0; j < k; j++) {
                const int r = row_of[(long)t * k + j];
                if (r >= 0) s += ld(dxp, dt, (long)r * D + i);
            }
            st(dx, dt, (long)t * D + i, s);
        }
    return MOE_OK;
}

moe_status moe_cuda_combine_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *y,
                                    const float *weights, const int32_t *row_of, int T, int D,
                                    int k, int accumulate) {
    static const char fn[] = "moe_cuda_combine_forward";
    CHECK_CTX();
    TRY(slots_check(fn, dt, T, D, k));
    const long P = (long)T * k;
    if (T == 0 || D == 0) return MOE_OK;
    DEV(out, nbytes((long)T * D, dt), "out");
    DEV(weights, (size_t)P * 4, "weights");
    DEV(row_of, (size_t)P * 4, "row_of");
    long R = 0;
    TRY(rows_used(row_of, P, &R, fn));
    if (R > 0) DEV(y, nbytes(R * D, dt), "y (rows row_of references)");
    if (emu_overlap(out, nbytes((long)T * D, dt), y, nbytes(R * D, dt)))
        return moe_error(MOE_ERR_INVALID, EMU " %s: out overlaps y", fn);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++) {
            float s = accumulate ? ld(out, dt, (long)t * D + i) : 0.0f;
            for (int j = 0; j < k; j++) {
                const int r = row_of[(long)t * k + j];
                if (r >= 0) s += weights[(long)t * k + j] * ld(y, dt, (long)r * D + i);
            }
            st(out, dt, (long)t * D + i, s);
        }
    return MOE_OK;
}

moe_status moe_cuda_combine_backward(moe_cuda *ctx, moe_dtype dt, void *dy, float *dw,
                                     const void *dout, const void *y, const float *weights,
                                     const int32_t *row_of, int T, int D, int k) {
    static const char fn[] = "moe_cuda_combine_backward";
    CHECK_CTX();
    TRY(slots_check(fn, dt, T, D, k));
    const long P = (long)T * k;
    if (T == 0) return MOE_OK;
    DEV(dw, (size_t)P * 4, "dw");
    DEV(weights, (size_t)P * 4, "weights");
    DEV(row_of, (size_t)P * 4, "row_of");
    long R = 0;
    TRY(rows_used(row_of, P, &R, fn));
    if (D > 0) {
        DEV(dout, nbytes((long)T * D, dt), "dout");
        if (R > 0) {
            DEV(dy, nbytes(R * D, dt), "dy (rows row_of references)");
            DEV(y, nbytes(R * D, dt), "y (rows row_of references)");
        }
    }
    for (int t = 0; t < T; t++)
        for (int j = 0; j < k; j++) {
            const long p = (long)t * k + j;
            const int r = row_of[p];
            double s = 0;
            if (r >= 0)
                for (int i = 0; i < D; i++) {
                    const float g = ld(dout, dt, (long)t * D + i);
                    s += (double)g * ld(y, dt, (long)r * D + i);
                    st(dy, dt, (long)r * D + i, weights[p] * g);
                }
            dw[p] = (float)s;
        }
    return MOE_OK;
}

/* ---- MoE: grouped GEMMs ------------------------------------------------------- */

static moe_status gg_check(const char *fn, moe_dtype dt, int E, int R_max, int K, int N) {
    CHECK_DT(dt);
    REQUIRE(E >= 1 && E <= 256);
    REQUIRE(R_max >= 0 && K >= 0 && N >= 0);
    return MOE_OK;
}

/* offsets [E+1] must be a partition of rows 0 .. R <= R_max. */
static moe_status gg_offsets(const int32_t *offsets, int E, int R_max, const char *fn) {
    DEV(offsets, (size_t)(E + 1) * 4, "offsets");
    if (offsets[0] != 0)
        return moe_error(MOE_ERR_INVALID, EMU " %s: offsets[0] = %d, not 0", fn, offsets[0]);
    for (int e = 0; e < E; e++)
        if (offsets[e + 1] < offsets[e])
            return moe_error(MOE_ERR_INVALID, EMU " %s: offsets decrease at expert %d", fn, e);
    if (offsets[E] > R_max)
        return moe_error(MOE_ERR_INVALID,
                         EMU " %s: offsets[E] = %d rows > R_max = %d (a GPU would go out of "
                             "bounds)",
                         fn, offsets[E], R_max);
    return MOE_OK;
}

moe_status moe_cuda_grouped_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp,
                                    const void *weight, const int32_t *offsets, int E, int R_max,
                                    int K, int N) {
    static const char fn[] = "moe_cuda_grouped_forward";
    CHECK_CTX();
    TRY(gg_check(fn, dt, E, R_max, K, N));
    if (R_max == 0 || N == 0) return MOE_OK;
    TRY(gg_offsets(offsets, E, R_max, fn));
    DEV(out, nbytes((long)R_max * N, dt), "out [R_max, N]");
    if (K > 0) {
        DEV(inp, nbytes((long)R_max * K, dt), "inp [R_max, K]");
        DEV(weight, nbytes((long)E * N * K, dt), "weight [E, N, K]");
    }
    if (emu_overlap(out, nbytes((long)R_max * N, dt), inp, nbytes((long)R_max * K, dt)))
        return moe_error(MOE_ERR_INVALID, EMU " %s: out overlaps inp", fn);
    const long R = offsets[E];
    float *x = load(inp, dt, R * K), *w = load(weight, dt, (long)E * N * K), *o = zeros(R * N);
    for (int e = 0; e < E; e++) {
        const int r0 = offsets[e], n = offsets[e + 1] - r0;
        if (n > 0 && K > 0)
            gemm(0, 1, n, N, K, 1, x + (long)r0 * K, K, w + (long)e * N * K, K, 0, o + (long)r0 * N,
                 N);
    }
    store(out, dt, o, R * N); /* rows >= R untouched */
    free(x), free(w), free(o);
    return MOE_OK;
}

moe_status moe_cuda_grouped_backward_input(moe_cuda *ctx, moe_dtype dt, void *dinp,
                                           const void *dout, const void *weight,
                                           const int32_t *offsets, int E, int R_max, int K, int N) {
    static const char fn[] = "moe_cuda_grouped_backward_input";
    CHECK_CTX();
    TRY(gg_check(fn, dt, E, R_max, K, N));
    if (R_max == 0 || K == 0) return MOE_OK;
    TRY(gg_offsets(offsets, E, R_max, fn));
    DEV(dinp, nbytes((long)R_max * K, dt), "dinp [R_max, K]");
    if (N > 0) {
        DEV(dout, nbytes((long)R_max * N, dt), "dout [R_max, N]");
        DEV(weight, nbytes((long)E * N * K, dt), "weight [E, N, K]");
    }
    if (emu_overlap(dinp, nbytes((long)R_max * K, dt), dout, nbytes((long)R_max * N, dt)))
        return moe_error(MOE_ERR_INVALID, EMU " %s: dinp overlaps dout", fn);
    const long R = offsets[E];
    float *g = load(dout, dt, R * N), *w = load(weight, dt, (long)E * N * K), *gi = zeros(R * K);
    for (int e = 0; e < E; e++) {
        const int r0 = offsets[e], n = offsets[e + 1] - r0;
        if (n > 0 && N > 0)
            gemm(0, 0, n, K, N, 1, g + (long)r0 * N, N, w + (long)e * N * K, K, 0,
                 gi + (long)r0 * K, K);
    }
    store(dinp, dt, gi, R * K);
    free(g), free(w), free(gi);
    return MOE_OK;
}

moe_status moe_cuda_grouped_backward_weight(moe_cuda *ctx, moe_dtype dt, float *dweight,
                                            const void *dout, const void *inp,
                                            const int32_t *offsets, int E, int R_max, int K,
                                            int N) {
    static const char fn[] = "moe_cuda_grouped_backward_weight";
    CHECK_CTX();
    TRY(gg_check(fn, dt, E, R_max, K, N));
    if (R_max == 0 || K == 0 || N == 0) return MOE_OK;
    TRY(gg_offsets(offsets, E, R_max, fn));
    DEV(dweight, (size_t)E * N * K * 4, "dweight [E, N, K]");
    DEV(dout, nbytes((long)R_max * N, dt), "dout [R_max, N]");
    DEV(inp, nbytes((long)R_max * K, dt), "inp [R_max, K]");
    const long R = offsets[E];
    float *g = load(dout, dt, R * N), *x = load(inp, dt, R * K);
    for (int e = 0; e < E; e++) {
        const int r0 = offsets[e], n = offsets[e + 1] - r0;
        if (n > 0)
            gemm(1, 0, N, K, n, 1, g + (long)r0 * N, N, x + (long)r0 * K, K, 1,
                 dweight + (long)e * N * K, K);
    }
    free(g), free(x);
    return MOE_OK;
}
