/* Multiply-adds of one example's forward through cnn_moe: every conv and
 * linear layer (batch norm, pooling, activations and the gate mixture are
 * elementwise and left out, as for the transformer's count). The gate is
 * soft, so every expert counts: this is both the active and the dense
 * (all experts) figure. */
#include "models/cnn_moe_internal.h"

double cnn_moe_forward_macs(const cnn_moe *m) {
    double macs = 0;
    int cin = m->Cin;
    for (int s = 0; s < m->n_stages; s++) { /* 3x3 pad 1: output as large as the input */
        macs += (double)m->ch[s] * cin * 9 * m->sh[s] * m->sw[s];
        cin = m->ch[s];
    }
    double P = (double)m->fh * m->fw;
    double expert = (double)m->Cf * 9 * P      /* depthwise 3x3 */
                    + (double)m->X * m->Cf * P /* pointwise */
                    + (double)m->NC * m->X;    /* classifier */
    macs += m->E * expert;
    macs += (double)m->Hd * m->Cf + (double)m->E * m->Hd; /* gate fc1, fc2 */
    return macs;
}
