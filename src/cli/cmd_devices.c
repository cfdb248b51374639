/* moe devices: what this build can compute on: the CPU, and whether the CUDA
 * backend is compiled in and which GPUs it sees (or why it sees none). */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

static void help(void) {
    printf("usage: moe devices\n\n"
           "Prints one JSON object: the CPU threads libmoe uses, whether the CUDA\n"
           "backend is compiled in (its GPU architectures and CUDA runtime), and the\n"
           "GPUs it can use, or the reason it can use none (docs/cuda.md).\n");
}

int cmd_devices(int argc, char **argv) {
    const cli_opt opts[] = {{0}};
    int rc = cli_parse("devices", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    cJSON *o = cJSON_CreateObject(), *cpu = cJSON_AddObjectToObject(o, "cpu");
    cJSON_AddNumberToObject(cpu, "threads", omp_get_max_threads());
    cJSON *cuda = cJSON_AddObjectToObject(o, "cuda");
    cJSON_AddBoolToObject(cuda, "built", moe_cuda_built());
    if (moe_cuda_built()) {
        cJSON_AddStringToObject(cuda, "architectures", moe_cuda_architectures());
        cJSON_AddStringToObject(cuda, "runtime", moe_cuda_runtime_version());
    }
    char why[256] = "";
    int n = moe_cuda_gpus(why, sizeof why);
    cJSON *gpus = cJSON_AddArrayToObject(cuda, "gpus");
    for (int i = 0; i < n; i++) {
        char name[256];
        if (moe_cuda_gpu_name(i, name, sizeof name) == MOE_OK)
            cJSON_AddItemToArray(gpus, cJSON_CreateString(name));
        else
            cJSON_AddItemToArray(gpus, cJSON_CreateString(moe_last_error()));
    }
    if (n == 0) cJSON_AddStringToObject(cuda, "no_gpu_because", why);
    char *s = cJSON_Print(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    return 0;
}
