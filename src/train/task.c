/* The training tasks: their data, batches and evaluations. */
#include "train/task.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static moe_status init_text(train_task *t, moe_run_config *cfg) {
    moe_status st = moe_mail_corpus_load(&t->mail, cfg->data.path[0] ? cfg->data.path : NULL);
    if (st != MOE_OK) return st;
    if ((st = moe_text_tokenizer(cfg->data.tokenizer, &t->tok)) != MOE_OK) return st;
    /* a mail longer than the context is cut: [CLS] + seq_len - 1 tokens */
    st = moe_text_data_from_mail(&t->text, &t->mail, t->tok, cfg->train.seq_len - 1);
    if (st != MOE_OK) return st;
    moe_model_config *mc = &cfg->model;
    if (mc->vocab_size != t->text.vocab_size) {
        if (mc->vocab_size != 256)
            return moe_error(MOE_ERR_INVALID,
                             "model.vocab_size = %d, but the tokenizer %s has %d ids; set "
                             "model.vocab_size=%d (or leave it at its default to take it)",
                             mc->vocab_size, cfg->data.tokenizer, t->text.vocab_size,
                             t->text.vocab_size);
        mc->vocab_size = t->text.vocab_size; /* the default: take the tokenizer's */
    }
    if (t->kind == MOE_TASK_CLASSIFY) {
        if (mc->n_classes == 0) mc->n_classes = t->text.n_classes;
        if (mc->n_classes != t->text.n_classes)
            return moe_error(MOE_ERR_INVALID,
                             "model.n_classes = %d, but data.source spam has %d classes (ham, "
                             "spam)",
                             mc->n_classes, t->text.n_classes);
    }
    return MOE_OK;
}

moe_status task_init(train_task *t, moe_run_config *cfg) {
    memset(t, 0, sizeof *t);
    t->kind = cfg->train.task;
    t->cfg = cfg;
    t->B = cfg->train.batch_size;
    t->T = cfg->train.seq_len;
    size_t N = (size_t)t->B * t->T;
    t->x = malloc(N * sizeof *t->x);
    t->y = malloc(N * sizeof *t->y);
    t->labels = malloc((size_t)t->B * sizeof *t->labels);
    t->pad = malloc(N);
    if (!t->x || !t->y || !t->labels || !t->pad)
        return moe_error(MOE_ERR_NOMEM, "train: out of memory");
    if (t->kind == MOE_TASK_LM) return moe_corpus_load(&t->corpus, &cfg->data, t->T);
    moe_status st =
        cfg->model.family != MOE_FAMILY_TRANSFORMER ? dense_init(t, cfg) : init_text(t, cfg);
    if (st != MOE_OK) return st;
    if (t->dense) {
        t->class_names = (const char *const *)t->ds.class_names;
    } else if (t->kind == MOE_TASK_CLASSIFY) {
        for (int c = 0; c < t->text.n_classes && c < MOE_TEXT_MAX_CLASSES; c++)
            t->text_names[c] = t->text.class_name[c];
        t->class_names = t->text_names;
    }
    return MOE_OK;
}

void task_free(train_task *t) {
    if (t->dense) dense_free(t);
    moe_corpus_free(&t->corpus);
    moe_text_data_free(&t->text);
    moe_mail_corpus_free(&t->mail);
    moe_tokenizer_free(t->tok);
    moe_confusion_free(&t->test);
    free(t->x);
    free(t->y);
    free(t->labels);
    free(t->pad);
    memset(t, 0, sizeof *t);
}

/* Rows i0.. of a split into the batch (wrapping); labels from examples. */
static void text_rows(train_task *t, const moe_text_set *s, const size_t *idx, int B) {
    t->real_tokens = 0;
    for (int b = 0; b < B; b++) {
        const moe_text_example *ex = &s->ex[idx[b]];
        moe_text_row(&t->text, ex, t->T, t->x + (size_t)b * t->T, t->pad + (size_t)b * t->T);
        t->labels[b] = ex->label;
        for (int j = 0; j < t->T; j++) t->real_tokens += t->pad[(size_t)b * t->T + j];
    }
}

/* Masked-LM corruption of the rows in the batch buffers. */
static void mask_rows(train_task *t, int B, moe_rng *rng) {
    const moe_train_config *c = &t->cfg->train;
    moe_mlm_mask(t->x, t->y, t->pad, (long)B * t->T, c->mlm_prob,
                 c->mlm_all_mask ? MOE_MLM_ALL_MASK : MOE_MLM_BERT, t->text.mask_id,
                 t->text.n_regular, rng);
}

/* The batch for B rows of the buffers, as the task needs it. */
static void set_batch(train_task *t, int B) {
    int mlm = t->kind == MOE_TASK_MLM;
    t->batch = (moe_batch){
        t->x, mlm ? t->y : NULL, mlm ? NULL : t->labels, t->pad, B, t->T, NULL, NULL, NULL};
}

const moe_batch *task_train_batch(train_task *t, moe_rng *rng) {
    if (t->dense) return dense_train_batch(t, rng);
    int B = t->B, T = t->T;
    if (t->kind == MOE_TASK_LM) {
        moe_corpus_train_batch(&t->corpus, B, T, rng, t->x, t->y);
        t->batch = (moe_batch){t->x, t->y, NULL, NULL, B, T, NULL, NULL, NULL};
        t->real_tokens = (long)B * T;
        return &t->batch;
    }
    const moe_text_set *s = &t->text.split[MOE_TEXT_TRAIN];
    size_t idx[B];
    for (int b = 0; b < B; b++) idx[b] = moe_rng_below(rng, (uint32_t)s->n);
    text_rows(t, s, idx, B);
    if (t->kind == MOE_TASK_MLM) mask_rows(t, B, rng);
    set_batch(t, B);
    return &t->batch;
}

static int argmax(const moe_real *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* Every example of a split (mlm: with masks drawn from a fixed seed, so
 * evaluations compare). cm, when given, collects classify predictions. */
static moe_status eval_split(train_task *t, int split, moe_model *m, moe_arena *arena,
                             moe_confusion *cm, task_eval *out) {
    const moe_text_set *s = &t->text.split[split];
    int V = moe_model_config_of(m)->vocab_size, C = t->text.n_classes;
    moe_rng rng;
    moe_rng_seed(&rng, 0xe7a1);
    double loss_sum = 0;
    long batches = 0, right = 0, counted = 0;
    moe_status st = MOE_OK;
    for (size_t i0 = 0; i0 < s->n && st == MOE_OK; i0 += (size_t)t->B) {
        int B = (int)(s->n - i0 < (size_t)t->B ? s->n - i0 : (size_t)t->B);
        size_t idx[B];
        for (int b = 0; b < B; b++) idx[b] = i0 + (size_t)b;
        text_rows(t, s, idx, B);
        if (t->kind == MOE_TASK_MLM) mask_rows(t, B, &rng);
        set_batch(t, B);
        double loss = 0;
        moe_arena_reset(arena);
        st = moe_model_forward_batch(m, &t->batch, 0, NULL, arena, &loss, NULL);
        if (st != MOE_OK) break;
        loss_sum += loss;
        batches++;
        if (t->kind == MOE_TASK_MLM) {
            const moe_real *lg = moe_model_logits(m);
            for (long j = 0; j < (long)B * t->T; j++) {
                if (t->y[j] < 0) continue;
                right += argmax(lg + (size_t)j * V, V) == t->y[j];
                counted++;
            }
        } else {
            const moe_real *lg = moe_model_class_logits(m);
            for (int b = 0; b < B; b++) {
                int pred = argmax(lg + (size_t)b * C, C);
                right += pred == t->labels[b];
                counted++;
                if (cm) moe_confusion_add(cm, t->labels[b], pred);
            }
        }
    }
    out->loss = batches ? loss_sum / batches : NAN;
    out->accuracy = counted ? (double)right / counted : NAN;
    out->macro_f1 = NAN;
    return st;
}

static moe_status eval_classify(train_task *t, int split, moe_model *m, moe_arena *arena,
                                moe_confusion *cm, task_eval *out) {
    int C = moe_model_config_of(m)->n_classes;
    moe_status st = moe_confusion_init(cm, C);
    if (st == MOE_OK)
        st = t->dense ? dense_evaluate(t, split == MOE_TEXT_TEST ? 2 : 1, m, arena, cm, out)
                      : eval_split(t, split, m, arena, cm, out);
    moe_classify_scores sc;
    if (st == MOE_OK && (st = moe_classify_report(cm, &sc)) == MOE_OK) {
        out->macro_f1 = sc.macro_f1;
        moe_classify_scores_free(&sc);
    }
    return st;
}

moe_status task_evaluate(train_task *t, moe_model *m, moe_arena *arena, task_eval *out) {
    const moe_train_config *c = &t->cfg->train;
    out->accuracy = out->macro_f1 = NAN;
    if (t->kind == MOE_TASK_LM)
        return moe_eval_lm(m, &t->corpus, c->batch_size, c->seq_len, c->eval_batches, arena,
                           &out->loss);
    if (t->kind == MOE_TASK_MLM) return eval_split(t, MOE_TEXT_VAL, m, arena, NULL, out);
    moe_confusion cm = {0};
    moe_status st = eval_classify(t, MOE_TEXT_VAL, m, arena, &cm, out);
    moe_confusion_free(&cm);
    return st;
}

moe_status task_test(train_task *t, moe_model *m, moe_arena *arena, task_eval *out) {
    out->loss = out->accuracy = out->macro_f1 = NAN;
    if (t->kind != MOE_TASK_CLASSIFY && t->kind != MOE_TASK_DISTRIBUTION) return MOE_OK;
    moe_confusion_free(&t->test);
    return eval_classify(t, MOE_TEXT_TEST, m, arena, &t->test, out);
}

double task_epoch(const train_task *t, long long examples) {
    if (t->dense) return (double)examples / (double)t->ds.train.n;
    if (t->kind == MOE_TASK_LM)
        return (double)examples * t->T / (double)(t->corpus.n_train ? t->corpus.n_train : 1);
    size_t n = t->text.split[MOE_TEXT_TRAIN].n;
    return (double)examples / (double)(n ? n : 1);
}

int task_steps_per_epoch(const train_task *t) {
    return t->dense ? t->steps_per_epoch : 0;
}
