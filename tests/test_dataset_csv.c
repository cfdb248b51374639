/* CSV tables as data sets (moe/dataset.h, data.source "csv"): header names
 * with quoting and CR LF, scikit-learn's bundled iris and wine files, string
 * and integer classes, probability columns (soft labels) by list and range,
 * weights, the stratified three-way split, per-feature normalisation from
 * the training split, and every error: each names the file, the line and
 * the column. Fixtures: tests/fixtures/tables/. */
#include "test_util.h"

#include "moe/moe.h"
#include "scratch_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLES "tests/fixtures/tables/"
#define SKLEARN "/usr/lib/python3/dist-packages/sklearn/datasets/data/"

static moe_data_config csv_config(const char *path) {
    moe_run_config rc;
    moe_config_defaults(&rc);
    moe_data_config c = rc.data;
    snprintf(c.source, sizeof c.source, "csv");
    snprintf(c.path, sizeof c.path, "%s", path);
    c.val_fraction = 0; /* everything in train, in file order */
    c.test_fraction = 0;
    c.normalize = 0;
    return c;
}

static const char *write_file(const char *name, const char *text) {
    const char *path = scratch_path(name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static moe_dataset_splits load_ok(const moe_data_config *c) {
    moe_dataset_splits s;
    moe_status st = moe_dataset_load(&s, c, 1);
    if (st != MOE_OK) print_error("%s\n", moe_last_error());
    assert_int_equal(st, MOE_OK);
    assert_string_equal(s.source, "csv");
    return s;
}

static void expect_fail(const moe_data_config *c, moe_status want, const char *a, const char *b) {
    moe_dataset_splits s;
    moe_status st = moe_dataset_load(&s, c, 1);
    const char *msg = moe_last_error();
    if (st != want || !strstr(msg, a) || (b && !strstr(msg, b))) {
        print_error("wanted %s with \"%s\" and \"%s\", got %s: %s\n", moe_status_name(want), a,
                    b ? b : "", moe_status_name(st), msg);
        fail();
    }
    assert_null(s.train.x);
    assert_null(s.class_names);
}

/* A table in a scratch file with the config's other fields as given. */
static void expect_table_fail(const char *text, const char *label, const char *probs,
                              const char *weight, moe_status want, const char *a, const char *b) {
    moe_data_config c = csv_config(write_file("bad.csv", text));
    snprintf(c.label_column, sizeof c.label_column, "%s", label);
    snprintf(c.prob_columns, sizeof c.prob_columns, "%s", probs);
    snprintf(c.weight_column, sizeof c.weight_column, "%s", weight);
    expect_fail(&c, want, a, b);
}

static void test_header_and_string_classes(void **state) {
    (void)state;
    moe_data_config c = csv_config(TABLES "flowers.csv");
    moe_dataset_splits s = load_ok(&c);
    const moe_dataset *d = &s.train;
    assert_int_equal(d->n, 6); /* the blank line is no row */
    assert_int_equal(d->dim, 2);
    assert_int_equal(d->channels + d->height + d->width, 0);
    assert_int_equal(d->n_classes, 3);
    assert_null(d->soft);
    assert_null(d->weights);
    assert_int_equal(s.val.n + s.test.n, 0);
    assert_string_equal(s.feature_names[0], "petal length");
    assert_string_equal(s.feature_names[1], "width, in cm"); /* quoted, with its comma */
    assert_string_equal(s.class_names[0], "setosa");
    assert_string_equal(s.class_names[1], "versicolor");
    assert_string_equal(s.class_names[2], "virginica");
    const float want_x[12] = {1.5f,  0.25f, 4.5f, 1.5f,  5.5f, 2.0f,
                              1.25f, 0.5f,  4.0f, 1.25f, 6.0f, 2.5f};
    const int want_l[6] = {0, 1, 2, 0, 1, 2};
    for (int i = 0; i < 12; i++) assert_close(d->x[i], want_x[i], 0);
    for (int i = 0; i < 6; i++) assert_int_equal(d->labels[i], want_l[i]);
    assert_null(s.mean);
    moe_dataset_splits_free(&s);

    /* string classes get ids in byte order, not in order of appearance */
    c = csv_config(write_file("zoo.csv", "legs,kind\n4,zebra\n2,ant\n8,Mole\n6,ant\n"));
    s = load_ok(&c);
    assert_int_equal(s.train.n_classes, 3);
    assert_string_equal(s.class_names[0], "Mole");
    assert_string_equal(s.class_names[1], "ant");
    assert_string_equal(s.class_names[2], "zebra");
    const int zoo[4] = {2, 1, 0, 1};
    for (int i = 0; i < 4; i++) assert_int_equal(s.train.labels[i], zoo[i]);
    moe_dataset_splits_free(&s);
}

static void test_label_column_choice(void **state) {
    (void)state;
    /* CR LF line ends, an escaped quote in a name, the class in the middle */
    moe_data_config c = csv_config(TABLES "grades_crlf.csv");
    const char *refs[2] = {"grade", "1"};
    for (int r = 0; r < 2; r++) {
        snprintf(c.label_column, sizeof c.label_column, "%s", refs[r]);
        moe_dataset_splits s = load_ok(&c);
        assert_int_equal(s.train.n, 4);
        assert_int_equal(s.train.dim, 3);
        assert_string_equal(s.feature_names[0], "id");
        assert_string_equal(s.feature_names[1], "score");
        assert_string_equal(s.feature_names[2], "a \"quoted\" name");
        assert_int_equal(s.train.n_classes, 3);
        assert_string_equal(s.class_names[2], "2");
        const int want[4] = {2, 0, 2, 1};
        for (int i = 0; i < 4; i++) assert_int_equal(s.train.labels[i], want[i]);
        assert_close(s.train.x[3 * 3 + 1], 3.5, 0);
        assert_close(s.train.x[3 * 3 + 2], 40, 0);
        moe_dataset_splits_free(&s);
    }
    /* "" = the last column; integer classes are the ids themselves */
    c.label_column[0] = '\0';
    moe_dataset_splits s = load_ok(&c);
    assert_int_equal(s.train.n_classes, 41);
    assert_int_equal(s.train.labels[0], 10);
    assert_int_equal(s.train.labels[3], 40);
    assert_string_equal(s.class_names[40], "40");
    assert_string_equal(s.feature_names[1], "grade");
    moe_dataset_splits_free(&s);
}

static void check_votes(const moe_dataset_splits *s, const char *const *names, const int *order) {
    const moe_dataset *d = &s->train;
    /* the three rows as written: cat,dog,bird */
    const double raw[4][3] = {{2, 1, 1}, {0, 0, 3}, {1, 1, 0}, {0.2, 0.5, 0.3}};
    assert_int_equal(d->n, 4);
    assert_int_equal(d->n_classes, 3);
    assert_non_null(d->soft);
    for (int k = 0; k < 3; k++) assert_string_equal(s->class_names[k], names[k]);
    for (int i = 0; i < 4; i++) {
        double sum = raw[i][0] + raw[i][1] + raw[i][2];
        int best = 0;
        for (int k = 0; k < 3; k++) {
            assert_close(d->soft[i * 3 + k], raw[i][order[k]] / sum, 1e-6);
            if (raw[i][order[k]] > raw[i][order[best]]) best = k;
        }
        assert_int_equal(d->labels[i], best); /* the argmax, the first on a tie */
    }
}

static void test_prob_columns_and_weights(void **state) {
    (void)state;
    moe_data_config c = csv_config(TABLES "votes.csv");
    const char *cat_dog_bird[3] = {"cat", "dog", "bird"};
    const int same[3] = {0, 1, 2};
    const char *specs[4] = {"cat,dog,bird", "cat:bird", "2:4", " cat : 4 "};
    for (int k = 0; k < 4; k++) {
        snprintf(c.prob_columns, sizeof c.prob_columns, "%s", specs[k]);
        snprintf(c.weight_column, sizeof c.weight_column, "%s", k % 2 ? "5" : "weight");
        moe_dataset_splits s = load_ok(&c);
        check_votes(&s, cat_dog_bird, same);
        assert_int_equal(s.train.dim, 2);
        assert_string_equal(s.feature_names[0], "x0");
        assert_string_equal(s.feature_names[1], "x1");
        const float w[4] = {1, 0.5f, 2, 0};
        assert_non_null(s.train.weights);
        for (int i = 0; i < 4; i++) assert_close(s.train.weights[i], w[i], 0);
        int idx[2] = {3, 1};
        float bx[4], bs[6], bw[2];
        int32_t bl[2];
        moe_dataset_gather(&s.train, idx, 2, bx, bl, bs, bw);
        assert_close(bx[0], 2.0, 0);
        assert_close(bx[3], -2.0, 0);
        assert_int_equal(bl[0], 1);
        assert_close(bs[4], 0, 0); /* row 1: all bird */
        assert_close(bs[5], 1, 1e-7);
        assert_close(bw[0], 0, 0);
        assert_close(bw[1], 0.5, 0);
        moe_dataset_splits_free(&s);
    }
    /* listed out of order: the classes follow the list; dog becomes a feature */
    snprintf(c.prob_columns, sizeof c.prob_columns, "bird,cat");
    c.weight_column[0] = '\0';
    moe_dataset_splits s = load_ok(&c);
    assert_int_equal(s.train.n_classes, 2);
    assert_string_equal(s.class_names[0], "bird");
    assert_int_equal(s.train.dim, 4);
    assert_string_equal(s.feature_names[2], "dog");
    assert_string_equal(s.feature_names[3], "weight");
    assert_close(s.train.soft[0], 1.0 / 3, 1e-6);
    assert_int_equal(s.train.labels[0], 1);
    assert_null(s.train.weights);
    moe_dataset_splits_free(&s);
}

static void test_sklearn_files(void **state) {
    (void)state;
    moe_data_config c = csv_config(SKLEARN "iris.csv");
    moe_dataset_splits s = load_ok(&c);
    assert_int_equal(s.train.n, 150);
    assert_int_equal(s.train.dim, 4);
    assert_int_equal(s.train.n_classes, 3);
    assert_string_equal(s.class_names[0], "setosa");
    assert_string_equal(s.class_names[2], "virginica");
    assert_string_equal(s.feature_names[3], "feature_3");
    const float first[4] = {5.1f, 3.5f, 1.4f, 0.2f}, last[4] = {5.9f, 3.0f, 5.1f, 1.8f};
    for (int j = 0; j < 4; j++) {
        assert_close(s.train.x[j], first[j], 0);
        assert_close(s.train.x[149 * 4 + j], last[j], 0);
    }
    int per[3] = {0};
    for (int i = 0; i < 150; i++) per[s.train.labels[i]]++;
    for (int k = 0; k < 3; k++) assert_int_equal(per[k], 50);
    moe_dataset_splits_free(&s);

    c.val_fraction = 0.2f; /* stratified: 10 + 10 + 30 of each 50 */
    c.test_fraction = 0.2f;
    s = load_ok(&c);
    const moe_dataset *parts[3] = {&s.train, &s.val, &s.test};
    const int want[3] = {30, 10, 10};
    for (int p = 0; p < 3; p++) {
        int pc[3] = {0};
        for (int i = 0; i < parts[p]->n; i++) pc[parts[p]->labels[i]]++;
        for (int k = 0; k < 3; k++) assert_int_equal(pc[k], want[p]);
    }
    moe_dataset_splits_free(&s);

    c = csv_config(SKLEARN "wine_data.csv");
    snprintf(c.label_column, sizeof c.label_column, "target");
    s = load_ok(&c);
    assert_int_equal(s.train.n, 178);
    assert_int_equal(s.train.dim, 13);
    assert_int_equal(s.train.n_classes, 3);
    assert_string_equal(s.class_names[1], "class_1");
    int wine[3] = {0};
    for (int i = 0; i < 178; i++) wine[s.train.labels[i]]++;
    assert_int_equal(wine[0], 59); /* sklearn.datasets.load_wine's class counts */
    assert_int_equal(wine[1], 71);
    assert_int_equal(wine[2], 48);
    assert_close(s.train.x[12], 1065, 0);
    moe_dataset_splits_free(&s);
}

/* 100 rows: class a 20, b 30, c 50, interleaved; feature 0 is the row id,
 * feature 1 a scaled pattern */
static const char *three_class_table(void) {
    static char text[4096];
    size_t used = (size_t)snprintf(text, sizeof text, "id,v,cls\n");
    for (int i = 0; i < 100; i++) {
        int k = i % 10;
        const char *cls = k < 2 ? "a" : k < 5 ? "b" : "c";
        used += (size_t)snprintf(text + used, sizeof text - used, "%d,%g,%s\n", i,
                                 100.0 + 7.0 * ((i * 37) % 23), cls);
    }
    return write_file("three.csv", text);
}

static void test_table_split_and_normalize(void **state) {
    (void)state;
    moe_data_config c = csv_config(three_class_table());
    c.val_fraction = 0.1f;
    c.test_fraction = 0.2f;
    moe_dataset_splits s = load_ok(&c), again = load_ok(&c);
    const moe_dataset *parts[3] = {&s.train, &s.val, &s.test};
    const int sizes[3][3] = {{14, 21, 35}, {2, 3, 5}, {4, 6, 10}};
    int seen[100] = {0};
    for (int p = 0; p < 3; p++) {
        int pc[3] = {0};
        for (int i = 0, last = -1; i < parts[p]->n; i++) {
            int id = (int)parts[p]->x[i * 2];
            assert_true(id > last);
            last = id;
            seen[id]++;
            pc[parts[p]->labels[i]]++;
        }
        for (int k = 0; k < 3; k++) assert_int_equal(pc[k], sizes[p][k]);
    }
    for (int i = 0; i < 100; i++) assert_int_equal(seen[i], 1);
    assert_memory_equal(s.test.x, again.test.x, sizeof(float) * 2 * 20); /* deterministic */

    c.normalize = 1; /* per feature, from the training rows */
    moe_dataset_splits n = load_ok(&c);
    for (int j = 0; j < 2; j++) {
        double sum = 0, sq = 0;
        for (int i = 0; i < s.train.n; i++) sum += s.train.x[i * 2 + j];
        double mean = sum / s.train.n;
        for (int i = 0; i < s.train.n; i++)
            sq += (s.train.x[i * 2 + j] - mean) * (s.train.x[i * 2 + j] - mean);
        double sd = sqrt(sq / s.train.n);
        assert_close(n.mean[j], mean, 1e-4);
        assert_close(n.std[j], sd, 1e-4);
        for (int p = 0; p < 3; p++) {
            const moe_dataset *r = parts[p], *q = p == 0 ? &n.train : p == 1 ? &n.val : &n.test;
            for (int i = 0; i < r->n; i++)
                assert_close(q->x[i * 2 + j], (r->x[i * 2 + j] - mean) / sd, 1e-5);
        }
    }
    moe_dataset_splits_free(&n);
    moe_dataset_splits_free(&s);
    moe_dataset_splits_free(&again);

    /* a constant feature is only centred (std taken as 1) */
    c = csv_config(write_file("flat.csv", "k,v,y\n3,1,a\n3,2,b\n3,4,a\n3,5,b\n"));
    c.normalize = 1;
    s = load_ok(&c);
    assert_close(s.mean[0], 3, 0);
    assert_close(s.std[0], 1, 0);
    assert_close(s.train.x[0], 0, 0);
    assert_close(s.mean[1], 3, 1e-6);
    assert_close(s.std[1], sqrt(2.5), 1e-6);
    moe_dataset_splits_free(&s);
}

static void test_cell_errors(void **state) {
    (void)state;
    const char *none = "";
    expect_table_fail("a,b,label\n1,2,x\n3,abc,y\n", none, none, none, MOE_ERR_FORMAT,
                      "bad.csv:3: column 1 (\"b\"): \"abc\" is not a number", NULL);
    expect_table_fail("a,b,label\n1,2 3,x\n", none, none, none, MOE_ERR_FORMAT,
                      "bad.csv:2: column 1", "is not a number");
    expect_table_fail("a,b,label\n1,,x\n3,4,y\n", none, none, none, MOE_ERR_FORMAT,
                      "bad.csv:2: column 1 (\"b\"): a missing value", NULL);
    expect_table_fail("a,b,label\n1,2,x\n3,4,y\n5,nan,x\n", none, none, none, MOE_ERR_NUMERIC,
                      "bad.csv:4: column 1 (\"b\")", "not a finite number");
    expect_table_fail("a,b,label\n-inf,2,x\n3,4,y\n", none, none, none, MOE_ERR_NUMERIC,
                      "bad.csv:2: column 0 (\"a\")", "not a finite number");
    expect_table_fail("a,b,label\n1,2,x\n3,1e39,y\n", none, none, none, MOE_ERR_NUMERIC,
                      "bad.csv:3: column 1", "beyond float range");
    expect_table_fail("a,b,label\n1,2,x\n3,4,\n", none, none, none, MOE_ERR_FORMAT,
                      "bad.csv:3: column 2 (\"label\"): the class is missing", NULL);
    expect_table_fail("a,p,q\n1,0.5,0.5\n2,0.5,-0.25\n", none, "p,q", none, MOE_ERR_FORMAT,
                      "bad.csv:3: column 2 (\"q\"): probability -0.25 is negative", NULL);
    expect_table_fail("a,p,q\n1,0.5,0.5\n2,0,0\n", none, "p:q", none, MOE_ERR_FORMAT,
                      "bad.csv:3: the probability columns", "all zero");
    expect_table_fail("a,w,y\n1,1,x\n2,-1,y\n", none, none, "w", MOE_ERR_FORMAT,
                      "bad.csv:3: column 1 (\"w\"): weight -1 is negative", NULL);
    expect_table_fail("a,w,y\n1,1,x\n2,heavy,y\n", none, none, "w", MOE_ERR_FORMAT,
                      "bad.csv:3: column 1 (\"w\")", "not a number");
    moe_data_config c = csv_config(TABLES "bad_count.csv");
    expect_fail(&c, MOE_ERR_FORMAT, "bad_count.csv:4: 2 columns, but the header has 3", NULL);
    expect_table_fail("a,b,label\n1,2,x,9\n", none, none, none, MOE_ERR_FORMAT,
                      "bad.csv:2: 4 columns", NULL);
    c = csv_config(TABLES "unclosed_quote.csv");
    expect_fail(&c, MOE_ERR_FORMAT, "unclosed_quote.csv", "never closed");
    expect_table_fail("a,b,label\n1,2\"3,x\n", none, none, none, MOE_ERR_FORMAT,
                      "bad.csv:2: not valid CSV", NULL);
}

static void test_config_and_shape_errors(void **state) {
    (void)state;
    const char *t = "a,b,label\n1,2,x\n3,4,y\n", *none = "";
    expect_table_fail(t, "kind", none, none, MOE_ERR_INVALID,
                      "data.label_column \"kind\": no such column", "\"a\", \"b\", \"label\"");
    expect_table_fail(t, "3", none, none, MOE_ERR_INVALID, "has only 3 columns", NULL);
    expect_table_fail(t, "label", "a,b", none, MOE_ERR_INVALID, "data.label_column \"label\"",
                      "one or the other");
    expect_table_fail(t, none, "a", none, MOE_ERR_INVALID, "at least 2", NULL);
    expect_table_fail(t, none, "a,b,0", none, MOE_ERR_INVALID, "column 0 (\"a\") is listed twice",
                      NULL);
    expect_table_fail(t, none, "b:a", none, MOE_ERR_INVALID, "runs backwards", NULL);
    expect_table_fail(t, none, "a,,b", none, MOE_ERR_INVALID, "an empty item", NULL);
    expect_table_fail(t, none, "a:zz", none, MOE_ERR_INVALID, "\"zz\": no such column", NULL);
    expect_table_fail("p,q\n0.5,0.5\n", none, "p:q", none, MOE_ERR_INVALID,
                      "no feature column is left", NULL);
    expect_table_fail(t, none, none, "label", MOE_ERR_INVALID, "data.weight_column \"label\"",
                      "already the class column");
    expect_table_fail("a,a,y\n1,2,x\n3,4,z\n", "a", none, none, MOE_ERR_INVALID,
                      "has two columns of that name", NULL);
    expect_table_fail("a,b,label\n1,2,x\n3,4,x\n", none, none, none, MOE_ERR_INVALID,
                      "holds a single class (\"x\")", NULL);
    expect_table_fail("a,b,label\n", none, none, none, MOE_ERR_FORMAT, "only a header row", NULL);
    expect_table_fail("", none, none, none, MOE_ERR_FORMAT, "bad.csv: empty", NULL);
    /* scikit-learn's format with a class beyond the header's names */
    expect_table_fail("3,1,lo,hi\n0.5,0\n1.5,5\n2.5,1\n", none, none, none, MOE_ERR_FORMAT,
                      "bad.csv:3: column 1 (\"target\"): class 5", "the header names 2 classes");
    moe_data_config c = csv_config(scratch_path("absent.csv"));
    expect_fail(&c, MOE_ERR_IO, "absent.csv: cannot open", NULL);
    c = csv_config("");
    expect_fail(&c, MOE_ERR_INVALID, "needs data.path", NULL);
    c = csv_config(TABLES "flowers.csv");
    c.val_fraction = 0.5f;
    c.test_fraction = 0.5f;
    expect_fail(&c, MOE_ERR_INVALID, "their sum below 1", NULL);
    snprintf(c.source, sizeof c.source, "spam");
    expect_fail(&c, MOE_ERR_INVALID, "data.source \"spam\" is no dense data set", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_and_string_classes),
        cmocka_unit_test(test_label_column_choice),
        cmocka_unit_test(test_prob_columns_and_weights),
        cmocka_unit_test(test_sklearn_files),
        cmocka_unit_test(test_table_split_and_normalize),
        cmocka_unit_test(test_cell_errors),
        cmocka_unit_test(test_config_and_shape_errors),
    };
    return cmocka_run_group_tests(tests, scratch_setup, scratch_teardown);
}
