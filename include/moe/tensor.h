/* Named parameter tables: every model tensor is a named view into ONE
 * allocation; gradients and optimizer state use the same offsets in their
 * own single allocations. Names follow Hugging Face where one exists. */
#ifndef MOE_TENSOR_H
#define MOE_TENSOR_H

#include "moe/core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MOE_MAX_DIMS 4
#define MOE_MAX_NAME 96

typedef struct moe_tensor_info {
    char name[MOE_MAX_NAME];     /* e.g. "model.layers.0.mlp.experts.w1" */
    int ndim;                    /* 1..MOE_MAX_DIMS */
    int64_t shape[MOE_MAX_DIMS]; /* row-major */
    size_t offset;               /* elements from the block start */
    size_t numel;                /* product of shape */
} moe_tensor_info;

typedef struct moe_param_table {
    moe_tensor_info *tensors; /* in registration order */
    int count;                /* registered tensors */
    int cap;                  /* allocated entries */
    size_t total;             /* elements over all tensors */
} moe_param_table;

void moe_params_init(moe_param_table *t);
/* Registers a tensor; returns its index or -1 (error set) on failure. */
int moe_params_add(moe_param_table *t, const char *name, int ndim, const int64_t *shape);
/* Index of a name, or -1. */
int moe_params_find(const moe_param_table *t, const char *name);
void moe_params_free(moe_param_table *t);

#ifdef __cplusplus
}
#endif
#endif
