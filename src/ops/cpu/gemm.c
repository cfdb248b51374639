/* GEMM through OpenBLAS: sgemm, or dgemm in the double build. */
#include "ops/ops.h"

#include <cblas.h>

void gemm(int trans_a, int trans_b, int M, int N, int K, moe_real alpha, const moe_real *A, int lda,
          const moe_real *B, int ldb, moe_real beta, moe_real *C, int ldc) {
    if (M == 0 || N == 0) return;
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
#ifdef MOE_DOUBLE
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}
