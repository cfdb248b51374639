/* DeepMoE backward: classifier, dropout and pool, the units in reverse
 * (each adding its share of its gate's gradient), then the gates and the
 * embedding network. Activation gradients move between two buffers of the
 * largest activation's size; each unit and block takes its scratch under an
 * arena mark, so the peak is one layer's scratch rather than the sum. */
#include "models/deepmoe_internal.h"

#include <string.h>

/* dy [B, cout, P] of block k's output -> dx [B, cin, H, W] of its input. */
static moe_status block_backward(deepmoe *m, int k, const moe_real *dy, moe_real *dx,
                                 moe_real *const *dg, moe_arena *arena) {
    const dm_block *Bk = &m->blocks[k];
    const dm_unit *U1 = &m->units[Bk->u1], *U2 = &m->units[Bk->u2];
    long n_out = (long)m->B * U2->cout * U2->OH * U2->OW;
    long n_in = (long)m->B * U1->cin * U1->H * U1->W;
    size_t mark = moe_arena_mark(arena);
    moe_real *ds, *dh;
    DM_ALLOC(ds, n_out);
    DM_ALLOC(dh, n_out);
    const moe_real *out = m->block_out[k];
#pragma omp parallel for simd schedule(static) if (n_out > DM_PAR_MIN)
    for (long i = 0; i < n_out; i++) ds[i] = out[i] > 0 ? dy[i] : 0;
    moe_status st;
    moe_real *dg2 = U2->gate >= 0 ? dg[U2->gate] : NULL, *dg1 = U1->gate >= 0 ? dg[U1->gate] : NULL;
    if ((st = deepmoe_unit_backward(m, Bk->u2, ds, dh, dg2, arena)) != MOE_OK) return st;
    if ((st = deepmoe_unit_backward(m, Bk->u1, dh, dx, dg1, arena)) != MOE_OK) return st;
    const moe_real *dsc = ds; /* identity shortcut */
    if (Bk->sc >= 0) {
        moe_real *dxs;
        DM_ALLOC(dxs, n_in);
        if ((st = deepmoe_unit_backward(m, Bk->sc, ds, dxs, NULL, arena)) != MOE_OK) return st;
        dsc = dxs;
    }
#pragma omp parallel for simd schedule(static) if (n_in > DM_PAR_MIN)
    for (long i = 0; i < n_in; i++) dx[i] += dsc[i];
    moe_arena_release(arena, mark);
    return MOE_OK;
}

static void swap(moe_real **a, moe_real **b) {
    moe_real *t = *a;
    *a = *b;
    *b = t;
}

/* From d(pooled features) in *cur down to the image (units in reverse). */
static moe_status network_backward(deepmoe *m, moe_real *cur, moe_real *other, moe_real *const *dg,
                                   moe_arena *arena) {
    moe_status st;
    if (!m->resnet) {
        for (int s = m->n_stages - 1; s >= 0; s--) {
            const dm_unit *U = &m->units[2 * s + 1];
            maxpool2d_backward(other, cur, m->argmax[s], m->B, U->cout, U->OH, U->OW, 2, 2, 0);
            swap(&cur, &other);
            for (int u = 2 * s + 1; u >= 2 * s; u--) {
                int gate = m->units[u].gate;
                st = deepmoe_unit_backward(m, u, cur, u > 0 ? other : NULL,
                                           gate >= 0 ? dg[gate] : NULL, arena);
                if (st != MOE_OK) return st;
                swap(&cur, &other);
            }
        }
        return MOE_OK;
    }
    for (int k = m->n_blocks - 1; k >= 0; k--) {
        if ((st = block_backward(m, k, cur, other, dg, arena)) != MOE_OK) return st;
        swap(&cur, &other);
    }
    int gate = m->units[0].gate;
    return deepmoe_unit_backward(m, 0, cur, NULL, gate >= 0 ? dg[gate] : NULL, arena);
}

moe_status deepmoe_backward(deepmoe *m, moe_arena *arena, float scale) {
    if (!m->have_fwd || !m->labels)
        return moe_error(MOE_ERR_INVALID,
                         "deepmoe: backward needs a forward with labels just before it");
    int B = m->B, C = m->c_last, K = m->n_classes;
    size_t mark = moe_arena_mark(arena);
    /* d loss / d g_l: the L1 term first, the units add theirs */
    moe_real *dg[DM_MAX_GATES] = {0};
    for (int l = 0; l < m->n_gates; l++) {
        long n = (long)B * m->gates[l].C;
        DM_ALLOC(dg[l], n);
        memset(dg[l], 0, (size_t)n * sizeof *dg[l]);
        if (!m->frozen && m->lambda > 0)
            deepmoe_gate_l1_backward(m, l, dg[l], (double)m->lambda * scale);
    }
    long maxn = 0;
    for (int u = 0; u < m->n_units; u++) {
        const dm_unit *U = &m->units[u];
        long in = (long)U->cin * U->H * U->W, out = (long)U->cout * U->OH * U->OW;
        if (in > maxn) maxn = in;
        if (out > maxn) maxn = out;
    }
    moe_real *cur, *other, *dlogits, *dfeat;
    DM_ALLOC(cur, maxn * B);
    DM_ALLOC(other, maxn * B);
    DM_ALLOC(dlogits, (long)B * K);
    DM_ALLOC(dfeat, (long)B * C);
    crossentropy_backward(dlogits, m->probs, m->labels, B, K, -1, m->n_counted, scale);
    matmul_backward(dfeat, dm_g(m, m->t_cls_w), dm_g(m, m->t_cls_b), dlogits, m->dropped,
                    dm_p(m, m->t_cls_w), B, C, K);
    if (m->drop_mask) dropout_backward(dfeat, dfeat, m->drop_mask, (long)B * C);
    global_avgpool_backward(cur, dfeat, B, C, m->h_last * m->w_last);
    moe_status st = network_backward(m, cur, other, dg, arena);
    if (st == MOE_OK && m->gated) st = deepmoe_embed_backward(m, dg, scale, arena);
    moe_arena_release(arena, mark);
    return st;
}
