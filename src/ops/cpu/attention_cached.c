/* Causal attention of a few new tokens over a KV cache, for generation.
 * Inference only (no backward): it is checked against attention_forward. */
#include "ops/ops.h"

#include <math.h>

void attention_cached_forward(moe_real *out, moe_real *scores, const moe_real *q, int q_stride,
                              const moe_real *kc, const moe_real *vc, int n, int pos0, int H,
                              int KVH, int hd) {
    int group = H / KVH, kv_stride = KVH * hd;
    double scale = 1.0 / sqrt((double)hd);
    for (int i = 0; i < n; i++) {
        int len = pos0 + i + 1;
        for (int h = 0; h < H; h++) {
            const moe_real *qh = q + (size_t)i * q_stride + h * hd;
            int kvh = h / group;
            double maxv = -INFINITY;
            for (int j = 0; j < len; j++) {
                const moe_real *kj = kc + (size_t)j * kv_stride + kvh * hd;
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)qh[d] * kj[d];
                scores[j] = (moe_real)(s * scale);
                if (scores[j] > maxv) maxv = scores[j];
            }
            double sum = 0;
            for (int j = 0; j < len; j++) {
                scores[j] = (moe_real)exp(scores[j] - maxv);
                sum += scores[j];
            }
            moe_real *oh = out + (size_t)i * H * hd + h * hd;
            for (int d = 0; d < hd; d++) oh[d] = 0;
            for (int j = 0; j < len; j++) {
                moe_real p = (moe_real)(scores[j] / sum);
                const moe_real *vj = vc + (size_t)j * kv_stride + kvh * hd;
                for (int d = 0; d < hd; d++) oh[d] += p * vj[d];
            }
        }
    }
}
