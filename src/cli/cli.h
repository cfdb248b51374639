/* The moe command: shared helpers of the subcommands. */
#ifndef MOE_CLI_H
#define MOE_CLI_H

#include "moe/moe.h"

#define CLI_MAX_SETS 64

/* The --set key=value options of one command line. */
typedef struct cli_sets {
    char *v[CLI_MAX_SETS]; /* "key=value" strings from argv */
    int n;                 /* how many */
} cli_sets;

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_bootstrap(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_devices(int argc, char **argv);
/* moe generate's decoding on GPU 0 (cuda_paths.c): out as
 * moe_model_generate's; 1 after a message on failure. */
int generate_cuda(const moe_model *m, const char *precision, const int32_t *prompt, int n_prompt,
                  int n_new, const moe_sampling *s, moe_rng *rng, int32_t *out);
/* moe bench's steps on GPU 0 (cuda_paths.c): ms [steps] per step, the last
 * loss, and the device's name; 1 after a message on failure. */
int bench_cuda_steps(const moe_run_config *cfg, const moe_model *m, const int32_t *x,
                     const int32_t *y, int steps, double *ms, double *loss, char *device,
                     size_t device_len);

/* Prints "moe <cmd>: <what failed>: <moe_last_error()>" and returns 1. */
int cli_fail(const char *cmd, const char *what, moe_status st);
/* Loads defaults, then --config FILE (if any), then each --set, then
 * validates. */
int cli_load_config(const char *cmd, moe_run_config *cfg, const char *config_path,
                    const cli_sets *sets);
/* --device and --precision as the --set options train.device=... and
 * train.precision=... (NULL: not given), after the user's own. Returns 0, or
 * 2 after a message. */
int cli_device_sets(const char *cmd, cli_sets *sets, const char *device, const char *precision);
/* Applies each --set to cfg, then validates. */
int cli_apply_sets(const char *cmd, moe_run_config *cfg, const cli_sets *sets);
/* Progress line on a terminal, plain lines otherwise. */
void cli_progress(const moe_train_progress *p, void *user);
/* An alert on its own stderr line ("alert: step 120: ..."). */
void cli_alert(const char *message, void *user);
/* Loads the model stored in a checkpoint folder. */
int cli_load_model(const char *cmd, const char *ckpt, moe_model **m);
/* The run config a checkpoint was trained with: the copy in its train.json,
 * else its run directory's config.json (ckpt/../../config.json). Returns 0,
 * or 1 after printing why neither could be read. */
int cli_run_config_of(const char *cmd, const char *ckpt, moe_run_config *cfg);
double cli_now(void);

typedef enum cli_kind {
    CLI_FLAG,   /* int *dst set to 1 */
    CLI_STRING, /* const char **dst */
    CLI_INT,    /* int *dst, checked against [lo, hi] */
    CLI_FLOAT,  /* float *dst, checked against [lo, hi] */
    CLI_SETS,   /* cli_sets *dst, repeatable */
    CLI_ARG,    /* const char **dst: the next positional argument; name is for --help only */
} cli_kind;

/* One long option (or positional argument); a table ends with a zeroed
 * entry. --help is implicit. */
typedef struct cli_opt {
    const char *name; /* without the leading "--" */
    cli_kind kind;
    void *dst;     /* where the value goes */
    double lo, hi; /* numeric range */
} cli_opt;

#define CLI_CONTINUE (-1)
/* Parses argv after the command name. Returns CLI_CONTINUE when the command
 * should run, 0 after printing --help, 2 after a usage error (printed as
 * "moe <cmd>: --tokens wants an integer in [0, 1e+06], got 'abc'"). */
int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, void (*help)(void));

#endif
