/* Cross-field checks of a run configuration. Single values were range-checked
 * when they were read; here fields are checked against each other, and each
 * message names the fields and says what to change. */
#include "config_table.h"

#include <string.h>

#define FAIL(...) return moe_error(MOE_ERR_INVALID, "config: " __VA_ARGS__)

static moe_status check_ranges(const moe_run_config *c) {
    /* a struct filled by hand never went through the table's range checks */
    for (int i = 0; i < cfg_n_fields; i++) {
        const cfg_field *f = &cfg_fields[i];
        cJSON *v = cfg_value_json(c, f);
        if (!v) return moe_error(MOE_ERR_NOMEM, "config: out of memory while validating");
        moe_run_config tmp = *c;
        moe_status st = cfg_assign(&tmp, f, v, "(validate)");
        cJSON_Delete(v);
        if (st != MOE_OK) return st;
    }
    return MOE_OK;
}

/* The seed families: what they read and their shapes. */
static moe_status check_family(const moe_run_config *c) {
    const moe_model_config *m = &c->model;
    const char *src = c->data.source;
    int images = strcmp(src, "fashion-mnist") == 0, table = strcmp(src, "csv") == 0;
    const char *fam = m->family == MOE_FAMILY_CNN_MOE   ? "cnn_moe"
                      : m->family == MOE_FAMILY_DEEPMOE ? "deepmoe"
                                                        : "mlp_moe";
    if (m->family != MOE_FAMILY_MLP_MOE && !images)
        FAIL("model.family \"%s\" is a CNN: it needs images, data.source \"fashion-mnist\" (it "
             "is \"%s\")",
             fam, src);
    if (m->family == MOE_FAMILY_MLP_MOE && !images && !table)
        FAIL("model.family \"mlp_moe\" reads feature rows: data.source \"csv\" or "
             "\"fashion-mnist\" (it is \"%s\")",
             src);
    if (c->train.task != MOE_TASK_CLASSIFY && c->train.task != MOE_TASK_DISTRIBUTION)
        FAIL("model.family \"%s\" is a classifier: set train.task to \"classify\" (or "
             "\"distribution\" for soft labels)",
             fam);
    if (c->train.task == MOE_TASK_DISTRIBUTION && m->family != MOE_FAMILY_MLP_MOE)
        FAIL("train.task \"distribution\" needs model.family \"mlp_moe\" (its output is a "
             "distribution)");
    if (c->train.task == MOE_TASK_DISTRIBUTION && !c->data.prob_columns[0])
        FAIL("train.task \"distribution\" needs soft labels: list the probability columns in "
             "data.prob_columns");
    if (m->family != MOE_FAMILY_DEEPMOE && m->moe.top_k > m->moe.n_experts)
        FAIL("model.moe.top_k (%d) must not exceed model.moe.n_experts (%d)", m->moe.top_k,
             m->moe.n_experts);
    if (m->family == MOE_FAMILY_DEEPMOE && m->deepmoe.freeze_epochs > 0 &&
        m->deepmoe.freeze_epochs >= c->train.epochs)
        FAIL("model.deepmoe.freeze_epochs (%d) counts the last epochs of train.epochs (%d): set "
             "train.epochs above it",
             m->deepmoe.freeze_epochs, c->train.epochs);
    if (m->temperature_schedule != MOE_TEMP_CONSTANT && m->temperature_end <= 0)
        FAIL("model.temperature_end must be > 0");
    return MOE_OK;
}

static moe_status check_model(const moe_model_config *m) {
    if (m->family != MOE_FAMILY_TRANSFORMER) return MOE_OK; /* check_family */
    if (m->d_model % m->n_head != 0)
        FAIL("model.d_model (%d) must be divisible by model.n_head (%d); change one of them "
             "(head size = d_model / n_head)",
             m->d_model, m->n_head);
    if (m->n_head % m->n_kv_head != 0)
        FAIL("model.n_head (%d) must be divisible by model.n_kv_head (%d) (each key/value head "
             "serves n_head / n_kv_head query heads); use n_kv_head = n_head for plain attention",
             m->n_head, m->n_kv_head);
    if (m->pos == MOE_POS_ROPE && (m->d_model / m->n_head) % 2 != 0)
        FAIL("model.pos = \"rope\" needs an even head size, but model.d_model / model.n_head = "
             "%d / %d = %d; change d_model or n_head",
             m->d_model, m->n_head, m->d_model / m->n_head);
    if (m->moe_every > m->n_layer)
        FAIL("model.moe_every (%d) is larger than model.n_layer (%d), so no layer would be MoE; "
             "set model.moe_every to 0 for a dense model or at most n_layer",
             m->moe_every, m->n_layer);
    if (m->moe.fallback_expert >= m->moe.n_experts)
        FAIL("model.moe.fallback_expert (%d) must be an expert below model.moe.n_experts (%d), "
             "or -1 (off)",
             m->moe.fallback_expert, m->moe.n_experts);
    if (m->moe_every > 0) {
        const moe_layer_config *e = &m->moe;
        if (e->top_k > e->n_experts)
            FAIL("model.moe.top_k (%d) must not exceed model.moe.n_experts (%d); lower top_k or "
                 "add experts",
                 e->top_k, e->n_experts);
        if (e->d_model != m->d_model)
            FAIL("model.moe.d_model (%d) differs from model.d_model (%d); it is copied from "
                 "model.d_model when a config is read",
                 e->d_model, m->d_model);
        if (e->score == MOE_SCORE_SIGMOID && e->topk_before_softmax)
            FAIL("model.moe.topk_before_softmax applies to softmax scores only; set it to false "
                 "or model.moe.score to \"softmax\"");
    }
    return MOE_OK;
}

static moe_status check_train(const moe_run_config *c) {
    const moe_train_config *t = &c->train;
    if (t->seq_len > c->model.max_seq_len)
        FAIL("train.seq_len (%d) exceeds model.max_seq_len (%d); shorten seq_len or raise "
             "max_seq_len",
             t->seq_len, c->model.max_seq_len);
    if (t->epochs == 0 && t->sched.warmup_steps > t->steps)
        FAIL("train.sched.warmup_steps (%d) exceeds train.steps (%d); shorten the warmup",
             t->sched.warmup_steps, t->steps);
    if ((t->sched.kind == MOE_SCHED_LINEAR || t->sched.kind == MOE_SCHED_COSINE) &&
        t->sched.min_lr > t->optim.lr)
        FAIL("train.sched.min_lr (%g) is above train.optim.lr (%g); the schedule decays from lr "
             "down to min_lr",
             (double)t->sched.min_lr, (double)t->optim.lr);
    for (int i = 1; i < t->sched.n_milestones; i++)
        if (t->sched.milestones[i] <= t->sched.milestones[i - 1])
            FAIL("train.sched.milestones must be increasing, but %d follows %d",
                 t->sched.milestones[i], t->sched.milestones[i - 1]);
    const moe_optim_config *o = &t->optim;
    int adam = o->kind == MOE_OPT_ADAM || o->kind == MOE_OPT_ADAMW || o->kind == MOE_OPT_ADAMAX;
    if (adam && (o->beta1 >= 1 || o->beta2 >= 1))
        FAIL("train.optim.beta1 (%g) and beta2 (%g) must be below 1 for %s", (double)o->beta1,
             (double)o->beta2, o->kind == MOE_OPT_ADAMAX ? "adamax" : "adam/adamw");
    if (o->nesterov && (o->kind != MOE_OPT_SGD || o->momentum <= 0))
        FAIL("train.optim.nesterov needs train.optim.kind \"sgd\" and train.optim.momentum > 0");
    if (o->kind == MOE_OPT_ADADELTA && o->rho >= 1)
        FAIL("train.optim.rho (%g) must be below 1 for adadelta", (double)o->rho);
    if (t->epochs > 0 && t->eval_every > t->epochs)
        FAIL("train.eval_every (%d) counts epochs when train.epochs is set (%d): no evaluation "
             "would happen before the end; set train.eval_every to at most %d (0 = every epoch)",
             t->eval_every, t->epochs, t->epochs);
    if (t->early_stop_metric[0] && t->eval_every == 0 && t->epochs == 0)
        FAIL("train.early_stop_metric \"%s\" needs evaluations during training; set "
             "train.eval_every > 0",
             t->early_stop_metric);
    return MOE_OK;
}

/* The task, the data and the model must fit together. */
static moe_status check_task(const moe_run_config *c) {
    const moe_data_config *d = &c->data;
    if (c->model.family != MOE_FAMILY_TRANSFORMER) return check_family(c);
    if (strcmp(d->source, "fashion-mnist") == 0 || strcmp(d->source, "csv") == 0)
        FAIL("data.source \"%s\" holds images or table rows: set model.family to \"cnn_moe\", "
             "\"deepmoe\" or \"mlp_moe\" (the transformer reads tokens)",
             d->source);
    int spam = strcmp(d->source, "spam") == 0, bidir = c->model.bidirectional;
    switch (c->train.task) {
    case MOE_TASK_LM:
        if (spam)
            FAIL("data.source \"spam\" holds labelled mails for train.task \"mlm\" or "
                 "\"classify\", not \"lm\"");
        if (bidir)
            FAIL("train.task \"lm\" predicts the next token: it needs a causal decoder "
                 "(model.bidirectional = false)");
        if (c->model.n_classes > 0)
            FAIL("train.task \"lm\" has no labels: model.n_classes must be 0 (it is %d)",
                 c->model.n_classes);
        break;
    case MOE_TASK_MLM:
        if (c->model.n_classes > 0)
            FAIL("train.task \"mlm\" trains the LM head: set model.n_classes=0 (a classifier "
                 "fine-tuned later with train.init_from gets a fresh head)");
        /* fall through */
    case MOE_TASK_CLASSIFY:
        if (!spam)
            FAIL("train.task \"%s\" needs labelled text: data.source \"spam\" (the "
                 "SpamAssassin mails)",
                 c->train.task == MOE_TASK_MLM ? "mlm" : "classify");
        if (!bidir)
            FAIL("train.task \"%s\" needs an encoder: set model.bidirectional=true",
                 c->train.task == MOE_TASK_MLM ? "mlm" : "classify");
        if (c->train.seq_len < 2)
            FAIL("train.seq_len must be at least 2 for encoder tasks ([CLS] and a token)");
        break;
    case MOE_TASK_DISTRIBUTION:
        FAIL("train.task \"distribution\" needs model.family \"mlp_moe\" and a table with "
             "probability columns (data.source \"csv\", data.prob_columns)");
    }
    return MOE_OK;
}

static moe_status check_data(const moe_run_config *c) {
    const moe_data_config *d = &c->data;
    moe_status st = check_task(c);
    if (st != MOE_OK) return st;
    if (strcmp(d->source, "bible-kjv") == 0 && c->model.vocab_size != 256)
        FAIL("data.source \"bible-kjv\" is byte-level text, so model.vocab_size must be 256 "
             "(it is %d)",
             c->model.vocab_size);
    if (strcmp(d->source, "csv") == 0 && d->path[0] == '\0')
        FAIL("data.source \"csv\" needs data.path, the table to train on");
    if (c->train.early_stop_metric[0] && strcmp(c->train.early_stop_metric, "val_accuracy") == 0 &&
        (c->train.task == MOE_TASK_LM))
        FAIL("train.early_stop_metric \"val_accuracy\" needs a task with accuracy (mlm, classify, "
             "distribution), not \"lm\"");
    if (strcmp(d->source, "file") == 0 && d->path[0] == '\0')
        FAIL("data.source \"file\" needs data.path, the text file to train on");
    if (c->train.eval_batches > 0 && d->val_fraction <= 0)
        FAIL("train.eval_batches (%d) needs held-out text; set data.val_fraction > 0 or "
             "train.eval_batches to 0",
             c->train.eval_batches);
    if (c->name[0] == '\0' || strchr(c->name, '/'))
        FAIL("name \"%s\" must be non-empty and contain no '/' (it names the run directory)",
             c->name);
    if (c->out_dir[0] == '\0') FAIL("out_dir must not be empty (use \".\" for here)");
    return MOE_OK;
}

moe_status moe_config_validate(const moe_run_config *c) {
    moe_status st = check_ranges(c);
    if (st == MOE_OK) st = check_model(&c->model);
    if (st == MOE_OK) st = check_train(c);
    if (st == MOE_OK) st = check_data(c);
    return st;
}
