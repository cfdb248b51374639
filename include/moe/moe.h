/* libmoe: Mixture-of-Experts in C. One include for the whole public API. */
#ifndef MOE_MOE_H
#define MOE_MOE_H

#include "moe/core.h"
#include "moe/device.h"
#include "moe/tensor.h"
#include "moe/layer.h"
#include "moe/config.h"
#include "moe/model.h"
#include "moe/optim.h"
#include "moe/data.h"
#include "moe/mail.h"
#include "moe/tokenizer.h"
#include "moe/text_data.h"
#include "moe/dataset.h"
#include "moe/safetensors.h"
#include "moe/checkpoint.h"
#include "moe/obs.h"
#include "moe/train.h"
#include "moe/report.h"
#include "moe/metrics.h"
#include "moe/serve.h"

#endif
