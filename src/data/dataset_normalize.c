/* Standardisation with the training split's statistics: per image channel
 * or per table feature, x <- (x - mean) / std, the population standard
 * deviation over the training examples alone (val and test must not leak
 * into what the model sees). Sums in double, two passes (mean, then the
 * squared deviations), so 40 million pixels lose nothing to rounding. A
 * constant group (std 0) gets std 1: it is only shifted to 0. */
#include "dataset_internal.h"

#include <math.h>
#include <stdlib.h>

moe_status dataset_norm_stats(const moe_dataset *train, int groups, float **mean, float **std) {
    *mean = malloc((size_t)groups * sizeof **mean);
    *std = malloc((size_t)groups * sizeof **std);
    double *sum = calloc((size_t)groups * 2, sizeof *sum);
    if (!*mean || !*std || !sum) {
        free(*mean);
        free(*std);
        free(sum);
        *mean = *std = NULL;
        return moe_error(MOE_ERR_NOMEM, "normalisation: out of memory");
    }
    double *sq = sum + groups;
    size_t per = (size_t)(train->dim / groups), n = (size_t)train->n;
    for (size_t i = 0; i < n; i++)
        for (int g = 0; g < groups; g++) {
            const float *v = train->x + i * (size_t)train->dim + (size_t)g * per;
            double s = 0;
            for (size_t p = 0; p < per; p++) s += v[p];
            sum[g] += s;
        }
    double count = (double)n * (double)per;
    for (int g = 0; g < groups; g++) sum[g] = count > 0 ? sum[g] / count : 0;
    for (size_t i = 0; i < n; i++)
        for (int g = 0; g < groups; g++) {
            const float *v = train->x + i * (size_t)train->dim + (size_t)g * per;
            double s = 0, m = sum[g];
            for (size_t p = 0; p < per; p++) s += (v[p] - m) * (v[p] - m);
            sq[g] += s;
        }
    for (int g = 0; g < groups; g++) {
        double sd = count > 0 ? sqrt(sq[g] / count) : 0;
        (*mean)[g] = (float)sum[g];
        (*std)[g] = sd > 0 ? (float)sd : 1.0f;
    }
    free(sum);
    return MOE_OK;
}

void dataset_norm_apply(moe_dataset *d, int groups, const float *mean, const float *std) {
    size_t per = (size_t)(d->dim / groups);
#pragma omp parallel for schedule(static) if (d->n > 1024)
    for (int i = 0; i < d->n; i++)
        for (int g = 0; g < groups; g++) {
            float *v = d->x + (size_t)i * (size_t)d->dim + (size_t)g * per;
            float m = mean[g], sd = std[g];
            for (size_t p = 0; p < per; p++) v[p] = (v[p] - m) / sd;
        }
}
