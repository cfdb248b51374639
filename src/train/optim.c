/* Optimizers over one flat parameter block. Each update follows torch.optim
 * 1.13's single-tensor code line by line (same order of operations, same
 * place for weight decay) so the parity test can compare step by step.
 * Scalars (bias corrections, step sizes) are computed in double as Python
 * does; per-element work is in moe_real. */
#include "moe/optim.h"

#include "core/real_math.h"

#include <math.h>
#include <stdlib.h>

/* below this many elements a parallel region costs more than it saves */
#define OPTIM_OMP_MIN 8192

int moe_optim_slots(moe_optim_kind kind) {
    switch (kind) {
    case MOE_OPT_SGD:
        return 1;      /* momentum buffer */
    case MOE_OPT_ADAM: /* exp_avg, exp_avg_sq */
    case MOE_OPT_ADAMW:
        return 2; /* exp_avg, exp_avg_sq */
    case MOE_OPT_RMSPROP:
        return 2; /* square_avg, momentum buffer */
    case MOE_OPT_ADAGRAD:
        return 1; /* sum of squares */
    case MOE_OPT_ADADELTA:
        return 2; /* square_avg, acc_delta */
    case MOE_OPT_ADAMAX:
        return 2; /* exp_avg, exp_inf */
    }
    return 0;
}

const char *moe_optim_name(moe_optim_kind kind) {
    switch (kind) {
    case MOE_OPT_SGD:
        return "sgd";
    case MOE_OPT_ADAM:
        return "adam";
    case MOE_OPT_ADAMW:
        return "adamw";
    case MOE_OPT_RMSPROP:
        return "rmsprop";
    case MOE_OPT_ADAGRAD:
        return "adagrad";
    case MOE_OPT_ADADELTA:
        return "adadelta";
    case MOE_OPT_ADAMAX:
        return "adamax";
    }
    return "unknown";
}

moe_status moe_optim_init(moe_optim *o, const moe_optim_config *cfg, size_t n) {
    o->cfg = *cfg;
    o->n = n;
    o->step = 0;
    o->state = NULL;
    o->n_slots = moe_optim_slots(cfg->kind);
    if (o->n_slots == 0)
        return moe_error(MOE_ERR_INVALID, "moe_optim_init: unknown optimizer kind %d",
                         (int)cfg->kind);
    if (n == 0) return MOE_OK;
    /* every state vector in one zeroed block: [n_slots, n] */
    o->state = calloc((size_t)o->n_slots * n, sizeof(moe_real));
    if (!o->state)
        return moe_error(MOE_ERR_NOMEM, "moe_optim_init: no memory for %d x %zu %s state values",
                         o->n_slots, n, moe_optim_name(cfg->kind));
    return MOE_OK;
}

void moe_optim_free(moe_optim *o) {
    free(o->state);
    o->state = NULL;
    o->n = 0;
}

/* SGD, dampening 0. The first step copies d_p into the buffer (torch clones
 * it); buf = momentum * 0 + d_p would give the same bits, but say it plainly. */
static void step_sgd(const moe_optim *o, moe_real *p, const moe_real *g, float lr) {
    const long n = (long)o->n;
    const moe_real wd = o->cfg.weight_decay, mom = o->cfg.momentum;
    const int nesterov = o->cfg.nesterov, first = o->step == 1;
    moe_real *buf = o->state; /* [n] */
#pragma omp parallel for if (n > OPTIM_OMP_MIN)
    for (long i = 0; i < n; i++) {
        moe_real d = g[i] + wd * p[i];
        if (mom != 0) {
            buf[i] = first ? d : buf[i] * mom + d;
            d = nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
}

/* Adam (L2 decay added to the gradient) and AdamW (p *= 1 - lr * wd first).
 * One fused, parallel, vectorised pass over all parameters; float
 * arithmetic in torch's order (denom = sqrt(v) / bc2_sqrt + eps). */
static void step_adam(const moe_optim *o, moe_real *restrict p, const moe_real *restrict g,
                      float lr, int decoupled) {
    const long n = (long)o->n;
    const double b1 = o->cfg.beta1, b2 = o->cfg.beta2, t = (double)o->step;
    const moe_real wd = o->cfg.weight_decay, eps = o->cfg.eps;
    const moe_real decay = (moe_real)(1.0 - (double)lr * o->cfg.weight_decay);
    const moe_real step_size = (moe_real)(lr / (1.0 - pow(b1, t)));
    const moe_real bc2_sqrt = (moe_real)sqrt(1.0 - pow(b2, t));
    const moe_real c1 = (moe_real)(1.0 - b1), c2 = (moe_real)(1.0 - b2);
    const moe_real fb1 = (moe_real)b1, fb2 = (moe_real)b2;
    moe_real *restrict m = o->state, *restrict v = o->state + n; /* [n] each */
    if (decoupled) {
#pragma omp parallel for simd schedule(static) if (n > OPTIM_OMP_MIN)
        for (long i = 0; i < n; i++) {
            moe_real gi = g[i], pi = p[i] * decay;
            moe_real mi = m[i] * fb1 + c1 * gi, vi = v[i] * fb2 + c2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] = pi - step_size * (mi / (real_sqrt(vi) / bc2_sqrt + eps));
        }
    } else {
#pragma omp parallel for simd schedule(static) if (n > OPTIM_OMP_MIN)
        for (long i = 0; i < n; i++) {
            moe_real gi = g[i] + wd * p[i];
            moe_real mi = m[i] * fb1 + c1 * gi, vi = v[i] * fb2 + c2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] -= step_size * (mi / (real_sqrt(vi) / bc2_sqrt + eps));
        }
    }
}

/* RMSprop, not centered; the momentum buffer is used only when momentum > 0. */
static void step_rmsprop(const moe_optim *o, moe_real *p, const moe_real *g, float lr) {
    const long n = (long)o->n;
    const moe_real wd = o->cfg.weight_decay, eps = o->cfg.eps, mom = o->cfg.momentum;
    const moe_real a = o->cfg.alpha, c = (moe_real)(1.0 - o->cfg.alpha);
    moe_real *sq = o->state, *buf = o->state + n; /* [n] each */
#pragma omp parallel for if (n > OPTIM_OMP_MIN)
    for (long i = 0; i < n; i++) {
        moe_real gi = g[i] + wd * p[i];
        sq[i] = sq[i] * a + c * gi * gi;
        moe_real avg = sqrt(sq[i]) + eps;
        if (mom > 0) {
            buf[i] = buf[i] * mom + gi / avg;
            p[i] -= lr * buf[i];
        } else {
            p[i] -= lr * (gi / avg);
        }
    }
}

/* Adagrad: initial accumulator 0, lr_decay 0 (so clr = lr). */
static void step_adagrad(const moe_optim *o, moe_real *p, const moe_real *g, float lr) {
    const long n = (long)o->n;
    const moe_real wd = o->cfg.weight_decay, eps = o->cfg.eps;
    moe_real *sum = o->state; /* [n] */
#pragma omp parallel for if (n > OPTIM_OMP_MIN)
    for (long i = 0; i < n; i++) {
        moe_real gi = g[i] + wd * p[i];
        sum[i] += gi * gi;
        p[i] -= lr * (gi / (sqrt(sum[i]) + eps));
    }
}

/* Adadelta: lr multiplies the computed delta (torch default lr = 1). */
static void step_adadelta(const moe_optim *o, moe_real *p, const moe_real *g, float lr) {
    const long n = (long)o->n;
    const moe_real wd = o->cfg.weight_decay, eps = o->cfg.eps;
    const moe_real rho = o->cfg.rho, c = (moe_real)(1.0 - o->cfg.rho);
    moe_real *sq = o->state, *acc = o->state + n; /* [n] each */
#pragma omp parallel for if (n > OPTIM_OMP_MIN)
    for (long i = 0; i < n; i++) {
        moe_real gi = g[i] + wd * p[i];
        sq[i] = sq[i] * rho + c * gi * gi;
        moe_real std = sqrt(sq[i] + eps);
        moe_real delta = sqrt(acc[i] + eps) / std * gi;
        acc[i] = acc[i] * rho + c * delta * delta;
        p[i] -= lr * delta;
    }
}

/* Adamax: exponentially weighted infinity norm, eps added to |g|. */
static void step_adamax(const moe_optim *o, moe_real *p, const moe_real *g, float lr) {
    const long n = (long)o->n;
    const moe_real wd = o->cfg.weight_decay, eps = o->cfg.eps;
    const moe_real b1 = o->cfg.beta1, b2 = o->cfg.beta2, c1 = (moe_real)(1.0 - o->cfg.beta1);
    const moe_real clr = (moe_real)(lr / (1.0 - pow((double)o->cfg.beta1, (double)o->step)));
    moe_real *m = o->state, *u = o->state + n; /* [n] each */
#pragma omp parallel for if (n > OPTIM_OMP_MIN)
    for (long i = 0; i < n; i++) {
        moe_real gi = g[i] + wd * p[i];
        m[i] = m[i] * b1 + c1 * gi;
        moe_real a = u[i] * b2, b = fabs(gi) + eps;
        u[i] = a > b ? a : b;
        p[i] -= clr * (m[i] / u[i]);
    }
}

void moe_optim_step(moe_optim *o, moe_real *params, const moe_real *grads, float lr) {
    o->step++;
    switch (o->cfg.kind) {
    case MOE_OPT_SGD:
        step_sgd(o, params, grads, lr);
        break;
    case MOE_OPT_ADAM:
        step_adam(o, params, grads, lr, 0);
        break;
    case MOE_OPT_ADAMW:
        step_adam(o, params, grads, lr, 1);
        break;
    case MOE_OPT_RMSPROP:
        step_rmsprop(o, params, grads, lr);
        break;
    case MOE_OPT_ADAGRAD:
        step_adagrad(o, params, grads, lr);
        break;
    case MOE_OPT_ADADELTA:
        step_adadelta(o, params, grads, lr);
        break;
    case MOE_OPT_ADAMAX:
        step_adamax(o, params, grads, lr);
        break;
    }
}
