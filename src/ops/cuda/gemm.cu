/* Dense GEMMs through cuBLAS, and the linear layer built on them.
 * cuBLAS is column-major; a row-major C = op(A) op(B) is the column-major
 * C^T = op(B)^T op(A)^T, so A and B swap places and keep their own
 * transpose flags. */
#include "ops/cuda/cuda_common.cuh"

static cudaDataType_t cuda_type(moe_dtype dt) {
    return dt == MOE_DT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

moe_status moe_cuda_gemm(moe_cuda *ctx, int trans_a, int trans_b, int M, int N, int K, float alpha,
                         const void *A, int lda, const void *B, int ldb, moe_dtype ab_dt,
                         float beta, void *C, moe_dtype c_dt, int ldc) {
    MOE_CUDA_REQUIRE(M >= 0 && N >= 0 && K >= 0, "moe_cuda_gemm");
    if (M == 0 || N == 0) return MOE_OK;
    MOE_CUDA_REQUIRE(C != NULL && (K == 0 || (A != NULL && B != NULL)), "moe_cuda_gemm");
    /* row-major leading dimensions: the length of a stored row */
    MOE_CUDA_REQUIRE(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N) && ldc >= N,
                     "moe_cuda_gemm");
    /* K == 0 (C = beta C): cuBLAS wants every leading dimension >= 1, even
     * of a matrix with no elements */
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    /* fp32 inputs: plain fp32 so the results match the CPU; bf16: fp32 accumulation. */
    cublasComputeType_t compute =
        ab_dt == MOE_DT_F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
    MOE_CUBLAS_TRY(cublasGemmEx(ctx->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                                cuda_type(ab_dt), ldb, A, cuda_type(ab_dt), lda, &beta, C,
                                cuda_type(c_dt), ldc, compute, CUBLAS_GEMM_DEFAULT));
    return MOE_OK;
}

/* out [N,OC] += bias [OC] broadcast over rows. */
template <typename T> __global__ void bias_add_kernel(T *out, const float *bias, int N, int OC) {
    long n = (long)N * OC;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x)
        st(out, i, ld(out, i) + bias[i % OC]);
}

/* dbias [OC] += column sums of dout [N,OC]: one thread per column, a block
 * of 32 columns by 8 row strips, summed in shared memory (deterministic). */
template <typename T> __global__ void bias_grad_kernel(float *dbias, const T *dout, int N, int OC) {
    __shared__ float part[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    float s = 0;
    if (col < OC)
        for (int r = threadIdx.y; r < N; r += 8) s += ld(dout, (long)r * OC + col);
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && col < OC) {
        for (int y = 1; y < 8; y++) s += part[y][threadIdx.x];
        dbias[col] += s;
    }
}

moe_status moe_cuda_matmul_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp,
                                   const void *weight, const float *bias, int N, int C, int OC) {
    MOE_CUDA_REQUIRE(N >= 0 && C >= 0 && OC >= 0, "moe_cuda_matmul_forward");
    moe_status st =
        moe_cuda_gemm(ctx, 0, 1, N, OC, C, 1.0f, inp, C, weight, C, dt, 0.0f, out, dt, OC);
    if (st != MOE_OK || !bias || N == 0 || OC == 0) return st;
    unsigned blocks = moe_cuda_blocks((long)N * OC, 256);
    if (blocks > 65535u * 8) blocks = 65535u * 8;
    MOE_DISPATCH_DT(
        dt, T, MOE_LAUNCH(bias_add_kernel<T>, blocks, 256, 0, ctx->stream, (T *)out, bias, N, OC););
    MOE_CUDA_LAUNCHED("bias_add_kernel");
    return MOE_OK;
}

moe_status moe_cuda_matmul_backward(moe_cuda *ctx, moe_dtype dt, void *dinp, float *dweight,
                                    float *dbias, const void *dout, const void *inp,
                                    const void *weight, int N, int C, int OC) {
    MOE_CUDA_REQUIRE(N >= 0 && C >= 0 && OC >= 0, "moe_cuda_matmul_backward");
    moe_status st = MOE_OK;
    /* dinp [N,C] = dout [N,OC] weight [OC,C] */
    if (dinp)
        st = moe_cuda_gemm(ctx, 0, 0, N, C, OC, 1.0f, dout, OC, weight, C, dt, 0.0f, dinp, dt, C);
    /* dweight [OC,C] += dout^T [OC,N] inp [N,C], fp32 out */
    if (st == MOE_OK && dweight)
        st = moe_cuda_gemm(ctx, 1, 0, OC, C, N, 1.0f, dout, OC, inp, C, dt, 1.0f, dweight,
                           MOE_DT_F32, C);
    if (st != MOE_OK || !dbias || N == 0 || OC == 0) return st;
    dim3 threads(32, 8);
    MOE_DISPATCH_DT(dt, T,
                    MOE_LAUNCH(bias_grad_kernel<T>, moe_cuda_blocks(OC, 32), threads, 0,
                               ctx->stream, dbias, (const T *)dout, N, OC););
    MOE_CUDA_LAUNCHED("bias_grad_kernel");
    return MOE_OK;
}
