/* Linear layer in PyTorch layout (weight [OC, C]) through gemm(). */
#include "ops/ops.h"

/* columns per task in the bias gradient */
#define MATMUL_COL_BLOCK 64

void matmul_forward(moe_real *out, const moe_real *inp, const moe_real *weight,
                    const moe_real *bias, int N, int C, int OC) {
    /* out [N,OC] = inp [N,C] * weight^T [C,OC] */
    gemm(0, 1, N, OC, C, 1, inp, C, weight, C, 0, out, OC);
    if (!bias) return;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        moe_real *o = out + (long)n * OC;
        for (int j = 0; j < OC; j++) o[j] += bias[j];
    }
}

void matmul_backward(moe_real *dinp, moe_real *dweight, moe_real *dbias, const moe_real *dout,
                     const moe_real *inp, const moe_real *weight, int N, int C, int OC) {
    /* dinp [N,C] = dout [N,OC] * weight [OC,C] */
    if (dinp) gemm(0, 0, N, C, OC, 1, dout, OC, weight, C, 0, dinp, C);
    /* dweight [OC,C] += dout^T [OC,N] * inp [N,C] */
    if (dweight && N > 0) gemm(1, 0, OC, C, N, 1, dout, OC, inp, C, 1, dweight, C);
    if (!dbias) return;
    /* Column sums, rows in order (so the same bits as a plain loop). Each
     * task owns a block of columns and walks the rows with unit stride; a
     * column-at-a-time loop strode OC elements per add and missed cache. */
    int nblocks = (OC + MATMUL_COL_BLOCK - 1) / MATMUL_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int j0 = blk * MATMUL_COL_BLOCK,
            w = OC - j0 < MATMUL_COL_BLOCK ? OC - j0 : MATMUL_COL_BLOCK;
        double s[MATMUL_COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const moe_real *d = dout + (long)n * OC + j0;
#pragma omp simd
            for (int j = 0; j < w; j++) s[j] += d[j];
        }
        for (int j = 0; j < w; j++) dbias[j0 + j] += (moe_real)s[j];
    }
}
