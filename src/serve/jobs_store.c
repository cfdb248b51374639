/* job.json on disk: rewritten whole and atomically (temp file, fsync,
 * rename) so a server killed at any moment leaves the previous or the new
 * version, never half of one; and read back when a server starts. */
#include "serve/jobs_internal.h"

#include "io/fsutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *job_dir(const struct serve_jobs *js, const char *id) {
    return fs_printf("%s/%s", js->jobs_dir, id);
}

char *job_run_dir(const struct serve_jobs *js, const char *id) {
    return fs_printf("%s/%s/run", js->jobs_dir, id);
}

int job_has_checkpoint(const struct serve_jobs *js, const char *id) {
    char *p = fs_printf("%s/%s/run/checkpoints/latest", js->jobs_dir, id);
    int ok = p && fs_is_dir(p); /* follows the link: its target must be there */
    free(p);
    return ok;
}

moe_status job_persist(struct serve_jobs *js, job *j) {
    pthread_mutex_lock(&j->io);
    pthread_mutex_lock(&js->mu);
    cJSON *o = job_to_json(js, j, 1, 1);
    pthread_mutex_unlock(&js->mu);
    char *text = o ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    char *path = fs_printf("%s/%s/job.json", js->jobs_dir, j->id);
    moe_status st = text && path ? fs_write_file(path, text, strlen(text))
                                 : moe_error(MOE_ERR_NOMEM, "job.json: out of memory");
    pthread_mutex_unlock(&j->io);
    if (st != MOE_OK) fprintf(stderr, "moe serve: job %s: %s\n", j->id, moe_last_error());
    free(text);
    free(path);
    return st;
}

/* One job folder: its job.json as a job, or NULL (and a line on stderr)
 * when it cannot be used. */
static job *recover_one(struct serve_jobs *js, const char *id) {
    char *path = fs_printf("%s/%s/job.json", js->jobs_dir, id);
    char *text = NULL;
    size_t n = 0;
    int missing = 0;
    moe_status st = path ? fs_read_file(path, &text, &n, &missing) : MOE_ERR_NOMEM;
    job *j = NULL;
    if (st == MOE_OK) {
        cJSON *o = cJSON_ParseWithLength(text, n);
        j = o ? job_new() : NULL;
        st = !o   ? moe_error(MOE_ERR_FORMAT, "malformed JSON")
             : !j ? moe_error(MOE_ERR_NOMEM, "out of memory")
                  : job_from_json(j, o);
        cJSON_Delete(o);
        if (st == MOE_OK && strcmp(j->id, id) != 0)
            st = moe_error(MOE_ERR_FORMAT, "its id \"%s\" is not its folder's name", j->id);
    }
    if (st != MOE_OK && !missing)
        fprintf(stderr, "moe serve: skipping job %s: %s: %s\n", id, path ? path : "job.json",
                moe_last_error());
    free(path);
    free(text);
    if (st != MOE_OK) {
        job_destroy(j);
        return NULL;
    }
    return j;
}

/* A job whose server died under it: resumable when it got as far as a checkpoint. */
static void settle_orphan(struct serve_jobs *js, job *j) {
    if (j->state != JOB_RUNNING && j->state != JOB_QUEUED) return;
    if (job_has_checkpoint(js, j->id)) {
        j->state = JOB_INTERRUPTED;
        snprintf(j->stop_reason, sizeof j->stop_reason, "interrupted");
    } else {
        j->state = JOB_FAILED;
        snprintf(j->error, sizeof j->error, "the server stopped before the first checkpoint");
    }
    if (!j->finished) j->finished = time(NULL);
}

/* "j-000042-..." -> 42, so new ids continue after the recovered ones. */
static unsigned long seq_of(const char *id) {
    unsigned long seq = 0;
    return sscanf(id, "j-%lu-", &seq) == 1 ? seq : 0;
}

static int by_id(const void *a, const void *b) {
    return strcmp((*(job *const *)a)->id, (*(job *const *)b)->id);
}

moe_status jobs_recover(struct serve_jobs *js) {
    DIR *d = opendir(js->jobs_dir);
    if (!d) return moe_error(MOE_ERR_IO, "cannot read %s", js->jobs_dir);
    struct dirent *e;
    moe_status st = MOE_OK;
    while (st == MOE_OK && (e = readdir(d))) {
        if (!serve_name_valid(e->d_name)) continue; /* ".", "..", temp files */
        char *dir = job_dir(js, e->d_name);
        int is_dir = dir && fs_is_dir(dir);
        free(dir);
        if (!is_dir) continue;
        unsigned long seq = seq_of(e->d_name); /* skipped folders too: ids stay unique */
        if (seq >= js->next_seq) js->next_seq = seq + 1;
        job *j = recover_one(js, e->d_name);
        if (!j) continue;
        job_state before = j->state;
        settle_orphan(js, j);
        st = jobs_add(js, j);
        if (st != MOE_OK) {
            job_destroy(j);
            break;
        }
        if (j->state != before) {
            fprintf(stderr, "moe serve: job %s was %s when the server stopped; now %s\n", j->id,
                    job_state_names[before], job_state_names[j->state]);
            job_persist(js, j);
        }
    }
    closedir(d);
    if (js->n_jobs > 1) qsort(js->jobs, (size_t)js->n_jobs, sizeof *js->jobs, by_id);
    return st;
}
