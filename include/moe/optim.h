/* Optimizers over one flat parameter block, learning-rate schedules and
 * global-norm gradient clipping. Update rules follow torch.optim exactly
 * (same defaults, same order of operations) so parity tests can compare. */
#ifndef MOE_OPTIM_H
#define MOE_OPTIM_H

#include "moe/config.h"
#include "moe/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_optim {
    moe_optim_config cfg; /* kind and hyper-parameters */
    size_t n;             /* parameters updated */
    int n_slots;          /* state vectors per parameter (0..2) */
    moe_real *state;      /* [n_slots, n], one allocation, zero at start */
    long step;            /* updates done (Adam bias correction) */
} moe_optim;

/* State vectors per parameter of a kind (SGD 1, Adam 2, Adadelta 2, ...). */
int moe_optim_slots(moe_optim_kind kind);
const char *moe_optim_name(moe_optim_kind kind);
moe_status moe_optim_init(moe_optim *o, const moe_optim_config *cfg, size_t n);
/* One update of params[n] with grads[n] at learning rate lr. */
void moe_optim_step(moe_optim *o, moe_real *params, const moe_real *grads, float lr);
void moe_optim_free(moe_optim *o);

/* Learning rate at optimizer step `step` (0-based) of `total`. */
float moe_sched_lr(const moe_sched_config *s, float base_lr, long step, long total);
const char *moe_sched_name(moe_sched_kind kind);

/* Global L2 norm of g[n]; when max_norm > 0 and the norm exceeds it, g is
 * scaled by max_norm / (norm + 1e-6) (torch.nn.utils.clip_grad_norm_).
 * Returns the norm before clipping. */
double moe_grad_clip(moe_real *g, size_t n, float max_norm);

#ifdef __cplusplus
}
#endif
#endif
