/* Byte-level BPE (include/moe/tokenizer.h): what training learns, exact
 * round trips of any bytes, compression on held-out text, save/load,
 * special tokens, determinism, and the errors bad files give. GPT-2's
 * tokenizer is checked against its npm package in tests/cli/tokenizer_gpt2.sh. */
#include "test_util.h"

#include "scratch_dir.h"

#include "moe/moe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int has(const char *needle) {
    if (strstr(moe_last_error(), needle)) return 1;
    print_error("message \"%s\" lacks \"%s\"\n", moe_last_error(), needle);
    return 0;
}

/* Seeded English-like prose: words from a small list, punctuation, lines. */
static char *prose(uint64_t seed, size_t n_words, size_t *n) {
    static const char *words[] = {"the",    "Lord",  "said", "unto",   "Moses", "and",
                                  "people", "land",  "of",   "Israel", "that",  "which",
                                  "shall",  "be",    "in",   "house",  "God",   "heaven",
                                  "earth",  "water", "he's", "they'll"};
    static const char *puncts[] = {" ", " ", " ", " ", ", ", ". ", ";\n", ":\n", "  ", "\t"};
    moe_rng r;
    moe_rng_seed(&r, seed);
    size_t cap = n_words * 12 + 1, len = 0;
    char *s = malloc(cap);
    for (size_t i = 0; i < n_words; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%s",
                                words[moe_rng_below(&r, sizeof words / sizeof *words)],
                                puncts[moe_rng_below(&r, sizeof puncts / sizeof *puncts)]);
    *n = len;
    return s;
}

static moe_tokenizer *trained(uint64_t seed, int vocab) {
    size_t n;
    char *text = prose(seed, 20000, &n);
    moe_tokenizer *t = NULL;
    assert_int_equal(moe_tokenizer_train(&t, (const uint8_t *)text, n, vocab, 0), MOE_OK);
    free(text);
    return t;
}

static void assert_round_trip(const moe_tokenizer *t, const uint8_t *bytes, size_t n) {
    int32_t *ids;
    size_t n_ids;
    char *back;
    size_t len;
    assert_int_equal(moe_tokenizer_encode(t, bytes, n, &ids, &n_ids), MOE_OK);
    assert_true(n_ids <= n);
    for (size_t i = 0; i < n_ids; i++)
        assert_true(ids[i] >= 0 && ids[i] < moe_tokenizer_special(t, MOE_TOK_CLS));
    assert_int_equal(moe_tokenizer_decode(t, ids, n_ids, &back, &len), MOE_OK);
    assert_int_equal(len, n);
    assert_memory_equal(back, bytes, n);
    assert_int_equal(back[len], '\0');
    free(ids);
    free(back);
}

/* The first merges of a text whose pair counts are known: "aaab" three
 * times. (a,a) occurs 6 times; then (aa,a) and (a,b) both 3: the tie goes to
 * the smaller ids, (a,b); then (aa,ab). */
static void test_training_merges_the_most_frequent_pair(void **state) {
    (void)state;
    const char *text = "aaab aaab aaab";
    moe_tokenizer *t;
    assert_int_equal(moe_tokenizer_train(&t, (const uint8_t *)text, strlen(text), 263, 0), MOE_OK);
    assert_int_equal(moe_tokenizer_vocab_size(t), 263);
    const char *want[] = {"aa", "ab", "aaab"};
    for (int i = 0; i < 3; i++) {
        const uint8_t *b;
        size_t n;
        assert_int_equal(moe_tokenizer_token_bytes(t, 256 + i, &b, &n), MOE_OK);
        assert_int_equal(n, strlen(want[i]));
        assert_memory_equal(b, want[i], n);
    }
    /* merges stay inside chunks: " aaab" is two tokens, space and word */
    int32_t *ids;
    size_t n_ids;
    assert_int_equal(moe_tokenizer_encode(t, (const uint8_t *)" aaab", 5, &ids, &n_ids), MOE_OK);
    assert_int_equal(n_ids, 2);
    assert_int_equal(ids[0], ' ');
    assert_int_equal(ids[1], 258);
    free(ids);
    /* no pair left occurs twice: the vocabulary stops short of 1000 */
    moe_tokenizer_free(t);
    assert_int_equal(moe_tokenizer_train(&t, (const uint8_t *)text, strlen(text), 1000, 0), MOE_OK);
    assert_true(moe_tokenizer_vocab_size(t) < 270);
    moe_tokenizer_free(t);
}

static void test_round_trip_any_bytes(void **state) {
    (void)state;
    moe_tokenizer *t = trained(1, 600);
    moe_rng r;
    moe_rng_seed(&r, 7);
    uint8_t buf[400];
    for (int trial = 0; trial < 500; trial++) {
        size_t n = moe_rng_below(&r, sizeof buf);
        for (size_t i = 0; i < n; i++) {
            /* mostly prose-like bytes, some arbitrary: NUL, \r\n, 0x80-0xff */
            uint32_t k = moe_rng_below(&r, 10);
            buf[i] = k < 6   ? (uint8_t)("the Lord said\r\n'"[moe_rng_below(&r, 16)])
                     : k < 7 ? 0
                             : (uint8_t)moe_rng_below(&r, 256);
        }
        assert_round_trip(t, buf, n);
    }
    const char *texts[] = {
        "",
        "a",
        "café naïve résumé Ångström",
        "中文字符测试 日本語のテキスト 한국어",
        "emoji 👍🏽 👨‍👩‍👧‍👦 🇫🇷!!",
        "line\r\nbreaks\n\n\ttabs  spaces   ",
        "nbsp\xc2\xa0"
        "bom\xef\xbb\xbf",
        "invalid \xff\xfe \xc3( \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82 trailing \xc3",
        "he's they'll 'tis ''' 1,000.5 !!!???",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        assert_round_trip(t, (const uint8_t *)texts[i], strlen(texts[i]));
    const uint8_t nuls[] = {0, 'a', 0, 0, ' ', 0, '\r', '\n', 0};
    assert_round_trip(t, nuls, sizeof nuls);
    moe_tokenizer_free(t);
}

static void test_merges_compress_held_out_text(void **state) {
    (void)state;
    moe_tokenizer *t = trained(1, 512);
    size_t n;
    char *held_out = prose(99, 3000, &n); /* another seed: text training never saw */
    int32_t *ids;
    size_t n_ids;
    assert_int_equal(moe_tokenizer_encode(t, (const uint8_t *)held_out, n, &ids, &n_ids), MOE_OK);
    /* whole words of the list became tokens: about 2 tokens per word */
    assert_true((double)n_ids < 0.4 * (double)n);
    free(ids);
    free(held_out);
    moe_tokenizer_free(t);
}

static void test_save_load_same_encoding(void **state) {
    (void)state;
    moe_tokenizer *t = trained(1, 700), *u;
    assert_int_equal(moe_tokenizer_save(t, scratch_path("tok.json")), MOE_OK);
    assert_int_equal(moe_tokenizer_load(&u, scratch_path("tok.json")), MOE_OK);
    assert_string_equal(moe_tokenizer_kind(u), "byte-bpe");
    assert_int_equal(moe_tokenizer_vocab_size(u), moe_tokenizer_vocab_size(t));
    size_t n;
    char *text = prose(5, 5000, &n);
    int32_t *a, *b;
    size_t na, nb;
    assert_int_equal(moe_tokenizer_encode(t, (const uint8_t *)text, n, &a, &na), MOE_OK);
    assert_int_equal(moe_tokenizer_encode(u, (const uint8_t *)text, n, &b, &nb), MOE_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na * sizeof *a);
    for (int32_t id = 0; id < moe_tokenizer_vocab_size(t); id++) {
        const uint8_t *x, *y;
        size_t nx, ny;
        assert_int_equal(moe_tokenizer_token_bytes(t, id, &x, &nx), MOE_OK);
        assert_int_equal(moe_tokenizer_token_bytes(u, id, &y, &ny), MOE_OK);
        assert_int_equal(nx, ny);
        assert_memory_equal(x, y, nx);
    }
    /* no temporary file left behind */
    assert_int_equal(access(scratch_path("tok.json.tmp"), F_OK), -1);
    free(a);
    free(b);
    free(text);
    moe_tokenizer_free(t);
    moe_tokenizer_free(u);
}

static char *file_text(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void test_training_is_deterministic(void **state) {
    (void)state;
    moe_tokenizer *t = trained(3, 900), *u = trained(3, 900);
    assert_int_equal(moe_tokenizer_save(t, scratch_path("a.json")), MOE_OK);
    assert_int_equal(moe_tokenizer_save(u, scratch_path("b.json")), MOE_OK);
    char *a = file_text(scratch_path("a.json")), *b = file_text(scratch_path("b.json"));
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "\"merges\""));
    free(a);
    free(b);
    moe_tokenizer_free(t);
    moe_tokenizer_free(u);
}

static void test_special_tokens(void **state) {
    (void)state;
    moe_tokenizer *t = trained(1, 300);
    int v = moe_tokenizer_vocab_size(t);
    assert_int_equal(v, 300);
    assert_int_equal(moe_tokenizer_special(t, MOE_TOK_CLS), v - 4);
    assert_int_equal(moe_tokenizer_special(t, MOE_TOK_SEP), v - 3);
    assert_int_equal(moe_tokenizer_special(t, MOE_TOK_PAD), v - 2);
    assert_int_equal(moe_tokenizer_special(t, MOE_TOK_MASK), v - 1);
    assert_string_equal(moe_tokenizer_special_name(MOE_TOK_MASK), "[MASK]");
    assert_null(moe_tokenizer_special_name(MOE_TOK_N_SPECIAL));
    /* text that spells a special token encodes as plain text */
    const char *text = "[CLS] x [SEP][PAD][MASK]";
    int32_t *ids;
    size_t n_ids;
    assert_int_equal(moe_tokenizer_encode(t, (const uint8_t *)text, strlen(text), &ids, &n_ids),
                     MOE_OK);
    for (size_t i = 0; i < n_ids; i++) assert_true(ids[i] < v - 4);
    free(ids);
    /* decode renders them as their names */
    int32_t seq[] = {v - 4, 'h', 'i', v - 3, v - 2, v - 1};
    char *out;
    size_t len;
    assert_int_equal(moe_tokenizer_decode(t, seq, 6, &out, &len), MOE_OK);
    assert_string_equal(out, "[CLS]hi[SEP][PAD][MASK]");
    free(out);
    /* ids out of range are refused with their position */
    int32_t bad[] = {'a', v};
    assert_int_equal(moe_tokenizer_decode(t, bad, 2, &out, &len), MOE_ERR_INVALID);
    assert_true(has("position 1"));
    moe_tokenizer_free(t);
}

static void test_token_text_for_display(void **state) {
    (void)state;
    moe_tokenizer *t = trained(1, 300);
    char *s;
    assert_int_equal(moe_tokenizer_token_text(t, '\n', &s), MOE_OK);
    assert_string_equal(s, "\\n");
    free(s);
    assert_int_equal(moe_tokenizer_token_text(t, 0xff, &s), MOE_OK);
    assert_string_equal(s, "\\xff");
    free(s);
    assert_int_equal(moe_tokenizer_token_text(t, '\\', &s), MOE_OK);
    assert_string_equal(s, "\\\\");
    free(s);
    assert_int_equal(moe_tokenizer_token_text(t, moe_tokenizer_special(t, MOE_TOK_PAD), &s),
                     MOE_OK);
    assert_string_equal(s, "[PAD]");
    free(s);
    /* a learned token: valid UTF-8 stays as it is */
    const char *word = "é";
    int32_t *ids;
    size_t n_ids;
    moe_tokenizer_free(t);
    const char *text = "é é é é é";
    assert_int_equal(moe_tokenizer_train(&t, (const uint8_t *)text, strlen(text), 300, 0), MOE_OK);
    assert_int_equal(moe_tokenizer_encode(t, (const uint8_t *)word, strlen(word), &ids, &n_ids),
                     MOE_OK);
    assert_int_equal(n_ids, 1);
    assert_int_equal(moe_tokenizer_token_text(t, ids[0], &s), MOE_OK);
    assert_string_equal(s, "é");
    free(s);
    free(ids);
    assert_int_equal(moe_tokenizer_token_text(t, -1, &s), MOE_ERR_INVALID);
    moe_tokenizer_free(t);
}

static void test_bad_arguments(void **state) {
    (void)state;
    moe_tokenizer *t;
    assert_int_equal(moe_tokenizer_train(&t, (const uint8_t *)"ab", 2, 259, 0), MOE_ERR_INVALID);
    assert_true(has("below 260"));
    assert_null(t);
    /* an empty text trains the bytes alone */
    assert_int_equal(moe_tokenizer_train(&t, NULL, 0, 4096, 0), MOE_OK);
    assert_int_equal(moe_tokenizer_vocab_size(t), 260);
    assert_int_equal(moe_tokenizer_save(t, scratch_path("no/such/folder/t.json")), MOE_ERR_IO);
    assert_true(has("no/such/folder"));
    moe_tokenizer_free(t);
}

/* A tokenizer file with `field` replaced: a valid file's text otherwise. */
static const char *edited(const char *name, const char *from, const char *to) {
    moe_tokenizer *t = trained(1, 270);
    assert_int_equal(moe_tokenizer_save(t, scratch_path("good.json")), MOE_OK);
    moe_tokenizer_free(t);
    char *text = file_text(scratch_path("good.json"));
    char *at = strstr(text, from);
    assert_non_null(at);
    size_t n = strlen(text) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    write_text(scratch_path(name), out);
    free(out);
    free(text);
    return scratch_path(name);
}

static void test_bad_files_say_why(void **state) {
    (void)state;
    moe_tokenizer *t = NULL;
    const char *p = scratch_path("missing.json");
    assert_int_equal(moe_tokenizer_load(&t, p), MOE_ERR_IO);
    assert_true(has(p));
    assert_true(has("No such file"));
    assert_null(t);

    p = scratch_path("broken.json");
    write_text(p, "{\"kind\": \"byte-bpe\",\n \"merges\": [[1, 2],,]}");
    assert_int_equal(moe_tokenizer_load(&t, p), MOE_ERR_FORMAT);
    assert_true(has(p));
    assert_true(has("malformed JSON at line 2"));

    p = edited("kind.json", "\"byte-bpe\"", "\"gpt2\"");
    assert_int_equal(moe_tokenizer_load(&t, p), MOE_ERR_FORMAT);
    assert_true(has(p));
    assert_true(has("kind \"gpt2\" is not \"byte-bpe\""));

    p = edited("version.json", "\"version\":\t1", "\"version\":\t7");
    assert_int_equal(moe_tokenizer_load(&t, p), MOE_ERR_FORMAT);
    assert_true(has("\"version\" must be 1"));

    /* merge 0 may use only the 256 bytes */
    p = edited("unknown.json", "\"merges\":\t[[", "\"merges\":\t[[300, 1], [");
    assert_int_equal(moe_tokenizer_load(&t, p), MOE_ERR_FORMAT);
    assert_true(has(p));
    assert_true(has("merge 0 is [300, 1] but may only use ids below 256"));

    p = edited("shape.json", "\"merges\":\t[[", "\"merges\":\t[[1, \"x\"], [");
    assert_int_equal(moe_tokenizer_load(&t, p), MOE_ERR_FORMAT);
    assert_true(has("merges[0] must be a pair of integer ids"));

    p = edited("size.json", "\"vocab_size\":\t270", "\"vocab_size\":\t271");
    assert_int_equal(moe_tokenizer_load(&t, p), MOE_ERR_FORMAT);
    assert_true(has("\"vocab_size\" must be 270"));

    p = edited("special.json", "\"[SEP]\":\t267", "\"[SEP]\":\t3");
    assert_int_equal(moe_tokenizer_load(&t, p), MOE_ERR_FORMAT);
    assert_true(has("special_tokens.\"[SEP]\" must be 267"));
    assert_null(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_merges_the_most_frequent_pair),
        cmocka_unit_test(test_round_trip_any_bytes),
        cmocka_unit_test(test_merges_compress_held_out_text),
        cmocka_unit_test(test_save_load_same_encoding),
        cmocka_unit_test(test_training_is_deterministic),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_token_text_for_display),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_bad_files_say_why),
    };
    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
