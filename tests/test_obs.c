/* Observability: the metric registry (declare, update, read, every error),
 * its Prometheus exposition (exact text, promtool), the JSON-lines sink and
 * the HTTP endpoint, also while another thread updates. */
#include "test_util.h"

#include "moe/obs.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static moe_registry *new_registry(void) {
    moe_registry *r = NULL;
    assert_int_equal(moe_registry_create(&r, "moe"), MOE_OK);
    return r;
}

static moe_metric *declare(moe_registry *r, const char *name, moe_metric_type type,
                           const char *labels) {
    moe_metric *m = NULL;
    assert_int_equal(moe_registry_declare(r, name, type, "help text", labels, NULL, 0, &m), MOE_OK);
    return m;
}

static moe_metric *declare_histogram(moe_registry *r, const char *name, const char *labels,
                                     const double *buckets, int n) {
    moe_metric *m = NULL;
    assert_int_equal(
        moe_registry_declare(r, name, MOE_METRIC_HISTOGRAM, "help text", labels, buckets, n, &m),
        MOE_OK);
    return m;
}

/* The call failed with MOE_ERR_INVALID and a message containing words. */
static void assert_invalid(moe_status st, const char *words) {
    if (st != MOE_ERR_INVALID || !strstr(moe_last_error(), words))
        fail_msg("expected MOE_ERR_INVALID mentioning \"%s\", got %d: %s", words, (int)st,
                 moe_last_error());
}

static void test_declare_returns_the_same_family(void **state) {
    (void)state;
    moe_registry *r = new_registry();
    moe_metric *loss = declare(r, "train_loss", MOE_METRIC_GAUGE, NULL);
    moe_metric *pairs = declare(r, "expert_pairs_total", MOE_METRIC_COUNTER, "layer,expert");
    const double buckets[] = {0.1, 1};
    moe_metric *step = declare_histogram(r, "step_seconds", NULL, buckets, 2);
    assert_ptr_equal(declare(r, "train_loss", MOE_METRIC_GAUGE, NULL), loss);
    assert_ptr_equal(declare(r, "expert_pairs_total", MOE_METRIC_COUNTER, "layer,expert"), pairs);
    assert_ptr_equal(declare_histogram(r, "step_seconds", NULL, buckets, 2), step);
    assert_true(loss != pairs && pairs != step);

    moe_metric *m = loss;
    assert_invalid(
        moe_registry_declare(r, "train_loss", MOE_METRIC_COUNTER, "h", NULL, NULL, 0, &m),
        "already declared as a gauge");
    assert_null(m);
    assert_invalid(moe_registry_declare(r, "expert_pairs_total", MOE_METRIC_COUNTER, "h", "layer",
                                        NULL, 0, &m),
                   "already declared");
    const double other[] = {0.1, 2};
    assert_invalid(
        moe_registry_declare(r, "step_seconds", MOE_METRIC_HISTOGRAM, "h", NULL, other, 2, &m),
        "other buckets");
    moe_registry_free(r);
}

static void test_set_add_observe_and_value(void **state) {
    (void)state;
    moe_registry *r = new_registry();
    moe_metric *loss = declare(r, "train_loss", MOE_METRIC_GAUGE, NULL);
    moe_metric *pairs = declare(r, "expert_pairs_total", MOE_METRIC_COUNTER, "layer,expert");
    moe_metric *frac = declare(r, "expert_fraction", MOE_METRIC_GAUGE, "layer,expert");
    const double buckets[] = {0.25, 1};
    moe_metric *step = declare_histogram(r, "step_seconds", NULL, buckets, 2);
    const char *l1e0[] = {"1", "0"}, *l1e1[] = {"1", "1"}, *l3e0[] = {"3", "0"};

    assert_true(isnan(moe_metric_value(loss, NULL))); /* no series yet */
    assert_int_equal(moe_metric_set(loss, NULL, 2.5), MOE_OK);
    assert_int_equal(moe_metric_add(loss, NULL, -1), MOE_OK); /* gauges go down too */
    assert_true(moe_metric_value(loss, NULL) == 1.5);

    assert_int_equal(moe_metric_add(pairs, l1e0, 3), MOE_OK);
    assert_int_equal(moe_metric_add(pairs, l1e1, 4), MOE_OK);
    assert_int_equal(moe_metric_add(pairs, l1e0, 2), MOE_OK);
    assert_true(moe_metric_value(pairs, l1e0) == 5);
    assert_true(moe_metric_value(pairs, l1e1) == 4);
    assert_true(isnan(moe_metric_value(pairs, l3e0)));

    assert_int_equal(moe_metric_set(frac, l3e0, 0.5), MOE_OK);
    assert_int_equal(moe_metric_set(frac, l3e0, 0.25), MOE_OK);
    assert_true(moe_metric_value(frac, l3e0) == 0.25);
    assert_true(isnan(moe_metric_value(frac, l1e0)));

    assert_int_equal(moe_metric_set(loss, NULL, NAN), MOE_OK); /* kept */
    assert_true(isnan(moe_metric_value(loss, NULL)));

    assert_true(isnan(moe_metric_value(step, NULL)));
    for (int i = 0; i < 3; i++) assert_int_equal(moe_metric_observe(step, NULL, 0.5 * i), MOE_OK);
    assert_true(moe_metric_value(step, NULL) == 3);    /* a histogram's value is its count */
    assert_true(isnan(moe_metric_value(pairs, NULL))); /* wrong label values: no series */
    moe_registry_free(r);
}

static void test_declare_errors(void **state) {
    (void)state;
    moe_registry *r = new_registry();
    moe_metric *m;
    const char *bad_names[] = {"", "1abc", "a-b", "a b", "moe:loss", "é"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
        assert_invalid(
            moe_registry_declare(r, bad_names[i], MOE_METRIC_GAUGE, "h", NULL, NULL, 0, &m),
            "letters, digits and '_'");
    assert_invalid(moe_registry_declare(r, "step", MOE_METRIC_GAUGE, "h", NULL, NULL, 0, &m),
                   "reserved");
    const char *bad_labels[] = {"a,,b", "1x", "a b", "__x", "a-b", ",a"};
    for (size_t i = 0; i < sizeof bad_labels / sizeof *bad_labels; i++)
        assert_invalid(
            moe_registry_declare(r, "g", MOE_METRIC_GAUGE, "h", bad_labels[i], NULL, 0, &m),
            "label");
    assert_invalid(moe_registry_declare(r, "g", MOE_METRIC_GAUGE, "h", "a,", NULL, 0, &m),
                   "ends with ','");
    assert_invalid(moe_registry_declare(r, "g", MOE_METRIC_GAUGE, "h", "a,b,a", NULL, 0, &m),
                   "appears twice");
    assert_invalid(moe_registry_declare(r, "g", MOE_METRIC_GAUGE, "h", "a,b,c,d,e", NULL, 0, &m),
                   "at most 4");
    assert_invalid(moe_registry_declare(r, "g", MOE_METRIC_GAUGE, NULL, NULL, NULL, 0, &m),
                   "help text");
    assert_invalid(moe_registry_declare(r, "g", MOE_METRIC_GAUGE, "", NULL, NULL, 0, &m),
                   "help text");
    assert_invalid(moe_registry_declare(r, "g", (moe_metric_type)7, "h", NULL, NULL, 0, &m),
                   "unknown metric type");

    const double buckets[] = {1, 2, 2}, with_nan[] = {1, NAN}, with_inf[] = {1, INFINITY};
    assert_invalid(moe_registry_declare(r, "g", MOE_METRIC_GAUGE, "h", NULL, buckets, 2, &m),
                   "only histograms have buckets");
    assert_invalid(moe_registry_declare(r, "h", MOE_METRIC_HISTOGRAM, "h", NULL, buckets, 3, &m),
                   "strictly increasing");
    const double decreasing[] = {2, 1};
    assert_invalid(moe_registry_declare(r, "h", MOE_METRIC_HISTOGRAM, "h", NULL, decreasing, 2, &m),
                   "strictly increasing");
    assert_invalid(moe_registry_declare(r, "h", MOE_METRIC_HISTOGRAM, "h", NULL, with_nan, 2, &m),
                   "finite");
    assert_invalid(moe_registry_declare(r, "h", MOE_METRIC_HISTOGRAM, "h", NULL, with_inf, 2, &m),
                   "finite");
    assert_invalid(moe_registry_declare(r, "h", MOE_METRIC_HISTOGRAM, "h", NULL, NULL, 2, &m),
                   "no bucket array");
    assert_invalid(moe_registry_declare(r, "h", MOE_METRIC_HISTOGRAM, "h", "le", buckets, 2, &m),
                   "reserved");
    /* none of the failures left a family behind */
    char *text;
    assert_int_equal(moe_registry_render_prometheus(r, &text), MOE_OK);
    assert_string_equal(text, "");
    free(text);
    moe_registry_free(r);

    moe_registry *bad = NULL;
    assert_invalid(moe_registry_create(&bad, "my-app"), "metric prefix");
    assert_null(bad);
}

static void test_update_errors(void **state) {
    (void)state;
    moe_registry *r = new_registry();
    moe_metric *counter = declare(r, "tokens_total", MOE_METRIC_COUNTER, NULL);
    moe_metric *gauge = declare(r, "load_cv", MOE_METRIC_GAUGE, "layer");
    const double buckets[] = {1};
    moe_metric *histogram = declare_histogram(r, "step_seconds", NULL, buckets, 1);
    const char *layer1[] = {"1"}, *missing[] = {NULL};

    assert_invalid(moe_metric_set(counter, NULL, 1), "only gauges can be set");
    assert_invalid(moe_metric_set(histogram, NULL, 1), "only gauges can be set");
    assert_invalid(moe_metric_add(counter, NULL, -1), "counters only go up");
    assert_invalid(moe_metric_add(counter, NULL, NAN), "counters only go up");
    assert_invalid(moe_metric_add(histogram, NULL, 1), "use observe");
    assert_invalid(moe_metric_observe(gauge, layer1, 1), "only histograms take observations");
    assert_invalid(moe_metric_observe(counter, NULL, 1), "only histograms take observations");
    assert_invalid(moe_metric_set(gauge, NULL, 1), "pass a value for each");
    assert_invalid(moe_metric_set(gauge, missing, 1), "no value for label layer");
    assert_invalid(moe_metric_add(counter, layer1, 1), "has no labels");
    assert_invalid(moe_metric_set(NULL, NULL, 1), "NULL");
    /* nothing changed */
    assert_true(isnan(moe_metric_value(counter, NULL)));
    assert_true(isnan(moe_metric_value(gauge, layer1)));
    assert_int_equal(moe_metric_add(counter, NULL, INFINITY), MOE_OK);
    assert_true(isinf(moe_metric_value(counter, NULL)));
    moe_registry_free(r);
}

static char *render(moe_registry *r) {
    char *text = NULL;
    assert_int_equal(moe_registry_render_prometheus(r, &text), MOE_OK);
    assert_non_null(text);
    return text;
}

static void test_exposition_text(void **state) {
    (void)state;
    moe_registry *r = new_registry();
    moe_metric *loss = declare(r, "train_loss", MOE_METRIC_GAUGE, NULL);
    moe_metric *pairs = declare(r, "expert_pairs_total", MOE_METRIC_COUNTER, "layer,expert");
    const double buckets[] = {0.25, 1};
    moe_metric *step = declare_histogram(r, "step_seconds", NULL, buckets, 2);
    moe_metric *odd;
    assert_int_equal(moe_registry_declare(r, "odd", MOE_METRIC_GAUGE, "with \\ and\nnewline",
                                          "name", NULL, 0, &odd),
                     MOE_OK);
    moe_metric *layered = declare_histogram(r, "lat", "layer", buckets, 1);
    declare(r, "unused", MOE_METRIC_GAUGE, NULL);

    moe_metric_set(loss, NULL, 2.5);
    const char *l1e0[] = {"1", "0"}, *l1e1[] = {"1", "1"};
    moe_metric_add(pairs, l1e0, 3);
    moe_metric_add(pairs, l1e1, 4.5);
    moe_metric_add(pairs, l1e0, 2);
    const double seen[] = {0.0625, 0.25, 0.5, 2}; /* 0.25 is on a bound: counted in it */
    for (int i = 0; i < 4; i++) moe_metric_observe(step, NULL, seen[i]);
    const char *quoted[] = {"a\"b\\c\nd"}, *up[] = {"up"}, *down[] = {"down"}, *third[] = {"third"},
               *big[] = {"big"}, *integer[] = {"integer"}, *zero[] = {"zero"};
    moe_metric_set(odd, quoted, NAN);
    moe_metric_set(odd, up, INFINITY);
    moe_metric_set(odd, down, -INFINITY);
    moe_metric_set(odd, third, 1.0 / 3);
    moe_metric_set(odd, big, 1e21);
    moe_metric_set(odd, integer, 123456789012.0);
    moe_metric_set(odd, zero, 0);
    const char *l2[] = {"2"};
    moe_metric_observe(layered, l2, 0.5);

    char *text = render(r);
    assert_string_equal(text, "# HELP moe_train_loss help text\n"
                              "# TYPE moe_train_loss gauge\n"
                              "moe_train_loss 2.5\n"
                              "# HELP moe_expert_pairs_total help text\n"
                              "# TYPE moe_expert_pairs_total counter\n"
                              "moe_expert_pairs_total{layer=\"1\",expert=\"0\"} 5\n"
                              "moe_expert_pairs_total{layer=\"1\",expert=\"1\"} 4.5\n"
                              "# HELP moe_step_seconds help text\n"
                              "# TYPE moe_step_seconds histogram\n"
                              "moe_step_seconds_bucket{le=\"0.25\"} 2\n"
                              "moe_step_seconds_bucket{le=\"1\"} 3\n"
                              "moe_step_seconds_bucket{le=\"+Inf\"} 4\n"
                              "moe_step_seconds_sum 2.8125\n"
                              "moe_step_seconds_count 4\n"
                              "# HELP moe_odd with \\\\ and\\nnewline\n"
                              "# TYPE moe_odd gauge\n"
                              "moe_odd{name=\"a\\\"b\\\\c\\nd\"} NaN\n"
                              "moe_odd{name=\"up\"} +Inf\n"
                              "moe_odd{name=\"down\"} -Inf\n"
                              "moe_odd{name=\"third\"} 0.3333333333333333\n"
                              "moe_odd{name=\"big\"} 1e+21\n"
                              "moe_odd{name=\"integer\"} 123456789012\n"
                              "moe_odd{name=\"zero\"} 0\n"
                              "# HELP moe_lat help text\n"
                              "# TYPE moe_lat histogram\n"
                              "moe_lat_bucket{layer=\"2\",le=\"0.25\"} 0\n"
                              "moe_lat_bucket{layer=\"2\",le=\"+Inf\"} 1\n"
                              "moe_lat_sum{layer=\"2\"} 0.5\n"
                              "moe_lat_count{layer=\"2\"} 1\n"
                              "# HELP moe_unused help text\n"
                              "# TYPE moe_unused gauge\n");
    free(text);
    moe_registry_free(r);

    /* no prefix: names as declared */
    moe_registry *plain = NULL;
    assert_int_equal(moe_registry_create(&plain, NULL), MOE_OK);
    moe_metric_set(declare(plain, "x", MOE_METRIC_GAUGE, NULL), NULL, -0.5);
    text = render(plain);
    assert_string_equal(text, "# HELP x help text\n# TYPE x gauge\nx -0.5\n");
    free(text);
    moe_registry_free(plain);
}

/* Writes text to a temporary file and runs promtool check metrics on it;
 * fails with promtool's report unless it exits 0. */
static void assert_promtool_accepts(const char *text) {
    if (access("/usr/bin/promtool", X_OK) != 0)
        fail_msg("/usr/bin/promtool is missing: install the Debian package prometheus "
                 "(scripts/install-deps.sh)");
    char in[] = "/tmp/moe_obs_promXXXXXX", report[] = "/tmp/moe_obs_reportXXXXXX";
    int fd_in = mkstemp(in), fd_report = mkstemp(report);
    assert_true(fd_in >= 0 && fd_report >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd_in, text, n), (ssize_t)n);
    close(fd_in);
    close(fd_report);
    char command[256];
    snprintf(command, sizeof command, "/usr/bin/promtool check metrics < %s > %s 2>&1", in, report);
    int status = system(command);
    char said[4096] = "";
    FILE *f = fopen(report, "r");
    if (f) {
        said[fread(said, 1, sizeof said - 1, f)] = '\0';
        fclose(f);
    }
    unlink(in);
    unlink(report);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("promtool check metrics rejected the exposition (status %d):\n%s\n--- text:\n%s",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1, said, text);
}

static void test_exposition_passes_promtool(void **state) {
    (void)state;
    moe_registry *r = new_registry();
    moe_metric *tokens = declare(r, "tokens_total", MOE_METRIC_COUNTER, NULL);
    moe_metric *pairs = declare(r, "expert_pairs_total", MOE_METRIC_COUNTER, "layer,expert");
    moe_metric *loss = declare(r, "train_loss", MOE_METRIC_GAUGE, NULL);
    moe_metric *active = declare(r, "alert_active", MOE_METRIC_GAUGE, "alert");
    const double buckets[] = {0.01, 0.1, 1, 10};
    moe_metric *step = declare_histogram(r, "step_seconds", NULL, buckets, 4);
    moe_metric *by_layer = declare_histogram(r, "layer_seconds", "layer", buckets, 4);
    declare(r, "val_loss", MOE_METRIC_GAUGE, NULL); /* no series yet: HELP and TYPE only */

    moe_metric_add(tokens, NULL, 4096);
    const char *l0e1[] = {"0", "1"}, *odd_alert[] = {"say \"hi\"\\\n"}, *l3[] = {"3"};
    moe_metric_add(pairs, l0e1, 17);
    moe_metric_set(loss, NULL, NAN);
    moe_metric_set(active, odd_alert, INFINITY);
    for (int i = 0; i < 20; i++) {
        moe_metric_observe(step, NULL, 0.003 * i * i);
        moe_metric_observe(by_layer, l3, 1.0 / (i + 1));
    }
    char *text = render(r);
    assert_promtool_accepts(text);
    free(text);
    moe_registry_free(r);
}

/* Writes one line with moe_registry_write_jsonl and parses it back. */
static cJSON *write_and_parse(moe_registry *r, const char *kind, long step, double time_s) {
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(moe_registry_write_jsonl(r, f, kind, step, time_s), MOE_OK);
    rewind(f);
    char line[8192];
    assert_non_null(fgets(line, sizeof line, f));
    size_t n = strlen(line);
    assert_true(n > 0 && line[n - 1] == '\n');
    char extra[8];
    assert_null(fgets(extra, sizeof extra, f)); /* one line */
    fclose(f);
    cJSON *obj = cJSON_Parse(line);
    if (!obj) fail_msg("not JSON: %s", line);
    return obj;
}

/* The object's keys, comma-separated, in order. */
static void assert_keys(const cJSON *obj, const char *expected) {
    char keys[512] = "";
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        if (*keys) strcat(keys, ",");
        strcat(keys, item->string);
    }
    assert_string_equal(keys, expected);
}

static double number_at(const cJSON *obj, const char *a, const char *b, const char *c) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, a);
    if (b) item = cJSON_GetObjectItemCaseSensitive(item, b);
    if (c) item = cJSON_GetObjectItemCaseSensitive(item, c);
    if (!cJSON_IsNumber(item)) fail_msg("%s/%s/%s is not a number", a, b ? b : "", c ? c : "");
    return item->valuedouble;
}

static void test_jsonl_lines(void **state) {
    (void)state;
    moe_registry *r = new_registry();
    moe_metric *loss = declare(r, "train_loss", MOE_METRIC_GAUGE, NULL);
    moe_metric *frac = declare(r, "expert_fraction", MOE_METRIC_GAUGE, "layer,expert");
    const double buckets[] = {0.25, 1};
    moe_metric *step = declare_histogram(r, "step_seconds", NULL, buckets, 2);
    moe_metric *grad = declare(r, "grad_norm", MOE_METRIC_GAUGE, NULL);
    moe_metric *tokens = declare(r, "tokens_total", MOE_METRIC_COUNTER, NULL);
    moe_metric *active = declare(r, "alert_active", MOE_METRIC_GAUGE, "alert");
    (void)tokens; /* never updated: never written */

    const char *l1e0[] = {"1", "0"}, *l1e1[] = {"1", "1"}, *l3e0[] = {"3", "0"};
    const char *starved[] = {"starved"};
    moe_metric_set(grad, NULL, NAN); /* declared after, updated first: declaration order wins */
    moe_metric_set(loss, NULL, 2.5);
    moe_metric_set(frac, l1e0, 0.25);
    moe_metric_set(frac, l1e1, 0.75);
    moe_metric_set(frac, l3e0, 0.5);
    moe_metric_observe(step, NULL, 0.5);
    moe_metric_observe(step, NULL, 2);
    moe_metric_set(active, starved, INFINITY);

    cJSON *line = write_and_parse(r, "train", 10, 1.5);
    assert_keys(line, "kind,step,time_s,train_loss,expert_fraction,step_seconds,grad_norm,"
                      "alert_active");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(line, "kind")->valuestring, "train");
    assert_true(number_at(line, "step", NULL, NULL) == 10);
    assert_true(number_at(line, "time_s", NULL, NULL) == 1.5);
    assert_true(number_at(line, "train_loss", NULL, NULL) == 2.5);
    assert_keys(cJSON_GetObjectItemCaseSensitive(line, "expert_fraction"), "1,3");
    assert_true(number_at(line, "expert_fraction", "1", "0") == 0.25);
    assert_true(number_at(line, "expert_fraction", "1", "1") == 0.75);
    assert_true(number_at(line, "expert_fraction", "3", "0") == 0.5);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(line, "step_seconds");
    assert_keys(h, "le,counts,sum,count");
    const cJSON *le = cJSON_GetObjectItemCaseSensitive(h, "le");
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(h, "counts");
    assert_int_equal(cJSON_GetArraySize(le), 2);
    assert_true(cJSON_GetArrayItem(le, 0)->valuedouble == 0.25);
    assert_true(cJSON_GetArrayItem(le, 1)->valuedouble == 1);
    assert_int_equal(cJSON_GetArraySize(counts), 3); /* not cumulative; last is +Inf */
    assert_true(cJSON_GetArrayItem(counts, 0)->valuedouble == 0);
    assert_true(cJSON_GetArrayItem(counts, 1)->valuedouble == 1);
    assert_true(cJSON_GetArrayItem(counts, 2)->valuedouble == 1);
    assert_true(number_at(h, "sum", NULL, NULL) == 2.5);
    assert_true(number_at(h, "count", NULL, NULL) == 2);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(line, "grad_norm")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(line, "alert_active"), "starved")));
    cJSON_Delete(line);

    /* the next line carries only what changed since */
    moe_metric_set(frac, l1e1, 0.5);
    line = write_and_parse(r, "eval", 11, NAN);
    assert_keys(line, "kind,step,time_s,expert_fraction");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(line, "time_s")));
    assert_keys(cJSON_GetObjectItemCaseSensitive(line, "expert_fraction"), "1");
    assert_keys(cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(line, "expert_fraction"), "1"),
                "1");
    assert_true(number_at(line, "expert_fraction", "1", "1") == 0.5);
    cJSON_Delete(line);

    line = write_and_parse(r, "train", 12, 3);
    assert_keys(line, "kind,step,time_s");
    cJSON_Delete(line);
    moe_registry_free(r);
}

static void test_jsonl_write_failure(void **state) {
    (void)state;
    moe_registry *r = new_registry();
    moe_metric_set(declare(r, "train_loss", MOE_METRIC_GAUGE, NULL), NULL, 2.5);

    FILE *full = fopen("/dev/full", "w");
    assert_non_null(full);
    assert_int_equal(moe_registry_write_jsonl(r, full, "train", 1, 0), MOE_ERR_IO);
    if (!strstr(moe_last_error(), "No space left"))
        fail_msg("the message should give the reason: %s", moe_last_error());
    fclose(full);

    FILE *read_only = fopen("/dev/null", "r");
    assert_non_null(read_only);
    assert_int_equal(moe_registry_write_jsonl(r, read_only, "train", 1, 0), MOE_ERR_IO);
    assert_non_null(strstr(moe_last_error(), "cannot write"));
    fclose(read_only);

    /* the failed lines did not mark the loss written */
    cJSON *line = write_and_parse(r, "train", 2, 0);
    assert_keys(line, "kind,step,time_s,train_loss");
    cJSON_Delete(line);
    moe_registry_free(r);
}

/* One HTTP/1.0 exchange with 127.0.0.1:port: the whole response, read
 * until the server closes (malloc'd). */
static char *http_exchange(int port, const char *request) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval timeout = {5, 0}; /* a hung server fails the test instead of hanging it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    size_t n = strlen(request);
    assert_int_equal(send(fd, request, n, 0), (ssize_t)n);
    size_t size = 0, cap = 4096;
    char *response = malloc(cap);
    assert_non_null(response);
    for (;;) {
        if (size + 1 == cap) {
            char *bigger = realloc(response, cap *= 2);
            assert_non_null(bigger);
            response = bigger;
        }
        ssize_t got = recv(fd, response + size, cap - size - 1, 0);
        if (got <= 0) {
            assert_int_equal(got, 0); /* closed, not timed out */
            break;
        }
        size += (size_t)got;
    }
    close(fd);
    response[size] = '\0';
    return response;
}

static int status_of(const char *response) {
    assert_true(!strncmp(response, "HTTP/1.", 7));
    return atoi(response + 9);
}

static const char *body_of(const char *response) {
    const char *end = strstr(response, "\r\n\r\n");
    assert_non_null(end);
    return end + 4;
}

static void test_http_endpoint(void **state) {
    (void)state;
    moe_registry *r = new_registry();
    moe_metric_set(declare(r, "train_loss", MOE_METRIC_GAUGE, NULL), NULL, 2.5);
    const char *alert[] = {"loss_spike"};
    moe_metric_add(declare(r, "alerts_total", MOE_METRIC_COUNTER, "alert"), alert, 1);

    moe_metrics_server *server = NULL;
    int port = 0;
    assert_int_equal(moe_metrics_server_start(&server, r, 0, 0, &port), MOE_OK);
    assert_true(port > 0 && port < 65536);

    char *expected = render(r);
    char *response = http_exchange(port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(response), 200);
    assert_non_null(
        strstr(response, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_string_equal(body_of(response), expected);
    free(response);

    response = http_exchange(port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(response), 200);
    assert_string_equal(body_of(response), "");
    free(response);

    response = http_exchange(port, "GET /other HTTP/1.0\r\n\r\n");
    assert_int_equal(status_of(response), 404);
    assert_non_null(strstr(body_of(response), "/metrics"));
    free(response);

    response = http_exchange(port, "POST /metrics HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(status_of(response), 405);
    assert_non_null(strstr(response, "\r\nAllow: GET, HEAD\r\n"));
    free(response);

    moe_metrics_server *second = NULL;
    int second_port = -1;
    assert_int_equal(moe_metrics_server_start(&second, r, port, 0, &second_port), MOE_ERR_IO);
    assert_null(second);
    char words[64];
    snprintf(words, sizeof words, "cannot listen on port %d", port);
    if (!strstr(moe_last_error(), words) || !strstr(moe_last_error(), "--metrics-port"))
        fail_msg("unexpected message: %s", moe_last_error());
    assert_int_equal(moe_metrics_server_start(&second, r, 70000, 0, NULL), MOE_ERR_INVALID);

    moe_metrics_server_stop(server); /* closes the socket: the port is free again */
    assert_int_equal(moe_metrics_server_start(&server, r, port, 0, &second_port), MOE_OK);
    assert_int_equal(second_port, port);
    response = http_exchange(port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_string_equal(body_of(response), expected);
    free(response);
    moe_metrics_server_stop(server);
    free(expected);
    moe_registry_free(r);
}

typedef struct writer_state {
    moe_metric *fraction, *updates, *seconds;
    atomic_int stop;
    long rounds;
} writer_state;

/* The trainer's part: updates every step until told to stop. */
static void *keep_updating(void *arg) {
    writer_state *w = arg;
    const char *experts[8][1] = {{"0"}, {"1"}, {"2"}, {"3"}, {"4"}, {"5"}, {"6"}, {"7"}};
    while (!atomic_load(&w->stop)) {
        for (int e = 0; e < 8; e++) moe_metric_set(w->fraction, experts[e], (double)w->rounds + e);
        moe_metric_observe(w->seconds, NULL, (double)(w->rounds % 7));
        moe_metric_add(w->updates, NULL, 1);
        w->rounds++;
    }
    return NULL;
}

/* The value on the line that starts with prefix. */
static double exposed_value(const char *text, const char *prefix) {
    const char *line = strstr(text, prefix);
    if (!line) fail_msg("no line %s in\n%s", prefix, text);
    return strtod(line + strlen(prefix), NULL);
}

static void test_http_scrapes_while_updating(void **state) {
    (void)state;
    moe_registry *r = new_registry();
    writer_state w = {0};
    w.fraction = declare(r, "expert_fraction", MOE_METRIC_GAUGE, "expert");
    w.updates = declare(r, "updates_total", MOE_METRIC_COUNTER, NULL);
    const double buckets[] = {1, 2, 4};
    w.seconds = declare_histogram(r, "step_seconds", NULL, buckets, 3);
    moe_metrics_server *server = NULL;
    int port = 0;
    assert_int_equal(moe_metrics_server_start(&server, r, 0, 0, &port), MOE_OK);

    moe_metric_add(w.updates, NULL, 0); /* every scrape has the counter */
    moe_metric_observe(w.seconds, NULL, 0);
    pthread_t writer;
    assert_int_equal(pthread_create(&writer, NULL, keep_updating, &w), 0);
    double last = 0;
    for (int i = 0; i < 50; i++) {
        char *response = http_exchange(port, "GET /metrics HTTP/1.0\r\n\r\n");
        assert_int_equal(status_of(response), 200);
        const char *body = body_of(response);
        double updates = exposed_value(body, "moe_updates_total ");
        assert_true(updates >= last); /* a counter never goes back */
        last = updates;
        /* one lock for the whole render: the histogram is consistent */
        assert_true(exposed_value(body, "moe_step_seconds_count ") ==
                    exposed_value(body, "moe_step_seconds_bucket{le=\"+Inf\"} "));
        free(response);
    }
    atomic_store(&w.stop, 1);
    pthread_join(writer, NULL);
    moe_metrics_server_stop(server);
    assert_true(w.rounds > 0);
    assert_true(moe_metric_value(w.updates, NULL) == (double)w.rounds);
    assert_true(moe_metric_value(w.seconds, NULL) == (double)w.rounds + 1);
    moe_registry_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declare_returns_the_same_family),
        cmocka_unit_test(test_set_add_observe_and_value),
        cmocka_unit_test(test_declare_errors),
        cmocka_unit_test(test_update_errors),
        cmocka_unit_test(test_exposition_text),
        cmocka_unit_test(test_exposition_passes_promtool),
        cmocka_unit_test(test_jsonl_lines),
        cmocka_unit_test(test_jsonl_write_failure),
        cmocka_unit_test(test_http_endpoint),
        cmocka_unit_test(test_http_scrapes_while_updating),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
