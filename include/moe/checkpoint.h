/* Checkpoints: a folder holding config.json (the model config, verbatim),
 * model.safetensors (parameters), optimizer.safetensors (optimizer state, one
 * tensor per parameter and slot) and train.json (step, tokens, RNG states,
 * early-stopping state). Saved into <dir>.tmp.<pid>, synced, then swapped in
 * with renames: a crash or error never leaves a half-written <dir>. */
#ifndef MOE_CHECKPOINT_H
#define MOE_CHECKPOINT_H

#include "moe/core.h"
#include "moe/optim.h"
#include "moe/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_train_state {
    long step;              /* optimizer steps done */
    long long tokens_seen;  /* training tokens consumed */
    double best_metric;     /* best early-stopping metric so far (may be inf) */
    int bad_evals;          /* evaluations without improvement */
    moe_rng rng;            /* model RNG (dropout, sampling) */
    moe_rng data_rng;       /* batch sampling RNG */
    const char *run_config; /* run config text stored in train.json on save
                               (NULL: none); not touched by load, see
                               moe_checkpoint_read_run_config */
} moe_train_state;

/* Saves a checkpoint folder at dir (parents created). opt and st may be NULL
 * (then no optimizer.safetensors / no training state in train.json). Any
 * failure leaves a previous checkpoint at dir intact and removes the
 * temporary folder. */
moe_status moe_checkpoint_save(const char *dir, const char *model_config_json,
                               const moe_param_table *t, const moe_real *params,
                               const moe_optim *opt, const moe_train_state *st);

/* The model config text of a checkpoint (malloc'd; caller frees). */
moe_status moe_checkpoint_read_config(const char *dir, char **model_config_json);

/* The run config text saved in train.json (malloc'd; *out = NULL if none). */
moe_status moe_checkpoint_read_run_config(const char *dir, char **run_config);

/* Loads parameters (and, when not NULL, optimizer state and step, and the
 * training state). opt must be initialised for the same kind and size as the
 * saved one. Everything is validated before anything is written, so on error
 * params, opt and st are unchanged. st->run_config is left as it was. */
moe_status moe_checkpoint_load(const char *dir, const moe_param_table *t, moe_real *params,
                               moe_optim *opt, moe_train_state *st);

#ifdef __cplusplus
}
#endif
#endif
