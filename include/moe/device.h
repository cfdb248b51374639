/* Compute devices: what this build of libmoe can run on. The CUDA backend
 * (docs/cuda.md) is compiled in when nvcc was found at build time; using it
 * also needs an NVIDIA driver and a GPU at run time. */
#ifndef MOE_DEVICE_H
#define MOE_DEVICE_H

#include "moe/core.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the CUDA backend is compiled in. */
int moe_cuda_built(void);
/* The GPU architectures it was compiled for ("90"), or "" when not built. */
const char *moe_cuda_architectures(void);
/* CUDA runtime version as "13.0", or "" when not built. */
const char *moe_cuda_runtime_version(void);
/* Usable GPUs; 0 with the reason in why [n] (no backend, no driver, no GPU). */
int moe_cuda_gpus(char *why, size_t n);
/* "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB" for GPU i into buf [n]. */
moe_status moe_cuda_gpu_name(int i, char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif
