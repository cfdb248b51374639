/* moe serve's training jobs (src/serve/jobs*.c): a short tiny job runs to
 * completion with progress, history and expert shares; cancel, resume,
 * 404/409/429; bad configs are 400 naming the key and the sandbox keeps
 * files inside the data directory; a shutdown or a crash leaves jobs
 * interrupted and resumable, and a malformed job.json is skipped. Runs in
 * the source tree: configs_dir = configs, data_dir = the repository. */
#include "test_util.h"

#include "scratch_dir.h"
#include "serve/jobs_internal.h"
#include "serve/serve.h"

#include "io/fsutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SHORT_JOB                                                                                  \
    "{\"config\": \"tiny\", \"name\": \"short\", \"set\": {\"train.steps\": 10, "                  \
    "\"train.eval_every\": 0, \"train.sample_tokens\": 0, \"train.log_every\": 1, "                \
    "\"train.checkpoint_every\": 5, \"obs.report_every\": 0}}"
/* long enough to cancel; checkpoints every 5 steps */
#define JOB_OF(steps)                                                                              \
    "{\"config\": \"tiny\", \"set\": {\"train.steps\": " #steps ", \"train.eval_every\": 0, "      \
    "\"train.sample_tokens\": 0, \"train.log_every\": 1, \"train.checkpoint_every\": 5, "          \
    "\"train.sched.kind\": \"constant\", \"obs.report_every\": 0}}"

static moe_registry *reg;

static serve_jobs *open_jobs(const char *state, int max_jobs) {
    serve_jobs *js = NULL;
    if (!reg) assert_int_equal(moe_registry_create(&reg, "moe"), MOE_OK);
    moe_status st = serve_jobs_open(&js, scratch_path(state), ".", "configs", max_jobs, reg);
    if (st != MOE_OK) fail_msg("serve_jobs_open: %s", moe_last_error());
    return js;
}

static cJSON *parse(char *json) {
    assert_non_null(json);
    cJSON *o = cJSON_Parse(json);
    free(json);
    assert_non_null(o);
    return o;
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Starts a job; its id into id. */
static void start(serve_jobs *js, const char *body, char *id, size_t cap) {
    char *json = NULL;
    serve_error err = {0};
    moe_status st = serve_jobs_start(js, body, strlen(body), "tester", &json, &err);
    if (st != MOE_OK) fail_msg("start: %d %s: %s", err.status, err.field, err.message);
    cJSON *o = parse(json);
    assert_string_equal(str(o, "state"), "queued");
    assert_string_equal(str(o, "key_id"), "tester");
    snprintf(id, cap, "%s", str(o, "id"));
    cJSON_Delete(o);
}

static cJSON *get(serve_jobs *js, const char *id) {
    char *json = NULL;
    serve_error err = {0};
    if (serve_jobs_get(js, id, &json, &err) != MOE_OK) fail_msg("get %s: %s", id, err.message);
    return parse(json);
}

static void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Polls until the job is in state (fails after timeout_s), and returns it. */
static cJSON *wait_state(serve_jobs *js, const char *id, const char *state, double timeout_s) {
    for (int i = 0; i < (int)(timeout_s * 50); i++) {
        cJSON *o = get(js, id);
        if (strcmp(str(o, "state"), state) == 0) return o;
        const char *s = str(o, "state");
        if (strcmp(s, "failed") == 0 && strcmp(state, "failed") != 0)
            fail_msg("job %s failed: %s", id, str(o, "error"));
        cJSON_Delete(o);
        sleep_ms(20);
    }
    fail_msg("job %s not %s after %.0f s", id, state, timeout_s);
    return NULL;
}

/* Polls until the job has done at least `step` steps. */
static void wait_step(serve_jobs *js, const char *id, long step) {
    for (int i = 0; i < 3000; i++) {
        cJSON *o = get(js, id);
        double s = num(cJSON_GetObjectItemCaseSensitive(o, "progress"), "step");
        const char *state = str(o, "state");
        int ended = strcmp(state, "queued") != 0 && strcmp(state, "running") != 0;
        cJSON_Delete(o);
        if (s >= step) return;
        if (ended) fail_msg("job %s ended (%s) before step %ld", id, state, step);
        sleep_ms(20);
    }
    fail_msg("job %s never reached step %ld", id, step);
}

/* The call failed with this status and field. */
static void expect_error(moe_status st, const serve_error *err, int status, const char *field) {
    if (st == MOE_OK || err->status != status || strcmp(err->field, field) != 0)
        fail_msg("expected %d naming \"%s\", got %s %d \"%s\": %s", status, field,
                 st == MOE_OK ? "success" : "error", err->status, err->field, err->message);
}

static double gauge(const char *state) {
    moe_metric *m = NULL;
    assert_int_equal(
        moe_registry_declare(reg, "serve_jobs", MOE_METRIC_GAUGE, "x", "state", NULL, 0, &m),
        MOE_OK);
    const char *lv[] = {state};
    return moe_metric_value(m, lv);
}

static void test_short_job_completes(void **state) {
    (void)state;
    serve_jobs *js = open_jobs("short", 1);
    char id[64];
    start(js, SHORT_JOB, id, sizeof id);
    unsigned seq = 0;
    char hex[16] = "";
    assert_int_equal(sscanf(id, "j-%6u-%8[0-9a-f]", &seq, hex), 2);
    assert_int_equal(strlen(id), 17);
    assert_int_equal(seq, 1);
    assert_true(serve_name_valid(id));
    cJSON *o = wait_state(js, id, "completed", 120);
    assert_string_equal(str(o, "name"), "short");
    assert_string_equal(str(o, "stop_reason"), "completed");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "resumable")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "error")));
    assert_non_null(str(o, "created"));
    assert_non_null(str(o, "started"));
    assert_non_null(str(o, "finished"));
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "progress");
    assert_close(num(p, "step"), 10, 0);
    assert_close(num(p, "total_steps"), 10, 0);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metrics");
    assert_true(isfinite(num(m, "train_loss")) && num(m, "train_loss") > 0);
    assert_true(isfinite(num(m, "val_loss"))); /* the final evaluation */
    assert_true(isfinite(num(m, "tokens_per_s")));
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "history");
    assert_int_equal(cJSON_GetArraySize(h), 10); /* log_every 1 */
    const cJSON *last = cJSON_GetArrayItem(h, 9);
    assert_close(num(last, "step"), 10, 0);
    assert_true(isfinite(num(last, "loss")) && isfinite(num(last, "val_loss")));
    /* tiny: two MoE layers of four experts; each layer's shares sum to 1 */
    const cJSON *layers =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "experts"), "layers");
    assert_int_equal(cJSON_GetArraySize(layers), 2);
    const cJSON *row;
    cJSON_ArrayForEach(row, layers) {
        assert_int_equal(cJSON_GetArraySize(row), 4);
        double sum = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, row) sum += v->valuedouble;
        assert_close(sum, 1, 1e-3);
    }
    char want[128];
    snprintf(want, sizeof want, "jobs/%s/run/checkpoints/latest", id);
    assert_string_equal(str(o, "checkpoint"), want);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", scratch_path("short"), want);
    assert_true(fs_is_dir(path));
    /* the job's folders are the server user's only */
    const char *const dirs[] = {"jobs", "jobs/%s", "jobs/%s/run"};
    for (int i = 0; i < 3; i++) {
        char rel[128];
        struct stat sb;
        snprintf(rel, sizeof rel, dirs[i], id);
        snprintf(path, sizeof path, "%s/%s", scratch_path("short"), rel);
        assert_int_equal(stat(path, &sb), 0);
        if ((sb.st_mode & 0777) != 0700) fail_msg("%s has mode %o", rel, sb.st_mode & 0777);
    }
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(o, "config");
    assert_non_null(cfg);
    assert_string_equal(str(cfg, "name"), "short");
    /* the server's choices: outputs in the job's folder, a bounded thread count */
    char out_dir[512];
    snprintf(out_dir, sizeof out_dir, "%s/jobs/%s", scratch_path("short"), id);
    assert_string_equal(str(cfg, "out_dir"), out_dir);
    double threads = num(cJSON_GetObjectItemCaseSensitive(cfg, "train"), "threads");
    assert_true(threads >= 1 && threads <= sysconf(_SC_NPROCESSORS_ONLN));
    cJSON_Delete(o);
    /* job.json on disk says the same */
    snprintf(path, sizeof path, "%s/jobs/%s/job.json", scratch_path("short"), id);
    char *text = NULL;
    size_t n = 0;
    assert_int_equal(fs_read_file(path, &text, &n, NULL), MOE_OK);
    o = parse(text);
    assert_string_equal(str(o, "state"), "completed");
    cJSON_Delete(o);
    /* the list has it, without the history */
    char *json = NULL;
    assert_int_equal(serve_jobs_list(js, &json), MOE_OK);
    o = parse(json);
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(o, "jobs");
    assert_int_equal(cJSON_GetArraySize(jobs), 1);
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(jobs, 0), "history"));
    assert_string_equal(str(cJSON_GetArrayItem(jobs, 0), "id"), id);
    cJSON_Delete(o);
    assert_close(gauge("completed"), 1, 0);
    assert_close(gauge("running"), 0, 0);
    assert_int_equal(serve_jobs_running(js), 0);
    /* a finished job cannot be cancelled or resumed */
    serve_error err = {0};
    json = NULL;
    expect_error(serve_jobs_cancel(js, id, &json, &err), &err, 409, "id");
    assert_null(json);
    expect_error(serve_jobs_resume(js, id, "tester", &json, &err), &err, 409, "id");
    serve_jobs_close(js);
}

static void test_cancel_then_resume(void **state) {
    (void)state;
    serve_jobs *js = open_jobs("cancel", 1);
    char id[64];
    start(js, JOB_OF(150), id, sizeof id);
    wait_step(js, id, 6);
    char *json = NULL;
    serve_error err = {0};
    assert_int_equal(serve_jobs_cancel(js, id, &json, &err), MOE_OK);
    cJSON *o = parse(json);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "stopping")));
    cJSON_Delete(o);
    o = wait_state(js, id, "cancelled", 60);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "resumable")));
    assert_non_null(str(o, "checkpoint"));
    assert_string_equal(str(o, "stop_reason"), "cancelled");
    double stopped_at = num(cJSON_GetObjectItemCaseSensitive(o, "progress"), "step");
    double elapsed_at_cancel = num(cJSON_GetObjectItemCaseSensitive(o, "progress"), "elapsed_s");
    assert_true(stopped_at >= 6 && stopped_at < 150);
    cJSON_Delete(o);
    assert_int_equal(serve_jobs_running(js), 0);
    assert_int_equal(serve_jobs_resume(js, id, "tester", &json, &err), MOE_OK);
    o = parse(json);
    assert_string_equal(str(o, "state"), "queued");
    cJSON_Delete(o);
    o = wait_state(js, id, "completed", 180);
    assert_close(num(cJSON_GetObjectItemCaseSensitive(o, "progress"), "step"), 150, 0);
    /* the clock continues across the resume too */
    assert_true(num(cJSON_GetObjectItemCaseSensitive(o, "progress"), "elapsed_s") >
                elapsed_at_cancel);
    assert_string_equal(str(o, "stop_reason"), "completed");
    /* the history continues across the resume */
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "history");
    assert_true(cJSON_GetArraySize(h) >= 140);
    cJSON_Delete(o);
    expect_error(serve_jobs_cancel(js, id, &json, &err), &err, 409, "id");
    serve_jobs_close(js);
}

static void test_unknown_ids(void **state) {
    (void)state;
    serve_jobs *js = open_jobs("ids", 1);
    const char *ids[] = {"j-999999-00000000", "../x", "", "a/b", ".hidden"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char *json = NULL;
        serve_error err = {0};
        expect_error(serve_jobs_get(js, ids[i], &json, &err), &err, 404, "id");
        expect_error(serve_jobs_cancel(js, ids[i], &json, &err), &err, 404, "id");
        expect_error(serve_jobs_resume(js, ids[i], "k", &json, &err), &err, 404, "id");
        assert_null(json);
    }
    char *json = NULL;
    assert_int_equal(serve_jobs_list(js, &json), MOE_OK);
    assert_string_equal(json, "{\"jobs\":[]}");
    free(json);
    serve_jobs_close(js);
}

static void expect_bad(serve_jobs *js, const char *body, int status, const char *field) {
    char *json = NULL;
    serve_error err = {0};
    moe_status st = serve_jobs_start(js, body, strlen(body), "k", &json, &err);
    if (st == MOE_OK) fail_msg("%s: accepted", body);
    assert_null(json);
    if (err.status != status || strcmp(err.field, field) != 0)
        fail_msg("%s: expected %d naming \"%s\", got %d \"%s\": %s", body, status, field,
                 err.status, err.field, err.message);
    assert_true(err.message[0] != '\0');
}

static void test_bad_configs_name_the_key(void **state) {
    (void)state;
    serve_jobs *js = open_jobs("bad", 1);
    expect_bad(js, "not json", 400, "");
    expect_bad(js, "[1]", 400, "");
    expect_bad(js, "{\"config\": \"tiny\", \"bogus\": 1}", 400, "bogus");
    /* the same strict parse as every other body */
    expect_bad(js, "{\"config\": \"tiny\"} junk", 400, "");
    expect_bad(js, "{\"config\": \"tiny\", \"config\": \"tiny\"}", 400, "config");
    expect_bad(js, "{\"config\": \"ti\\u0000ny\"}", 400, "");
    expect_bad(js, "{\"config\": \"../x\"}", 400, "config");
    expect_bad(js, "{\"config\": \"no-such-preset\"}", 400, "config");
    expect_bad(js, "{\"config\": 5}", 400, "config");
    expect_bad(js, "{\"config\": \"tiny\", \"name\": \"../evil\"}", 400, "name");
    expect_bad(js, "{\"config\": \"tiny\", \"set\": [1]}", 400, "set");
    expect_bad(js, "{\"config\": \"tiny\", \"set\": {\"train.stepz\": 1}}", 400, "train.stepz");
    expect_bad(js, "{\"config\": \"tiny\", \"set\": {\"train.steps\": \"ten\"}}", 400,
               "train.steps");
    expect_bad(js, "{\"config\": \"tiny\", \"set\": {\"train.steps\": null}}", 400, "train.steps");
    expect_bad(js, "{\"config\": {\"train\": {\"steps\": \"x\"}}}", 400, "train.steps");
    expect_bad(js, "{\"config\": {\"model\": {\"moe\": {\"nexperts\": 4}}}}", 400,
               "model.moe.nexperts");
    expect_bad(js, "{\"config\": \"tiny\", \"set\": {\"model.moe.top_k\": 9}}", 400,
               "model.moe.top_k");
    /* the sandbox: files only inside the data directory */
    expect_bad(js,
               "{\"config\": \"tiny\", \"set\": {\"data.source\": \"file\", \"data.path\": "
               "\"/etc/passwd\"}}",
               400, "data.path");
    expect_bad(js,
               "{\"config\": \"tiny\", \"set\": {\"data.source\": \"file\", \"data.path\": "
               "\"../../../../../../etc/passwd\"}}",
               400, "data.path");
    expect_bad(js, "{\"config\": {\"data\": {\"source\": \"file\", \"path\": \"/etc/hostname\"}}}",
               400, "data.path");
    expect_bad(js, "{\"config\": \"tiny\", \"set\": {\"train.init_from\": \"/tmp\"}}", 400,
               "train.init_from");
    expect_bad(js,
               "{\"config\": \"tiny\", \"set\": {\"data.tokenizer\": \"/etc/passwd\", "
               "\"data.source\": \"spam\", \"train.task\": \"mlm\", \"model.bidirectional\": "
               "true}}",
               400, "data.tokenizer");
    /* nothing was created for refused requests */
    char *json = NULL;
    assert_int_equal(serve_jobs_list(js, &json), MOE_OK);
    assert_string_equal(json, "{\"jobs\":[]}");
    free(json);
    serve_jobs_close(js);
    /* files inside the data directory pass the sandbox (max_jobs 0: then 429) */
    js = open_jobs("bad", 0);
    expect_bad(js,
               "{\"config\": \"tiny\", \"set\": {\"data.source\": \"file\", \"data.path\": "
               "\"README.md\"}}",
               429, "");
    expect_bad(js,
               "{\"config\": \"tiny\", \"set\": {\"data.source\": \"file\", \"data.path\": "
               "\"./docs/../README.md\", \"out_dir\": \"/tmp/elsewhere\", \"name\": \"x/y\"}}",
               429, "");
    serve_jobs_close(js);
    /* and no folder was made for any of them */
    DIR *d = opendir(scratch_path("bad/jobs"));
    assert_non_null(d);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));) entries += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(entries, 0);
}

static void test_max_jobs(void **state) {
    (void)state;
    serve_jobs *js = open_jobs("max", 1);
    char id[64];
    start(js, JOB_OF(100000), id, sizeof id);
    assert_int_equal(serve_jobs_running(js), 1);
    char *json = NULL;
    serve_error err = {0};
    const char *body = SHORT_JOB;
    expect_error(serve_jobs_start(js, body, strlen(body), "k", &json, &err), &err, 429, "");
    assert_non_null(strstr(err.message, "max-jobs"));
    wait_step(js, id, 1);
    assert_int_equal(serve_jobs_cancel(js, id, &json, &err), MOE_OK);
    free(json);
    cJSON_Delete(wait_state(js, id, "cancelled", 60));
    assert_int_equal(serve_jobs_running(js), 0);
    serve_jobs_close(js);
}

/* serve_jobs_close stops a running job: it checkpoints and is
 * interrupted, resumable, after a restart. */
static void test_shutdown_interrupts(void **state) {
    (void)state;
    serve_jobs *js = open_jobs("shutdown", 1);
    char id[64];
    start(js, JOB_OF(100000), id, sizeof id);
    wait_step(js, id, 2);
    serve_jobs_close(js);
    js = open_jobs("shutdown", 1);
    cJSON *o = get(js, id);
    assert_string_equal(str(o, "state"), "interrupted");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "resumable")));
    assert_non_null(str(o, "checkpoint"));
    cJSON_Delete(o);
    serve_jobs_close(js);
}

static void write_text(const char *path, const char *text) {
    assert_int_equal(fs_write_file(path, text, strlen(text)), MOE_OK);
}

/* A server killed mid-run: job.json still says "running". */
static void test_recovery_after_crash(void **state) {
    (void)state;
    serve_jobs *js = open_jobs("crash", 1);
    char id[64];
    start(js, SHORT_JOB, id, sizeof id);
    cJSON_Delete(wait_state(js, id, "completed", 120));
    serve_jobs_close(js);
    /* rewind its job.json to what a kill -9 mid-run leaves */
    char path[512];
    snprintf(path, sizeof path, "%s/jobs/%s/job.json", scratch_path("crash"), id);
    char *text = NULL;
    size_t n = 0;
    assert_int_equal(fs_read_file(path, &text, &n, NULL), MOE_OK);
    cJSON *o = parse(text);
    cJSON_ReplaceItemInObjectCaseSensitive(o, "state", cJSON_CreateString("running"));
    cJSON_ReplaceItemInObjectCaseSensitive(o, "finished", cJSON_CreateNull());
    text = cJSON_Print(o);
    write_text(path, text);
    free(text);
    /* a job that died before its first checkpoint */
    cJSON_ReplaceItemInObjectCaseSensitive(o, "id", cJSON_CreateString("j-000041-0badc0de"));
    text = cJSON_Print(o);
    assert_int_equal(fs_mkdir_p(scratch_path("crash/jobs/j-000041-0badc0de")), MOE_OK);
    write_text(scratch_path("crash/jobs/j-000041-0badc0de/job.json"), text);
    free(text);
    cJSON_Delete(o);
    /* damaged ones are skipped */
    assert_int_equal(fs_mkdir_p(scratch_path("crash/jobs/j-000050-00000000")), MOE_OK);
    write_text(scratch_path("crash/jobs/j-000050-00000000/job.json"), "{\"id\": \"j-0000");
    assert_int_equal(fs_mkdir_p(scratch_path("crash/jobs/j-000051-00000000")), MOE_OK);
    write_text(scratch_path("crash/jobs/j-000051-00000000/job.json"),
               "{\"id\": \"j-000051-00000000\", \"state\": \"sleeping\", \"config\": {}}");
    assert_int_equal(fs_mkdir_p(scratch_path("crash/jobs/j-000052-00000000")), MOE_OK);
    write_text(scratch_path("crash/jobs/j-000052-00000000/job.json"),
               "{\"id\": \"j-000001-00000000\", \"state\": \"running\", \"config\": {}}");
    assert_int_equal(fs_mkdir_p(scratch_path("crash/jobs/j-000053-00000000")), MOE_OK);

    js = open_jobs("crash", 1);
    char *json = NULL;
    assert_int_equal(serve_jobs_list(js, &json), MOE_OK);
    o = parse(json);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "jobs")), 2);
    cJSON_Delete(o);
    o = get(js, "j-000041-0badc0de");
    assert_string_equal(str(o, "state"), "failed");
    assert_string_equal(str(o, "error"), "the server stopped before the first checkpoint");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "resumable")));
    cJSON_Delete(o);
    o = get(js, id);
    assert_string_equal(str(o, "state"), "interrupted");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "resumable")));
    cJSON_Delete(o);
    /* the settled state is on disk too */
    assert_int_equal(fs_read_file(path, &text, &n, NULL), MOE_OK);
    o = parse(text);
    assert_string_equal(str(o, "state"), "interrupted");
    cJSON_Delete(o);
    /* it resumes from its checkpoint (step 10 of 10: evaluates and completes) */
    serve_error err = {0};
    assert_int_equal(serve_jobs_resume(js, id, "tester", &json, &err), MOE_OK);
    free(json);
    o = wait_state(js, id, "completed", 120);
    assert_close(num(cJSON_GetObjectItemCaseSensitive(o, "progress"), "step"), 10, 0);
    cJSON_Delete(o);
    /* new ids continue after the recovered ones */
    char id2[64];
    start(js, SHORT_JOB, id2, sizeof id2);
    assert_int_equal(strncmp(id2, "j-000054-", 9), 0);
    cJSON_Delete(wait_state(js, id2, "completed", 120));
    serve_jobs_close(js);
}

/* A recovered job.json lists fewer MoE layers and experts than the model
 * has (edited, or from another version): after a resume the shares are
 * sized by the model, not by the file (ASan would see the overflow). */
static void test_resume_resizes_expert_shares(void **state) {
    (void)state;
    serve_jobs *js = open_jobs("grow", 1);
    char id[64];
    start(js, JOB_OF(100000), id, sizeof id);
    wait_step(js, id, 2);
    serve_jobs_close(js);
    char path[512];
    snprintf(path, sizeof path, "%s/jobs/%s/job.json", scratch_path("grow"), id);
    char *text = NULL;
    size_t n = 0;
    assert_int_equal(fs_read_file(path, &text, &n, NULL), MOE_OK);
    cJSON *o = parse(text);
    long stopped = (long)num(cJSON_GetObjectItemCaseSensitive(o, "progress"), "step");
    cJSON *experts = cJSON_Parse("{\"layers\": [[0.5, 0.5]], \"layer_index\": [0]}");
    cJSON_ReplaceItemInObjectCaseSensitive(o, "experts", experts);
    text = cJSON_Print(o);
    write_text(path, text);
    free(text);
    cJSON_Delete(o);

    js = open_jobs("grow", 1);
    o = get(js, id);
    const cJSON *layers =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "experts"), "layers");
    assert_int_equal(cJSON_GetArraySize(layers), 1); /* as the file said */
    cJSON_Delete(o);
    char *json = NULL;
    serve_error err = {0};
    assert_int_equal(serve_jobs_resume(js, id, "tester", &json, &err), MOE_OK);
    free(json);
    wait_step(js, id, stopped + 2);
    o = get(js, id);
    layers =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "experts"), "layers");
    assert_int_equal(cJSON_GetArraySize(layers), 2); /* tiny: two MoE layers of four */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(layers, 1)), 4);
    cJSON_Delete(o);
    assert_int_equal(serve_jobs_cancel(js, id, &json, &err), MOE_OK);
    free(json);
    cJSON_Delete(wait_state(js, id, "cancelled", 60));
    serve_jobs_close(js);
}

/* The loss curve keeps at most 500 points, evenly spaced however long the
 * run; an evaluation joins the training point of its step. */
static void test_history_is_thinned(void **state) {
    (void)state;
    job *j = job_new();
    assert_non_null(j);
    moe_train_progress p;
    memset(&p, 0, sizeof p);
    p.step = 1;
    p.loss = 3;
    job_history_add(j, &p);
    p.is_eval = 1;
    p.val_loss = 2.5;
    job_history_add(j, &p);
    assert_int_equal(j->n_history, 1);
    assert_close(j->history[0].loss, 3, 0);
    assert_close(j->history[0].val_loss, 2.5, 0);
    p.is_eval = 0;
    for (long s = 2; s <= 5000; s++) {
        p.step = s;
        p.loss = 1.0 / (double)s;
        job_history_add(j, &p);
        assert_true(j->n_history <= 500);
    }
    assert_true(j->n_history >= 250);
    /* the evaluation at step 1 is still there */
    assert_int_equal(j->history[0].step, 1);
    assert_close(j->history[0].val_loss, 2.5, 0);
    long min_gap = 1L << 30, max_gap = 0;
    for (int i = 2; i < j->n_history; i++) { /* the training points after it */
        long gap = j->history[i].step - j->history[i - 1].step;
        assert_true(gap > 0);
        assert_true(isfinite(j->history[i].loss));
        if (gap < min_gap) min_gap = gap;
        if (gap > max_gap) max_gap = gap;
    }
    assert_int_equal(max_gap, min_gap);
    assert_true(j->history[j->n_history - 1].step > 5000 - max_gap);
    job_destroy(j);

    /* an evaluation every 100 steps: all 50 are kept through the thinning */
    j = job_new();
    assert_non_null(j);
    for (long s = 1; s <= 5000; s++) {
        memset(&p, 0, sizeof p);
        p.step = s;
        p.loss = 1.0 / (double)s;
        job_history_add(j, &p);
        if (s % 100 == 0) {
            p.is_eval = 1;
            p.val_loss = (double)s;
            job_history_add(j, &p);
        }
        assert_true(j->n_history <= 500);
    }
    int evals = 0;
    for (int i = 0; i < j->n_history; i++) {
        if (i > 0) assert_true(j->history[i].step > j->history[i - 1].step);
        if (isfinite(j->history[i].val_loss)) {
            assert_close(j->history[i].val_loss, (double)j->history[i].step, 0);
            evals++;
        }
    }
    assert_int_equal(evals, 50);
    assert_int_equal(j->history[j->n_history - 1].step, 5000);
    job_destroy(j);

    /* an evaluation at every step: too many to keep them all; still bounded */
    j = job_new();
    assert_non_null(j);
    for (long s = 1; s <= 20000; s++) {
        memset(&p, 0, sizeof p);
        p.step = s;
        p.loss = 1.0;
        job_history_add(j, &p);
        p.is_eval = 1;
        p.val_loss = 2.0;
        job_history_add(j, &p);
        assert_true(j->n_history <= 500);
    }
    assert_true(j->n_history >= 250);
    assert_int_equal(j->history[j->n_history - 1].step, 20000);
    job_destroy(j);
}

static int teardown(void **state) {
    moe_registry_free(reg);
    reg = NULL;
    return scratch_teardown(state);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_job_completes),
        cmocka_unit_test(test_cancel_then_resume),
        cmocka_unit_test(test_unknown_ids),
        cmocka_unit_test(test_bad_configs_name_the_key),
        cmocka_unit_test(test_max_jobs),
        cmocka_unit_test(test_shutdown_interrupts),
        cmocka_unit_test(test_recovery_after_crash),
        cmocka_unit_test(test_resume_resizes_expert_shares),
        cmocka_unit_test(test_history_is_thinned),
    };
    return cmocka_run_group_tests(tests, scratch_setup, teardown);
}
