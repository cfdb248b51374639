/* Parameter tables: names, shapes and offsets into one block. */
#include "moe/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void moe_params_init(moe_param_table *t) {
    memset(t, 0, sizeof *t);
}

int moe_params_add(moe_param_table *t, const char *name, int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > MOE_MAX_DIMS || strlen(name) >= MOE_MAX_NAME) {
        moe_error(MOE_ERR_INVALID, "tensor %s: bad rank %d or name too long", name, ndim);
        return -1;
    }
    if (moe_params_find(t, name) >= 0) {
        moe_error(MOE_ERR_INVALID, "tensor %s registered twice", name);
        return -1;
    }
    if (t->count == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        moe_tensor_info *n = realloc(t->tensors, (size_t)cap * sizeof *n);
        if (!n) {
            moe_error(MOE_ERR_NOMEM, "parameter table: out of memory");
            return -1;
        }
        t->tensors = n;
        t->cap = cap;
    }
    moe_tensor_info *ti = &t->tensors[t->count];
    memset(ti, 0, sizeof *ti);
    snprintf(ti->name, sizeof ti->name, "%s", name);
    ti->ndim = ndim;
    ti->numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0) {
            moe_error(MOE_ERR_INVALID, "tensor %s: dim %d is %lld", name, d, (long long)shape[d]);
            return -1;
        }
        ti->shape[d] = shape[d];
        ti->numel *= (size_t)shape[d];
    }
    /* keep every tensor 64-byte aligned inside the block */
    size_t align = 64 / sizeof(moe_real);
    ti->offset = (t->total + align - 1) / align * align;
    t->total = ti->offset + ti->numel;
    return t->count++;
}

int moe_params_find(const moe_param_table *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->tensors[i].name, name) == 0) return i;
    return -1;
}

void moe_params_free(moe_param_table *t) {
    free(t->tensors);
    memset(t, 0, sizeof *t);
}
