/* Scaled dot-product attention with grouped-query heads. Per (batch, head)
 * the score and value products are GEMMs over strided rows; the gemm calls
 * sit inside the OpenMP region (OpenBLAS runs them single-threaded there). */
#include "ops/ops.h"

#include "core/real_math.h"

#include <math.h>

/* Masks, then softmaxes one score row in place (double sums). A row whose
 * keys are all masked becomes all zeros. Padded keys are set to -inf first
 * so every loop below is branch-free and vectorises. */
static void attention_softmax_row(moe_real *s, const uint8_t *pad, int T, int t, int causal) {
    int last = causal ? t + 1 : T; /* keys >= last are masked */
    if (pad)
        for (int j = 0; j < last; j++)
            if (!pad[j]) s[j] = -INFINITY;
    moe_real mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < last; j++) mx = s[j] > mx ? s[j] : mx;
    if (mx == -INFINITY) {
        for (int j = 0; j < T; j++) s[j] = 0;
        return;
    }
    /* Run the exp loop to a multiple of 16 (masking j >= last) so that no
     * scalar remainder runs: with ~128 keys per causal row the scalar tail
     * cost as much as the vector body. The forward's score GEMM wrote
     * columns up to its 64-aligned block end, so s[last .. end) is defined. */
    int end = (last + 15) / 16 * 16;
    end = end < T ? end : T;
#pragma omp simd
    for (int j = 0; j < end; j++) {
        moe_real e = real_exp_simd(s[j] - mx); /* unconditional: if-convertible */
        s[j] = (j < last) & (s[j] != -INFINITY) ? e : 0;
    }
    double sum = 0; /* separate pass: with the reduction the loop above ran scalar */
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < end; j++) sum += s[j];
    moe_real inv = (moe_real)(1.0 / sum);
#pragma omp simd
    for (int j = 0; j < end; j++) s[j] *= inv;
    for (int j = end; j < T; j++) s[j] = 0;
}

/* Rows per task: (batch, head, row block) tasks keep many cores busy even
 * when B*H is small. Short blocks let causal attention skip more of the
 * masked keys (T = 256: 10/16 of the full T x T work with 64-row blocks). */
#define ATT_FWD_BLOCK 64
#define ATT_BWD_BLOCK 64

void attention_forward(moe_real *out, moe_real *att, const moe_real *q, const moe_real *k,
                       const moe_real *v, const uint8_t *pad_mask, int B, int T, int H, int KVH,
                       int hd, int q_stride, int kv_stride, int causal) {
    int group = H / KVH, nblk = (T + ATT_FWD_BLOCK - 1) / ATT_FWD_BLOCK;
    moe_real scale = (moe_real)(1.0 / sqrt((double)hd));
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            for (int blk = 0; blk < nblk; blk++) {
                int t0 = blk * ATT_FWD_BLOCK, t1 = t0 + ATT_FWD_BLOCK < T ? t0 + ATT_FWD_BLOCK : T;
                int kend = causal ? t1 : T; /* later keys are all masked */
                const moe_real *qh = q + ((long)b * T + t0) * q_stride + (long)h * hd;
                long kvoff = (long)b * T * kv_stride + (long)(h / group) * hd;
                moe_real *p = att + (((long)b * H + h) * T + t0) * T; /* rows t0..t1 of [T,T] */
                const uint8_t *pad = pad_mask ? pad_mask + (long)b * T : NULL;
                gemm(0, 1, t1 - t0, kend, hd, scale, qh, q_stride, k + kvoff, kv_stride, 0, p, T);
                for (int t = t0; t < t1; t++)
                    attention_softmax_row(p + (long)(t - t0) * T, pad, T, t, causal);
                gemm(0, 0, t1 - t0, hd, kend, 1, p, T, v + kvoff, kv_stride, 0,
                     out + ((long)b * T + t0) * H * hd + (long)h * hd, H * hd);
            }
        }
    }
}

void attention_backward(moe_real *dq, moe_real *dk, moe_real *dv, moe_real *datt,
                        const moe_real *dout, const moe_real *q, const moe_real *k,
                        const moe_real *v, const moe_real *att, int B, int T, int H, int KVH,
                        int hd, int q_stride, int kv_stride, int causal) {
    int group = H / KVH, nblk = (T + ATT_BWD_BLOCK - 1) / ATT_BWD_BLOCK;
    moe_real scale = (moe_real)(1.0 / sqrt((double)hd));
    /* Pass 1, per (batch, head, query block): dP = dout V^T,
     * dS = P * (dP - rowsum(dP * P)) into datt, dQ = scale dS K. Causal:
     * keys past the block's last query have P = 0, hence dS = 0; they are
     * neither computed nor written (pass 2 never reads them). */
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            for (int blk = 0; blk < nblk; blk++) {
                int t0 = blk * ATT_BWD_BLOCK, t1 = t0 + ATT_BWD_BLOCK < T ? t0 + ATT_BWD_BLOCK : T;
                int kend = causal ? t1 : T;
                long kvoff = (long)b * T * kv_stride + (long)(h / group) * hd;
                long rows = ((long)b * H + h) * T + t0;
                const moe_real *p = att + rows * T; /* [t1-t0, T] */
                moe_real *ds = datt + rows * T;     /* [t1-t0, T] */
                const moe_real *go = dout + ((long)b * T + t0) * H * hd + (long)h * hd;
                gemm(0, 1, t1 - t0, kend, hd, 1, go, H * hd, v + kvoff, kv_stride, 0, ds, T);
                for (int t = 0; t < t1 - t0; t++) {
                    const moe_real *pr = p + (long)t * T;
                    moe_real *dr = ds + (long)t * T;
                    double s = 0;
#pragma omp simd reduction(+ : s)
                    for (int j = 0; j < kend; j++) s += (double)pr[j] * dr[j];
#pragma omp simd
                    for (int j = 0; j < kend; j++) dr[j] = pr[j] * (dr[j] - (moe_real)s);
                }
                gemm(0, 0, t1 - t0, hd, kend, scale, ds, T, k + kvoff, kv_stride, 0,
                     dq + ((long)b * T + t0) * q_stride + (long)h * hd, q_stride);
            }
        }
    }
    /* Pass 2, per (batch, kv head, key block): the query heads of the group
     * add into the same dK/dV rows in order, so no two tasks share a row.
     * dV = sum_h P_h^T dout_h, dK = scale sum_h dS_h^T Q_h. Causal: only
     * queries q0 = t0 .. T-1 see keys of this block (same block grid as
     * pass 1, so their dS columns t0..t1 were all written). */
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < KVH; g++) {
            for (int blk = 0; blk < nblk; blk++) {
                int t0 = blk * ATT_BWD_BLOCK, t1 = t0 + ATT_BWD_BLOCK < T ? t0 + ATT_BWD_BLOCK : T;
                int q0 = causal ? t0 : 0; /* first query that sees these keys */
                long kvrow = ((long)b * T + t0) * kv_stride + (long)g * hd;
                for (int h = g * group; h < (g + 1) * group; h++) {
                    moe_real beta = h == g * group ? 0 : 1;
                    /* columns t0..t1 of rows q0..T */
                    long cols = (((long)b * H + h) * T + q0) * T + t0;
                    long qrow = (long)b * T + q0;
                    gemm(1, 0, t1 - t0, hd, T - q0, 1, att + cols, T,
                         dout + qrow * H * hd + (long)h * hd, H * hd, beta, dv + kvrow, kv_stride);
                    gemm(1, 0, t1 - t0, hd, T - q0, scale, datt + cols, T,
                         q + qrow * q_stride + (long)h * hd, q_stride, beta, dk + kvrow, kv_stride);
                }
            }
        }
    }
}
