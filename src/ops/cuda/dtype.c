/* Host-side facts about the activation types (cuda_ops.h): sizes, names and
 * the bf16 conversions uploads, downloads and tests use. Plain C, so the
 * emulated backend (tests/emu) shares it with the real one. */
#include "ops/cuda/cuda_ops.h"

#include <string.h>

size_t moe_dtype_size(moe_dtype dt) {
    return dt == MOE_DT_BF16 ? 2 : 4;
}

const char *moe_dtype_name(moe_dtype dt) {
    return dt == MOE_DT_BF16 ? "bf16" : "fp32";
}

moe_dtype moe_dtype_of_precision(const char *precision) {
    return strcmp(precision, "fp32") == 0 ? MOE_DT_F32 : MOE_DT_BF16;
}

uint16_t moe_bf16_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) /* NaN: keep it quiet */
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float moe_bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
