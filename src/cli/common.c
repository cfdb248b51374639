/* Helpers shared by the subcommands. */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double cli_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int cli_fail(const char *cmd, const char *what, moe_status st) {
    fprintf(stderr, "moe %s: %s: %s (%s)\n", cmd, what, moe_last_error(), moe_status_name(st));
    return 1;
}

int cli_apply_sets(const char *cmd, moe_run_config *cfg, const cli_sets *sets) {
    moe_status st;
    for (int i = 0; i < sets->n; i++)
        if ((st = moe_config_set(cfg, sets->v[i])) != MOE_OK) return cli_fail(cmd, "bad --set", st);
    if ((st = moe_config_validate(cfg)) != MOE_OK) return cli_fail(cmd, "bad config", st);
    return 0;
}

int cli_device_sets(const char *cmd, cli_sets *sets, const char *device, const char *precision) {
    /* appended after the user's --set, so the explicit flags win */
    static char buf[2][48];
    const char *keys[2] = {"train.device", "train.precision"}, *vals[2] = {device, precision};
    for (int i = 0; i < 2; i++) {
        if (!vals[i]) continue;
        if (sets->n >= CLI_MAX_SETS) {
            fprintf(stderr, "moe %s: too many --set options (at most %d)\n", cmd, CLI_MAX_SETS);
            return 2;
        }
        snprintf(buf[i], sizeof buf[i], "%s=%.24s", keys[i], vals[i]);
        sets->v[sets->n++] = buf[i];
    }
    return 0;
}

int cli_load_config(const char *cmd, moe_run_config *cfg, const char *config_path,
                    const cli_sets *sets) {
    moe_config_defaults(cfg);
    moe_status st;
    if (config_path && (st = moe_config_load(cfg, config_path)) != MOE_OK)
        return cli_fail(cmd, "bad config", st);
    return cli_apply_sets(cmd, cfg, sets);
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

void cli_progress(const moe_train_progress *p, void *user) {
    (void)user;
    static int tty = -1;
    if (tty < 0) tty = isatty(STDERR_FILENO);
    char eta[32];
    fmt_duration(eta, sizeof eta, p->eta_s);
    if (p->is_eval) {
        const char *clr = tty ? "\r\033[K" : "";
        if (!isnan(p->val_macro_f1))
            fprintf(stderr, "%seval step %ld: val loss %.4f, accuracy %.4f, macro-F1 %.4f\n", clr,
                    p->step, p->val_loss, p->val_accuracy, p->val_macro_f1);
        else if (!isnan(p->val_accuracy))
            fprintf(stderr, "%seval step %ld: val loss %.4f, masked-token accuracy %.4f\n", clr,
                    p->step, p->val_loss, p->val_accuracy);
        else
            fprintf(stderr, "%seval step %ld: val loss %.4f, perplexity %.3f\n", clr, p->step,
                    p->val_loss, p->val_ppl);
        return;
    }
    fprintf(stderr,
            "%sstep %ld/%ld | epoch %.2f | loss %.4f (aux %.4f) | lr %.2e | %.0f tok/s | "
            "balance cv %.2f max/mean %.2f | alerts %ld | eta %s%s",
            tty ? "\r\033[K" : "", p->step, p->total_steps, p->epoch, p->loss, p->aux, p->lr,
            p->tokens_per_s, p->balance_cv, p->max_over_mean, p->alerts, eta, tty ? "" : "\n");
    fflush(stderr);
}

void cli_alert(const char *message, void *user) {
    (void)user;
    /* on a terminal, clear the progress line first so the alert stands alone */
    fprintf(stderr, "%salert: %s\n", isatty(STDERR_FILENO) ? "\r\033[K" : "", message);
    fflush(stderr);
}

int cli_load_model(const char *cmd, const char *ckpt, moe_model **m) {
    char *json = NULL;
    moe_model_config mc;
    moe_run_config defaults;
    moe_config_defaults(&defaults);
    mc = defaults.model;
    moe_status st = moe_checkpoint_read_config(ckpt, &json);
    if (st != MOE_OK) return cli_fail(cmd, "cannot read checkpoint", st);
    st = moe_model_config_from_json(&mc, json, ckpt);
    free(json);
    if (st != MOE_OK) return cli_fail(cmd, "bad checkpoint config", st);
    if ((st = moe_model_create(m, &mc, 0)) != MOE_OK)
        return cli_fail(cmd, "cannot build model", st);
    st = moe_checkpoint_load(ckpt, moe_model_table(*m), moe_model_params(*m), NULL, NULL);
    if (st != MOE_OK) {
        moe_model_free(*m);
        *m = NULL;
        return cli_fail(cmd, "cannot load checkpoint", st);
    }
    moe_model_set_phase(*m, moe_model_final_temperature(&mc), 0); /* annealed: its last value */
    return 0;
}

int cli_run_config_of(const char *cmd, const char *ckpt, moe_run_config *cfg) {
    char *stored = NULL;
    moe_config_defaults(cfg);
    moe_status st = moe_checkpoint_read_run_config(ckpt, &stored);
    if (st != MOE_OK) return cli_fail(cmd, "cannot read checkpoint", st);
    if (stored) {
        st = moe_config_from_json(cfg, stored, ckpt);
        free(stored);
    } else { /* a checkpoint written without its run config */
        char real[PATH_MAX], path[PATH_MAX + 32];
        if (!realpath(ckpt, real)) return cli_fail(cmd, "cannot read checkpoint", MOE_ERR_IO);
        snprintf(path, sizeof path, "%s/../../config.json", real);
        if (access(path, R_OK) != 0) {
            fprintf(stderr,
                    "moe %s: %s holds no run config and is not in a run directory; "
                    "give --config FILE\n",
                    cmd, ckpt);
            return 1;
        }
        st = moe_config_load(cfg, path);
    }
    return st == MOE_OK ? 0 : cli_fail(cmd, "bad stored config", st);
}
