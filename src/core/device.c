/* include/moe/device.h: the CUDA backend's presence and the GPUs it sees.
 * Without MOE_HAVE_CUDA (no nvcc at build time, and the double-precision
 * build) every answer says so instead. */
#include "moe/device.h"

#include <stdio.h>

#ifdef MOE_HAVE_CUDA
#include "ops/cuda/cuda_ops.h"

#ifndef MOE_CUDA_ARCH
#define MOE_CUDA_ARCH ""
#endif

int moe_cuda_built(void) {
    return 1;
}

const char *moe_cuda_architectures(void) {
    return MOE_CUDA_ARCH;
}

const char *moe_cuda_runtime_version(void) {
    return moe_cuda_runtime_string();
}

int moe_cuda_gpus(char *why, size_t n) {
    return moe_cuda_device_count(why, n);
}

moe_status moe_cuda_gpu_name(int i, char *buf, size_t n) {
    return moe_cuda_device_describe(i, buf, n);
}

#else

int moe_cuda_built(void) {
    return 0;
}

const char *moe_cuda_architectures(void) {
    return "";
}

const char *moe_cuda_runtime_version(void) {
    return "";
}

int moe_cuda_gpus(char *why, size_t n) {
    if (why && n) snprintf(why, n, "this libmoe was built without the CUDA backend (no nvcc)");
    return 0;
}

moe_status moe_cuda_gpu_name(int i, char *buf, size_t n) {
    if (buf && n) buf[0] = 0;
    return moe_error(MOE_ERR_UNSUPPORTED,
                     "GPU %d: this libmoe was built without the CUDA backend (no nvcc)", i);
}

#endif
