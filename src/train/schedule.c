/* Learning-rate schedules: a linear warmup shared by every kind, then
 * constant, linear or cosine decay to min_lr, or multistep (MultiStepLR). */
#include "moe/optim.h"

#include <math.h>

const char *moe_sched_name(moe_sched_kind kind) {
    switch (kind) {
    case MOE_SCHED_CONSTANT:
        return "constant";
    case MOE_SCHED_LINEAR:
        return "linear";
    case MOE_SCHED_COSINE:
        return "cosine";
    case MOE_SCHED_MULTISTEP:
        return "multistep";
    }
    return "unknown";
}

float moe_sched_lr(const moe_sched_config *s, float base_lr, long step, long total) {
    const double lr = base_lr, min_lr = s->min_lr;
    const long warmup = s->warmup_steps > 0 ? s->warmup_steps : 0;
    if (step < warmup) return (float)(lr * (double)(step + 1) / (double)warmup);
    /* fraction of the decay phase done: 0 at the end of warmup, 1 at total */
    double progress = total > warmup ? (double)(step - warmup) / (double)(total - warmup) : 1.0;
    if (progress > 1.0) progress = 1.0;
    switch (s->kind) {
    case MOE_SCHED_CONSTANT:
        return base_lr;
    case MOE_SCHED_LINEAR:
        return (float)(min_lr + (lr - min_lr) * (1.0 - progress));
    case MOE_SCHED_COSINE:
        return (float)(min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(M_PI * progress)));
    case MOE_SCHED_MULTISTEP: {
        int passed = 0; /* milestones <= step, like bisect_right in MultiStepLR */
        for (int i = 0; i < s->n_milestones; i++) passed += s->milestones[i] <= step;
        return (float)(lr * pow((double)s->gamma, passed));
    }
    }
    return base_lr;
}
