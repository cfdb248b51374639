/* Request bodies (src/serve/request.c): valid bodies parse to the right
 * structs; every error path is a 400 that names its field. */
#include "test_util.h"

#include "serve/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static serve_limits limits(void) {
    serve_limits l;
    serve_limits_default(&l);
    return l;
}

/* Parses body as an infer request expecting a 400 on field. */
static void infer_fails(const char *body, const char *field) {
    serve_limits l = limits();
    serve_infer_request r;
    serve_error e;
    memset(&e, 0, sizeof e);
    moe_status st = serve_parse_infer(body, strlen(body), &l, &r, &e);
    if (st != MOE_ERR_INVALID || e.status != 400 || strcmp(e.field, field) != 0)
        print_error("body %s: status %d field \"%s\" message \"%s\" (wanted field \"%s\")\n", body,
                    e.status, e.field, e.message, field);
    assert_int_equal(st, MOE_ERR_INVALID);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.field, field);
    assert_true(strlen(e.message) > 5);
    serve_infer_request_free(&r);
}

static void generate_fails(const char *body, const char *field) {
    serve_limits l = limits();
    serve_generate_request r;
    serve_error e;
    memset(&e, 0, sizeof e);
    moe_status st = serve_parse_generate(body, strlen(body), &l, &r, &e);
    if (st != MOE_ERR_INVALID || strcmp(e.field, field) != 0)
        print_error("body %s: field \"%s\" message \"%s\" (wanted \"%s\")\n", body, e.field,
                    e.message, field);
    assert_int_equal(st, MOE_ERR_INVALID);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.field, field);
    serve_generate_request_free(&r);
}

static void test_infer_text(void **state) {
    (void)state;
    serve_limits l = limits();
    serve_infer_request r;
    serve_error e;
    const char *b = "{\"model\": \"tiny\", \"text\": \"In the beginning\", \"trace\": true}";
    assert_int_equal(serve_parse_infer(b, strlen(b), &l, &r, &e), MOE_OK);
    assert_string_equal(r.model, "tiny");
    assert_int_equal(r.kind, SERVE_INPUT_TEXT);
    assert_int_equal(r.n_inputs, 1);
    assert_string_equal(r.texts[0], "In the beginning");
    assert_int_equal(r.trace, 1);
    assert_int_equal(r.top, 5);
    serve_infer_request_free(&r);
    b = "{\"model\": \"m.1\", \"text\": [\"a\", \"h\\u00e9\"], \"top\": 3}  \n";
    assert_int_equal(serve_parse_infer(b, strlen(b), &l, &r, &e), MOE_OK);
    assert_int_equal(r.n_inputs, 2);
    assert_string_equal(r.texts[1], "h\xc3\xa9");
    assert_int_equal(r.top, 3);
    assert_int_equal(r.trace, 0);
    serve_infer_request_free(&r);
}

static void test_infer_tokens_and_rows(void **state) {
    (void)state;
    serve_limits l = limits();
    serve_infer_request r;
    serve_error e;
    const char *b = "{\"model\": \"tiny\", \"tokens\": [1, 2, 3]}";
    assert_int_equal(serve_parse_infer(b, strlen(b), &l, &r, &e), MOE_OK);
    assert_int_equal(r.kind, SERVE_INPUT_TOKENS);
    assert_int_equal(r.n_inputs, 1);
    assert_int_equal(r.n_tokens[0], 3);
    assert_int_equal(r.tokens[0][2], 3);
    serve_infer_request_free(&r);
    b = "{\"model\": \"tiny\", \"tokens\": [[1], [4, 5e0]]}";
    assert_int_equal(serve_parse_infer(b, strlen(b), &l, &r, &e), MOE_OK);
    assert_int_equal(r.n_inputs, 2);
    assert_int_equal(r.n_tokens[1], 2);
    assert_int_equal(r.tokens[1][1], 5);
    serve_infer_request_free(&r);
    b = "{\"rows\": [[5.1, 3.5], [-1, 2e3]], \"model\": \"iris\"}";
    assert_int_equal(serve_parse_infer(b, strlen(b), &l, &r, &e), MOE_OK);
    assert_int_equal(r.kind, SERVE_INPUT_ROWS);
    assert_int_equal(r.n_inputs, 2);
    assert_int_equal(r.n_features, 2);
    assert_close(r.rows[1], 3.5, 1e-6);
    assert_close(r.rows[3], 2000, 0);
    serve_infer_request_free(&r);
}

static void test_infer_errors_name_their_field(void **state) {
    (void)state;
    infer_fails("", "");
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\"", "");    /* malformed */
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\"} x", ""); /* trailing garbage */
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\"}{}", "");
    infer_fails("[1, 2]", "");                                        /* not an object */
    infer_fails("{\"text\": \"a\"}", "model");                        /* missing */
    infer_fails("{\"model\": \"../etc\", \"text\": \"a\"}", "model"); /* bad name */
    infer_fails("{\"model\": 3, \"text\": \"a\"}", "model");
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\", \"temp\": 1}", "temp");     /* unknown */
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\", \"text\": \"b\"}", "text"); /* twice */
    infer_fails("{\"model\": \"tiny\"}", "text");                                   /* no input */
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\", \"tokens\": [1]}", "tokens");
    infer_fails("{\"model\": \"tiny\", \"text\": 5}", "text");
    infer_fails("{\"model\": \"tiny\", \"text\": []}", "text");
    infer_fails("{\"model\": \"tiny\", \"text\": \"\"}", "text");
    infer_fails("{\"model\": \"tiny\", \"text\": [\"a\", 1]}", "text[1]");
    infer_fails("{\"model\": \"tiny\", \"text\": \"\xff\xfe\"}", "text"); /* invalid UTF-8 */
    infer_fails("{\"model\": \"tiny\", \"text\": [\"ok\", \"\xc0\xaf\"]}",
                "text[1]");                                                   /* overlong */
    infer_fails("{\"model\": \"tiny\", \"text\": \"\xed\xa0\x80\"}", "text"); /* surrogate */
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\\u0000b\"}", "");        /* NUL */
    infer_fails("{\"model\": \"tiny\", \"tokens\": []}", "tokens");
    infer_fails("{\"model\": \"tiny\", \"tokens\": [[]]}", "tokens[0]");
    infer_fails("{\"model\": \"tiny\", \"tokens\": [1, 2.5]}", "tokens[1]");
    infer_fails("{\"model\": \"tiny\", \"tokens\": [1, -1]}", "tokens[1]");
    infer_fails("{\"model\": \"tiny\", \"tokens\": [1, 1e300]}", "tokens[1]");
    infer_fails("{\"model\": \"tiny\", \"tokens\": [1, \"2\"]}", "tokens[1]");
    infer_fails("{\"model\": \"tiny\", \"tokens\": [[1, 2], [3, 4, 5, 6, 7, 8, 9, true]]}",
                "tokens[1][7]");
    infer_fails("{\"model\": \"tiny\", \"tokens\": [[1], 2]}", "tokens[1]");
    infer_fails("{\"model\": \"tiny\", \"tokens\": {\"a\": 1}}", "tokens");
    infer_fails("{\"model\": \"tiny\", \"rows\": [1, 2]}", "rows");
    infer_fails("{\"model\": \"tiny\", \"rows\": []}", "rows");
    infer_fails("{\"model\": \"tiny\", \"rows\": [[]]}", "rows[0]");
    infer_fails("{\"model\": \"tiny\", \"rows\": [[1, 2], [3]]}", "rows[1]"); /* ragged */
    infer_fails("{\"model\": \"tiny\", \"rows\": [[1, 2], 3]}", "rows[1]");
    infer_fails("{\"model\": \"tiny\", \"rows\": [[1, 2], [3, null]]}", "rows[1][1]");
    infer_fails("{\"model\": \"tiny\", \"rows\": [[1, 1e999]]}", "rows[0][1]"); /* inf */
    infer_fails("{\"model\": \"tiny\", \"rows\": [[1, 1e39]]}", "rows[0][1]");  /* > float */
    infer_fails("{\"model\": \"tiny\", \"rows\": [[NaN]]}", "");                /* not JSON */
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\", \"trace\": 1}", "trace");
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\", \"top\": 0}", "top");
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\", \"top\": 21}", "top");
    infer_fails("{\"model\": \"tiny\", \"text\": \"a\", \"top\": 2.5}", "top");
}

static void test_infer_limits(void **state) {
    (void)state;
    serve_limits l = limits();
    /* max_inputs + 1 texts */
    char body[8192];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"model\": \"m\", \"text\": [");
    for (int i = 0; i <= l.max_inputs; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s\"x\"", i ? "," : "");
    snprintf(body + n, sizeof body - n, "]}");
    infer_fails(body, "text");
    /* more tokens than max_tokens in total: the second array tips it over */
    size_t cap = 64 + (size_t)l.max_tokens * 3;
    char *big = malloc(cap);
    n = (size_t)snprintf(big, cap, "{\"model\": \"m\", \"tokens\": [[");
    for (int i = 0; i < l.max_tokens; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s1", i ? "," : "");
    snprintf(big + n, cap - n, "], [1]]}");
    infer_fails(big, "tokens[1]");
    free(big);
    /* text over 4 x max_tokens bytes */
    cap = 64 + (size_t)l.max_tokens * 4 + 8;
    big = malloc(cap);
    n = (size_t)snprintf(big, cap, "{\"model\": \"m\", \"text\": \"");
    memset(big + n, 'a', (size_t)l.max_tokens * 4 + 1);
    n += (size_t)l.max_tokens * 4 + 1;
    snprintf(big + n, cap - n, "\"}");
    infer_fails(big, "text");
    free(big);
    /* the body's length is what counts: no NUL terminator needed */
    const char *b = "{\"model\": \"m\", \"tokens\": [7]}GARBAGE";
    serve_infer_request r;
    serve_error e;
    assert_int_equal(serve_parse_infer(b, strlen(b) - 7, &l, &r, &e), MOE_OK);
    assert_int_equal(r.tokens[0][0], 7);
    serve_infer_request_free(&r);
}

static void test_generate(void **state) {
    (void)state;
    serve_limits l = limits();
    serve_generate_request r;
    serve_error e;
    const char *b = "{\"model\": \"tiny\", \"prompt\": \"In the\", \"max_tokens\": 10, "
                    "\"temperature\": 0.5, \"top_k\": 4, \"top_p\": 0.9, \"seed\": 42, "
                    "\"trace\": false}";
    assert_int_equal(serve_parse_generate(b, strlen(b), &l, &r, &e), MOE_OK);
    assert_string_equal(r.prompt, "In the");
    assert_null(r.prompt_tokens);
    assert_int_equal(r.max_tokens, 10);
    assert_close(r.temperature, 0.5, 1e-7);
    assert_int_equal(r.top_k, 4);
    assert_close(r.top_p, 0.9, 1e-7);
    assert_true(r.seed == 42);
    serve_generate_request_free(&r);
    b = "{\"model\": \"tiny\", \"prompt_tokens\": [1, 2]}";
    assert_int_equal(serve_parse_generate(b, strlen(b), &l, &r, &e), MOE_OK);
    assert_null(r.prompt);
    assert_int_equal(r.n_prompt_tokens, 2);
    assert_int_equal(r.max_tokens, 64);
    assert_close(r.temperature, 1, 0);
    assert_close(r.top_p, 1, 0);
    serve_generate_request_free(&r);

    generate_fails("{\"model\": \"tiny\"}", "prompt");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"a\", \"prompt_tokens\": [1]}",
                   "prompt_tokens");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"\"}", "prompt");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"a\", \"max_tokens\": 0}", "max_tokens");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"a\", \"max_tokens\": 5000}", "max_tokens");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"a\", \"temperature\": -1}", "temperature");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"a\", \"temperature\": 1e999}",
                   "temperature");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"a\", \"top_p\": 0}", "top_p");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"a\", \"top_k\": -2}", "top_k");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"a\", \"seed\": 1.5}", "seed");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"a\", \"seed\": \"7\"}", "seed");
    generate_fails("{\"model\": \"tiny\", \"prompt\": \"a\", \"stream\": true}", "stream");
    generate_fails("{\"model\": \"tiny\", \"prompt_tokens\": [1, -3]}", "prompt_tokens[1]");
    generate_fails("{\"model\": \"tiny\", \"prompt\": [\"a\"]}", "prompt");
    /* the prompt and max_tokens share the budget */
    char body[256];
    snprintf(body, sizeof body, "{\"model\": \"t\", \"prompt\": \"ab\", \"max_tokens\": %d}",
             l.max_tokens - 1);
    generate_fails(body, "prompt");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_infer_text),
        cmocka_unit_test(test_infer_tokens_and_rows),
        cmocka_unit_test(test_infer_errors_name_their_field),
        cmocka_unit_test(test_infer_limits),
        cmocka_unit_test(test_generate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
