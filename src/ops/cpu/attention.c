/* Scaled dot-product attention with grouped-query heads. Per (batch, head)
 * the score and value products are GEMMs over strided rows; the gemm calls
 * sit inside the OpenMP region (OpenBLAS runs them single-threaded there). */
#include "ops/ops.h"

#include <math.h>

/* Masks, then softmaxes one score row in place (double sums). A row whose
 * keys are all masked becomes all zeros. */
static void attention_softmax_row(moe_real *s, const uint8_t *pad, int T, int t, int causal) {
    int last = causal ? t + 1 : T; /* keys >= last are masked */
    double mx = -INFINITY;
    for (int j = 0; j < last; j++)
        if ((!pad || pad[j]) && s[j] > mx) mx = s[j];
    if (mx == -INFINITY) {
        for (int j = 0; j < T; j++) s[j] = 0;
        return;
    }
    double sum = 0;
    for (int j = 0; j < last; j++) {
        double e = (!pad || pad[j]) ? exp(s[j] - mx) : 0.0;
        s[j] = (moe_real)e;
        sum += e;
    }
    moe_real inv = (moe_real)(1.0 / sum);
    for (int j = 0; j < last; j++) s[j] *= inv;
    for (int j = last; j < T; j++) s[j] = 0;
}

void attention_forward(moe_real *out, moe_real *att, const moe_real *q, const moe_real *k,
                       const moe_real *v, const uint8_t *pad_mask, int B, int T, int H, int KVH,
                       int hd, int q_stride, int kv_stride, int causal) {
    int group = H / KVH;
    moe_real scale = (moe_real)(1.0 / sqrt((double)hd));
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const moe_real *qh = q + (long)b * T * q_stride + (long)h * hd;
            long kvoff = (long)b * T * kv_stride + (long)(h / group) * hd;
            moe_real *p = att + ((long)b * H + h) * T * T; /* [T,T] */
            const uint8_t *pad = pad_mask ? pad_mask + (long)b * T : NULL;
            /* The full T x T scores; causal entries are masked afterwards. */
            gemm(0, 1, T, T, hd, scale, qh, q_stride, k + kvoff, kv_stride, 0, p, T);
            for (int t = 0; t < T; t++) attention_softmax_row(p + (long)t * T, pad, T, t, causal);
            gemm(0, 0, T, hd, T, 1, p, T, v + kvoff, kv_stride, 0,
                 out + (long)b * T * H * hd + (long)h * hd, H * hd);
        }
    }
}

void attention_backward(moe_real *dq, moe_real *dk, moe_real *dv, moe_real *datt,
                        const moe_real *dout, const moe_real *q, const moe_real *k,
                        const moe_real *v, const moe_real *att, int B, int T, int H, int KVH,
                        int hd, int q_stride, int kv_stride) {
    int group = H / KVH;
    moe_real scale = (moe_real)(1.0 / sqrt((double)hd));
    /* One task per (batch, kv head): the query heads of its group all add
     * into the same dk/dv slice, so they run in order inside the task. */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < KVH; g++) {
            long kvoff = (long)b * T * kv_stride + (long)g * hd;
            for (int t = 0; t < T; t++)
                for (int i = 0; i < hd; i++) {
                    dk[kvoff + (long)t * kv_stride + i] = 0;
                    dv[kvoff + (long)t * kv_stride + i] = 0;
                }
            for (int h = g * group; h < (g + 1) * group; h++) {
                long qoff = (long)b * T * q_stride + (long)h * hd;
                const moe_real *p = att + ((long)b * H + h) * T * T; /* [T,T] */
                moe_real *ds = datt + ((long)b * H + h) * T * T;     /* [T,T] */
                const moe_real *go = dout + (long)b * T * H * hd + (long)h * hd;
                /* dP = dout V^T; dV += P^T dout */
                gemm(0, 1, T, T, hd, 1, go, H * hd, v + kvoff, kv_stride, 0, ds, T);
                gemm(1, 0, T, hd, T, 1, p, T, go, H * hd, 1, dv + kvoff, kv_stride);
                /* dS = P * (dP - rowsum(dP * P)) */
                for (int t = 0; t < T; t++) {
                    const moe_real *pr = p + (long)t * T;
                    moe_real *dr = ds + (long)t * T;
                    double s = 0;
                    for (int j = 0; j < T; j++) s += (double)pr[j] * dr[j];
                    for (int j = 0; j < T; j++) dr[j] = pr[j] * (dr[j] - (moe_real)s);
                }
                /* dQ = scale dS K; dK += scale dS^T Q */
                gemm(0, 0, T, hd, T, scale, ds, T, k + kvoff, kv_stride, 0, dq + qoff, q_stride);
                gemm(1, 0, T, hd, T, scale, ds, T, q + qoff, q_stride, 1, dk + kvoff, kv_stride);
            }
        }
    }
}
