/* Softmax cross-entropy, hard or soft labels. Rows are split into a fixed
 * number of chunks whose partial sums are added in order, so the loss is
 * bitwise the same for any thread count. */
#include "ops/ops.h"

#include "core/real_math.h"

#include <math.h>

#define CE_CHUNKS 64

/* Targets outside [0, V) other than ignore_index make the loss NaN (the
 * caller's finiteness check reports it) and are not counted. */
double crossentropy_forward(moe_real *probs, const moe_real *logits, const int32_t *targets, int N,
                            int V, int ignore_index, int *count) {
    double part[CE_CHUNKS] = {0};
    int cnt[CE_CHUNKS] = {0};
    int bad = 0;
    int per = (N + CE_CHUNKS - 1) / CE_CHUNKS;
#pragma omp parallel for schedule(static) reduction(| : bad)
    for (int c = 0; c < CE_CHUNKS; c++) {
        int end = (c + 1) * per < N ? (c + 1) * per : N;
        for (int n = c * per; n < end; n++) {
            const moe_real *x = logits + (long)n * V;
            double lse = softmax_row(probs + (long)n * V, x, V);
            int y = targets[n];
            if (y == ignore_index) continue;
            if (y < 0 || y >= V) {
                bad = 1;
                continue;
            }
            part[c] += lse - x[y];
            cnt[c]++;
        }
    }
    double loss = 0;
    int total = 0;
    for (int c = 0; c < CE_CHUNKS; c++) {
        loss += part[c];
        total += cnt[c];
    }
    if (count) *count = total;
    if (bad) return NAN;
    return total ? loss / total : 0.0;
}

void crossentropy_backward(moe_real *dlogits, const moe_real *probs, const int32_t *targets, int N,
                           int V, int ignore_index, int count, float scale) {
    moe_real k = count > 0 ? (moe_real)((double)scale / count) : 0;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        moe_real *d = dlogits + (long)n * V;
        const moe_real *p = probs + (long)n * V;
        int y = targets[n];
        int skip = y == ignore_index || y < 0 || y >= V || count <= 0;
        for (int j = 0; j < V; j++) d[j] = skip ? 0 : k * p[j];
        if (!skip) d[y] -= k;
    }
}

/* sum of the row weights (N when weights is NULL), in row order. */
static double ce_weight_sum(const moe_real *weights, int N) {
    if (!weights) return N;
    double s = 0;
    for (int n = 0; n < N; n++) s += weights[n];
    return s;
}

double crossentropy_soft_forward(moe_real *probs, const moe_real *logits,
                                 const moe_real *target_probs, const moe_real *weights, int N,
                                 int V) {
    double part[CE_CHUNKS] = {0};
    int per = (N + CE_CHUNKS - 1) / CE_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < CE_CHUNKS; c++) {
        int end = (c + 1) * per < N ? (c + 1) * per : N;
        for (int n = c * per; n < end; n++) {
            const moe_real *x = logits + (long)n * V, *t = target_probs + (long)n * V;
            double lse = softmax_row(probs + (long)n * V, x, V);
            double l = 0; /* -sum_v p log q, log q = x - lse */
            for (int j = 0; j < V; j++) l += (double)t[j] * (lse - x[j]);
            part[c] += (weights ? weights[n] : 1) * l;
        }
    }
    double loss = 0;
    for (int c = 0; c < CE_CHUNKS; c++) loss += part[c];
    double wsum = ce_weight_sum(weights, N);
    return wsum != 0 ? loss / wsum : 0.0;
}

/* d/dx of -sum_v p log softmax(x) is q * sum(p) - p (= q - p when p sums to 1). */
void crossentropy_soft_backward(moe_real *dlogits, const moe_real *probs,
                                const moe_real *target_probs, const moe_real *weights, int N, int V,
                                float scale) {
    double wsum = ce_weight_sum(weights, N);
    double k = wsum != 0 ? scale / wsum : 0;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        moe_real *d = dlogits + (long)n * V;
        const moe_real *q = probs + (long)n * V, *t = target_probs + (long)n * V;
        double sp = 0;
        for (int j = 0; j < V; j++) sp += t[j];
        moe_real kn = (moe_real)(k * (weights ? weights[n] : 1));
        for (int j = 0; j < V; j++) d[j] = kn * (q[j] * (moe_real)sp - t[j]);
    }
}
