/* DeepMoE forward: embedding network and gates, the gated VGG or ResNet,
 * global average pool -> dropout -> classifier, and the losses:
 * task = CE(logits, y); aux = lambda * sum_l L1(g_l) + mu * CE(head(e), y),
 * 0 in the freeze phase. */
#include "models/deepmoe_internal.h"

#include <string.h>

/* The largest conv2d scratch over every conv, at the current thread count. */
static size_t scratch_elems(const deepmoe *m) {
    size_t best = 0;
    for (int u = 0; u < m->n_units; u++) {
        const dm_unit *U = &m->units[u];
        size_t s =
            conv2d_scratch_elems(U->cin, U->H, U->W, U->cout, U->k, U->k, U->stride, U->pad, 1);
        if (s > best) best = s;
    }
    for (int i = 0; m->gated && i < DM_EMB_CONVS; i++) {
        const dm_econv *E = &m->emb[i];
        size_t s = conv2d_scratch_elems(E->cin, E->H, E->W, E->cout, 3, 3, 2, 1, 1);
        if (s > best) best = s;
    }
    return best;
}

static moe_status vgg_forward(deepmoe *m, const moe_real **x, moe_arena *arena) {
    for (int s = 0; s < m->n_stages; s++) {
        for (int j = 0; j < 2; j++) {
            int u = 2 * s + j;
            moe_status st = deepmoe_unit_forward(m, u, *x, arena);
            if (st != MOE_OK) return st;
            *x = m->ua[u].y;
        }
        const dm_unit *U = &m->units[2 * s + 1];
        int OH = conv2d_out_size(U->OH, 2, 2, 0), OW = conv2d_out_size(U->OW, 2, 2, 0);
        long n = (long)m->B * U->cout * OH * OW;
        DM_ALLOC(m->pool[s], n);
        DM_ALLOC(m->argmax[s], n);
        maxpool2d_forward(m->pool[s], m->argmax[s], *x, m->B, U->cout, U->OH, U->OW, 2, 2, 0);
        *x = m->pool[s];
    }
    return MOE_OK;
}

static moe_status resnet_forward(deepmoe *m, const moe_real **x, moe_arena *arena) {
    moe_status st = deepmoe_unit_forward(m, 0, *x, arena);
    if (st != MOE_OK) return st;
    *x = m->ua[0].y;
    for (int k = 0; k < m->n_blocks; k++) {
        const dm_block *Bk = &m->blocks[k];
        if ((st = deepmoe_unit_forward(m, Bk->u1, *x, arena)) != MOE_OK) return st;
        if ((st = deepmoe_unit_forward(m, Bk->u2, m->ua[Bk->u1].y, arena)) != MOE_OK) return st;
        const moe_real *sc = *x;
        if (Bk->sc >= 0) {
            if ((st = deepmoe_unit_forward(m, Bk->sc, *x, arena)) != MOE_OK) return st;
            sc = m->ua[Bk->sc].y;
        }
        const dm_unit *U = &m->units[Bk->u2];
        long n = (long)m->B * U->cout * U->OH * U->OW;
        moe_real *out;
        DM_ALLOC(out, n);
        const moe_real *y2 = m->ua[Bk->u2].y;
#pragma omp parallel for simd schedule(static) if (n > DM_PAR_MIN)
        for (long i = 0; i < n; i++) {
            moe_real v = y2[i] + sc[i];
            out[i] = v > 0 ? v : 0;
        }
        m->block_out[k] = out;
        *x = out;
    }
    return MOE_OK;
}

static moe_status check_batch(const deepmoe *m, const moe_batch *b, int training,
                              const moe_rng *rng) {
    if (!b->x || b->B < 1)
        return moe_error(MOE_ERR_INVALID, "deepmoe: the batch needs images x and B >= 1");
    if (b->soft || b->weights)
        return moe_error(MOE_ERR_INVALID,
                         "deepmoe: learns from hard labels; soft targets and example weights "
                         "are not supported");
    if (training && m->dropout > 0 && !rng)
        return moe_error(MOE_ERR_INVALID, "deepmoe: training with dropout needs an rng");
    for (int u = 0; training && u < m->n_units; u++)
        if ((long)b->B * m->units[u].OH * m->units[u].OW < 2)
            return moe_error(MOE_ERR_INVALID,
                             "deepmoe: batch norm in training needs more than one value per "
                             "channel: use a batch of 2 or more");
    return MOE_OK;
}

moe_status deepmoe_forward(deepmoe *m, const moe_batch *b, int training, moe_rng *rng,
                           moe_arena *arena, double *task_loss, double *aux_loss) {
    *task_loss = *aux_loss = 0;
    m->have_fwd = 0;
    moe_status st = check_batch(m, b, training, rng);
    if (st != MOE_OK) return st;
    int B = b->B, C = m->c_last, K = m->n_classes;
    m->B = B;
    m->training = training;
    m->input = b->x;
    m->labels = b->labels;
    m->scratch_elems = scratch_elems(m);
    DM_ALLOC(m->scratch, m->scratch_elems > 0 ? m->scratch_elems : 1);
    if (m->gated && (st = deepmoe_embed_forward(m, b->x, arena)) != MOE_OK) return st;
    const moe_real *x = b->x;
    st = m->resnet ? resnet_forward(m, &x, arena) : vgg_forward(m, &x, arena);
    if (st != MOE_OK) return st;

    long nf = (long)B * C;
    DM_ALLOC(m->feat, nf);
    global_avgpool_forward(m->feat, x, B, C, m->h_last * m->w_last);
    m->drop_mask = NULL;
    m->dropped = m->feat;
    if (training && m->dropout > 0) {
        DM_ALLOC(m->drop_mask, nf);
        DM_ALLOC(m->dropped, nf);
        dropout_forward(m->dropped, m->drop_mask, m->feat, m->dropout, nf, rng);
    }
    DM_ALLOC(m->logits, (long)B * K);
    DM_ALLOC(m->probs, (long)B * K);
    matmul_forward(m->logits, m->dropped, dm_p(m, m->t_cls_w), dm_p(m, m->t_cls_b), B, C, K);

    m->parts[0] = m->parts[1] = 0;
    m->n_counted = m->n_counted_emb = 0;
    if (m->labels)
        *task_loss = crossentropy_forward(m->probs, m->logits, m->labels, B, K, -1, &m->n_counted);
    if (m->gated) {
        for (int l = 0; l < m->n_gates; l++) m->parts[0] += deepmoe_gate_l1(m, l);
        DM_ALLOC(m->head_probs, (long)B * K);
        if (m->labels)
            m->parts[1] = crossentropy_forward(m->head_probs, m->head_logits, m->labels, B, K, -1,
                                               &m->n_counted_emb);
        if (m->labels && !m->frozen) *aux_loss = m->lambda * m->parts[0] + m->mu * m->parts[1];
    }
    m->have_fwd = 1;
    return MOE_OK;
}
