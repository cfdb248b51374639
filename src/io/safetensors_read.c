/* Reading safetensors files: map, validate the whole header, convert. */
#include "io/fsutil.h"
#include "io/st_internal.h"
#include "moe/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u * 1000u * 1000u) /* larger headers are refused */
#define ST_MAX_DIMS 8

typedef enum st_dtype { ST_F32, ST_F64, ST_F16, ST_BF16, ST_I32, ST_I64 } st_dtype;

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {{"F32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"I32", 4}, {"I64", 8}};

typedef struct st_entry {
    const char *name; /* points into the parsed header */
    st_dtype dtype;   /* element type */
    int ndim;         /* 0..ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end; /* byte range in the data buffer */
} st_entry;

struct moe_st_file {
    char *path;                /* as opened */
    unsigned char *map;        /* whole file, read-only */
    size_t size;               /* file bytes */
    const unsigned char *data; /* the data buffer (after the header) */
    uint64_t data_size;        /* its bytes */
    cJSON *header;             /* parsed header (owns names and metadata) */
    st_entry *e;               /* tensors in header order */
    int n;                     /* tensor count */
};

const char *moe_st_path(const moe_st_file *f) {
    return f->path;
}

int moe_st_count(const moe_st_file *f) {
    return f ? f->n : 0;
}

const char *moe_st_name(const moe_st_file *f, int i) {
    return f && i >= 0 && i < f->n ? f->e[i].name : NULL;
}

const char *moe_st_meta(const moe_st_file *f, const char *key) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(f->header, "__metadata__");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void moe_st_close(moe_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->size);
    cJSON_Delete(f->header);
    free(f->e);
    free(f->path);
    free(f);
}

/* A JSON number that is an integer in [0, 2^53]; else -1. */
static int64_t json_index(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return -1;
    return (int64_t)d;
}

/* Fills one entry from its header object; MOE_ERR_FORMAT naming the flaw. */
static moe_status parse_entry(const moe_st_file *f, const cJSON *item, st_entry *e) {
    const char *p = f->path, *nm = item->string;
    e->name = nm;
    if (!cJSON_IsObject(item))
        return moe_error(MOE_ERR_FORMAT, "safetensors %s: tensor \"%s\" is not a JSON object", p,
                         nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt))
        return moe_error(MOE_ERR_FORMAT, "safetensors %s: tensor \"%s\" has no \"dtype\" string", p,
                         nm);
    size_t k = 0, nd = sizeof dtypes / sizeof dtypes[0];
    while (k < nd && strcmp(dtypes[k].name, dt->valuestring) != 0) k++;
    if (k == nd)
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: tensor \"%s\" has unknown dtype \"%s\" (known: F32, "
                         "F64, F16, BF16, I32, I64)",
                         p, nm, dt->valuestring);
    e->dtype = (st_dtype)k;
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ST_MAX_DIMS)
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: tensor \"%s\" has no \"shape\" array of at most %d dims",
                         p, nm, ST_MAX_DIMS);
    e->ndim = cJSON_GetArraySize(shape);
    double numel = 1; /* in double: no overflow before the range check */
    for (int d = 0; d < e->ndim; d++) {
        e->shape[d] = json_index(cJSON_GetArrayItem(shape, d));
        if (e->shape[d] < 0)
            return moe_error(MOE_ERR_FORMAT,
                             "safetensors %s: tensor \"%s\" dim %d is not a non-negative integer",
                             p, nm, d);
        numel *= (double)e->shape[d];
    }
    int64_t b = cJSON_GetArraySize(offs) == 2 ? json_index(cJSON_GetArrayItem(offs, 0)) : -1;
    int64_t en = cJSON_GetArraySize(offs) == 2 ? json_index(cJSON_GetArrayItem(offs, 1)) : -1;
    if (!cJSON_IsArray(offs) || b < 0 || en < b)
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: tensor \"%s\" needs \"data_offsets\" [begin, end] with "
                         "0 <= begin <= end",
                         p, nm);
    e->begin = (uint64_t)b;
    e->end = (uint64_t)en;
    if (e->end > f->data_size)
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: tensor \"%s\" data_offsets [%llu, %llu] run past the "
                         "end of the file (%llu data bytes): the file is truncated; re-save or use "
                         "another checkpoint",
                         p, nm, (unsigned long long)e->begin, (unsigned long long)e->end,
                         (unsigned long long)f->data_size);
    if (numel * (double)dtypes[k].size != (double)(e->end - e->begin))
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: tensor \"%s\" spans %llu bytes but its shape and dtype "
                         "%s need %.0f",
                         p, nm, (unsigned long long)(e->end - e->begin), dtypes[k].name,
                         numel * (double)dtypes[k].size);
    return MOE_OK;
}

static int by_begin(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* No two tensors share bytes (empty tensors share nothing). */
static moe_status check_overlaps(const moe_st_file *f) {
    const st_entry **order = malloc((size_t)(f->n ? f->n : 1) * sizeof *order);
    if (!order) return moe_error(MOE_ERR_NOMEM, "out of memory reading %s", f->path);
    int m = 0;
    for (int i = 0; i < f->n; i++)
        if (f->e[i].end > f->e[i].begin) order[m++] = &f->e[i];
    qsort(order, (size_t)m, sizeof *order, by_begin);
    moe_status s = MOE_OK;
    for (int i = 1; i < m && s == MOE_OK; i++)
        if (order[i]->begin < order[i - 1]->end)
            s = moe_error(MOE_ERR_FORMAT,
                          "safetensors %s: tensors \"%s\" [%llu, %llu] and \"%s\" [%llu, %llu] "
                          "overlap: the header is corrupted",
                          f->path, order[i - 1]->name, (unsigned long long)order[i - 1]->begin,
                          (unsigned long long)order[i - 1]->end, order[i]->name,
                          (unsigned long long)order[i]->begin, (unsigned long long)order[i]->end);
    free(order);
    return s;
}

/* Parses and validates the header of a mapped file. */
static moe_status parse_header(moe_st_file *f) {
    const char *p = f->path;
    if (f->size < 8)
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: file is %zu bytes, shorter than the 8-byte header "
                         "length: empty or truncated; re-save or use another file",
                         p, f->size);
    uint64_t n = 0;
    for (int b = 7; b >= 0; b--) n = (n << 8) | f->map[b];
    if (n > f->size - 8)
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: header length %llu runs past the end of the file (%zu "
                         "bytes): truncated or not a safetensors file",
                         p, (unsigned long long)n, f->size);
    if (n >= ST_MAX_HEADER)
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: header length %llu is over the 100 MB limit: not a "
                         "safetensors file",
                         p, (unsigned long long)n);
    f->data = f->map + 8 + n;
    f->data_size = f->size - 8 - n;
    const char *end = NULL;
    f->header = cJSON_ParseWithLengthOpts((const char *)f->map + 8, (size_t)n, &end, 0);
    if (!f->header)
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: header is not valid JSON (error near byte %ld of %llu): "
                         "the file is corrupted",
                         p, end ? (long)(end - (const char *)f->map - 8) : -1L,
                         (unsigned long long)n);
    for (const char *c = end, *stop = (const char *)f->map + 8 + n; c < stop; c++)
        if (!strchr(" \t\r\n", *c) || !*c)
            return moe_error(MOE_ERR_FORMAT,
                             "safetensors %s: unexpected bytes after the header JSON (byte %ld): "
                             "the file is corrupted",
                             p, (long)(c - (const char *)f->map - 8));
    if (!cJSON_IsObject(f->header))
        return moe_error(MOE_ERR_FORMAT, "safetensors %s: header is not a JSON object", p);
    int count = cJSON_GetArraySize(f->header);
    f->e = calloc((size_t)(count ? count : 1), sizeof *f->e);
    if (!f->e) return moe_error(MOE_ERR_NOMEM, "out of memory reading %s", p);
    for (const cJSON *it = f->header->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it))
                return moe_error(MOE_ERR_FORMAT, "safetensors %s: __metadata__ is not an object",
                                 p);
            for (const cJSON *m = it->child; m; m = m->next)
                if (!cJSON_IsString(m))
                    return moe_error(MOE_ERR_FORMAT,
                                     "safetensors %s: __metadata__ value \"%s\" is not a string", p,
                                     m->string);
            continue;
        }
        for (int j = 0; j < f->n; j++)
            if (strcmp(f->e[j].name, it->string) == 0)
                return moe_error(MOE_ERR_FORMAT, "safetensors %s: tensor \"%s\" appears twice", p,
                                 it->string);
        moe_status s = parse_entry(f, it, &f->e[f->n]);
        if (s != MOE_OK) return s;
        f->n++;
    }
    return check_overlaps(f);
}

moe_status moe_st_open(moe_st_file **out, const char *path) {
    *out = NULL;
    moe_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = fs_printf("%s", path))) {
        free(f);
        return moe_error(MOE_ERR_NOMEM, "out of memory opening %s", path);
    }
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        moe_status s = moe_error(MOE_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        moe_st_close(f);
        return s;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        moe_st_close(f);
        return moe_error(MOE_ERR_IO, "cannot read %s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    moe_status s = MOE_OK;
    if (f->size > 0) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            s = moe_error(MOE_ERR_IO, "cannot map %s: %s", path, strerror(errno));
        else
            f->map = m;
    }
    close(fd);
    if (s == MOE_OK) s = parse_header(f);
    if (s != MOE_OK) {
        moe_st_close(f);
        return s;
    }
    *out = f;
    return MOE_OK;
}

static const st_entry *find(const moe_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->e[i].name, name) == 0) return &f->e[i];
    return NULL;
}

moe_status moe_st_shape(const moe_st_file *f, const char *name, int *ndim,
                        int64_t shape[MOE_MAX_DIMS]) {
    const st_entry *e = find(f, name);
    if (!e) return moe_error(MOE_ERR_INVALID, "safetensors %s: no tensor \"%s\"", f->path, name);
    if (e->ndim > MOE_MAX_DIMS)
        return moe_error(MOE_ERR_UNSUPPORTED, "safetensors %s: tensor \"%s\" has %d dims (max %d)",
                         f->path, name, e->ndim, MOE_MAX_DIMS);
    *ndim = e->ndim;
    for (int d = 0; d < e->ndim; d++) shape[d] = e->shape[d];
    return MOE_OK;
}

/* "[2, 3]" into buf. */
static const char *shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

/* IEEE half to float, subnormals, infinities and NaN included. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v;
    if (exp == 0)
        v = ldexpf((float)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 0x400), (int)exp - 25);
    return sign ? -v : v;
}

/* Converts n elements of type dt at src (any alignment) into dst. */
static void convert(moe_real *dst, const unsigned char *src, st_dtype dt, size_t n) {
    for (size_t i = 0; i < n; i++) {
        switch (dt) {
        case ST_F32: {
            float v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (moe_real)v;
        } break;
        case ST_F64: {
            double v;
            memcpy(&v, src + 8 * i, 8);
            dst[i] = (moe_real)v;
        } break;
        case ST_F16:
            dst[i] = (moe_real)half_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
            break;
        case ST_BF16: {
            uint32_t bits = (uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16;
            float v;
            memcpy(&v, &bits, 4);
            dst[i] = (moe_real)v;
        } break;
        default:
            break;
        }
    }
}

moe_status moe_st_read(const moe_st_file *f, const char *name, const int64_t *expect_shape,
                       int ndim, moe_real *dst) {
    const st_entry *e = find(f, name);
    if (!e)
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: tensor \"%s\" is missing: the file was saved from a "
                         "different model",
                         f->path, name);
    int same = ndim == e->ndim;
    for (int d = 0; same && expect_shape && d < ndim; d++) same = expect_shape[d] == e->shape[d];
    if (expect_shape && !same) {
        char a[160], b[160];
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: tensor \"%s\" has shape %s in the file but %s is "
                         "expected: the file was saved from a different model config",
                         f->path, name, shape_str(a, sizeof a, e->shape, e->ndim),
                         shape_str(b, sizeof b, expect_shape, ndim));
    }
    if (e->dtype == ST_I32 || e->dtype == ST_I64)
        return moe_error(MOE_ERR_FORMAT,
                         "safetensors %s: tensor \"%s\" is %s; parameters must be F32, F64, F16 "
                         "or BF16",
                         f->path, name, dtypes[e->dtype].name);
    convert(dst, f->data + e->begin, e->dtype,
            (size_t)((e->end - e->begin) / dtypes[e->dtype].size));
    return MOE_OK;
}

moe_status st_check_table(const moe_st_file *f, const moe_param_table *t) {
    moe_status s = MOE_OK;
    for (int i = 0; i < t->count && s == MOE_OK; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        const st_entry *e = find(f, ti->name);
        if (!e)
            return moe_error(MOE_ERR_FORMAT,
                             "safetensors %s: tensor \"%s\" is missing (the file has %d tensors, "
                             "the model %d): saved from a different model config",
                             f->path, ti->name, f->n, t->count);
        int same = e->ndim == ti->ndim;
        for (int d = 0; same && d < ti->ndim; d++) same = e->shape[d] == ti->shape[d];
        if (!same || e->dtype == ST_I32 || e->dtype == ST_I64)
            s = moe_st_read(f, ti->name, ti->shape, ti->ndim, NULL); /* fails with the message */
    }
    if (s == MOE_OK && f->n > t->count) {
        int i = 0;
        while (i < f->n && moe_params_find(t, f->e[i].name) >= 0) i++;
        s = moe_error(MOE_ERR_FORMAT,
                      "safetensors %s: %d tensors are not in the model, e.g. \"%s\": the file "
                      "was saved from a different model config",
                      f->path, f->n - t->count, i < f->n ? f->e[i].name : "?");
    }
    return s;
}

void st_read_table(const moe_st_file *f, const moe_param_table *t, moe_real *block) {
    for (int i = 0; i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        const st_entry *e = find(f, ti->name);
        convert(block + ti->offset, f->data + e->begin, e->dtype, ti->numel);
    }
}

moe_status moe_st_load_table(const char *path, const moe_param_table *t, moe_real *block) {
    moe_st_file *f;
    moe_status s = moe_st_open(&f, path);
    if (s != MOE_OK) return s;
    s = st_check_table(f, t);
    if (s == MOE_OK) st_read_table(f, t, block);
    moe_st_close(f);
    return s;
}
