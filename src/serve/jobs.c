/* Training jobs: the registry of jobs, one thread per running job, and the
 * states they move through (queued -> running -> completed | failed |
 * cancelled | interrupted). Every state change is written to job.json (a
 * run's end before anyone can see it), progress at most every two
 * seconds; each write replaces the whole file atomically. */
#include "serve/jobs_internal.h"

#include "io/fsutil.h"

#include <limits.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PERSIST_EVERY_S 2.0

job *job_new(void) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->io, NULL);
    for (int i = 0; i < JOB_N_METRICS; i++) j->metrics[i] = NAN;
    j->epoch = j->elapsed_s = j->eta_s = 0;
    return j;
}

void job_destroy(job *j) {
    if (!j) return;
    job_free_fields(j);
    pthread_mutex_destroy(&j->io);
    free(j);
}

moe_status jobs_add(struct serve_jobs *js, job *j) {
    if (js->n_jobs == js->cap_jobs) {
        int cap = js->cap_jobs ? js->cap_jobs * 2 : 16;
        job **a = realloc(js->jobs, (size_t)cap * sizeof *a);
        if (!a) return moe_error(MOE_ERR_NOMEM, "jobs: out of memory");
        js->jobs = a;
        js->cap_jobs = cap;
    }
    j->js = js;
    js->jobs[js->n_jobs++] = j;
    return MOE_OK;
}

static job *find(serve_jobs *js, const char *id) {
    if (!serve_name_valid(id)) return NULL;
    for (int i = 0; i < js->n_jobs; i++)
        if (strcmp(js->jobs[i]->id, id) == 0) return js->jobs[i];
    return NULL;
}

/* serve_jobs{state}: caller holds mu. */
static void update_gauge(serve_jobs *js) {
    if (!js->m_state) return;
    int count[JOB_N_STATES] = {0};
    for (int i = 0; i < js->n_jobs; i++) count[js->jobs[i]->state]++;
    for (int s = 0; s < JOB_N_STATES; s++) {
        const char *lv[] = {job_state_names[s]};
        moe_metric_set(js->m_state, lv, count[s]);
    }
}

/* A malloc'd JSON rendering of j (caller holds mu). */
static char *render(serve_jobs *js, const job *j, int history) {
    cJSON *o = job_to_json(js, j, history, history);
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* ---- the job's thread ---- */

typedef struct run_ctx {
    job *j;
    moe_registry *reg;
    moe_metric *fraction; /* the trainer's expert_fraction{layer,expert} */
    int n_layer_probe;    /* layer labels to look for */
    int n_experts;
} run_ctx;

/* The last step's expert shares, read back from the job's registry: the
 * MoE layers are the layer labels that have a series. Caller holds mu. */
static void read_experts(run_ctx *c) {
    job *j = c->j;
    if (!c->fraction &&
        moe_registry_declare(c->reg, "expert_fraction", MOE_METRIC_GAUGE,
                             "Share of kept (token, slot) pairs each expert got in the last step.",
                             "layer,expert", NULL, 0, &c->fraction) != MOE_OK)
        return;
    int E = c->n_experts, L = 0;
    if (E <= 0) return;
    const size_t need = (size_t)c->n_layer_probe * (size_t)E;
    if (!j->shares || j->cap_shares < need || j->cap_layers < c->n_layer_probe) {
        /* first report, or buffers a recovered job.json sized (fewer layers
         * or experts than this model has) */
        free(j->shares);
        free(j->layer_index);
        j->shares = malloc(need * sizeof *j->shares);
        j->layer_index = malloc((size_t)c->n_layer_probe * sizeof *j->layer_index);
        j->cap_shares = j->shares ? need : 0;
        j->cap_layers = j->layer_index ? c->n_layer_probe : 0;
        if (!j->shares || !j->layer_index) {
            free(j->shares);
            free(j->layer_index);
            j->shares = NULL;
            j->layer_index = NULL;
            j->cap_shares = 0;
            j->cap_layers = 0;
            j->n_layers = j->n_experts = 0;
            return;
        }
    }
    for (int l = 0; l < c->n_layer_probe; l++) {
        char ll[16], le[16];
        snprintf(ll, sizeof ll, "%d", l);
        snprintf(le, sizeof le, "0");
        const char *lv0[] = {ll, le};
        if (isnan(moe_metric_value(c->fraction, lv0))) continue;
        for (int e = 0; e < E; e++) {
            snprintf(le, sizeof le, "%d", e);
            const char *lv[] = {ll, le};
            j->shares[(size_t)L * E + e] = moe_metric_value(c->fraction, lv);
        }
        j->layer_index[L++] = l;
    }
    j->n_layers = L;
    j->n_experts = L ? E : 0;
}

static void on_progress(const moe_train_progress *p, void *user) {
    run_ctx *c = user;
    job *j = c->j;
    serve_jobs *js = j->js;
    pthread_mutex_lock(&js->mu);
    j->step = p->step;
    j->total_steps = p->total_steps;
    j->epoch = p->epoch;
    j->elapsed_s = j->elapsed_before + p->elapsed_s; /* a resume continues the clock */
    j->eta_s = p->eta_s;
    double *m = j->metrics;
    if (p->is_eval) {
        m[JM_VAL_LOSS] = p->val_loss;
        m[JM_VAL_PPL] = p->val_ppl;
        m[JM_VAL_ACCURACY] = p->val_accuracy;
        m[JM_VAL_MACRO_F1] = p->val_macro_f1;
    } else {
        m[JM_TRAIN_LOSS] = p->loss;
        m[JM_CE] = p->ce;
        m[JM_AUX_LOSS] = p->aux;
        m[JM_LR] = p->lr;
        m[JM_GRAD_NORM] = p->grad_norm;
        m[JM_TOKENS_PER_S] = p->tokens_per_s;
        m[JM_BALANCE_CV] = p->balance_cv;
        m[JM_MAX_OVER_MEAN] = p->max_over_mean;
        read_experts(c);
    }
    if (!(p->is_eval && p->step == 0)) job_history_add(j, p); /* step 0: no loss to pair with */
    double now = serve_now();
    int due = now - j->last_persist >= PERSIST_EVERY_S;
    if (due) j->last_persist = now;
    pthread_mutex_unlock(&js->mu);
    if (due) job_persist(js, j);
}

/* The run config the job was started with (job.json keeps it). */
static moe_status job_config(job *j, moe_run_config *cfg) {
    serve_jobs *js = j->js;
    pthread_mutex_lock(&js->mu);
    char *text = cJSON_PrintUnformatted(j->config);
    pthread_mutex_unlock(&js->mu);
    if (!text) return moe_error(MOE_ERR_NOMEM, "job %s: out of memory", j->id);
    moe_config_defaults(cfg);
    moe_status st = moe_config_from_json(cfg, text, "job.json");
    free(text);
    return st;
}

/* Publishes the end of a run: state, job.json, the slot. job.json is
 * written before mu is released, so whoever sees the new state can also
 * read it from disk; after this the thread takes no lock, so a join under
 * mu cannot deadlock. */
static void finish(job *j, moe_status st, const char *error, const moe_train_result *r) {
    serve_jobs *js = j->js;
    pthread_mutex_lock(&j->io);
    pthread_mutex_lock(&js->mu);
    if (st != MOE_OK) {
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof j->error, "%s", error);
    } else if (r && strcmp(r->stop_reason, "interrupted") != 0) {
        j->state = JOB_COMPLETED;
    } else {
        j->state = j->cancel_requested ? JOB_CANCELLED : JOB_INTERRUPTED;
    }
    if (r && r->stop_reason[0]) /* the trainer says "interrupted" for a cancel too */
        snprintf(j->stop_reason, sizeof j->stop_reason, "%s",
                 j->state == JOB_CANCELLED ? "cancelled" : r->stop_reason);
    if (r && st == MOE_OK) j->step = r->steps;
    j->finished = time(NULL);
    cJSON *o = job_to_json(js, j, 1, 1);
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    char *path = fs_printf("%s/%s/job.json", js->jobs_dir, j->id);
    if (!text || !path || fs_write_file(path, text, strlen(text)) != MOE_OK)
        fprintf(stderr, "moe serve: job %s: job.json not written: %s\n", j->id, moe_last_error());
    free(text);
    free(path);
    js->active--;
    j->thread_done = 1;
    update_gauge(js);
    pthread_mutex_unlock(&js->mu);
    pthread_mutex_unlock(&j->io);
}

static void *job_thread(void *arg) {
    job *j = arg;
    serve_jobs *js = j->js;
    moe_run_config cfg;
    moe_train_result r;
    memset(&r, 0, sizeof r);
    moe_registry *reg = NULL;
    char *run_dir = job_run_dir(js, j->id);
    char *latest = fs_printf("%s/checkpoints/latest", run_dir ? run_dir : "");
    moe_status st = run_dir && latest ? job_config(j, &cfg) : MOE_ERR_NOMEM;
    if (st == MOE_OK) st = moe_registry_create(&reg, NULL);
    pthread_mutex_lock(&js->mu);
    int resuming = j->resuming, stop_early = j->stop;
    if (st == MOE_OK && !stop_early) {
        j->state = JOB_RUNNING;
        if (!j->started) j->started = time(NULL);
        j->finished = 0;
        j->last_persist = serve_now();
        update_gauge(js);
    }
    pthread_mutex_unlock(&js->mu);
    if (st == MOE_OK && !stop_early) {
        job_persist(js, j);
        /* the model's layer labels are block indices (transformers) or 0..n-1 */
        run_ctx c = {.j = j,
                     .reg = reg,
                     .n_layer_probe = cfg.model.n_layer > 64 ? cfg.model.n_layer : 64,
                     .n_experts = cfg.model.moe.n_experts};
        moe_train_opts opts = {.resume_dir = resuming ? latest : NULL,
                               .run_dir = run_dir,
                               .progress = on_progress,
                               .user = &c,
                               .registry = reg,
                               .stop = &j->stop};
        st = moe_train_run(&cfg, &opts, &r);
    } else if (st == MOE_OK) { /* cancelled or shut down before it began */
        snprintf(r.stop_reason, sizeof r.stop_reason, "interrupted");
    }
    char error[512] = "";
    if (st != MOE_OK) snprintf(error, sizeof error, "%s", moe_last_error());
    finish(j, st, error, &r);
    moe_registry_free(reg);
    free(run_dir);
    free(latest);
    return NULL;
}

/* Starts j's thread (caller holds mu and has counted j in active). */
static moe_status spawn(serve_jobs *js, job *j, serve_error *err) {
    j->thread_done = 0;
    if (pthread_create(&j->thread, NULL, job_thread, j) != 0) {
        js->active--;
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof j->error, "the server could not start a thread for the job");
        j->finished = time(NULL);
        update_gauge(js);
        return serve_fail(err, 503, "", "the server could not start a training thread; retry");
    }
    j->has_thread = 1;
    return MOE_OK;
}

/* A finished thread's resources back (its end is published, so this is quick). */
static void reap(job *j) {
    if (j->has_thread && j->thread_done) {
        pthread_join(j->thread, NULL);
        j->has_thread = 0;
    }
}

static moe_status busy(serve_jobs *js, serve_error *err) {
    return serve_fail(err, 429, "",
                      "%d training job%s already running (the server's --max-jobs); wait for one "
                      "to finish or cancel one",
                      js->active, js->active == 1 ? " is" : "s are");
}

/* ---- the API ---- */

moe_status serve_jobs_open(serve_jobs **out, const char *state_dir, const char *data_dir,
                           const char *configs_dir, int max_jobs, moe_registry *reg) {
    *out = NULL;
    serve_jobs *js = calloc(1, sizeof *js);
    if (!js) return moe_error(MOE_ERR_NOMEM, "jobs: out of memory");
    pthread_mutex_init(&js->mu, NULL);
    js->max_jobs = max_jobs;
    js->next_seq = 1;
    char real[PATH_MAX];
    moe_status st = MOE_OK;
    js->state_dir = strdup(state_dir);
    js->configs_dir = strdup(configs_dir);
    js->jobs_dir = fs_printf("%s/jobs", state_dir);
    if (!js->state_dir || !js->configs_dir || !js->jobs_dir)
        st = moe_error(MOE_ERR_NOMEM, "jobs: out of memory");
    else if (!realpath(data_dir, real) || !fs_is_dir(real))
        st = moe_error(MOE_ERR_INVALID,
                       "--data-dir %s is not a folder; give the folder training data lives in",
                       data_dir);
    else if (!(js->data_real = strdup(real)))
        st = moe_error(MOE_ERR_NOMEM, "jobs: out of memory");
    if (st == MOE_OK) st = fs_mkdir_p_mode(js->jobs_dir, 0700); /* jobs hold configs, keys' ids */
    if (st == MOE_OK && reg)
        st = moe_registry_declare(reg, "serve_jobs", MOE_METRIC_GAUGE, "Training jobs by state.",
                                  "state", NULL, 0, &js->m_state);
    if (st == MOE_OK && reg)
        st = moe_registry_declare(reg, "serve_jobs_started_total", MOE_METRIC_COUNTER,
                                  "Training jobs started or resumed.", NULL, NULL, 0,
                                  &js->m_started);
    if (st == MOE_OK && js->m_started) moe_metric_add(js->m_started, NULL, 0);
    if (st == MOE_OK) st = jobs_recover(js);
    if (st != MOE_OK) {
        serve_jobs_close(js);
        return st;
    }
    update_gauge(js);
    *out = js;
    return MOE_OK;
}

void serve_jobs_close(serve_jobs *js) {
    if (!js) return;
    pthread_mutex_lock(&js->mu);
    js->closing = 1;
    for (int i = 0; i < js->n_jobs; i++) js->jobs[i]->stop = 1;
    pthread_mutex_unlock(&js->mu);
    /* no new threads once closing is set; the running ones need mu to end */
    for (int i = 0; i < js->n_jobs; i++)
        if (js->jobs[i]->has_thread) {
            pthread_join(js->jobs[i]->thread, NULL);
            js->jobs[i]->has_thread = 0;
        }
    for (int i = 0; i < js->n_jobs; i++) job_destroy(js->jobs[i]);
    free(js->jobs);
    free(js->state_dir);
    free(js->jobs_dir);
    free(js->data_real);
    free(js->configs_dir);
    pthread_mutex_destroy(&js->mu);
    free(js);
}

/* "j-000042-1f2e3d4c": a sequence number for order, random bits so ids
 * cannot be guessed from one another. */
static void new_id(serve_jobs *js, char *id, size_t cap) {
    unsigned char rnd[4] = {0};
    if (RAND_bytes(rnd, sizeof rnd) != 1) { /* never expected; still unique by sequence */
        unsigned long t = (unsigned long)time(NULL);
        memcpy(rnd, &t, sizeof rnd);
    }
    snprintf(id, cap, "j-%06lu-%02x%02x%02x%02x", js->next_seq++ % 1000000, rnd[0], rnd[1], rnd[2],
             rnd[3]);
}

/* The job's fields from its sandboxed config (caller holds mu). */
static moe_status fill_job(serve_jobs *js, job *j, moe_run_config *cfg, const char *name,
                           const char *key_id, serve_error *err) {
    new_id(js, j->id, sizeof j->id);
    char *dir = job_dir(js, j->id), *run_dir = job_run_dir(js, j->id);
    moe_status st = dir && run_dir ? MOE_OK : serve_fail(err, 500, "", "out of memory");
    if (st == MOE_OK && strlen(dir) >= sizeof cfg->out_dir)
        st = serve_fail(err, 500, "", "the state directory's path is too long");
    char *text = NULL;
    if (st == MOE_OK) {
        snprintf(cfg->out_dir, sizeof cfg->out_dir, "%s", dir); /* the sandbox's placeholder */
        text = moe_config_to_json(cfg);
        if (!text || !(j->config = cJSON_Parse(text)))
            st = serve_fail(err, 500, "", "out of memory");
    }
    if (st == MOE_OK && fs_mkdir_p_mode(run_dir, 0700) != MOE_OK)
        st = serve_fail(err, 500, "", "cannot create the job's folder: %s", moe_last_error());
    if (st == MOE_OK) {
        snprintf(j->name, sizeof j->name, "%s", name);
        snprintf(j->key_id, sizeof j->key_id, "%s", key_id ? key_id : "");
        j->state = JOB_QUEUED;
        j->created = time(NULL);
        j->total_steps = cfg->train.steps;
    }
    free(text);
    free(dir);
    free(run_dir);
    return st;
}

moe_status serve_jobs_start(serve_jobs *js, const char *body, size_t len, const char *key_id,
                            char **json, serve_error *err) {
    *json = NULL;
    if (!js) return serve_fail(err, 503, "", "the server is shutting down; retry on its restart");
    char name[SERVE_NAME_MAX];
    moe_run_config *cfg = malloc(sizeof *cfg);
    job *j = job_new();
    moe_status st = cfg && j ? MOE_OK : serve_fail(err, 500, "", "out of memory");
    /* outputs provisionally under jobs/; the job's own folder once it has an id */
    if (st == MOE_OK)
        st = jobs_build_config(js, body, len, js->jobs_dir, cfg, name, sizeof name, err);
    pthread_mutex_lock(&js->mu);
    if (st == MOE_OK && js->closing)
        st = serve_fail(err, 503, "", "the server is shutting down; retry on its restart");
    if (st == MOE_OK && js->active >= js->max_jobs) st = busy(js, err);
    if (st == MOE_OK) st = fill_job(js, j, cfg, name, key_id, err);
    if (st == MOE_OK && jobs_add(js, j) != MOE_OK) st = serve_fail(err, 500, "", "out of memory");
    if (st == MOE_OK) {
        js->active++;
        if (js->m_started) moe_metric_add(js->m_started, NULL, 1);
        *json = render(js, j, 0);
        st = spawn(js, j, err);
        update_gauge(js);
    } else {
        job_destroy(j);
        j = NULL;
    }
    pthread_mutex_unlock(&js->mu);
    free(cfg);
    if (j) job_persist(js, j); /* the thread may have written first; either way the newest wins */
    if (st != MOE_OK) {
        free(*json);
        *json = NULL;
    }
    return st;
}

moe_status serve_jobs_resume(serve_jobs *js, const char *id, const char *key_id, char **json,
                             serve_error *err) {
    (void)key_id; /* the job keeps who started it; the audit log says who resumed it */
    *json = NULL;
    if (!js) return serve_fail(err, 503, "", "the server is shutting down; retry on its restart");
    moe_status st = MOE_OK;
    pthread_mutex_lock(&js->mu);
    job *j = find(js, id);
    if (!j) {
        st = serve_fail(err, 404, "id", "no job \"%.64s\"", id ? id : "");
    } else if (js->closing) {
        st = serve_fail(err, 503, "", "the server is shutting down; retry on its restart");
    } else if (j->has_thread && !j->thread_done) {
        st = serve_fail(err, 409, "id",
                        "job %s is %s%s; only an interrupted or cancelled job "
                        "resumes",
                        j->id, job_state_names[j->state], j->stop ? " (stopping)" : "");
    } else if (!job_resumable(js, j)) {
        st = serve_fail(err, 409, "id",
                        "job %s is %s%s; only an interrupted or cancelled job with a checkpoint "
                        "resumes",
                        j->id, job_state_names[j->state],
                        j->state == JOB_INTERRUPTED || j->state == JOB_CANCELLED
                            ? " without a checkpoint"
                            : "");
    } else if (js->active >= js->max_jobs) {
        st = busy(js, err);
    }
    if (st == MOE_OK) {
        reap(j);
        j->state = JOB_QUEUED;
        j->resuming = 1;
        j->elapsed_before = isfinite(j->elapsed_s) ? j->elapsed_s : 0;
        j->stop = 0;
        j->cancel_requested = 0;
        j->error[0] = '\0';
        j->stop_reason[0] = '\0';
        j->finished = 0;
        js->active++;
        if (js->m_started) moe_metric_add(js->m_started, NULL, 1);
        *json = render(js, j, 0);
        st = spawn(js, j, err);
        update_gauge(js);
    }
    pthread_mutex_unlock(&js->mu);
    if (j && st == MOE_OK) job_persist(js, j);
    if (st != MOE_OK) {
        free(*json);
        *json = NULL;
    }
    return st;
}

moe_status serve_jobs_get(serve_jobs *js, const char *id, char **json, serve_error *err) {
    *json = NULL;
    if (!js) return serve_fail(err, 503, "", "the server is shutting down; retry on its restart");
    pthread_mutex_lock(&js->mu);
    job *j = find(js, id);
    *json = j ? render(js, j, 1) : NULL;
    pthread_mutex_unlock(&js->mu);
    if (!j) return serve_fail(err, 404, "id", "no job \"%.64s\"", id ? id : "");
    return *json ? MOE_OK : serve_fail(err, 500, "", "out of memory");
}

moe_status serve_jobs_list(serve_jobs *js, char **json) {
    *json = NULL;
    if (!js) return moe_error(MOE_ERR_INVALID, "jobs: the server is shutting down");
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "jobs");
    pthread_mutex_lock(&js->mu);
    for (int i = 0; a && i < js->n_jobs; i++)
        cJSON_AddItemToArray(a, job_to_json(js, js->jobs[i], 0, 0));
    pthread_mutex_unlock(&js->mu);
    *json = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return *json ? MOE_OK : moe_error(MOE_ERR_NOMEM, "jobs: out of memory");
}

moe_status serve_jobs_cancel(serve_jobs *js, const char *id, char **json, serve_error *err) {
    *json = NULL;
    if (!js) return serve_fail(err, 503, "", "the server is shutting down; retry on its restart");
    moe_status st = MOE_OK;
    pthread_mutex_lock(&js->mu);
    job *j = find(js, id);
    if (!j)
        st = serve_fail(err, 404, "id", "no job \"%.64s\"", id ? id : "");
    else if (j->state != JOB_QUEUED && j->state != JOB_RUNNING)
        st = serve_fail(err, 409, "id", "job %s has already ended (%s)", j->id,
                        job_state_names[j->state]);
    if (st == MOE_OK) {
        j->stop = 1;
        j->cancel_requested = 1;
        *json = render(js, j, 0);
        if (!*json) st = serve_fail(err, 500, "", "out of memory");
    }
    pthread_mutex_unlock(&js->mu);
    return st;
}

int serve_jobs_running(serve_jobs *js) {
    if (!js) return 0;
    pthread_mutex_lock(&js->mu);
    int n = js->active;
    pthread_mutex_unlock(&js->mu);
    return n;
}
