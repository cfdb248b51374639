/* A model's worker thread: it alone touches the model and its arena. It
 * takes the first queued request and, for inference, up to max_batch - 1
 * more infer requests, waiting at most batch_window_ms after the first for
 * them to arrive, but only under load: when this pickup already found
 * company or the previous forward merged several requests. A lone client
 * never waits (its next request cannot come before this answer), so the
 * window costs nothing at one connection. The batch goes through one
 * forward (infer.c). A generate
 * request runs alone (generate.c). On shutdown it finishes the queue. */
#include "serve/models_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Merged inputs of one forward are bounded too: a batch of max_batch
 * requests of max_inputs inputs each would be a very large forward. Its
 * tokens (estimated before tokenizing: text bytes, ids, or rows) stay under
 * BATCH_TOKEN_FACTOR x max_tokens; the first request always goes. */
#define MAX_BATCH_INPUTS 256
#define BATCH_TOKEN_FACTOR 4

static long request_size(const serve_infer_request *r) {
    long n = 0;
    for (int i = 0; i < r->n_inputs; i++)
        n += r->kind == SERVE_INPUT_TEXT     ? (long)strlen(r->texts[i])
             : r->kind == SERVE_INPUT_TOKENS ? r->n_tokens[i]
                                             : 1;
    return n;
}

static void deadline_after(struct timespec *ts, double ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    long ns = ts->tv_nsec + (long)(ms * 1e6);
    ts->tv_sec += ns / 1000000000L;
    ts->tv_nsec = ns % 1000000000L;
}

/* Removes from the queue (mu held) the infer jobs that fit, in order,
 * leaving generate jobs where they are; returns how many went to jobs. */
static int take_infer(serve_model *sm, serve_job **jobs, int n, int cap, int *inputs, long *size) {
    const long max_size = (long)BATCH_TOKEN_FACTOR * sm->lim.max_tokens;
    serve_job **link = &sm->head, *prev = NULL;
    while (*link && n < cap) {
        serve_job *j = *link;
        long js = j->generate ? 0 : request_size(&j->infer);
        if (j->generate ||
            (n > 0 && (*inputs + j->infer.n_inputs > MAX_BATCH_INPUTS || *size + js > max_size))) {
            prev = j;
            link = &j->next;
            continue;
        }
        *link = j->next;
        if (sm->tail == j) sm->tail = prev;
        j->next = NULL;
        jobs[n++] = j;
        *inputs += j->infer.n_inputs;
        *size += js;
        sm->depth--;
    }
    return n;
}

/* The queue-depth gauge; mu held, so the last value set is the depth now
 * (submitters set it under mu too). */
static void publish_depth(serve_model *sm) {
    if (!sm->metrics->queue_depth) return;
    const char *lv[] = {sm->name};
    moe_metric_set(sm->metrics->queue_depth, lv, sm->depth);
}

void *serve_worker_main(void *arg) {
    serve_model *sm = arg;
    int max_batch = sm->lim.max_batch > 0 ? sm->lim.max_batch : 1;
    serve_job *one[1], **jobs = calloc((size_t)max_batch, sizeof *jobs);
    if (!jobs) { /* no batching rather than no answers */
        jobs = one;
        max_batch = 1;
    }
    pthread_mutex_lock(&sm->mu);
    for (;;) {
        while (!sm->head && !sm->stopping) {
            /* wake once a second to let the tokens/s window slide */
            struct timespec ts;
            deadline_after(&ts, 1000);
            if (pthread_cond_timedwait(&sm->cv, &sm->mu, &ts) == ETIMEDOUT) {
                pthread_mutex_unlock(&sm->mu);
                serve_rate_add(sm, 0);
                pthread_mutex_lock(&sm->mu);
            }
        }
        if (!sm->head) break; /* stopping, queue drained */
        serve_job *gen = NULL;
        int n = 0, inputs = 0;
        long size = 0;
        if (sm->head->generate) {
            gen = sm->head;
            sm->head = gen->next;
            if (!sm->head) sm->tail = NULL;
            gen->next = NULL;
            sm->depth--;
        } else {
            n = take_infer(sm, jobs, 0, max_batch, &inputs, &size);
            /* a short wait for company under load, unless shutting down */
            int loaded = sm->lim.window_always || n > 1 || sm->last_batch > 1;
            if (loaded && n < max_batch && sm->lim.batch_window_ms > 0 && !sm->stopping) {
                struct timespec ts;
                deadline_after(&ts, sm->lim.batch_window_ms);
                while (n < max_batch && !sm->stopping && inputs < MAX_BATCH_INPUTS) {
                    int rc = pthread_cond_timedwait(&sm->cv, &sm->mu, &ts);
                    n = take_infer(sm, jobs, n, max_batch, &inputs, &size);
                    if (rc == ETIMEDOUT) break;
                }
            }
        }
        publish_depth(sm);
        pthread_mutex_unlock(&sm->mu);
        if (gen) {
            serve_generate_one(sm, gen);
            gen->done(gen->user);
            serve_generate_request_free(&gen->gen);
            free(gen);
        } else {
            serve_infer_batch(sm, jobs, n);
            sm->last_batch = n;
            for (int i = 0; i < n; i++) {
                serve_done_fn done = jobs[i]->done;
                void *user = jobs[i]->user;
                serve_infer_request_free(&jobs[i]->infer);
                free(jobs[i]);
                done(user);
            }
        }
        pthread_mutex_lock(&sm->mu);
    }
    pthread_mutex_unlock(&sm->mu);
    if (jobs != one) free(jobs);
    return NULL;
}
