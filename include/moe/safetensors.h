/* safetensors files (the Hugging Face format): u64 little-endian header
 * length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets"},
 * "__metadata__": {string: string}} padded with spaces to a multiple of 8,
 * then the tensor bytes. Writes are atomic; reads validate the whole header
 * before any tensor is touched, so a damaged file is an error, never a crash. */
#ifndef MOE_SAFETENSORS_H
#define MOE_SAFETENSORS_H

#include "moe/core.h"
#include "moe/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes every tensor of t from block (block + info.offset) as F32 (F64 in
 * the MOE_DOUBLE build) to path: written to path.tmp.<pid>, flushed, synced,
 * then renamed, so an existing file is replaced whole or not at all.
 * meta_kv: NULL-terminated key, value, key, value, ... for "__metadata__"
 * (NULL: none; "format": "pt" is added unless given). */
moe_status moe_st_save(const char *path, const moe_param_table *t, const moe_real *block,
                       const char *const *meta_kv);

/* An open, fully validated file (mapped read-only). */
typedef struct moe_st_file moe_st_file;

moe_status moe_st_open(moe_st_file **f, const char *path);
/* Tensors in the file, in header order. */
int moe_st_count(const moe_st_file *f);
/* Name of tensor i (0 <= i < count), or NULL. */
const char *moe_st_name(const moe_st_file *f, int i);
/* Shape of a tensor: ndim and up to MOE_MAX_DIMS dims (MOE_ERR_INVALID if
 * missing, MOE_ERR_UNSUPPORTED if it has more dims). */
moe_status moe_st_shape(const moe_st_file *f, const char *name, int *ndim,
                        int64_t shape[MOE_MAX_DIMS]);
/* Converts tensor `name` (F32, F64, F16 or BF16) into dst[numel]. Its shape
 * must equal expect_shape[ndim] (expect_shape NULL: any shape; dst must then
 * be sized from moe_st_shape). Missing or mismatched: MOE_ERR_FORMAT. */
moe_status moe_st_read(const moe_st_file *f, const char *name, const int64_t *expect_shape,
                       int ndim, moe_real *dst);
/* A "__metadata__" value, or NULL. */
const char *moe_st_meta(const moe_st_file *f, const char *key);
/* The path the file was opened from. */
const char *moe_st_path(const moe_st_file *f);
void moe_st_close(moe_st_file *f);

/* Reads every tensor of t into block. The file must hold exactly the table's
 * tensors with the same shapes; otherwise an error names the first missing,
 * mismatched or extra tensor, and block is left unchanged. */
moe_status moe_st_load_table(const char *path, const moe_param_table *t, moe_real *block);

#ifdef __cplusplus
}
#endif
#endif
