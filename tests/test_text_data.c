/* Tokenized mails and their encoder rows: "subject\n\nbody" through the
 * tokenizer, cut to the context, [CLS] first, [PAD] after, labels, groups
 * and splits kept; the data.tokenizer names. */
#include "test_util.h"

#include "moe/moe.h"

#include <stdlib.h>
#include <string.h>

static moe_mail mail(const char *subject, const char *body, moe_mail_label l, moe_mail_group g,
                     moe_mail_split s) {
    moe_mail m;
    memset(&m, 0, sizeof m);
    m.subject = strdup(subject);
    m.body = strdup(body);
    m.body_len = strlen(body);
    m.from = strdup("");
    m.label = l;
    m.group = g;
    m.split = s;
    return m;
}

static void test_rows_from_mails(void **state) {
    (void)state;
    moe_mail_corpus c;
    memset(&c, 0, sizeof c);
    moe_mail mails[3] = {
        mail("Hi", "lunch?", MOE_MAIL_HAM, MOE_MAIL_EASY_HAM, MOE_MAIL_TRAIN),
        mail("WIN", "a long body that will not fit", MOE_MAIL_SPAM, MOE_MAIL_SPAM_MAIL,
             MOE_MAIL_VAL),
        mail("re", "ok", MOE_MAIL_HAM, MOE_MAIL_HARD_HAM, MOE_MAIL_TEST),
    };
    c.mails = mails;
    c.n = 3;
    moe_tokenizer *tok;
    assert_int_equal(moe_text_tokenizer("bytes", &tok), MOE_OK);
    assert_int_equal(moe_tokenizer_vocab_size(tok), 260);
    moe_text_data d;
    assert_int_equal(moe_text_data_from_mail(&d, &c, tok, 10), MOE_OK);
    assert_int_equal(d.split[MOE_TEXT_TRAIN].n, 1);
    assert_int_equal(d.split[MOE_TEXT_VAL].n, 1);
    assert_int_equal(d.split[MOE_TEXT_TEST].n, 1);
    assert_int_equal(d.n_classes, 2);
    assert_string_equal(d.class_name[1], "spam");
    assert_string_equal(d.group_name[1], "hard_ham");
    const moe_text_example *ham = &d.split[MOE_TEXT_TRAIN].ex[0];
    assert_int_equal(ham->n, 10); /* "Hi\n\nlunch?" is 10 bytes */
    assert_int_equal(ham->label, 0);
    assert_int_equal(d.tokens_train, 10);
    const moe_text_example *spam = &d.split[MOE_TEXT_VAL].ex[0];
    assert_int_equal(spam->n, 10); /* cut at max_tokens */
    assert_int_equal(spam->label, 1);
    assert_int_equal(spam->group, MOE_MAIL_SPAM_MAIL);
    int32_t row[16];
    uint8_t pad[16];
    moe_text_row(&d, ham, 16, row, pad);
    assert_int_equal(row[0], d.cls_id);
    const char *text = "Hi\n\nlunch?";
    for (int j = 0; j < 10; j++) {
        assert_int_equal(row[1 + j], (uint8_t)text[j]);
        assert_int_equal(pad[1 + j], 1);
    }
    for (int j = 11; j < 16; j++) {
        assert_int_equal(row[j], d.pad_id);
        assert_int_equal(pad[j], 0);
    }
    moe_text_row(&d, spam, 6, row, pad); /* a context shorter than the mail */
    assert_int_equal(row[0], d.cls_id);
    assert_int_equal(row[3], 'N'); /* "WIN\n\n..." */
    for (int j = 0; j < 6; j++) assert_int_equal(pad[j], 1);
    assert_true(d.pad_id >= d.n_regular && d.mask_id >= d.n_regular);
    moe_text_data_free(&d);
    moe_tokenizer_free(tok);
    for (int i = 0; i < 3; i++) moe_mail_free(&mails[i]);
}

static void test_tokenizer_names(void **state) {
    (void)state;
    moe_tokenizer *tok = NULL;
    assert_int_equal(moe_text_tokenizer("/nonexistent/tok.json", &tok), MOE_ERR_IO);
    assert_non_null(strstr(moe_last_error(), "/nonexistent/tok.json"));
    setenv("MOE_GPT2_DIR", "/nonexistent", 1);
    assert_int_not_equal(moe_text_tokenizer("gpt2", &tok), MOE_OK);
    assert_non_null(strstr(moe_last_error(), "/nonexistent"));
    unsetenv("MOE_GPT2_DIR");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_from_mails),
        cmocka_unit_test(test_tokenizer_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
