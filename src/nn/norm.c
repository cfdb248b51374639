/* Norm dispatch: the model code stays the same for both kinds. */
#include "nn/norm.h"

#include "ops/ops.h"

void norm_forward(moe_norm_kind kind, moe_real *out, moe_real *mean, moe_real *rstd,
                  const moe_real *inp, const moe_real *weight, const moe_real *bias, int N, int C,
                  float eps) {
    if (kind == MOE_NORM_RMSNORM)
        rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
    else
        layernorm_forward(out, mean, rstd, inp, weight, bias, N, C, eps);
}

void norm_backward(moe_norm_kind kind, moe_real *dinp, moe_real *dweight, moe_real *dbias,
                   const moe_real *dout, const moe_real *inp, const moe_real *weight,
                   const moe_real *mean, const moe_real *rstd, int N, int C) {
    if (kind == MOE_NORM_RMSNORM)
        rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
    else
        layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}
