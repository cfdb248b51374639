/* LayerNorm or RMSNorm chosen by the config, behind one pair of calls. */
#ifndef MOE_NN_NORM_H
#define MOE_NN_NORM_H

#include "moe/config.h"

/* mean [N] is unused by RMSNorm; bias may be NULL. */
void norm_forward(moe_norm_kind kind, moe_real *out, moe_real *mean, moe_real *rstd,
                  const moe_real *inp, const moe_real *weight, const moe_real *bias, int N, int C,
                  float eps);
void norm_backward(moe_norm_kind kind, moe_real *dinp, moe_real *dweight, moe_real *dbias,
                   const moe_real *dout, const moe_real *inp, const moe_real *weight,
                   const moe_real *mean, const moe_real *rstd, int N, int C);

#endif
