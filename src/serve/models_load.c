/* One served model from a checkpoint folder: the model config and the run
 * config it was trained with (train.json, or the run directory's
 * config.json), the model built and its tensors loaded, the router
 * temperature it was trained to, its tokenizer (encoders), class names and,
 * for the dense families, the training split's normalisation (recomputed
 * by reloading the run's data set as moe eval does). Library code: no CLI. */
#include "serve/models_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_file(const char *dir, const char *name) {
    char p[PATH_MAX];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p) return 0;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int serve_checkpoint_dir(const char *path, char *out, size_t cap) {
    if (is_file(path, "config.json") && is_file(path, "model.safetensors")) {
        snprintf(out, cap, "%s", path);
        return 1;
    }
    char best[PATH_MAX];
    if (snprintf(best, sizeof best, "%s/checkpoints/best", path) >= (int)sizeof best) return 0;
    if (is_file(best, "config.json") && is_file(best, "model.safetensors")) {
        snprintf(out, cap, "%s", best);
        return 1;
    }
    return 0;
}

/* The run config: the copy in train.json, else <run>/config.json when the
 * checkpoint sits in a run directory, else the defaults (*found = 0). */
static moe_status read_run_config(const char *ckpt, moe_run_config *run, int *found) {
    moe_config_defaults(run);
    *found = 0;
    char *stored = NULL;
    moe_status st = moe_checkpoint_read_run_config(ckpt, &stored);
    if (st) return st;
    if (stored) {
        st = moe_config_from_json(run, stored, ckpt);
        free(stored);
        *found = st == MOE_OK;
        return st;
    }
    char real[PATH_MAX], path[PATH_MAX + 32];
    if (!realpath(ckpt, real)) return MOE_OK;
    snprintf(path, sizeof path, "%s/../../config.json", real);
    if (access(path, R_OK) != 0) return MOE_OK;
    st = moe_config_load(run, path);
    *found = st == MOE_OK;
    return st;
}

static char **names_copy(const char *const *names, int n) {
    char **out = calloc((size_t)n, sizeof *out);
    for (int i = 0; out && i < n; i++) out[i] = strdup(names[i] ? names[i] : "");
    return out;
}

/* Dense families: mean/std of the training split, from the run's data set
 * reloaded with its seed (the split and its statistics are deterministic).
 * When the data is not there, rows must come normalised: rows_normalized
 * stays 0 and /v1/models says so. */
static void dense_inputs(serve_model *sm, const moe_run_config *run, int have_run) {
    const moe_input_config *in = &sm->mc->input;
    sm->n_features = in->features > 0 ? in->features : in->channels * in->height * in->width;
    sm->rows_normalized = !have_run || !run->data.normalize;
    if (!have_run) return;
    moe_dataset_splits ds;
    memset(&ds, 0, sizeof ds);
    if (moe_dataset_load(&ds, &run->data, run->train.seed) != MOE_OK) return;
    if (ds.class_names && ds.train.n_classes == sm->n_classes)
        sm->class_names = names_copy((const char *const *)ds.class_names, sm->n_classes);
    int n_stats = ds.train.channels > 0 ? ds.train.channels : ds.train.dim;
    if (ds.mean && ds.std && ds.train.dim == sm->n_features && n_stats > 0) {
        sm->mean = malloc((size_t)n_stats * sizeof *sm->mean);
        sm->std = malloc((size_t)n_stats * sizeof *sm->std);
        if (sm->mean && sm->std) {
            memcpy(sm->mean, ds.mean, (size_t)n_stats * sizeof *sm->mean);
            memcpy(sm->std, ds.std, (size_t)n_stats * sizeof *sm->std);
            sm->norm_channels = ds.train.channels > 0 ? n_stats : 0;
            sm->rows_normalized = 1;
        } else { /* both or neither: the forward tests mean and divides by std */
            free(sm->mean);
            free(sm->std);
            sm->mean = sm->std = NULL;
        }
    }
    moe_dataset_splits_free(&ds);
}

static moe_status text_inputs(serve_model *sm, const moe_run_config *run, const char *ckpt) {
    if (sm->decoder) return MOE_OK; /* byte-level */
    moe_status st = moe_text_tokenizer(run->data.tokenizer, &sm->tok);
    if (st)
        return moe_error(st, "%s: cannot load its tokenizer \"%s\" (data.tokenizer): %s", ckpt,
                         run->data.tokenizer, moe_last_error());
    if (moe_tokenizer_vocab_size(sm->tok) > sm->mc->vocab_size)
        return moe_error(MOE_ERR_INVALID,
                         "%s: tokenizer \"%s\" has %d ids but the model only %d: not the run's "
                         "tokenizer",
                         ckpt, run->data.tokenizer, moe_tokenizer_vocab_size(sm->tok),
                         sm->mc->vocab_size);
    sm->cls_id = moe_tokenizer_special(sm->tok, MOE_TOK_CLS);
    sm->pad_id = moe_tokenizer_special(sm->tok, MOE_TOK_PAD);
    sm->mask_id = moe_tokenizer_special(sm->tok, MOE_TOK_MASK);
    if (sm->n_classes == 2 && strcmp(run->data.source, "spam") == 0) {
        const char *names[2] = {moe_mail_label_name(MOE_MAIL_HAM),
                                moe_mail_label_name(MOE_MAIL_SPAM)};
        sm->class_names = names_copy(names, 2);
    }
    return MOE_OK;
}

moe_status serve_model_load(serve_model **out, const char *name, const char *ckpt,
                            int fallback_expert) {
    *out = NULL;
    moe_run_config run;
    int have_run = 0;
    moe_status st = read_run_config(ckpt, &run, &have_run);
    if (st) return moe_error(st, "%s: bad run config: %s", ckpt, moe_last_error());
    moe_model_config mc = run.model;
    char *json = NULL;
    if ((st = moe_checkpoint_read_config(ckpt, &json))) return st;
    st = moe_model_config_from_json(&mc, json, ckpt);
    free(json);
    if (st) return st;
    const int transformer = mc.family == MOE_FAMILY_TRANSFORMER;
    const int routed = transformer ? mc.moe_every > 0 : mc.family == MOE_FAMILY_MLP_MOE;
    /* Served transformers run dropless: with a capacity, whether a token's
     * pair is kept depends on the other tokens of the forward, so an answer
     * would depend on what it was batched with. */
    mc.moe.capacity_factor = 0;
    mc.moe.fallback_expert = -1;
    if (fallback_expert >= 0 && routed) {
        if (fallback_expert >= mc.moe.n_experts)
            return moe_error(MOE_ERR_INVALID,
                             "--fallback-expert %d: model %s has only %d experts (0..%d)",
                             fallback_expert, name, mc.moe.n_experts, mc.moe.n_experts - 1);
        mc.moe.fallback_expert = fallback_expert;
    }
    serve_model *sm = calloc(1, sizeof *sm);
    if (!sm) return moe_error(MOE_ERR_NOMEM, "serve: out of memory loading %s", name);
    snprintf(sm->name, sizeof sm->name, "%s", name);
    moe_arena_init(&sm->arena);
    pthread_mutex_init(&sm->mu, NULL);
    pthread_cond_init(&sm->cv, NULL);
    *out = sm;
    if ((st = moe_model_create(&sm->model, &mc, 0))) return st;
    st = moe_checkpoint_load(ckpt, moe_model_table(sm->model), moe_model_params(sm->model), NULL,
                             NULL);
    if (st) return st;
    moe_model_set_phase(sm->model, moe_model_final_temperature(&mc), 0);
    sm->mc = moe_model_config_of(sm->model);
    sm->family = moe_model_family_name(sm->model);
    sm->transformer = transformer;
    sm->n_classes = mc.n_classes;
    sm->decoder = transformer && !mc.bidirectional && mc.n_classes == 0;
    sm->can_generate = sm->decoder && !mc.post_ln;
    if (transformer)
        sm->task = mc.n_classes > 0   ? MOE_TASK_CLASSIFY
                   : mc.bidirectional ? MOE_TASK_MLM
                                      : MOE_TASK_LM;
    else
        sm->task = have_run && run.train.task == MOE_TASK_DISTRIBUTION ? MOE_TASK_DISTRIBUTION
                                                                       : MOE_TASK_CLASSIFY;
    if (transformer) return text_inputs(sm, &run, ckpt);
    dense_inputs(sm, &run, have_run);
    if (sm->n_features < 1)
        return moe_error(MOE_ERR_INVALID, "%s: the model config has no input size (model.input)",
                         ckpt);
    return MOE_OK;
}

void serve_model_free(serve_model *sm) {
    if (!sm) return;
    moe_model_free(sm->model);
    moe_tokenizer_free(sm->tok);
    for (int i = 0; sm->class_names && i < sm->n_classes; i++) free(sm->class_names[i]);
    free(sm->class_names);
    free(sm->mean);
    free(sm->std);
    moe_arena_free(&sm->arena);
    pthread_mutex_destroy(&sm->mu);
    pthread_cond_destroy(&sm->cv);
    free(sm);
}
