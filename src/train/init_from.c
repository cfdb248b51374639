/* Fine-tuning from a checkpoint: tensors are matched by name. */
#include "train/init_from.h"

#include "moe/safetensors.h"

#include <stdio.h>
#include <string.h>

moe_status train_init_from(const char *ckpt, moe_model *m) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", ckpt);
    moe_st_file *f;
    moe_status st = moe_st_open(&f, path);
    if (st != MOE_OK) return st;
    const moe_param_table *t = moe_model_table(m);
    int loaded = 0;
    for (int i = 0; i < t->count && st == MOE_OK; i++) {
        const moe_tensor_info *ti = &t->tensors[i];
        int ndim;
        int64_t shape[MOE_MAX_DIMS];
        if (moe_st_shape(f, ti->name, &ndim, shape) != MOE_OK) continue; /* a new tensor */
        if (ndim != ti->ndim || memcmp(shape, ti->shape, (size_t)ndim * sizeof *shape) != 0) {
            st = moe_error(MOE_ERR_INVALID,
                           "train.init_from %s: tensor %s has another shape there than in this "
                           "model; the architectures differ (model.* in the two configs)",
                           ckpt, ti->name);
            break;
        }
        st = moe_st_read(f, ti->name, ti->shape, ti->ndim, moe_model_params(m) + ti->offset);
        loaded++;
    }
    moe_st_close(f);
    if (st == MOE_OK && loaded == 0)
        st = moe_error(MOE_ERR_INVALID,
                       "train.init_from %s: no tensor of this model is in the checkpoint", ckpt);
    return st;
}
