/* DeepMoE's shallow embedding network and gates: three 3x3 stride-2 convs
 * with GELU (input -> 32 -> 64 -> emb_dim), a global average pool giving
 * e [B, emb_dim], the embedding classifier head(e), and every gate
 * g_l = relu(e W_l^T). In the freeze phase the embedding network and head
 * get no gradient (e is a constant); the gate projections W_l still do. */
#include "models/deepmoe_internal.h"

#include <string.h>

moe_status deepmoe_embed_forward(deepmoe *m, const moe_real *x, moe_arena *arena) {
    int B = m->B, D = m->emb_dim;
    const moe_real *in = x;
    for (int i = 0; i < DM_EMB_CONVS; i++) {
        const dm_econv *E = &m->emb[i];
        long n = (long)B * E->cout * E->OH * E->OW;
        DM_ALLOC(m->ez[i], n);
        DM_ALLOC(m->ea[i], n);
        conv2d_forward(m->ez[i], m->scratch, in, dm_p(m, E->t_w), dm_p(m, E->t_b), B, E->cin, E->H,
                       E->W, E->cout, 3, 3, 2, 1, 1);
        gelu_forward(m->ea[i], m->ez[i], n);
        in = m->ea[i];
    }
    const dm_econv *last = &m->emb[DM_EMB_CONVS - 1];
    DM_ALLOC(m->e, (long)B * D);
    global_avgpool_forward(m->e, in, B, D, last->OH * last->OW);
    DM_ALLOC(m->head_logits, (long)B * m->n_classes);
    matmul_forward(m->head_logits, m->e, dm_p(m, m->t_head_w), dm_p(m, m->t_head_b), B, D,
                   m->n_classes);
    for (int l = 0; l < m->n_gates; l++) {
        long n = (long)B * m->gates[l].C;
        DM_ALLOC(m->gpre[l], n);
        DM_ALLOC(m->g[l], n);
        matmul_forward(m->gpre[l], m->e, dm_p(m, m->gates[l].t_w), NULL, B, D, m->gates[l].C);
        relu_forward(m->g[l], m->gpre[l], n);
    }
    return MOE_OK;
}

moe_status deepmoe_embed_backward(deepmoe *m, moe_real *const *dg, float scale, moe_arena *arena) {
    int B = m->B, D = m->emb_dim, frozen = m->frozen;
    size_t mark = moe_arena_mark(arena);
    moe_real *de = NULL, *dgpre;
    long max_c = 0;
    for (int l = 0; l < m->n_gates; l++)
        if (m->gates[l].C > max_c) max_c = m->gates[l].C;
    DM_ALLOC(dgpre, B * max_c);
    if (!frozen) {
        DM_ALLOC(de, (long)B * D);
        memset(de, 0, (size_t)B * D * sizeof *de);
    }
    for (int l = 0; l < m->n_gates; l++) {
        const dm_gate *G = &m->gates[l];
        relu_backward(dgpre, dg[l], m->gpre[l], (long)B * G->C);
        matmul_backward(NULL, dm_g(m, G->t_w), NULL, dgpre, m->e, dm_p(m, G->t_w), B, D, G->C);
        if (de) /* de += dgpre W_l: the gates' share of e's gradient */
            gemm(0, 0, B, D, G->C, 1, dgpre, G->C, dm_p(m, G->t_w), D, 1, de, D);
    }
    if (frozen) {
        moe_arena_release(arena, mark);
        return MOE_OK;
    }
    if (m->labels && m->mu > 0) {
        moe_real *dh;
        DM_ALLOC(dh, (long)B * m->n_classes);
        crossentropy_backward(dh, m->head_probs, m->labels, B, m->n_classes, -1, m->n_counted_emb,
                              m->mu * scale);
        matmul_backward(NULL, dm_g(m, m->t_head_w), dm_g(m, m->t_head_b), dh, m->e,
                        dm_p(m, m->t_head_w), B, D, m->n_classes);
        gemm(0, 0, B, D, m->n_classes, 1, dh, m->n_classes, dm_p(m, m->t_head_w), D, 1, de, D);
    }
    /* back through the pool, each GELU and conv; the image needs no gradient */
    const dm_econv *last = &m->emb[DM_EMB_CONVS - 1];
    moe_real *da;
    DM_ALLOC(da, (long)B * D * last->OH * last->OW);
    global_avgpool_backward(da, de, B, D, last->OH * last->OW);
    for (int i = DM_EMB_CONVS - 1; i >= 0; i--) {
        const dm_econv *E = &m->emb[i];
        long n = (long)B * E->cout * E->OH * E->OW;
        moe_real *dz, *dprev = NULL;
        DM_ALLOC(dz, n);
        gelu_backward(dz, da, m->ez[i], n);
        if (i > 0) DM_ALLOC(dprev, (long)B * E->cin * E->H * E->W);
        conv2d_backward(dprev, dm_g(m, E->t_w), dm_g(m, E->t_b), m->scratch, dz,
                        i > 0 ? m->ea[i - 1] : m->input, dm_p(m, E->t_w), B, E->cin, E->H, E->W,
                        E->cout, 3, 3, 2, 1, 1);
        da = dprev;
    }
    moe_arena_release(arena, mark);
    return MOE_OK;
}
