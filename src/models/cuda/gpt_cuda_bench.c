/* gpt_cuda_time_steps: whole training steps on the GPU, timed one by one. */
#include "models/cuda/gpt_cuda.h"

#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

moe_status gpt_cuda_time_steps(gpt_cuda *g, const moe_optim_config *oc, float grad_clip,
                               const int32_t *x, const int32_t *y, int B, int T, int steps,
                               double *ms, double *loss) {
    for (int s = 0; s < steps; s++) {
        double t0 = now_ms(), ce = 0, aux = 0;
        moe_status st = gpt_cuda_zero_grads(g);
        if (st == MOE_OK) st = gpt_cuda_forward(g, x, y, B, T, 1);
        if (st == MOE_OK) st = gpt_cuda_backward(g, 1.0f);
        if (st == MOE_OK) st = gpt_cuda_optim_step(g, oc, oc->lr, grad_clip);
        if (st == MOE_OK) st = gpt_cuda_read_loss(g, &ce, &aux); /* waits for the step */
        if (st != MOE_OK) return st;
        ms[s] = now_ms() - t0;
        *loss = ce + aux;
    }
    return MOE_OK;
}
