/* moe train: train a model from a config, or continue a checkpoint. */
#include "cli/cli.h"

#include <libgen.h>
#include <math.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
           "config.json, metrics.jsonl, routing.json, report.html, results.json and\n"
           "checkpoints/ (docs/monitoring.md).\n\n"
           "  --config FILE      JSON config ({\"name\", \"model\", \"train\", \"data\"})\n"
           "  --set key=value    override one key, e.g. --set train.steps=100\n"
           "                     --set model.moe.top_k=1 (repeatable)\n"
           "  --device cpu|cuda  where the training steps run (train.device; cuda: GPU 0,\n"
           "                     the decoder LM only, docs/cuda.md)\n"
           "  --precision bf16|fp32  the GPU's activation type (train.precision)\n"
           "  --resume DIR       continue from a checkpoint folder, e.g.\n"
           "                     runs/<run>/checkpoints/latest; the run's config.json is\n"
           "                     used and the run directory continues\n"
           "  --metrics-port N   serve Prometheus metrics at http://127.0.0.1:N/metrics\n"
           "                     while training (0: a free port, printed)\n"
           "  --metrics-all-interfaces  listen on every interface, not just 127.0.0.1\n"
           "  --quiet            no progress line (alerts are still printed)\n"
           "  --print-config     print the resolved config (defaults, file, --set) and exit\n"
           "Ctrl-C stops after the current step and saves a checkpoint.\n");
}

/* The config of a resumed run: --config, or the one the checkpoint was
 * trained with, then --set. The run continues in the checkpoint's run
 * directory when it is one (runs/<run>/checkpoints/<ckpt>), else in a new
 * one. */
static int resume_config(const char *ckpt, const char *config, const cli_sets *sets,
                         moe_run_config *cfg, char *run_dir, size_t cap) {
    char real[PATH_MAX], probe[PATH_MAX + 32];
    if (!realpath(ckpt, real)) {
        fprintf(stderr, "moe train: --resume %s: no such checkpoint folder\n", ckpt);
        return 1;
    }
    if (config ? cli_load_config("train", cfg, config, sets)
               : (cli_run_config_of("train", real, cfg) || cli_apply_sets("train", cfg, sets)))
        return 1;
    snprintf(run_dir, cap, "%s", dirname(dirname(real)));
    snprintf(probe, sizeof probe, "%s/metrics.jsonl", run_dir);
    if (access(probe, F_OK) != 0) run_dir[0] = 0; /* not a run directory: start a new one */
    return 0;
}

/* A registry served over HTTP for the run; the port goes to stderr so a
 * user (or a test) asking for port 0 learns which one it got. */
static int start_metrics(int port, int all, moe_registry **reg, moe_metrics_server **server) {
    moe_status st = moe_registry_create(reg, "moe");
    if (st != MOE_OK) return cli_fail("train", "metrics", st);
    int bound = 0;
    st = moe_metrics_server_start(server, *reg, port, all, &bound);
    if (st != MOE_OK) {
        moe_registry_free(*reg);
        return cli_fail("train", "--metrics-port", st);
    }
    fprintf(stderr, "metrics: http://%s:%d/metrics\n", all ? "0.0.0.0" : "127.0.0.1", bound);
    return 0;
}

int cmd_train(int argc, char **argv) {
    const char *config = NULL, *resume = NULL, *device = NULL, *precision = NULL;
    cli_sets sets = {0};
    int quiet = 0, print_config = 0, metrics_port = -1, metrics_all = 0;
    const cli_opt opts[] = {{"config", CLI_STRING, &config, 0, 0},
                            {"resume", CLI_STRING, &resume, 0, 0},
                            {"set", CLI_SETS, &sets, 0, 0},
                            {"device", CLI_STRING, &device, 0, 0},
                            {"precision", CLI_STRING, &precision, 0, 0},
                            {"quiet", CLI_FLAG, &quiet, 0, 0},
                            {"print-config", CLI_FLAG, &print_config, 0, 0},
                            {"metrics-port", CLI_INT, &metrics_port, 0, 65535},
                            {"metrics-all-interfaces", CLI_FLAG, &metrics_all, 0, 0},
                            {0}};
    int rc = cli_parse("train", argc, argv, opts, help);
    if (rc != CLI_CONTINUE) return rc;
    if (cli_device_sets("train", &sets, device, precision)) return 2;
    if (!config && !resume && !print_config) {
        fprintf(stderr, "moe train: give --config FILE or --resume CHECKPOINT (see --help)\n");
        return 2;
    }
    moe_run_config cfg;
    char run_dir[PATH_MAX] = "";
    if (resume) {
        if (resume_config(resume, config, &sets, &cfg, run_dir, sizeof run_dir)) return 1;
    } else if (cli_load_config("train", &cfg, config, &sets)) {
        return 1;
    }
    if (print_config) {
        char *json = moe_config_to_json(&cfg);
        if (!json) return 1;
        printf("%s\n", json);
        free(json);
        return 0;
    }
    moe_registry *reg = NULL;
    moe_metrics_server *server = NULL;
    if (metrics_port >= 0 && start_metrics(metrics_port, metrics_all, &reg, &server)) return 1;
    signal(SIGINT, on_sigint);
    moe_train_opts train_opts = {.resume_dir = resume,
                                 .run_dir = run_dir[0] ? run_dir : NULL,
                                 .progress = quiet ? NULL : cli_progress,
                                 .alert = cli_alert,
                                 .stop = &stop_requested,
                                 .registry = reg};
    moe_train_result r;
    moe_status st = moe_train_run(&cfg, &train_opts, &r);
    if (!quiet) fprintf(stderr, "\n");
    moe_metrics_server_stop(server);
    moe_registry_free(reg);
    if (st != MOE_OK) {
        cli_fail("train", "training failed", st);
        if (r.run_dir[0]) fprintf(stderr, "run directory: %s\n", r.run_dir);
        return 1;
    }
    if (cfg.model.family == MOE_FAMILY_TRANSFORMER)
        printf("run: %s\nsteps: %ld (%s)\nval loss: %.4f  perplexity: %.3f  (best %.4f)\n"
               "train tokens/s: %.0f\n",
               r.run_dir, r.steps, r.stop_reason, r.final_val_loss, exp(r.final_val_loss),
               r.best_val_loss, r.tokens_per_s);
    else /* images and table rows: one example is one "token" */
        printf("run: %s\nsteps: %ld (%s)\nval loss: %.4f  (best %.4f)\ntrain examples/s: %.0f\n",
               r.run_dir, r.steps, r.stop_reason, r.final_val_loss, r.best_val_loss,
               r.tokens_per_s);
    if (!isnan(r.test_macro_f1))
        printf("test accuracy: %.4f  macro-F1: %.4f (results.json has the confusion matrix)\n",
               r.test_accuracy, r.test_macro_f1);
    if (r.sample[0]) printf("sample:\n%s\n", r.sample);
    if (r.report_error[0])
        fprintf(stderr, "moe train: report.html not written: %s\n", r.report_error);
    else
        printf("report: %s/report.html\n", r.run_dir);
    return 0;
}
