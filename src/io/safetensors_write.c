/* Writing safetensors files from a parameter table and its block. */
#include "io/fsutil.h"
#include "moe/safetensors.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors files are little-endian; this host is not (add byte swapping)"
#endif

/* The dtype moe_real is stored as. */
static const char *real_dtype(void) {
    return sizeof(moe_real) == 4 ? "F32" : "F64";
}

/* Builds the JSON header (unpadded; malloc'd). Tensors are laid out back to
 * back in table order. NULL (error set) when out of memory. */
static char *build_header(const moe_param_table *t, const char *const *meta_kv) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_CreateObject();
    int ok = root && meta;
    if (ok && meta_kv)
        for (int i = 0; meta_kv[i] && meta_kv[i + 1]; i += 2)
            ok = ok && cJSON_AddStringToObject(meta, meta_kv[i], meta_kv[i + 1]);
    if (ok && !cJSON_GetObjectItemCaseSensitive(meta, "format"))
        ok = cJSON_AddStringToObject(meta, "format", "pt") != NULL;
    if (ok) {
        cJSON_AddItemToObject(root, "__metadata__", meta);
        meta = NULL;
    }
    size_t pos = 0; /* bytes into the data buffer */
    for (int i = 0; ok && i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        cJSON *e = cJSON_CreateObject();
        cJSON *shape = cJSON_CreateArray();
        cJSON *offs = cJSON_CreateArray();
        ok = e && shape && offs && cJSON_AddStringToObject(e, "dtype", real_dtype());
        for (int d = 0; ok && d < ti->ndim; d++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ti->shape[d]));
        size_t end = pos + ti->numel * sizeof(moe_real);
        ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)pos)) &&
             cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)end));
        if (ok) {
            cJSON_AddItemToObject(e, "shape", shape);
            cJSON_AddItemToObject(e, "data_offsets", offs);
            cJSON_AddItemToObject(root, ti->name, e);
        } else {
            cJSON_Delete(e);
            cJSON_Delete(shape);
            cJSON_Delete(offs);
        }
        pos = end;
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    cJSON_Delete(meta);
    if (!text) moe_error(MOE_ERR_NOMEM, "out of memory building a safetensors header");
    return text;
}

moe_status moe_st_save(const char *path, const moe_param_table *t, const moe_real *block,
                       const char *const *meta_kv) {
    if (!path || !t || (t->count > 0 && !block))
        return moe_error(MOE_ERR_INVALID, "moe_st_save: path, table and block are required");
    char *json = build_header(t, meta_kv);
    if (!json) return MOE_ERR_NOMEM;
    /* pad with spaces so the data (and every F32/F64 tensor) is 8-byte aligned */
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    char *hdr = malloc(8 + padded);
    if (!hdr) {
        free(json);
        return moe_error(MOE_ERR_NOMEM, "out of memory writing %s", path);
    }
    for (int b = 0; b < 8; b++) hdr[b] = (char)(((uint64_t)padded >> (8 * b)) & 0xff);
    memcpy(hdr + 8, json, len);
    memset(hdr + 8 + len, ' ', padded - len);
    free(json);

    fs_atomic a;
    moe_status s = fs_atomic_open(&a, path);
    if (s == MOE_OK) s = fs_atomic_write(&a, hdr, 8 + padded);
    free(hdr);
    for (int i = 0; s == MOE_OK && i < t->count; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        s = fs_atomic_write(&a, block + ti->offset, ti->numel * sizeof(moe_real));
    }
    if (s == MOE_OK) s = fs_atomic_commit(&a);
    return s;
}
