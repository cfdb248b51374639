/* The dense tasks: images (Fashion-MNIST) or table rows (CSV) for the seed
 * families. Training walks a shuffled order of the training split one epoch
 * at a time (the order of epoch e depends only on the seed and e, so a
 * resumed run replays the same batches); evaluation runs a whole split in
 * large batches and accumulates the expert analysis and gate sparsity when
 * the model has them. */
#include "train/task.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(moe_real) == sizeof(float), "datasets hold float features");

/* Fills model.input and model.n_classes from the data when zero, checks them otherwise. */
static moe_status fit_model(moe_run_config *cfg, const moe_dataset *d) {
    moe_model_config *mc = &cfg->model;
    moe_input_config *in = &mc->input;
    int *have[4] = {&in->channels, &in->height, &in->width, &in->features};
    int want[4] = {d->channels, d->height, d->width, d->dim};
    const char *name[4] = {"channels", "height", "width", "features"};
    for (int i = 0; i < 4; i++) {
        if (*have[i] == 0) *have[i] = want[i];
        if (*have[i] != want[i])
            return moe_error(MOE_ERR_INVALID,
                             "model.input.%s = %d, but data.source \"%s\" gives %d; set it to %d "
                             "or 0 (taken from the data)",
                             name[i], *have[i], cfg->data.source, want[i], want[i]);
    }
    if (mc->n_classes == 0) mc->n_classes = d->n_classes;
    if (mc->n_classes != d->n_classes)
        return moe_error(MOE_ERR_INVALID,
                         "model.n_classes = %d, but the data has %d classes; set it to %d or 0",
                         mc->n_classes, d->n_classes, d->n_classes);
    if (cfg->train.task == MOE_TASK_DISTRIBUTION && !d->soft)
        return moe_error(MOE_ERR_INVALID, "train.task \"distribution\" needs soft labels: name "
                                          "the probability columns in data.prob_columns");
    if (cfg->train.task == MOE_TASK_CLASSIFY && d->soft)
        return moe_error(MOE_ERR_INVALID, "data.prob_columns gives soft labels: use train.task "
                                          "\"distribution\" (or clear data.prob_columns)");
    return MOE_OK;
}

moe_status dense_init(train_task *t, moe_run_config *cfg) {
    t->dense = 1;
    moe_status st = moe_dataset_load(&t->ds, &cfg->data, cfg->train.seed);
    if (st != MOE_OK) return st;
    const moe_dataset *tr = &t->ds.train;
    if (tr->n < 1 || t->ds.val.n < 1)
        return moe_error(MOE_ERR_INVALID,
                         "data: the training split has %d examples and the validation split "
                         "%d; both need at least one (data.val_fraction)",
                         tr->n, t->ds.val.n);
    if ((st = fit_model(cfg, tr)) != MOE_OK) return st;
    t->dense_B = cfg->train.batch_size < tr->n ? cfg->train.batch_size : tr->n;
    t->eval_B = t->dense_B > 256 ? t->dense_B : 256;
    t->steps_per_epoch = (tr->n + t->dense_B - 1) / t->dense_B;
    size_t B = (size_t)t->eval_B, C = (size_t)tr->n_classes;
    t->fx = malloc(B * (size_t)tr->dim * sizeof *t->fx);
    t->fsoft = malloc(B * C * sizeof *t->fsoft);
    t->fw = malloc(B * sizeof *t->fw);
    t->perm = malloc((size_t)tr->n * sizeof *t->perm);
    free(t->labels);
    t->labels = malloc(B * sizeof *t->labels);
    if (!t->fx || !t->fsoft || !t->fw || !t->perm || !t->labels)
        return moe_error(MOE_ERR_NOMEM, "train: out of memory for %d x %d batches", t->eval_B,
                         tr->dim);
    t->perm_epoch = -1;
    return MOE_OK;
}

void dense_free(train_task *t) {
    moe_dataset_splits_free(&t->ds);
    moe_expert_analysis_free(&t->analysis);
    free(t->fx);
    free(t->fsoft);
    free(t->fw);
    free(t->perm);
    free(t->probe);
    free(t->probe_label);
}

/* The order of epoch e: a Fisher-Yates shuffle seeded by the run seed and e. */
static void shuffle_epoch(train_task *t, long e) {
    int n = t->ds.train.n;
    moe_rng rng;
    moe_rng_seed(&rng, t->cfg->train.seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(e + 1)));
    for (int i = 0; i < n; i++) t->perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)moe_rng_below(&rng, (uint32_t)i + 1);
        int tmp = t->perm[i];
        t->perm[i] = t->perm[j];
        t->perm[j] = tmp;
    }
    t->perm_epoch = e;
}

/* B examples idx of split d into the batch. */
static void fill_batch(train_task *t, const moe_dataset *d, const int *idx, int B) {
    moe_dataset_gather(d, idx, B, t->fx, t->labels, d->soft ? t->fsoft : NULL, t->fw);
    t->batch = (moe_batch){.labels = d->soft ? NULL : t->labels,
                           .B = B,
                           .T = 1,
                           .x = t->fx,
                           .soft = d->soft ? t->fsoft : NULL,
                           .weights = d->weights ? t->fw : NULL};
    t->real_tokens = B;
}

/* The last batch of an epoch holds what is left (as PyTorch's DataLoader). */
const moe_batch *dense_train_batch(train_task *t, moe_rng *rng) {
    const moe_dataset *d = &t->ds.train;
    long e = t->next_step / t->steps_per_epoch;
    int j = (int)(t->next_step % t->steps_per_epoch);
    t->next_step++;
    if (e != t->perm_epoch) shuffle_epoch(t, e);
    int start = j * t->dense_B;
    int B = d->n - start < t->dense_B ? d->n - start : t->dense_B;
    fill_batch(t, d, t->perm + start, B);
    const moe_data_config *dc = &t->cfg->data;
    if (d->channels > 0 && (dc->augment_pad > 0 || dc->augment_flip)) {
        /* padding is a black pixel, as it reads after normalisation */
        float fill = moe_dataset_black_value(&t->ds);
        moe_image_augment(t->fx, B, d->channels, d->height, d->width, dc->augment_pad,
                          dc->augment_flip, fill, rng);
    }
    return &t->batch;
}

static int argmax(const moe_real *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* Each expert's probability of the true class for the first examples of a
 * split (the report's parallel coordinates): softmax of its class scores
 * (logits, or log-probabilities whose softmax is the distribution itself). */
static void probe_rows(train_task *t, const moe_real *scores, int E, int B, int C) {
    for (int b = 0; b < B && t->probe_n < t->probe_cap; b++, t->probe_n++) {
        int y = t->labels[b];
        for (int e = 0; e < E; e++) {
            const moe_real *s = scores + ((size_t)e * B + b) * C;
            double mx = s[0], z = 0;
            for (int c = 1; c < C; c++) mx = s[c] > mx ? s[c] : mx;
            for (int c = 0; c < C; c++) z += exp(s[c] - mx);
            t->probe[(size_t)t->probe_n * E + e] = (float)(exp(s[y] - mx) / z);
        }
        t->probe_label[t->probe_n] = y;
    }
}

/* The expert analysis and gate sparsity of one forward. */
static void observe_experts(train_task *t, const moe_model *m, int B) {
    const moe_real *scores, *gates;
    if (t->analysis.n_experts > 0 && moe_model_expert_outputs(m, &scores, &gates) > 0) {
        moe_expert_analysis_add(&t->analysis, scores, gates, t->labels, B);
        probe_rows(t, scores, t->analysis.n_experts, B, t->analysis.n_classes);
    }
    int L = moe_model_channel_gates(m, 0, NULL, NULL, NULL);
    for (int l = 0; l < L; l++) {
        const moe_real *g;
        int C;
        double fpc;
        moe_model_channel_gates(m, l, &g, &C, &fpc);
        moe_gate_sparsity_add(&t->gates, l, g, B, C, fpc);
    }
}

moe_status dense_evaluate(train_task *t, int split, moe_model *m, moe_arena *arena,
                          moe_confusion *cm, task_eval *out) {
    const moe_dataset *d = split == 2 ? &t->ds.test : &t->ds.val;
    const int C = d->n_classes;
    moe_expert_analysis_free(&t->analysis);
    moe_gate_sparsity_init(&t->gates);
    const moe_real *scores, *gates;
    int E = moe_model_expert_outputs(m, &scores, &gates);
    moe_status st = MOE_OK;
    if (E > 0 && (st = moe_expert_analysis_init(&t->analysis, E, C)) != MOE_OK) return st;
    t->probe_n = 0;
    if (E > 0 && !t->probe) {
        t->probe_cap = t->cfg->obs.probe_sample;
        t->probe = malloc(((size_t)t->probe_cap * E + 1) * sizeof *t->probe);
        t->probe_label = malloc(((size_t)t->probe_cap + 1) * sizeof *t->probe_label);
        if (!t->probe || !t->probe_label) return moe_error(MOE_ERR_NOMEM, "eval: out of memory");
    }
    double loss_sum = 0, weight_sum = 0;
    long right = 0;
    int idx[t->eval_B];
    for (int i0 = 0; i0 < d->n && st == MOE_OK; i0 += t->eval_B) {
        int B = d->n - i0 < t->eval_B ? d->n - i0 : t->eval_B;
        for (int b = 0; b < B; b++) idx[b] = i0 + b;
        fill_batch(t, d, idx, B);
        double loss = 0;
        moe_arena_reset(arena);
        st = moe_model_forward_batch(m, &t->batch, 0, NULL, arena, &loss, NULL);
        if (st != MOE_OK) break;
        /* the model's loss is a (weighted) mean over the batch: weigh batches alike */
        double w = B;
        if (d->weights) {
            w = 0;
            for (int b = 0; b < B; b++) w += t->fw[b];
        }
        loss_sum += loss * w;
        weight_sum += w;
        const moe_real *lg = moe_model_class_logits(m);
        for (int b = 0; b < B; b++) {
            int pred = argmax(lg + (size_t)b * C, C);
            right += pred == t->labels[b];
            if (cm) moe_confusion_add(cm, t->labels[b], pred);
        }
        observe_experts(t, m, B);
    }
    out->loss = weight_sum > 0 ? loss_sum / weight_sum : NAN;
    out->accuracy = d->n > 0 ? (double)right / d->n : NAN;
    out->macro_f1 = NAN;
    return st;
}

moe_batch dense_val_rows(train_task *t, int i0, int B) {
    const moe_dataset *d = &t->ds.val;
    if (B > t->eval_B) B = t->eval_B;
    int idx[B];
    for (int b = 0; b < B; b++) idx[b] = (i0 + b) % d->n;
    fill_batch(t, d, idx, B);
    moe_batch b = t->batch;
    b.labels = NULL;
    b.soft = NULL;
    b.weights = NULL;
    return b;
}
