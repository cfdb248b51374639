/* The moe command: shared helpers of the subcommands. */
#ifndef MOE_CLI_H
#define MOE_CLI_H

#include "moe/moe.h"

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Prints "moe <cmd>: <what failed>: <moe_last_error()>" and returns 1. */
int cli_fail(const char *cmd, const char *what, moe_status st);
/* Loads defaults, then --config FILE (if any), then each --set, then
 * validates. */
int cli_load_config(const char *cmd, moe_run_config *cfg, const char *config_path, char **sets,
                    int n_sets);
/* Progress line on a terminal, plain lines otherwise. */
void cli_progress(const moe_train_progress *p, void *user);
/* Loads the model stored in a checkpoint folder. */
int cli_load_model(const char *cmd, const char *ckpt, moe_model **m);
/* The run config of a checkpoint's run (ckpt/../../config.json), if there. */
int cli_run_config_of(const char *ckpt, moe_run_config *cfg);
double cli_now(void);

#define CLI_MAX_SETS 64

/* Numeric option values, checked: "moe <cmd>: --tokens wants an integer in
 * [0, 1000000], got 'abc'". Return 0, or 2 (the usage exit code). */
int cli_int(const char *cmd, const char *opt, const char *text, long lo, long hi, int *out);
int cli_float(const char *cmd, const char *opt, const char *text, double lo, double hi, float *out);
/* Collects one --set; 2 when there are too many. */
int cli_add_set(const char *cmd, char **sets, int *n, char *value);
/* Message for getopt_long's '?' (unknown option or missing value). */
int cli_usage_error(const char *cmd);

#endif
