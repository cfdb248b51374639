/* One gated conv unit of DeepMoE: conv -> BN -> [ReLU] -> [* g per channel].
 * The conv and BN are the vision ops; the ReLU and the gate are one fused
 * pass over the [H, W] planes (each plane is one (example, channel) pair,
 * so it has one gate value and owns one entry of the gate gradient). */
#include "models/deepmoe_internal.h"

moe_status deepmoe_unit_forward(deepmoe *m, int u, const moe_real *x, moe_arena *arena) {
    const dm_unit *U = &m->units[u];
    dm_unit_acts *a = &m->ua[u];
    long P = (long)U->OH * U->OW, planes = (long)m->B * U->cout, n = planes * P;
    a->x = x;
    DM_ALLOC(a->conv, n);
    DM_ALLOC(a->mean, U->cout);
    DM_ALLOC(a->rstd, U->cout);
    DM_ALLOC(a->act, n);
    conv2d_forward(a->conv, m->scratch, x, dm_p(m, U->t_conv), NULL, m->B, U->cin, U->H, U->W,
                   U->cout, U->k, U->k, U->stride, U->pad, 1);
    batchnorm_forward(a->act, a->mean, a->rstd, dm_p(m, U->t_rmean), dm_p(m, U->t_rvar), a->conv,
                      dm_p(m, U->t_bn_w), dm_p(m, U->t_bn_b), m->B, U->cout, (int)P, m->training,
                      DM_BN_MOMENTUM, DM_BN_EPS);
    const moe_real *g = U->gate >= 0 ? m->g[U->gate] : NULL;
    a->y = a->act;
    if (g) DM_ALLOC(a->y, n);
    if (!U->relu && !g) return MOE_OK;
    int relu = U->relu;
    moe_real *act = a->act, *y = a->y;
#pragma omp parallel for schedule(static) if (n > DM_PAR_MIN)
    for (long bc = 0; bc < planes; bc++) {
        moe_real *ap = act + bc * P;
        if (relu)
            for (long p = 0; p < P; p++) ap[p] = ap[p] > 0 ? ap[p] : 0;
        if (g) {
            moe_real gv = g[bc], *yp = y + bc * P;
            for (long p = 0; p < P; p++) yp[p] = gv * ap[p];
        }
    }
    return MOE_OK;
}

moe_status deepmoe_unit_backward(deepmoe *m, int u, const moe_real *dy, moe_real *dx, moe_real *dg,
                                 moe_arena *arena) {
    const dm_unit *U = &m->units[u];
    const dm_unit_acts *a = &m->ua[u];
    long P = (long)U->OH * U->OW, planes = (long)m->B * U->cout, n = planes * P;
    size_t mark = moe_arena_mark(arena);
    moe_real *dbn, *dconv;
    DM_ALLOC(dbn, n);
    DM_ALLOC(dconv, n);
    const moe_real *g = U->gate >= 0 ? m->g[U->gate] : NULL;
    const moe_real *act = a->act;
    int relu = U->relu;
    /* y = g * act: dg = sum_p dy * act; d act = g dy, through the ReLU
     * where act > 0 (act > 0 exactly where the BN output is). Branch-free
     * simd loops: this pass touches every activation of the layer. */
#pragma omp parallel for schedule(static) if (n > DM_PAR_MIN)
    for (long bc = 0; bc < planes; bc++) {
        const moe_real *d = dy + bc * P, *ap = act + bc * P;
        moe_real *o = dbn + bc * P, gv = g ? g[bc] : 1;
        if (g && dg) {
            double s = 0;
#pragma omp simd reduction(+ : s)
            for (long p = 0; p < P; p++) s += (double)(d[p] * ap[p]);
            dg[bc] += (moe_real)s;
        }
        if (relu) {
#pragma omp simd
            for (long p = 0; p < P; p++) o[p] = ap[p] > 0 ? d[p] * gv : 0;
        } else {
#pragma omp simd
            for (long p = 0; p < P; p++) o[p] = d[p] * gv;
        }
    }
    batchnorm_backward(dconv, dm_g(m, U->t_bn_w), dm_g(m, U->t_bn_b), dbn, a->conv,
                       dm_p(m, U->t_bn_w), a->mean, a->rstd, m->B, U->cout, (int)P, m->training);
    conv2d_backward(dx, dm_g(m, U->t_conv), NULL, m->scratch, dconv, a->x, dm_p(m, U->t_conv), m->B,
                    U->cin, U->H, U->W, U->cout, U->k, U->k, U->stride, U->pad, 1);
    moe_arena_release(arena, mark);
    return MOE_OK;
}
