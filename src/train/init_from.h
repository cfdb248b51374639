/* Fine-tuning: start a model from a checkpoint's matching tensors. */
#ifndef MOE_TRAIN_INIT_FROM_H
#define MOE_TRAIN_INIT_FROM_H

#include "moe/model.h"

/* Copies every tensor of ckpt/model.safetensors that the model also has
 * (same name) into it; the others keep their initialisation (e.g. a new
 * classifier head on a masked-LM checkpoint). A same-named tensor of another
 * shape is an error; so is a checkpoint sharing no tensor with the model. */
moe_status train_init_from(const char *ckpt, moe_model *m);

#endif
