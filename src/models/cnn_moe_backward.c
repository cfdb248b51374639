/* cnn_moe backward: from the loss through the mixture into the gate and
 * every expert, whose feature gradients add up in dF, then back through
 * the shared stages. Parameter gradients ADD (times scale); temporaries
 * come from the arena and are released at the end. The running statistics
 * have no gradient (theirs stays 0). */
#include "models/cnn_moe_internal.h"

#include "ops/ops.h"

#include <string.h>

/* d(loss)/d(logits) [B,NC], times scale; 0 when the forward had no targets. */
static void task_backward(const cnn_moe *m, moe_real *dlogits, float scale) {
    int B = m->B, NC = m->NC;
    if (m->ce_soft)
        crossentropy_soft_backward(dlogits, m->probs, m->ce_soft, m->ce_w, B, NC, scale);
    else if (m->ce_count >= 0)
        crossentropy_backward(dlogits, m->probs, m->labels, B, NC, -1, m->ce_count, scale);
    else
        memset(dlogits, 0, (size_t)B * NC * sizeof *dlogits);
}

/* Through logits = sum_e G[:,e] L_e: dG [B,E] += dlogits . L_e row by row,
 * dL [E,B,NC] = G[:,e] dlogits. */
static void mix_backward(moe_real *dG, moe_real *dL, const moe_real *dlogits, const moe_real *G,
                         const moe_real *L, int B, int E, int NC) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        const moe_real *d = dlogits + (long)i * NC;
        for (int e = 0; e < E; e++) {
            const moe_real *l = L + ((long)e * B + i) * NC;
            moe_real *dl = dL + ((long)e * B + i) * NC, g = G[(long)i * E + e];
            double s = 0;
            for (int c = 0; c < NC; c++) {
                s += (double)d[c] * l[c];
                dl[c] = g * d[c];
            }
            dG[(long)i * E + e] += (moe_real)s;
        }
    }
}

/* G = softmax(z / T + noise): dz = G (dG - sum_k G_k dG_k) / T, in place. */
static void gate_softmax_backward(moe_real *dG, const moe_real *G, int B, int E, float T) {
    moe_real inv_t = (moe_real)(1.0 / T);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B; i++) {
        moe_real *d = dG + (long)i * E;
        const moe_real *g = G + (long)i * E;
        double dot = 0;
        for (int j = 0; j < E; j++) dot += (double)g[j] * d[j];
        for (int j = 0; j < E; j++) d[j] = g[j] * (d[j] - (moe_real)dot) * inv_t;
    }
}

/* Gate MLP back to its input; writes dF [B,Cf,h,w] (the first contribution). */
static moe_status gate_backward(cnn_moe *m, moe_real *dF, const moe_real *dz, moe_arena *arena) {
    int B = m->B, C = m->Cf, Hd = m->Hd;
    const cnn_gate_w *w = &m->w.gate;
    cnn_gate_w *g = &m->g.gate;
    const cnn_gate_acts *a = &m->gate;
    moe_real *dact, *dh, *din;
    CNN_ALLOC(dact, (long)B * Hd);
    CNN_ALLOC(dh, (long)B * Hd);
    CNN_ALLOC(din, (long)B * C);
    matmul_backward(dact, g->fc2_w, g->fc2_b, dz, a->drop, w->fc2_w, B, Hd, m->E);
    if (a->mask) dropout_backward(dact, dact, a->mask, (long)B * Hd);
    relu_backward(dact, dact, a->act, (long)B * Hd); /* act > 0 exactly where its input was */
    batchnorm_backward(dh, g->bn.w, g->bn.b, dact, a->h, w->bn.w, a->mean, a->rstd, B, Hd, 1,
                       m->training);
    matmul_backward(din, g->fc1_w, g->fc1_b, dh, a->in, w->fc1_w, B, C, Hd);
    global_avgpool_backward(dF, din, B, C, m->fh * m->fw);
    return MOE_OK;
}

/* Expert e back to F; dF += its contribution. The buffers are shared by
 * every expert: dpool [B,X], dact and dpw [B,X,S], ddw and dFe [B,Cf,S]. */
typedef struct expert_bufs {
    moe_real *dpool, *dact, *dpw, *ddw, *dFe;
} expert_bufs;

static void expert_backward(cnn_moe *m, int e, moe_real *dF, const moe_real *F, const moe_real *dL,
                            const expert_bufs *t) {
    int B = m->B, C = m->Cf, X = m->X, S = m->fh * m->fw;
    long nx = (long)B * X * S, nf = (long)B * C * S;
    const cnn_expert_w *w = &m->w.expert[e];
    cnn_expert_w *g = &m->g.expert[e];
    const cnn_expert_acts *a = &m->ex[e];
    matmul_backward(t->dpool, g->fc_w, g->fc_b, dL, a->pooled, w->fc_w, B, X, m->NC);
    global_avgpool_backward(t->dact, t->dpool, B, X, S);
    if (a->mask) dropout_backward(t->dact, t->dact, a->mask, nx);
    relu_backward(t->dact, t->dact, a->act, nx);
    batchnorm_backward(t->dpw, g->bn.w, g->bn.b, t->dact, a->pw, w->bn.w, a->mean, a->rstd, B, X, S,
                       m->training);
    conv2d_backward(t->ddw, g->pw_w, g->pw_b, m->scratch, t->dpw, a->dw, w->pw_w, B, C, m->fh,
                    m->fw, X, 1, 1, 1, 0, 1);
    conv2d_backward(t->dFe, g->dw_w, g->dw_b, m->scratch, t->ddw, F, w->dw_w, B, C, m->fh, m->fw, C,
                    3, 3, 1, 1, C);
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < nf; i++) dF[i] += t->dFe[i];
}

/* Stage s back from dpool (its pool's gradient); writes din (the previous
 * stage's pool gradient) unless it is NULL (stage 0: no input gradient). */
static moe_status stage_backward(cnn_moe *m, int s, moe_real *din, const moe_real *dpool, int cin,
                                 moe_arena *arena) {
    int B = m->B, C = m->ch[s], H = m->sh[s], W = m->sw[s];
    long n = (long)B * C * H * W;
    const cnn_stage_w *w = &m->w.stage[s];
    cnn_stage_w *g = &m->g.stage[s];
    const cnn_stage_acts *a = &m->st[s];
    moe_real *dact, *dconv;
    CNN_ALLOC(dact, n);
    CNN_ALLOC(dconv, n);
    maxpool2d_backward(dact, dpool, a->argmax, B, C, H, W, 2, 2, 0);
    relu_backward(dact, dact, a->act, n);
    batchnorm_backward(dconv, g->bn.w, g->bn.b, dact, a->conv, w->bn.w, a->mean, a->rstd, B, C,
                       H * W, m->training);
    conv2d_backward(din, g->conv_w, g->conv_b, m->scratch, dconv, a->in, w->conv_w, B, cin, H, W, C,
                    3, 3, 1, 1, 1);
    return MOE_OK;
}

static moe_status backward_in(cnn_moe *m, moe_arena *arena, float scale) {
    int B = m->B, E = m->E, NC = m->NC, C = m->Cf, X = m->X, S = m->fh * m->fw;
    const moe_real *G = m->gate.g;
    const moe_real *F = m->st[m->n_stages - 1].pool;
    moe_real *dlogits, *dG, *dL, *dF;
    CNN_ALLOC(dlogits, (long)B * NC);
    CNN_ALLOC(dG, (long)B * E);
    CNN_ALLOC(dL, (long)E * B * NC);
    CNN_ALLOC(dF, (long)B * C * S);
    task_backward(m, dlogits, scale);
    cnn_moe_aux_backward(&m->cfg.cnn, dG, m->aux_work, G, B, E, scale);
    mix_backward(dG, dL, dlogits, G, m->expert_logits, B, E, NC);
    gate_softmax_backward(dG, G, B, E, m->fwd_temperature);
    moe_status st = gate_backward(m, dF, dG, arena);
    if (st != MOE_OK) return st;
    expert_bufs t = {NULL, NULL, NULL, NULL, NULL};
    CNN_ALLOC(t.dpool, (long)B * X);
    CNN_ALLOC(t.dact, (long)B * X * S);
    CNN_ALLOC(t.dpw, (long)B * X * S);
    CNN_ALLOC(t.ddw, (long)B * C * S);
    CNN_ALLOC(t.dFe, (long)B * C * S);
    for (int e = 0; e < E; e++) expert_backward(m, e, dF, F, dL + (long)e * B * NC, &t);
    /* shared stages, last to first; each stage's input gradient is the
     * previous one's pool gradient */
    const moe_real *dpool = dF;
    for (int s = m->n_stages - 1; s >= 0; s--) {
        int cin = s ? m->ch[s - 1] : m->Cin;
        moe_real *din = NULL;
        if (s > 0) CNN_ALLOC(din, (long)B * cin * m->sh[s] * m->sw[s]);
        st = stage_backward(m, s, din, dpool, cin, arena);
        if (st != MOE_OK) return st;
        dpool = din;
    }
    return MOE_OK;
}

moe_status cnn_moe_backward(void *impl, moe_arena *arena, float scale) {
    cnn_moe *m = impl;
    if (!m->have_forward)
        return moe_error(MOE_ERR_INVALID, "cnn_moe: backward needs a forward first");
    size_t mark = moe_arena_mark(arena);
    moe_status st = backward_in(m, arena, scale);
    moe_arena_release(arena, mark);
    return st;
}
