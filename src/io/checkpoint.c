/* Checkpoint folders: saved whole into a temporary folder, then swapped in. */
#ifdef __linux__
#define _GNU_SOURCE /* renameat2 */
#endif
#include "moe/checkpoint.h"

#include "io/fsutil.h"
#include "io/st_internal.h"
#include "moe/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRAIN_FORMAT "libmoe-train-state"
#define TRAIN_VERSION 1

/* Tensor-name suffix of optimizer slot s (torch's names for Adam/AdamW). */
static void slot_suffix(char *buf, size_t cap, moe_optim_kind k, int s) {
    if ((k == MOE_OPT_ADAM || k == MOE_OPT_ADAMW) && s < 2)
        snprintf(buf, cap, "%s", s == 0 ? ".exp_avg" : ".exp_avg_sq");
    else
        snprintf(buf, cap, ".slot%d", s);
}

/* A table naming every (parameter, slot) view of the optimizer state, with
 * offsets into opt->state ([n_slots, n]). */
static moe_status optim_table(moe_param_table *ot, const moe_param_table *t, const moe_optim *o) {
    moe_params_init(ot);
    ot->tensors = calloc((size_t)(t->count * o->n_slots + 1), sizeof *ot->tensors);
    if (!ot->tensors) return moe_error(MOE_ERR_NOMEM, "out of memory naming optimizer state");
    ot->cap = t->count * o->n_slots + 1;
    for (int s = 0; s < o->n_slots; s++) {
        char suf[16];
        slot_suffix(suf, sizeof suf, o->cfg.kind, s);
        for (int i = 0; i < t->count; i++) {
            moe_tensor_info *ti = &ot->tensors[ot->count++];
            *ti = t->tensors[i];
            if ((size_t)snprintf(ti->name, sizeof ti->name, "%s%s", t->tensors[i].name, suf) >=
                sizeof ti->name) {
                moe_params_free(ot);
                return moe_error(MOE_ERR_INVALID, "tensor name %s%s is too long (max %d)",
                                 t->tensors[i].name, suf, MOE_MAX_NAME - 1);
            }
            ti->offset += (size_t)s * o->n;
        }
    }
    ot->total = (size_t)o->n_slots * o->n;
    return MOE_OK;
}

static void rng_hex(cJSON *arr, const moe_rng *r) {
    for (int i = 0; i < 4; i++) {
        char h[20];
        snprintf(h, sizeof h, "%016" PRIx64, r->s[i]);
        cJSON_AddItemToArray(arr, cJSON_CreateString(h));
    }
}

/* A double that JSON can hold; infinities and NaN as strings. */
static cJSON *json_double(double v) {
    if (isfinite(v)) return cJSON_CreateNumber(v);
    return cJSON_CreateString(isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

static char *train_json(const moe_optim *opt, const moe_train_state *st) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "format", TRAIN_FORMAT);
    cJSON_AddNumberToObject(r, "version", TRAIN_VERSION);
    if (st) {
        cJSON_AddNumberToObject(r, "step", (double)st->step);
        cJSON_AddNumberToObject(r, "tokens_seen", (double)st->tokens_seen);
        cJSON_AddItemToObject(r, "best_metric", json_double(st->best_metric));
        cJSON_AddNumberToObject(r, "bad_evals", st->bad_evals);
        rng_hex(cJSON_AddArrayToObject(r, "rng"), &st->rng);
        rng_hex(cJSON_AddArrayToObject(r, "data_rng"), &st->data_rng);
        if (st->run_config) cJSON_AddStringToObject(r, "run_config", st->run_config);
    }
    if (opt) {
        cJSON *o = cJSON_AddObjectToObject(r, "optimizer");
        cJSON_AddStringToObject(o, "kind", moe_optim_name(opt->cfg.kind));
        cJSON_AddNumberToObject(o, "step", (double)opt->step);
        cJSON_AddNumberToObject(o, "n", (double)opt->n);
        cJSON_AddNumberToObject(o, "n_slots", opt->n_slots);
        cJSON_AddNumberToObject(o, "lr", opt->cfg.lr);
    }
    char *text = cJSON_Print(r);
    cJSON_Delete(r);
    if (!text) moe_error(MOE_ERR_NOMEM, "out of memory writing train.json");
    return text;
}

/* Writes every file of the checkpoint into the folder tmp. */
static moe_status write_all(const char *tmp, const char *config, const moe_param_table *t,
                            const moe_real *params, const moe_optim *opt,
                            const moe_train_state *st) {
    moe_status s = MOE_OK;
    char *p = fs_printf("%s/config.json", tmp);
    if (!p) return MOE_ERR_NOMEM;
    s = fs_write_file(p, config, strlen(config));
    free(p);
    if (s != MOE_OK) return s;

    const char *meta[] = {"producer", "libmoe", NULL};
    p = fs_printf("%s/model.safetensors", tmp);
    s = p ? moe_st_save(p, t, params, meta) : MOE_ERR_NOMEM;
    free(p);
    if (s != MOE_OK) return s;

    if (opt && opt->n_slots > 0) {
        moe_param_table ot;
        s = optim_table(&ot, t, opt);
        if (s != MOE_OK) return s;
        const char *ometa[] = {"producer", "libmoe", "optimizer", moe_optim_name(opt->cfg.kind),
                               NULL};
        p = fs_printf("%s/optimizer.safetensors", tmp);
        s = p ? moe_st_save(p, &ot, opt->state, ometa) : MOE_ERR_NOMEM;
        free(p);
        moe_params_free(&ot);
        if (s != MOE_OK) return s;
    }

    char *text = train_json(opt, st);
    if (!text) return MOE_ERR_NOMEM;
    p = fs_printf("%s/train.json", tmp);
    s = p ? fs_write_file(p, text, strlen(text)) : MOE_ERR_NOMEM;
    free(p);
    free(text);
    if (s != MOE_OK) return s;
    return fs_sync_dir(tmp);
}

/* Puts tmp in place of dir. An existing dir is exchanged atomically where
 * the kernel can (renameat2), else moved aside to old first; either way the
 * previous checkpoint ends up at old, to be removed by the caller. */
static moe_status swap_in(const char *tmp, const char *dir, const char *old, int *have_old) {
    *have_old = 0;
    if (!fs_exists(dir)) {
        if (rename(tmp, dir) != 0)
            return moe_error(MOE_ERR_IO, "checkpoint %s: cannot rename %s into place: %s", dir, tmp,
                             strerror(errno));
        return MOE_OK;
    }
    if (!fs_is_dir(dir))
        return moe_error(MOE_ERR_IO,
                         "checkpoint %s: a file (not a folder) is in the way; move it away", dir);
#ifdef RENAME_EXCHANGE
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
        /* tmp now holds the previous checkpoint */
        if (rename(tmp, old) == 0)
            *have_old = 1;
        else
            fs_remove_tree(tmp);
        return MOE_OK;
    }
#endif
    if (rename(dir, old) != 0)
        return moe_error(MOE_ERR_IO, "checkpoint %s: cannot move the previous one aside: %s", dir,
                         strerror(errno));
    *have_old = 1;
    if (rename(tmp, dir) != 0) {
        int e = errno;
        if (rename(old, dir) == 0) *have_old = 0;
        return moe_error(MOE_ERR_IO, "checkpoint %s: cannot rename %s into place: %s", dir, tmp,
                         strerror(e));
    }
    return MOE_OK;
}

/* The folder holding dir (malloc'd). */
static char *parent_dir(const char *dir) {
    const char *slash = strrchr(dir, '/');
    if (!slash) return fs_printf(".");
    if (slash == dir) return fs_printf("/");
    return fs_printf("%.*s", (int)(slash - dir), dir);
}

moe_status moe_checkpoint_save(const char *dir_in, const char *model_config_json,
                               const moe_param_table *t, const moe_real *params,
                               const moe_optim *opt, const moe_train_state *st) {
    if (!dir_in || !dir_in[0] || !model_config_json || !t || !params)
        return moe_error(MOE_ERR_INVALID,
                         "moe_checkpoint_save: folder, model config, table and params required");
    if (opt && opt->n_slots > 0 && (opt->n != t->total || !opt->state))
        return moe_error(MOE_ERR_INVALID,
                         "checkpoint %s: optimizer holds %zu parameters but the model has %zu",
                         dir_in, opt->n, t->total);
    char *dir = fs_printf("%s", dir_in);
    if (!dir) return MOE_ERR_NOMEM;
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) dir[n - 1] = '\0';
    char *parent = parent_dir(dir);
    char *tmp = fs_printf("%s.tmp.%ld", dir, (long)getpid());
    char *old = fs_printf("%s.old.%ld", dir, (long)getpid());
    moe_status s = parent && tmp && old ? MOE_OK : MOE_ERR_NOMEM;
    if (s == MOE_OK) s = fs_mkdir_p(parent);
    if (s == MOE_OK) {
        fs_remove_tree(tmp); /* a leftover of a crashed save by a process with our pid */
        if (mkdir(tmp, 0755) != 0)
            s = moe_error(MOE_ERR_IO, "checkpoint %s: cannot create %s: %s", dir, tmp,
                          strerror(errno));
    }
    if (s == MOE_OK) s = write_all(tmp, model_config_json, t, params, opt, st);
    int have_old = 0;
    if (s == MOE_OK) s = swap_in(tmp, dir, old, &have_old);
    if (s == MOE_OK) s = fs_sync_dir(parent);
    if (s != MOE_OK) {
        if (tmp) fs_remove_tree(tmp);
        if (s != MOE_ERR_NOMEM) {
            char why[800];
            snprintf(why, sizeof why, "%s", moe_last_error());
            moe_error(s, "checkpoint %s not saved (the previous one, if any, is kept): %s", dir,
                      why);
        }
    } else if (have_old) {
        fs_remove_tree(old);
    }
    free(dir);
    free(parent);
    free(tmp);
    free(old);
    return s;
}

moe_status moe_checkpoint_read_config(const char *dir, char **model_config_json) {
    *model_config_json = NULL;
    char *p = fs_printf("%s/config.json", dir);
    if (!p) return MOE_ERR_NOMEM;
    int missing = 0;
    moe_status s = fs_read_file(p, model_config_json, NULL, &missing);
    free(p);
    if (s != MOE_OK && missing)
        s = moe_error(MOE_ERR_IO,
                      "checkpoint %s: no config.json: is this a checkpoint folder "
                      "(runs/<run>/checkpoints/latest)?",
                      dir);
    return s;
}

/* train.json, parsed. */
static moe_status read_train_json(const char *dir, cJSON **out) {
    *out = NULL;
    char *p = fs_printf("%s/train.json", dir), *text = NULL;
    if (!p) return MOE_ERR_NOMEM;
    int missing = 0;
    moe_status s = fs_read_file(p, &text, NULL, &missing);
    if (s != MOE_OK && missing)
        s = moe_error(MOE_ERR_IO,
                      "checkpoint %s: no train.json: the checkpoint is incomplete; use another",
                      dir);
    if (s == MOE_OK) {
        *out = cJSON_Parse(text);
        if (!cJSON_IsObject(*out)) {
            s = moe_error(MOE_ERR_FORMAT,
                          "checkpoint %s: train.json is not a JSON object: the "
                          "file is corrupted",
                          dir);
        } else {
            const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(*out, "format");
            if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, TRAIN_FORMAT) != 0)
                s = moe_error(MOE_ERR_FORMAT,
                              "checkpoint %s: train.json has no \"format\": \"" TRAIN_FORMAT "\"",
                              dir);
        }
        if (s != MOE_OK) {
            cJSON_Delete(*out);
            *out = NULL;
        }
    }
    free(p);
    free(text);
    return s;
}

moe_status moe_checkpoint_read_run_config(const char *dir, char **run_config) {
    *run_config = NULL;
    cJSON *tj;
    moe_status s = read_train_json(dir, &tj);
    if (s != MOE_OK) return s;
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(tj, "run_config");
    if (cJSON_IsString(rc) && !(*run_config = fs_printf("%s", rc->valuestring))) s = MOE_ERR_NOMEM;
    cJSON_Delete(tj);
    return s;
}

static int parse_rng(const cJSON *arr, moe_rng *r) {
    if (cJSON_GetArraySize(arr) != 4) return 0;
    for (int i = 0; i < 4; i++) {
        const cJSON *h = cJSON_GetArrayItem(arr, i);
        char *end;
        if (!cJSON_IsString(h) || strlen(h->valuestring) != 16) return 0;
        errno = 0;
        r->s[i] = (uint64_t)strtoull(h->valuestring, &end, 16);
        if (*end || errno) return 0;
    }
    return 1;
}

static int parse_double(const cJSON *v, double *out) {
    if (cJSON_IsNumber(v))
        *out = v->valuedouble;
    else if (cJSON_IsString(v) && strcmp(v->valuestring, "inf") == 0)
        *out = INFINITY;
    else if (cJSON_IsString(v) && strcmp(v->valuestring, "-inf") == 0)
        *out = -INFINITY;
    else if (cJSON_IsString(v) && strcmp(v->valuestring, "nan") == 0)
        *out = NAN;
    else
        return 0;
    return 1;
}

/* The training state in train.json; MOE_ERR_FORMAT if absent or damaged. */
static moe_status parse_train_state(const char *dir, const cJSON *tj, moe_train_state *st) {
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(tj, "step");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(tj, "tokens_seen");
    const cJSON *bad = cJSON_GetObjectItemCaseSensitive(tj, "bad_evals");
    if (!step)
        return moe_error(MOE_ERR_FORMAT,
                         "checkpoint %s: train.json holds no training state (saved "
                         "for inference only); it cannot resume training",
                         dir);
    if (!cJSON_IsNumber(step) || !cJSON_IsNumber(tok) || !cJSON_IsNumber(bad) ||
        !parse_double(cJSON_GetObjectItemCaseSensitive(tj, "best_metric"), &st->best_metric) ||
        !parse_rng(cJSON_GetObjectItemCaseSensitive(tj, "rng"), &st->rng) ||
        !parse_rng(cJSON_GetObjectItemCaseSensitive(tj, "data_rng"), &st->data_rng))
        return moe_error(MOE_ERR_FORMAT,
                         "checkpoint %s: train.json has a missing or malformed "
                         "step, tokens_seen, best_metric, bad_evals, rng or data_rng",
                         dir);
    st->step = (long)step->valuedouble;
    st->tokens_seen = (long long)tok->valuedouble;
    st->bad_evals = bad->valueint;
    return MOE_OK;
}

/* Checks the saved optimizer matches opt; returns its step in *step. */
static moe_status check_optimizer(const char *dir, const cJSON *tj, const moe_optim *opt,
                                  const moe_param_table *t, long *step) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(tj, "optimizer");
    if (!o)
        return moe_error(MOE_ERR_FORMAT,
                         "checkpoint %s: saved without optimizer state; load it "
                         "without an optimizer (or start a fresh one)",
                         dir);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "n");
    const cJSON *slots = cJSON_GetObjectItemCaseSensitive(o, "n_slots");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step");
    if (!cJSON_IsString(kind) || !cJSON_IsNumber(n) || !cJSON_IsNumber(slots) ||
        !cJSON_IsNumber(st))
        return moe_error(MOE_ERR_FORMAT,
                         "checkpoint %s: train.json \"optimizer\" needs kind, n, "
                         "n_slots and step",
                         dir);
    const char *want = moe_optim_name(opt->cfg.kind);
    if (strcmp(kind->valuestring, want) != 0)
        return moe_error(MOE_ERR_INVALID,
                         "checkpoint %s: saved with optimizer %s but resuming "
                         "with %s; set train.optim.kind to %s to resume",
                         dir, kind->valuestring, want, kind->valuestring);
    if ((size_t)n->valuedouble != opt->n || opt->n != t->total || slots->valueint != opt->n_slots)
        return moe_error(MOE_ERR_INVALID,
                         "checkpoint %s: saved optimizer has %.0f parameters and "
                         "%d slots; this one %zu and %d (model %zu): a different model",
                         dir, n->valuedouble, slots->valueint, opt->n, opt->n_slots, t->total);
    *step = (long)st->valuedouble;
    return MOE_OK;
}

moe_status moe_checkpoint_load(const char *dir, const moe_param_table *t, moe_real *params,
                               moe_optim *opt, moe_train_state *st) {
    if (!fs_is_dir(dir))
        return moe_error(MOE_ERR_IO,
                         "checkpoint %s: no such folder: is this a checkpoint folder "
                         "(runs/<run>/checkpoints/latest)?",
                         dir);
    char *p = fs_printf("%s/config.json", dir);
    int has_config = p && fs_exists(p);
    free(p);
    if (!has_config)
        return moe_error(MOE_ERR_IO,
                         "checkpoint %s: no config.json: is this a checkpoint folder "
                         "(runs/<run>/checkpoints/latest)?",
                         dir);
    cJSON *tj = NULL;
    moe_status s = read_train_json(dir, &tj);
    moe_train_state nst = {0};
    long opt_step = 0;
    if (s == MOE_OK && st) s = parse_train_state(dir, tj, &nst);
    if (s == MOE_OK && opt) s = check_optimizer(dir, tj, opt, t, &opt_step);
    cJSON_Delete(tj);
    if (s != MOE_OK) return s;

    /* Open and check both files before writing anything into the caller's
     * buffers, so a bad checkpoint leaves them as they were. */
    moe_st_file *mf = NULL, *of = NULL;
    moe_param_table ot = {0};
    int with_opt = opt && opt->n_slots > 0;
    p = fs_printf("%s/model.safetensors", dir);
    s = p ? moe_st_open(&mf, p) : MOE_ERR_NOMEM;
    free(p);
    if (s == MOE_OK) s = st_check_table(mf, t);
    if (s == MOE_OK && with_opt) s = optim_table(&ot, t, opt);
    if (s == MOE_OK && with_opt) {
        p = fs_printf("%s/optimizer.safetensors", dir);
        s = p ? moe_st_open(&of, p) : MOE_ERR_NOMEM;
        free(p);
    }
    if (s == MOE_OK && with_opt) s = st_check_table(of, &ot);
    if (s == MOE_OK) {
        st_read_table(mf, t, params);
        if (with_opt) st_read_table(of, &ot, opt->state);
        if (opt) opt->step = opt_step;
        if (st) {
            nst.run_config = st->run_config;
            *st = nst;
        }
    }
    moe_params_free(&ot);
    moe_st_close(mf);
    moe_st_close(of);
    return s;
}
