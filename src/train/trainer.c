/* The training loop. One process, one model, one corpus; everything it
 * learns goes to the run directory. */
#include "moe/checkpoint.h"
#include "moe/optim.h"
#include "moe/train.h"
#include "train/results_json.h"
#include "train/run_dir.h"
#include "train/init_from.h"
#include "train/task.h"
#include "train/train_device.h"
#include "train/train_observe.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct trainer {
    moe_run_config run_cfg; /* the caller's, with derived fields filled (vocab, classes) */
    const moe_run_config *cfg;
    const moe_train_opts *opts;
    moe_model *model;
    moe_optim opt;
    train_task task; /* data, batches, evaluation */
    moe_arena arena;
    moe_train_state st; /* step, tokens, best metric, rngs: what a checkpoint resumes */
    char run_dir[512];
    char ckpt_dir[600];    /* run_dir/checkpoints */
    train_observer obs;    /* metrics, alerts, routing probes, reports */
    double t0;             /* process start (monotonic seconds) */
    long first_step;       /* step this process started at */
    long last_good_step;   /* newest checkpoint on disk (-1: none) */
    long prev_good_step;   /* the one before it, still on disk (-1: none or unknown) */
    double step_time;      /* seconds spent in training steps by this process */
    char *run_config_json; /* the whole run config, saved in every checkpoint */
    double last_val;       /* last evaluation */
    task_eval last_eval;   /* its accuracy, F1 (encoder tasks) */
    long long real_tokens; /* unpadded tokens trained on by this process */
    long step_real_tokens; /* ... in the last step */
    /* the schedule in steps (train.epochs > 0 counts these in epochs) */
    int steps_per_epoch; /* dense tasks; 0 otherwise */
    long steps, eval_every, checkpoint_every;
    moe_sched_config sched;
    float temperature;    /* the router temperature of the current step */
    moe_real *frozen;     /* copies of what the optimizer must not move, [table total] */
    double best_val_loss; /* validation loss at the best evaluation (by this process) */
    train_device *dev;    /* train.device cuda: where steps run; NULL on the CPU */
} trainer;

/* The host model and optimizer hold the GPU's latest weights and state
 * before anything reads them (evaluation, checkpoints, the sample). */
static moe_status sync_host(trainer *tr) {
    return train_device_sync(tr->dev, tr->model, &tr->opt);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static moe_status save_checkpoint(trainer *tr, const char *name) {
    moe_status sst = sync_host(tr);
    if (sst != MOE_OK) return sst;
    char *model_json = moe_model_config_to_json(&tr->cfg->model);
    if (!model_json) return moe_error(MOE_ERR_NOMEM, "checkpoint: out of memory");
    char dir[700];
    snprintf(dir, sizeof dir, "%s/%s", tr->ckpt_dir, name);
    moe_status st = moe_checkpoint_save(dir, model_json, moe_model_table(tr->model),
                                        moe_model_params(tr->model), &tr->opt, &tr->st);
    free(model_json);
    return st;
}

static moe_status save_step_checkpoint(trainer *tr) {
    char name[32];
    snprintf(name, sizeof name, "step-%06ld", tr->st.step);
    moe_status st = save_checkpoint(tr, name);
    if (st != MOE_OK) return st;
    st = run_dir_link(tr->ckpt_dir, "latest", name);
    if (st != MOE_OK) return st;
    run_dir_prune_steps(tr->ckpt_dir, 2);
    tr->prev_good_step = tr->last_good_step;
    tr->last_good_step = tr->st.step;
    return MOE_OK;
}

/* With train.epochs, the epoch-counted fields become steps. */
static void schedule_in_steps(trainer *tr) {
    const moe_train_config *t = &tr->cfg->train;
    int spe = task_steps_per_epoch(&tr->task);
    tr->steps_per_epoch = spe;
    tr->steps = t->steps;
    tr->eval_every = t->eval_every;
    tr->checkpoint_every = t->checkpoint_every;
    tr->sched = t->sched;
    if (t->epochs <= 0 || spe <= 0) return;
    tr->steps = (long)t->epochs * spe;
    tr->eval_every = (long)(t->eval_every > 0 ? t->eval_every : 1) * spe;
    tr->checkpoint_every = (long)t->checkpoint_every * spe;
    for (int i = 0; i < tr->sched.n_milestones; i++) tr->sched.milestones[i] *= spe;
}

/* The router temperature and training phase of the step about to run:
 * per epoch with train.epochs (as the seed systems anneal), else per step. */
static void set_phase(trainer *tr) {
    const moe_run_config *c = tr->cfg;
    long t = tr->st.step, n = tr->steps;
    if (c->train.epochs > 0 && tr->steps_per_epoch > 0) {
        t /= tr->steps_per_epoch;
        n = c->train.epochs;
    }
    double Ti = c->model.moe.temperature, Tf = c->model.temperature_end,
           frac = n > 0 ? (double)t / n : 0;
    double T = Ti;
    if (c->model.temperature_schedule == MOE_TEMP_LINEAR) T = Ti - (Ti - Tf) * frac;
    if (c->model.temperature_schedule == MOE_TEMP_COSINE)
        T = Tf + 0.5 * (Ti - Tf) * (1 + cos(M_PI * frac));
    int freeze = c->model.family == MOE_FAMILY_DEEPMOE && c->model.deepmoe.freeze_epochs > 0 &&
                 c->train.epochs > 0 && t >= c->train.epochs - c->model.deepmoe.freeze_epochs;
    tr->temperature = (float)T;
    moe_model_set_phase(tr->model, tr->temperature, freeze);
}

/* The optimizer step, leaving buffers and frozen tensors as they were. */
static void optimizer_step(trainer *tr, float lr) {
    const moe_param_table *tab = moe_model_table(tr->model);
    moe_real *p = moe_model_params(tr->model);
    int any = 0;
    for (int i = 0; i < tab->count; i++) {
        if (!moe_model_optimizer_skips(tr->model, i)) continue;
        const moe_tensor_info *ti = &tab->tensors[i];
        memcpy(tr->frozen + ti->offset, p + ti->offset, ti->numel * sizeof *p);
        any = 1;
    }
    moe_optim_step(&tr->opt, p, moe_model_grads(tr->model), lr);
    for (int i = 0; any && i < tab->count; i++) {
        if (!moe_model_optimizer_skips(tr->model, i)) continue;
        const moe_tensor_info *ti = &tab->tensors[i];
        memcpy(p + ti->offset, tr->frozen + ti->offset, ti->numel * sizeof *p);
    }
}

static moe_status setup(trainer *tr) {
    const moe_run_config *cfg = tr->cfg;
    const moe_train_config *t = &cfg->train;
    moe_status st = moe_config_validate(cfg);
    if (st == MOE_OK) st = train_device_check(cfg);
    if (st != MOE_OK) return st;
    if (t->threads > 0) moe_set_threads(t->threads);
    st = task_init(&tr->task, &tr->run_cfg);
    if (st != MOE_OK) return st;
    schedule_in_steps(tr);
    st = moe_model_create(&tr->model, &cfg->model, t->seed);
    if (st != MOE_OK) return st;
    tr->frozen = malloc(moe_model_table(tr->model)->total * sizeof *tr->frozen);
    if (!tr->frozen) return moe_error(MOE_ERR_NOMEM, "train: out of memory");
    if (t->init_from[0] && !tr->opts->resume_dir) {
        st = train_init_from(t->init_from, tr->model);
        if (st != MOE_OK) return st;
    }
    moe_optim_config oc = t->optim;
    st = moe_optim_init(&tr->opt, &oc, moe_model_table(tr->model)->total);
    if (st != MOE_OK) return st;
    moe_arena_init(&tr->arena);
    memset(&tr->st, 0, sizeof tr->st);
    tr->st.best_metric = INFINITY;
    moe_rng_seed(&tr->st.rng, t->seed ^ 0x5eedULL);
    moe_rng_seed(&tr->st.data_rng, t->seed);
    tr->last_good_step = tr->prev_good_step = -1;
    tr->last_val = NAN;
    tr->best_val_loss = NAN;

    if (tr->opts->resume_dir) {
        st = moe_checkpoint_load(tr->opts->resume_dir, moe_model_table(tr->model),
                                 moe_model_params(tr->model), &tr->opt, &tr->st);
        if (st != MOE_OK) return st;
        tr->last_good_step = tr->st.step;
        if (strcmp(t->early_stop_metric, "val_accuracy") != 0)
            tr->best_val_loss = tr->st.best_metric;
    }
    tr->task.next_step = tr->st.step; /* dense tasks replay the epoch order from here */
    st = train_device_open(&tr->dev, cfg, tr->model, &tr->opt);
    if (st != MOE_OK) return st;
    if (tr->opts->run_dir) {
        snprintf(tr->run_dir, sizeof tr->run_dir, "%s", tr->opts->run_dir);
    } else {
        st = run_dir_create(tr->run_dir, sizeof tr->run_dir, cfg->out_dir, cfg->name);
        if (st != MOE_OK) return st;
    }
    snprintf(tr->ckpt_dir, sizeof tr->ckpt_dir, "%s/checkpoints", tr->run_dir);
    /* kept for the run's lifetime: checkpoints carry it so a resume needs
     * nothing but the checkpoint folder */
    tr->run_config_json = moe_config_to_json(cfg);
    if (!tr->run_config_json) return moe_error(MOE_ERR_NOMEM, "train: out of memory");
    tr->st.run_config = tr->run_config_json;
    st = run_dir_write_text(tr->run_dir, "config.json", tr->run_config_json);
    if (st != MOE_OK) return st;
    tr->first_step = tr->st.step;
    tr->t0 = now_s();
    return observer_init(&tr->obs, cfg, tr->opts, tr->run_dir, tr->model, &tr->task,
                         tr->st.tokens_seen, tr->t0);
}

static void teardown(trainer *tr) {
    train_device_close(tr->dev);
    free(tr->run_config_json);
    free(tr->frozen);
    observer_free(&tr->obs);
    moe_model_free(tr->model);
    moe_optim_free(&tr->opt);
    task_free(&tr->task);
    moe_arena_free(&tr->arena);
}

/* A NaN/Inf loss (grad_norm 0) or gradient norm (loss 0): the alert, then
 * the error naming the last good checkpoint. */
static moe_status numeric_failure(trainer *tr, double loss, double grad_norm) {
    const char *what = isfinite(loss) ? "the gradient norm" : "the training loss";
    double value = isfinite(loss) ? grad_norm : loss;
    observer_nonfinite(&tr->obs, tr->st.step + 1, loss, grad_norm);
    long good = tr->last_good_step;
    /* a checkpoint of the current weights holds the very weights whose
     * forward just failed: the one before it is the last good one */
    if (!isfinite(loss) && good == tr->st.step) good = tr->prev_good_step;
    if (good >= 0)
        return moe_error(MOE_ERR_NUMERIC,
                         "step %ld: %s is %g; training stopped. The last good checkpoint is "
                         "%s/step-%06ld. Try a lower train.optim.lr or train.grad_clip > 0",
                         tr->st.step + 1, what, value, tr->ckpt_dir, good);
    if (tr->last_good_step >= 0)
        return moe_error(MOE_ERR_NUMERIC,
                         "step %ld: %s is %g; training stopped. No checkpoint on disk is good: "
                         "%s/step-%06ld holds the weights that gave it. Try a lower "
                         "train.optim.lr or train.grad_clip > 0",
                         tr->st.step + 1, what, value, tr->ckpt_dir, tr->last_good_step);
    return moe_error(MOE_ERR_NUMERIC,
                     "step %ld: %s is %g; training stopped before any checkpoint was written. "
                     "Try a lower train.optim.lr or train.grad_clip > 0",
                     tr->st.step + 1, what, value);
}

/* train_step on the GPU: the same bookkeeping around train_device_step. */
static moe_status train_step_device(trainer *tr, moe_train_progress *p) {
    const moe_train_config *t = &tr->cfg->train;
    float lr = moe_sched_lr(&tr->sched, t->optim.lr, tr->st.step, tr->steps);
    double ce, aux, norm;
    moe_status st = train_device_step(tr->dev, tr->model, &tr->task, &tr->st.data_rng, lr, &ce,
                                      &aux, &norm, &tr->step_real_tokens);
    if (st != MOE_OK) return st;
    if (!isfinite(ce + aux)) return numeric_failure(tr, ce + aux, 0);
    if (!isfinite(norm)) return numeric_failure(tr, 0, norm);
    observer_router_grads_unmeasured(&tr->obs);
    tr->st.step++;
    tr->st.tokens_seen += (long long)t->batch_size * t->seq_len * t->grad_accum;
    tr->real_tokens += tr->step_real_tokens;
    p->ce = ce;
    p->aux = aux;
    p->loss = ce + aux;
    p->lr = lr;
    p->grad_norm = norm;
    return MOE_OK;
}

/* One optimizer step over grad_accum micro-batches. */
static moe_status train_step(trainer *tr, moe_train_progress *p) {
    const moe_train_config *t = &tr->cfg->train;
    if (tr->dev) return train_step_device(tr, p);
    moe_model_zero_grads(tr->model);
    set_phase(tr);
    tr->step_real_tokens = 0;
    double ce_sum = 0, aux_sum = 0;
    for (int micro = 0; micro < t->grad_accum; micro++) {
        double ce = 0, aux = 0;
        const moe_batch *batch = task_train_batch(&tr->task, &tr->st.data_rng);
        moe_arena_reset(&tr->arena);
        moe_status st =
            moe_model_forward_batch(tr->model, batch, 1, &tr->st.rng, &tr->arena, &ce, &aux);
        if (st == MOE_ERR_NUMERIC || !isfinite(ce + aux)) return numeric_failure(tr, ce + aux, 0);
        if (st != MOE_OK) return st;
        st = moe_model_backward(tr->model, &tr->arena, 1.0f / (float)t->grad_accum);
        if (st != MOE_OK) return st;
        tr->step_real_tokens += tr->task.real_tokens;
        ce_sum += ce;
        aux_sum += aux;
    }
    observer_router_grads(&tr->obs, tr->model);
    size_t n = moe_model_table(tr->model)->total;
    double norm = moe_grad_clip(moe_model_grads(tr->model), n, t->grad_clip);
    if (!isfinite(norm)) return numeric_failure(tr, 0, norm);
    float lr = moe_sched_lr(&tr->sched, t->optim.lr, tr->st.step, tr->steps);
    optimizer_step(tr, lr);
    tr->st.step++;
    /* sequences x seq_len; a dense task's example counts as one token */
    tr->st.tokens_seen += tr->task.dense ? tr->step_real_tokens
                                         : (long long)t->batch_size * t->seq_len * t->grad_accum;
    tr->real_tokens += tr->step_real_tokens;
    p->ce = ce_sum / t->grad_accum;
    p->aux = aux_sum / t->grad_accum;
    p->loss = p->ce + p->aux;
    p->lr = lr;
    p->grad_norm = norm;
    return MOE_OK;
}

static void fill_timing(trainer *tr, moe_train_progress *p) {
    const moe_train_config *t = &tr->cfg->train;
    p->step = tr->st.step;
    p->total_steps = tr->steps;
    p->epoch = task_epoch(&tr->task,
                          tr->task.dense ? tr->st.tokens_seen : tr->st.tokens_seen / t->seq_len);
    p->elapsed_s = now_s() - tr->t0;
    long done = tr->st.step - tr->first_step;
    /* throughput of the steps alone (evaluation and checkpoints excluded),
     * in real tokens: padding of encoder batches is not work done */
    p->tokens_per_s = tr->step_time > 0 ? (double)tr->real_tokens / tr->step_time : 0;
    p->examples_per_s = tr->step_time <= 0 ? 0
                        : tr->task.dense
                            ? (double)tr->real_tokens / tr->step_time
                            : (double)done * t->batch_size * t->grad_accum / tr->step_time;
    p->eta_s = done > 0 ? p->elapsed_s / (double)done * (double)(tr->steps - tr->st.step) : 0;
    if (t->max_seconds > 0 && p->eta_s > t->max_seconds - p->elapsed_s)
        p->eta_s = fmax(0, t->max_seconds - p->elapsed_s);
}

/* Evaluates, logs, keeps the best checkpoint; *stop set by early stopping. */
static moe_status evaluate(trainer *tr, moe_train_progress *p, int final, int *stop) {
    const moe_train_config *t = &tr->cfg->train;
    task_eval ev;
    moe_status st = sync_host(tr);
    if (st == MOE_OK) st = task_evaluate(&tr->task, tr->model, &tr->arena, &ev);
    if (st != MOE_OK) return st;
    /* the early-stopping score: lower is better */
    int by_acc = strcmp(t->early_stop_metric, "val_accuracy") == 0;
    double val = ev.loss, score = by_acc ? -ev.accuracy : ev.loss;
    tr->last_eval = ev;
    p->val_accuracy = ev.accuracy;
    p->val_macro_f1 = ev.macro_f1;
    tr->last_val = val;
    p->is_eval = 1;
    p->val_loss = val;
    p->val_ppl = exp(val);
    st = observer_eval(&tr->obs, p, tr->model, &tr->arena, final);
    if (st != MOE_OK) return st;
    if (tr->opts->progress) tr->opts->progress(p, tr->opts->user);
    p->is_eval = 0;
    if (tr->st.best_metric - score > t->min_delta || !isfinite(tr->st.best_metric)) {
        tr->st.best_metric = score;
        tr->best_val_loss = val;
        tr->st.bad_evals = 0;
        st = save_checkpoint(tr, "best");
        if (st != MOE_OK) return st;
    } else {
        tr->st.bad_evals++;
        if (t->early_stop_metric[0] && tr->st.bad_evals >= t->patience) *stop = 1;
    }
    return MOE_OK;
}

static char *sample_text(trainer *tr) {
    const moe_train_config *t = &tr->cfg->train;
    int np = (int)strlen(t->sample_prompt), n = t->sample_tokens;
    if (np == 0 || n <= 0 || tr->cfg->train.task != MOE_TASK_LM) return NULL;
    int32_t *ids = malloc((size_t)(np + n) * sizeof *ids);
    char *text = malloc((size_t)(np + n) + 1);
    if (!ids || !text) goto fail;
    for (int i = 0; i < np; i++) ids[i] = (uint8_t)t->sample_prompt[i];
    moe_sampling s = {0.8f, 40, 0.95f};
    moe_rng rng;
    moe_rng_seed(&rng, t->seed);
    if (moe_model_generate(tr->model, ids, np, n, &s, &rng, ids) != MOE_OK) goto fail;
    /* bytes that are not printable ASCII would make results.json invalid UTF-8 */
    for (int i = 0; i < np + n; i++)
        text[i] = (ids[i] == '\n' || (ids[i] >= 32 && ids[i] < 127)) ? (char)ids[i] : '?';
    text[np + n] = 0;
    free(ids);
    return text;
fail:
    free(ids);
    free(text);
    return NULL;
}

moe_status moe_train_run(const moe_run_config *cfg, const moe_train_opts *opts,
                         moe_train_result *result) {
    trainer tr;
    memset(&tr, 0, sizeof tr);
    memset(result, 0, sizeof *result);
    tr.run_cfg = *cfg;
    tr.cfg = &tr.run_cfg;
    cfg = tr.cfg;
    tr.opts = opts;
    moe_status st = setup(&tr);
    if (tr.run_dir[0]) snprintf(result->run_dir, sizeof result->run_dir, "%s", tr.run_dir);
    if (st != MOE_OK) goto out;
    const moe_train_config *t = &cfg->train;
    moe_train_progress p;
    memset(&p, 0, sizeof p);
    const char *reason = "completed";
    int stop = 0, evaluated_now = 0;
    if (tr.st.step == 0 && tr.eval_every > 0) { /* baseline: the untrained model */
        fill_timing(&tr, &p);
        st = evaluate(&tr, &p, 0, &stop);
        if (st != MOE_OK) goto out;
    }
    while (tr.st.step < tr.steps && !stop) {
        if (opts->stop && *opts->stop) {
            reason = "interrupted";
            break;
        }
        if (t->max_seconds > 0 && now_s() - tr.t0 > t->max_seconds) {
            reason = "time_budget";
            break;
        }
        double s0 = now_s();
        st = train_step(&tr, &p);
        if (st != MOE_OK) goto out;
        double dt = now_s() - s0;
        tr.step_time += dt;
        fill_timing(&tr, &p);
        int log = tr.st.step % t->log_every == 0 || tr.st.step == tr.steps;
        step_measure sm = {.seconds = dt,
                           .epoch = p.epoch,
                           .examples_per_s = p.examples_per_s,
                           .temperature = tr.temperature,
                           .tokens = tr.step_real_tokens,
                           .arena_bytes = tr.arena.high_water};
        st = observer_step(&tr.obs, &p, &sm, tr.model, log);
        if (st != MOE_OK) goto out;
        if (log && opts->progress) opts->progress(&p, opts->user);
        evaluated_now = 0;
        if (tr.eval_every > 0 && tr.st.step % tr.eval_every == 0 && tr.st.step < tr.steps) {
            st = evaluate(&tr, &p, 0, &stop);
            if (st != MOE_OK) goto out;
            evaluated_now = 1;
            if (stop) reason = "early_stop";
        }
        if (tr.checkpoint_every > 0 && tr.st.step % tr.checkpoint_every == 0) {
            st = save_step_checkpoint(&tr);
            if (st != MOE_OK) goto out;
        }
    }
    if (!evaluated_now) {
        fill_timing(&tr, &p);
        st = evaluate(&tr, &p, 1, &stop);
        if (st != MOE_OK) goto out;
    }
    if (tr.last_good_step != tr.st.step) {
        st = save_step_checkpoint(&tr);
        if (st != MOE_OK) goto out;
    }
    st = sync_host(&tr); /* the host model holds the GPU's final weights from here on */
    if (st != MOE_OK) goto out;
    /* a finite best metric means an evaluation saved checkpoints/best */
    if (t->restore_best && isfinite(tr.st.best_metric)) { /* the test split sees the best weights */
        char best[700];
        snprintf(best, sizeof best, "%s/best", tr.ckpt_dir);
        st = moe_checkpoint_load(best, moe_model_table(tr.model), moe_model_params(tr.model), NULL,
                                 NULL);
        if (st != MOE_OK) goto out;
    }
    fill_timing(&tr, &p);
    char *sample = sample_text(&tr);
    result->steps = tr.st.step;
    result->final_val_loss = tr.last_val;
    result->best_val_loss = tr.best_val_loss;
    result->tokens_per_s = p.tokens_per_s;
    snprintf(result->stop_reason, sizeof result->stop_reason, "%s", reason);
    snprintf(result->device, sizeof result->device, "%s", train_device_name(tr.dev));
    if (sample) snprintf(result->sample, sizeof result->sample, "%s", sample);
    free(sample);
    /* the test split sees the model as it will be used: at the final temperature */
    moe_model_set_phase(tr.model, moe_model_final_temperature(&cfg->model), 0);
    task_eval test;
    st = task_test(&tr.task, tr.model, &tr.arena, &test);
    if (st != MOE_OK) goto out;
    result->test_accuracy = test.accuracy;
    result->test_macro_f1 = test.macro_f1;
    cJSON *extra = observer_test_analysis(&tr.obs, &p);
    st = metrics_write_results(tr.run_dir, cfg, result, &p, tr.model,
                               tr.task.class_names ? &tr.task.test : NULL, tr.task.class_names,
                               extra);
    cJSON_Delete(extra);
    if (st == MOE_OK) observer_refresh_report(&tr.obs); /* the final one, with results.json */
    snprintf(result->report_error, sizeof result->report_error, "%s", tr.obs.report_error);
out:
    teardown(&tr);
    return st;
}
