/* Grouped GEMMs over the experts' row blocks (rows offsets[e] ..
 * offsets[e+1] of the permuted buffers), with the counts read on the
 * device. Every product is one tile routine C[M,N] = A[M,P] B[P,N] where A
 * and B are read through (row, column) strides, so the three layouts (NT
 * forward, NN backward_input, TN backward_weight) share it:
 *  - bf16: WMMA 16x16x16 bf16 fragments, fp32 accumulators, 128x128x32
 *    block tiles, 8 warps of 64x32 each;
 *  - fp32: SIMT, 64x64x16 block tiles, 256 threads of 4x4 plain FMAs.
 * Operands are staged in shared memory by bounds-checked loads that
 * zero-fill outside the valid rows/columns, so any M, N, P works. */
#include "ops/cuda/cuda_common.cuh"

#include <limits.h>
#include <mma.h>

#define GG_THREADS 256

template <typename T> struct gg_tile;
template <> struct gg_tile<float> { static constexpr int BM = 64, BN = 64, BK = 16; };
template <> struct gg_tile<__nv_bfloat16> { static constexpr int BM = 128, BN = 128, BK = 32; };

template <typename T> __device__ __forceinline__ T gg_zero();
template <> __device__ __forceinline__ float gg_zero<float>() {
    return 0.0f;
}
template <> __device__ __forceinline__ __nv_bfloat16 gg_zero<__nv_bfloat16>() {
    return __float2bfloat16_rn(0.0f);
}

/* dst[r*LD + c] = src[r*sr + c*sc] for r < ROWS, c < COLS; 0 outside
 * r < vr, c < vc. Consecutive threads walk the axis with unit stride in
 * global memory (c when sc == 1, else r), so loads coalesce. */
template <int ROWS, int COLS, int LD, typename T>
__device__ __forceinline__ void gg_load(T *dst, const T *src, long sr, long sc, int vr, int vc) {
    const bool c_fast = sc == 1 || sr != 1;
    for (int idx = threadIdx.x; idx < ROWS * COLS; idx += GG_THREADS) {
        int r, c;
        if (c_fast)
            r = idx / COLS, c = idx % COLS;
        else
            c = idx / ROWS, r = idx % ROWS;
        dst[r * LD + c] = r < vr && c < vc ? src[r * sr + c * sc] : gg_zero<T>();
    }
}

/* out[i*ldc + j] = v, or += v (fp32 parameter gradients). */
template <bool ADD, typename O> __device__ __forceinline__ void gg_out(O *C, long i, float v) {
    if (ADD)
        C[i] += v;
    else
        st(C, i, v);
}

/* One block tile of C[M,N] = A[M,P] B[P,N]: A(i,p) = A[i*a_i + p*a_p],
 * B(p,j) = B[p*b_p + j*b_j], C(i,j) = C[i*ldc + j], the pointers already at
 * the tile's origin; M, N are the valid rows/columns left from there
 * (clipped to the tile), P the reduction length. */
template <bool ADD, typename O>
__device__ void gg_block_gemm(O *C, long ldc, const float *A, long a_i, long a_p, const float *B,
                              long b_p, long b_j, int M, int N, int P) {
    constexpr int BM = 64, BN = 64, BK = 16;
    __shared__ float As[BK][BM + 4]; /* As[p][i] */
    __shared__ float Bs[BK][BN + 4]; /* Bs[p][j] */
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[4][4] = {};
    for (int p0 = 0; p0 < P; p0 += BK) {
        gg_load<BK, BM, BM + 4>(&As[0][0], A + p0 * a_p, a_p, a_i, P - p0, M);
        gg_load<BK, BN, BN + 4>(&Bs[0][0], B + p0 * b_p, b_p, b_j, P - p0, N);
        __syncthreads();
#pragma unroll
        for (int p = 0; p < BK; p++) {
            float a[4], b[4];
#pragma unroll
            for (int u = 0; u < 4; u++) a[u] = As[p][ty + 16 * u], b[u] = Bs[p][tx + 16 * u];
#pragma unroll
            for (int u = 0; u < 4; u++)
#pragma unroll
                for (int v = 0; v < 4; v++) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
        for (int v = 0; v < 4; v++) {
            int i = ty + 16 * u, j = tx + 16 * v;
            if (i < M && j < N) gg_out<ADD>(C, i * ldc + j, acc[u][v]);
        }
}

template <bool ADD, typename O>
__device__ void gg_block_gemm(O *C, long ldc, const __nv_bfloat16 *A, long a_i, long a_p,
                              const __nv_bfloat16 *B, long b_p, long b_j, int M, int N, int P) {
    using namespace nvcuda;
    constexpr int BM = 128, BN = 128, BK = 32, LDA = BK + 8, LDB = BN + 8;
    /* WMMA pointers must be 32-byte aligned: LDA, LDB are multiples of 8
     * elements and every fragment starts at a multiple of 16 rows / 16
     * columns, so each fragment offset is a multiple of 32 bytes. */
    __shared__ __align__(128) __nv_bfloat16 As[BM * LDA]; /* As[i][p] */
    __shared__ __align__(128) __nv_bfloat16 Bs[BK * LDB]; /* Bs[p][j] */
    __shared__ __align__(128) float Cs[GG_THREADS / 32][16 * 16];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = warp / 4, wn = warp % 4; /* warp tile: rows wm*64, cols wn*32 */
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
        for (int v = 0; v < 2; v++) wmma::fill_fragment(acc[u][v], 0.0f);
    for (int p0 = 0; p0 < P; p0 += BK) {
        gg_load<BM, BK, LDA>(As, A + p0 * a_p, a_i, a_p, M, P - p0);
        gg_load<BK, BN, LDB>(Bs, B + p0 * b_p, b_p, b_j, P - p0, N);
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a[4];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b[2];
#pragma unroll
            for (int u = 0; u < 4; u++)
                wmma::load_matrix_sync(a[u], As + (wm * 64 + u * 16) * LDA + kk, LDA);
#pragma unroll
            for (int v = 0; v < 2; v++)
                wmma::load_matrix_sync(b[v], Bs + kk * LDB + wn * 32 + v * 16, LDB);
#pragma unroll
            for (int u = 0; u < 4; u++)
#pragma unroll
                for (int v = 0; v < 2; v++) wmma::mma_sync(acc[u][v], a[u], b[v], acc[u][v]);
        }
        __syncthreads();
    }
    /* each warp stages one 16x16 fragment at a time and writes its valid part */
    float *cs = Cs[warp];
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
        for (int v = 0; v < 2; v++) {
            wmma::store_matrix_sync(cs, acc[u][v], 16, wmma::mem_row_major);
            __syncwarp();
            for (int q = lane; q < 256; q += 32) {
                int i = wm * 64 + u * 16 + q / 16, j = wn * 32 + v * 16 + q % 16;
                if (i < M && j < N) gg_out<ADD>(C, i * ldc + j, cs[q]);
            }
            __syncwarp();
        }
}

/* Maps a row-tile number to (expert e, first row, valid rows) by walking
 * the expert counts: expert e owns ceil(count_e / BM) consecutive tiles.
 * False when the tile is past the last expert's rows. */
__device__ __forceinline__ bool gg_find_tile(const int *off, int E, int BM, long tile, int *e_out,
                                             int *row0, int *rows) {
    for (int e = 0; e < E; e++) {
        int n = off[e + 1] - off[e];
        long tiles = (n + BM - 1) / BM;
        if (tile < tiles) {
            *e_out = e;
            *row0 = off[e] + (int)tile * BM;
            *rows = min(BM, off[e + 1] - *row0);
            return true;
        }
        tile -= tiles;
    }
    return false;
}

/* Forward (MODE 0) and backward_input (MODE 1): blockIdx.x a row tile
 * (found through the offsets), blockIdx.y a column tile.
 * MODE 0: out [R,N] rows of e = inp [R,K] . W_e^T   (W_e [N,K])
 * MODE 1: out [R,K] rows of e = inp [R,N] . W_e     (inp is dout) */
template <int MODE, typename T>
__global__ void __launch_bounds__(GG_THREADS)
    grouped_rows_kernel(T *out, const T *inp, const T *weight, const int32_t *offsets, int E, int K,
                        int N) {
    __shared__ int s_off[257];
    for (int i = threadIdx.x; i <= E; i += GG_THREADS) s_off[i] = offsets[i];
    __syncthreads();
    constexpr int BM = gg_tile<T>::BM, BN = gg_tile<T>::BN;
    int e, row0, rows;
    if (!gg_find_tile(s_off, E, BM, blockIdx.x, &e, &row0, &rows)) return; /* block-uniform */
    const int col0 = blockIdx.y * BN;
    const T *W = weight + (long)e * N * K;
    if (MODE == 0) { /* P = K: A(i,p) = inp[i*K + p], B(p,j) = W[j*K + p] */
        if (col0 >= N) return;
        gg_block_gemm<false>(out + (long)row0 * N + col0, N, inp + (long)row0 * K, K, 1,
                             W + (long)col0 * K, 1, K, rows, min(BN, N - col0), K);
    } else { /* P = N: A(i,p) = dout[i*N + p], B(p,j) = W[p*K + j] */
        if (col0 >= K) return;
        gg_block_gemm<false>(out + (long)row0 * K + col0, K, inp + (long)row0 * N, N, 1, W + col0,
                             K, 1, rows, min(BN, K - col0), N);
    }
}

/* backward_weight: dW_e [N,K] += dout_e^T . inp_e, reduction over the
 * expert's rows. blockIdx.z = e, blockIdx.y an N tile, blockIdx.x a K tile;
 * each block loops over all the expert's rows (deterministic, no atomics).
 * A(i=n, p=r) = dout[r*N + n], B(p=r, j=kk) = inp[r*K + kk]. */
template <typename T>
__global__ void __launch_bounds__(GG_THREADS)
    grouped_weight_kernel(float *dweight, const T *dout, const T *inp, const int32_t *offsets,
                          int K, int N) {
    constexpr int BM = gg_tile<T>::BM, BN = gg_tile<T>::BN;
    const int e = blockIdx.z;
    const int r0 = offsets[e], n_rows = offsets[e + 1] - r0;
    if (n_rows <= 0) return; /* adds nothing */
    const int n0 = blockIdx.y * BM, k0 = blockIdx.x * BN;
    gg_block_gemm<true>(dweight + ((long)e * N + n0) * K + k0, K, dout + (long)r0 * N + n0, 1, N,
                        inp + (long)r0 * K + k0, K, 1, min(BM, N - n0), min(BN, K - k0), n_rows);
}

static moe_status gg_check(int E, int R_max, int K, int N, const char *fn) {
    MOE_CUDA_REQUIRE(E >= 1 && E <= 256, fn);
    MOE_CUDA_REQUIRE(R_max >= 0 && K >= 0 && N >= 0, fn);
    return MOE_OK;
}

moe_status moe_cuda_grouped_forward(moe_cuda *ctx, moe_dtype dt, void *out, const void *inp,
                                    const void *weight, const int32_t *offsets, int E, int R_max,
                                    int K, int N) {
    moe_status s = gg_check(E, R_max, K, N, "moe_cuda_grouped_forward");
    if (s != MOE_OK) return s;
    if (R_max == 0 || N == 0) return MOE_OK;
    /* K == 0: the tile loop does not run and the rows get 0, as a GEMM */
    MOE_DISPATCH_DT(dt, S, {
        constexpr int BM = gg_tile<S>::BM, BN = gg_tile<S>::BN;
        long row_tiles = ((long)R_max + BM - 1) / BM + E, col_tiles = ((long)N + BN - 1) / BN;
        MOE_CUDA_REQUIRE(col_tiles <= 65535, "moe_cuda_grouped_forward");
        MOE_LAUNCH((grouped_rows_kernel<0, S>), dim3((unsigned)row_tiles, (unsigned)col_tiles),
                   GG_THREADS, 0, ctx->stream, (S *)out, (const S *)inp, (const S *)weight, offsets,
                   E, K, N);
    });
    MOE_CUDA_LAUNCHED("grouped_rows_kernel (forward)");
    return MOE_OK;
}

moe_status moe_cuda_grouped_backward_input(moe_cuda *ctx, moe_dtype dt, void *dinp,
                                           const void *dout, const void *weight,
                                           const int32_t *offsets, int E, int R_max, int K, int N) {
    moe_status s = gg_check(E, R_max, K, N, "moe_cuda_grouped_backward_input");
    if (s != MOE_OK) return s;
    if (R_max == 0 || K == 0) return MOE_OK;
    MOE_DISPATCH_DT(dt, S, {
        constexpr int BM = gg_tile<S>::BM, BN = gg_tile<S>::BN;
        long row_tiles = ((long)R_max + BM - 1) / BM + E, col_tiles = ((long)K + BN - 1) / BN;
        MOE_CUDA_REQUIRE(col_tiles <= 65535, "moe_cuda_grouped_backward_input");
        MOE_LAUNCH((grouped_rows_kernel<1, S>), dim3((unsigned)row_tiles, (unsigned)col_tiles),
                   GG_THREADS, 0, ctx->stream, (S *)dinp, (const S *)dout, (const S *)weight,
                   offsets, E, K, N);
    });
    MOE_CUDA_LAUNCHED("grouped_rows_kernel (backward_input)");
    return MOE_OK;
}

moe_status moe_cuda_grouped_backward_weight(moe_cuda *ctx, moe_dtype dt, float *dweight,
                                            const void *dout, const void *inp,
                                            const int32_t *offsets, int E, int R_max, int K,
                                            int N) {
    moe_status s = gg_check(E, R_max, K, N, "moe_cuda_grouped_backward_weight");
    if (s != MOE_OK) return s;
    if (R_max == 0 || K == 0 || N == 0) return MOE_OK;
    MOE_DISPATCH_DT(dt, S, {
        constexpr int BM = gg_tile<S>::BM, BN = gg_tile<S>::BN;
        long k_tiles = ((long)K + BN - 1) / BN, n_tiles = ((long)N + BM - 1) / BM;
        MOE_CUDA_REQUIRE(n_tiles <= 65535 && k_tiles <= INT_MAX,
                         "moe_cuda_grouped_backward_weight");
        MOE_LAUNCH(grouped_weight_kernel<S>,
                   dim3((unsigned)k_tiles, (unsigned)n_tiles, (unsigned)E), GG_THREADS, 0,
                   ctx->stream, dweight, (const S *)dout, (const S *)inp, offsets, K, N);
    });
    MOE_CUDA_LAUNCHED("grouped_weight_kernel");
    return MOE_OK;
}
