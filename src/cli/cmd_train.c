/* moe train: train a model from a config, or continue a checkpoint. */
#include "cli/cli.h"

#include <libgen.h>
#include <math.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SETS 64

static volatile int stop_requested;

static void on_sigint(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void help(void) {
    printf("usage: moe train --config FILE [--set key=value ...]\n"
           "       moe train --resume CHECKPOINT [--set key=value ...]\n\n"
           "Trains the model a JSON config describes (configs/*.json; every key has a\n"
           "default, see docs/config.md) and writes runs/<name>-<UTC time>/ with\n"
           "config.json, metrics.jsonl, results.json and checkpoints/.\n\n"
           "  --config FILE      JSON config ({\"name\", \"model\", \"train\", \"data\"})\n"
           "  --set key=value    override one key, e.g. --set train.steps=100\n"
           "                     --set model.moe.top_k=1 (repeatable)\n"
           "  --resume DIR       continue from a checkpoint folder, e.g.\n"
           "                     runs/<run>/checkpoints/latest; the run's config.json is\n"
           "                     used and the run directory continues\n"
           "  --quiet            no progress line\n"
           "Ctrl-C stops after the current step and saves a checkpoint.\n");
}

int cmd_train(int argc, char **argv) {
    const char *config = NULL, *resume = NULL;
    char *sets[MAX_SETS];
    int n_sets = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help();
            return 0;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strcmp(argv[i], "--resume") && i + 1 < argc) {
            resume = argv[++i];
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc && n_sets < MAX_SETS) {
            sets[n_sets++] = argv[++i];
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else {
            fprintf(stderr, "moe train: unknown or incomplete option '%s' (see --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if (!config && !resume) {
        fprintf(stderr, "moe train: give --config FILE or --resume CHECKPOINT (see --help)\n");
        return 2;
    }
    moe_run_config cfg;
    char run_dir[PATH_MAX] = "";
    if (resume) {
        char real[PATH_MAX], path[PATH_MAX + 16];
        if (!realpath(resume, real)) {
            fprintf(stderr, "moe train: --resume %s: no such checkpoint folder\n", resume);
            return 1;
        }
        snprintf(run_dir, sizeof run_dir, "%s", dirname(dirname(real)));
        snprintf(path, sizeof path, "%s/config.json", run_dir);
        if (cli_load_config("train", &cfg, config ? config : path, sets, n_sets)) return 1;
    } else if (cli_load_config("train", &cfg, config, sets, n_sets)) {
        return 1;
    }
    signal(SIGINT, on_sigint);
    moe_train_opts opts = {resume, resume ? run_dir : NULL, quiet ? NULL : cli_progress, NULL,
                           &stop_requested};
    moe_train_result r;
    moe_status st = moe_train_run(&cfg, &opts, &r);
    if (!quiet) fprintf(stderr, "\n");
    if (st != MOE_OK) {
        cli_fail("train", "training failed", st);
        if (r.run_dir[0]) fprintf(stderr, "run directory: %s\n", r.run_dir);
        return 1;
    }
    printf("run: %s\nsteps: %ld (%s)\nval loss: %.4f  perplexity: %.3f  (best %.4f)\n"
           "train tokens/s: %.0f\n",
           r.run_dir, r.steps, r.stop_reason, r.final_val_loss, exp(r.final_val_loss),
           r.best_val_loss, r.tokens_per_s);
    if (r.sample[0]) printf("sample:\n%s\n", r.sample);
    return 0;
}
