/* moe serve's API keys: SHA-256 hashes in the file, every stored key
 * checked, scopes, errors naming file and line, the MOE_API_KEYS format,
 * and moe key new's output loading back. Also the audit log's lines. */
#include "test_util.h"

#include "scratch_dir.h"
#include "serve/http.h"
#include "serve/serve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *write_file(const char *name, const char *text) {
    const char *path = scratch_path(name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

/* A new key and its keys-file line. */
static void new_key(const char *id, const char *scope, char *key, char *line) {
    assert_int_equal(serve_key_new(id, scope, key, 128, line, 256), MOE_OK);
}

/* The call failed with status st and a message containing words. */
static void assert_fails(moe_status got, moe_status want, const char *words) {
    if (got != want || !strstr(moe_last_error(), words))
        fail_msg("expected status %d mentioning \"%s\", got %d: %s", (int)want, words, (int)got,
                 moe_last_error());
}

static void test_hash_of_a_known_key(void **state) {
    (void)state;
    /* sha256 of "abc" is the FIPS 180-2 example */
    const char *file = write_file(
        "abc.keys", "# the FIPS example\n"
                    "abc infer sha256:"
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  # trailing\n"
                    "\n");
    serve_keys *k = NULL;
    assert_int_equal(serve_keys_load(&k, file, NULL), MOE_OK);
    assert_int_equal(serve_keys_count(k), 1);
    int scopes = -1;
    assert_string_equal(serve_keys_check(k, "abc", &scopes), "abc");
    assert_int_equal(scopes, SERVE_SCOPE_INFER);
    assert_null(serve_keys_check(k, "abd", &scopes));
    assert_int_equal(scopes, 0);
    assert_null(serve_keys_check(k, "ab", &scopes));   /* shorter */
    assert_null(serve_keys_check(k, "abcd", &scopes)); /* longer */
    assert_null(serve_keys_check(k, "", &scopes));     /* empty */
    assert_null(serve_keys_check(k, NULL, &scopes));
    serve_keys_free(k);
}

static void test_key_new_round_trip_and_scopes(void **state) {
    (void)state;
    char k1[128], l1[256], k2[128], l2[256];
    new_key("alice", "infer", k1, l1);
    new_key("bob", "train", k2, l2);
    assert_int_equal(strlen(k1), 64);
    assert_int_equal(strspn(k1, "0123456789abcdef"), 64);
    assert_string_not_equal(k1, k2);
    assert_null(strstr(l1, k1)); /* the line holds the hash, never the key */
    assert_true(!strncmp(l1, "alice infer sha256:", 19) && strlen(l1) == 19 + 64);
    char text[600];
    snprintf(text, sizeof text, "%s\n%s\n", l1, l2);
    const char *file = write_file("two.keys", text);
    serve_keys *k = NULL;
    assert_int_equal(serve_keys_load(&k, file, NULL), MOE_OK);
    assert_int_equal(serve_keys_count(k), 2);
    int scopes = 0;
    assert_string_equal(serve_keys_check(k, k1, &scopes), "alice");
    assert_int_equal(scopes, SERVE_SCOPE_INFER);
    assert_string_equal(serve_keys_check(k, k2, &scopes), "bob");
    assert_int_equal(scopes, SERVE_SCOPE_INFER | SERVE_SCOPE_TRAIN); /* train implies infer */
    char wrong[128];
    strcpy(wrong, k1);
    wrong[63] = wrong[63] == '0' ? '1' : '0';
    assert_null(serve_keys_check(k, wrong, &scopes));
    wrong[63] = '\0';
    assert_null(serve_keys_check(k, wrong, &scopes));
    serve_keys_free(k);

    assert_fails(serve_key_new("../x", "infer", k1, 128, l1, 256), MOE_ERR_INVALID, "not a valid");
    assert_fails(serve_key_new("x", "admin", k1, 128, l1, 256), MOE_ERR_INVALID, "admin");
    assert_fails(serve_key_new("x", "infer", k1, 10, l1, 256), MOE_ERR_INVALID, "too small");
}

static void test_env_keys(void **state) {
    (void)state;
    serve_keys *k = NULL;
    assert_int_equal(
        serve_keys_load(&k, NULL, "ci:infer:key-one-0123456789, ops:train:key:with:colons:0123"),
        MOE_OK);
    int scopes = 0;
    assert_string_equal(serve_keys_check(k, "key-one-0123456789", &scopes), "ci");
    assert_string_equal(serve_keys_check(k, "key:with:colons:0123", &scopes), "ops");
    assert_int_equal(scopes, SERVE_SCOPE_INFER | SERVE_SCOPE_TRAIN);
    assert_null(serve_keys_check(k, "ci", &scopes));
    serve_keys_free(k);

    /* file and environment together; ids must differ across both */
    char key[128], line[256], text[300];
    new_key("filekey", "infer", key, line);
    snprintf(text, sizeof text, "%s\n", line);
    const char *file = write_file("env.keys", text);
    assert_int_equal(serve_keys_load(&k, file, "envkey:train:abcdefghijklmnop"), MOE_OK);
    assert_int_equal(serve_keys_count(k), 2);
    assert_string_equal(serve_keys_check(k, key, &scopes), "filekey");
    serve_keys_free(k);
    assert_fails(serve_keys_load(&k, file, "filekey:train:abcdefghijklmnop"), MOE_ERR_FORMAT,
                 "used twice");
    assert_null(k);

    assert_fails(serve_keys_load(&k, NULL, "ci:infer"), MOE_ERR_FORMAT, "entry 1");
    assert_fails(serve_keys_load(&k, NULL, "a:infer:xxxxxxxxxxxxxxxx,b:root:yyyyyyyyyyyyyyyy"),
                 MOE_ERR_FORMAT, "entry 2");
    assert_fails(serve_keys_load(&k, NULL, "a:infer:"), MOE_ERR_FORMAT, "id:scope:key");
    assert_fails(serve_keys_load(&k, NULL, "a:infer:short-key"), MOE_ERR_FORMAT, "at least 16");
    assert_fails(serve_keys_load(&k, NULL, ""), MOE_ERR_INVALID, "no API keys");
    assert_fails(serve_keys_load(&k, NULL, NULL), MOE_ERR_INVALID, "no API keys");
}

static void test_file_errors_name_the_line(void **state) {
    (void)state;
    serve_keys *k = NULL;
    const char *hash = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    char text[1024], want[600];
    struct {
        const char *lines, *words;
    } cases[] = {
        {"a infer %s\nb infer\n", ":2: want"}, /* two fields */
        {"a infer %s extra\n", ":1: want"},    /* four fields */
        {"# c\n\na superuser %s\n", ":3: key 'a' has scope 'superuser'"},
        {"a infer %s\na train %s\n", ":2: key id 'a' is used twice"},
        {"a infer sha1:abcd\n", ":1: key 'a': the third field"},
        {"a infer sha256:zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n",
         ":1: key 'a': the third field"},                              /* not hex */
        {"a infer sha256:ba7816bf\n", ":1: key 'a': the third field"}, /* short */
        {"../etc infer %s\n", ":1: key id '../etc' is not a valid name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, cases[i].lines, hash, hash);
        const char *file = write_file("bad.keys", text);
        snprintf(want, sizeof want, "%s%s", file, cases[i].words);
        assert_fails(serve_keys_load(&k, file, NULL), MOE_ERR_FORMAT, want);
        assert_null(k);
    }
    assert_fails(serve_keys_load(&k, scratch_path("missing.keys"), NULL), MOE_ERR_IO,
                 "missing.keys");
    write_file("empty.keys", "# nothing yet\n");
    assert_fails(serve_keys_load(&k, scratch_path("empty.keys"), NULL), MOE_ERR_INVALID,
                 "no API keys");
}

static void test_audit_lines(void **state) {
    (void)state;
    const char *path = scratch_path("audit.jsonl");
    serve_audit *a = NULL;
    assert_int_equal(serve_audit_open(&a, path), MOE_OK);
    serve_audit_write(a, "alice", "POST", "/v1/infer", 200, 17, 3.25, "127.0.0.1", "batch=2");
    serve_audit_write(a, NULL, "GET", "/v1/models", 401, 0, 0.5, "::1", "");
    char msg[300];
    assert_false(serve_audit_take_error(a, msg, sizeof msg));
    serve_audit_close(a);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    FILE *fp = fopen(path, "r");
    char line[1024];
    assert_non_null(fgets(line, sizeof line, fp));
    cJSON *j = cJSON_Parse(line);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "key_id")->valuestring, "alice");
    assert_string_equal(cJSON_GetObjectItem(j, "endpoint")->valuestring, "/v1/infer");
    assert_int_equal(cJSON_GetObjectItem(j, "status")->valueint, 200);
    assert_int_equal(cJSON_GetObjectItem(j, "tokens")->valueint, 17);
    assert_close(cJSON_GetObjectItem(j, "latency_ms")->valuedouble, 3.25, 1e-9);
    assert_string_equal(cJSON_GetObjectItem(j, "remote")->valuestring, "127.0.0.1");
    assert_string_equal(cJSON_GetObjectItem(j, "detail")->valuestring, "batch=2");
    const char *when = cJSON_GetObjectItem(j, "time")->valuestring;
    assert_int_equal(strlen(when), 24); /* 2026-01-02T03:04:05.678Z */
    assert_int_equal(when[23], 'Z');
    cJSON_Delete(j);
    assert_non_null(fgets(line, sizeof line, fp));
    j = cJSON_Parse(line);
    assert_string_equal(cJSON_GetObjectItem(j, "key_id")->valuestring, "-");
    cJSON_Delete(j);
    assert_null(fgets(line, sizeof line, fp));
    fclose(fp);

    /* appends; never truncates */
    assert_int_equal(serve_audit_open(&a, path), MOE_OK);
    serve_audit_write(a, "bob", "GET", "/healthz", 200, 0, 0.1, "-", "");
    serve_audit_close(a);
    fp = fopen(path, "r");
    int n = 0;
    while (fgets(line, sizeof line, fp)) n++;
    fclose(fp);
    assert_int_equal(n, 3);
    assert_fails(serve_audit_open(&a, scratch_path("no/such/dir/audit.jsonl")), MOE_ERR_IO,
                 "audit log");
}

/* /dev/full accepts the open and fails every write: reported once. */
static void test_audit_write_failure_reported_once(void **state) {
    (void)state;
    serve_audit *a = NULL;
    if (serve_audit_open(&a, "/dev/full") != MOE_OK) skip();
    serve_audit_write(a, "a", "GET", "/healthz", 200, 0, 0.1, "-", "");
    serve_audit_write(a, "a", "GET", "/healthz", 200, 0, 0.1, "-", "");
    char msg[300];
    assert_true(serve_audit_take_error(a, msg, sizeof msg));
    assert_non_null(strstr(msg, "/dev/full"));
    assert_false(serve_audit_take_error(a, msg, sizeof msg));
    serve_audit_close(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_of_a_known_key),
        cmocka_unit_test(test_key_new_round_trip_and_scopes),
        cmocka_unit_test(test_env_keys),
        cmocka_unit_test(test_file_errors_name_the_line),
        cmocka_unit_test(test_audit_lines),
        cmocka_unit_test(test_audit_write_failure_reported_once),
    };
    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
