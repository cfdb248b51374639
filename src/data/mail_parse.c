/* One raw mail to a moe_mail: GMime parses it, the subject and sender come
 * from its headers, the body from its text parts (mail_body.c); a mail
 * with nothing to read is skipped with the reason. */
#include "data/mail_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_HEADER 1024 /* bytes kept of the subject and of the sender */

/* A malloc'd, cleaned copy of s[0, n), cut to cap bytes; *len its length,
 * *cut whether it lost bytes to cap. one_line turns line breaks into
 * spaces (header fields). NULL when out of memory. */
static char *clean_copy(const char *s, size_t n, size_t cap, int one_line, size_t *len, int *cut) {
    char *copy = malloc(n + 1);
    if (!copy) return NULL;
    memcpy(copy, s, n);
    if (one_line)
        for (size_t i = 0; i < n; i++)
            if (copy[i] == '\n' || copy[i] == '\r' || copy[i] == '\t') copy[i] = ' ';
    size_t full = mail_text_clean(copy, n);
    *len = mail_utf8_cut(copy, full, cap);
    copy[*len] = '\0';
    if (cut) *cut = *len < full;
    return copy;
}

/* A header's decoded text as cleaned UTF-8. */
static char *header_copy(const char *text) {
    /* GMime's fallback charsets make it valid; this makes sure */
    char *valid = g_utf8_make_valid(text, -1);
    size_t len;
    char *copy = clean_copy(valid, strlen(valid), MAX_HEADER, 1, &len, NULL);
    g_free(valid);
    return copy;
}

static int only_white_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!g_ascii_isspace(s[i])) return 0;
    return 1;
}

moe_status moe_mail_parse(const void *raw, size_t n, moe_mail *m, moe_mail_skip *skip) {
    if (!m || !skip || (!raw && n)) return moe_error(MOE_ERR_INVALID, "moe_mail_parse: no mail");
    memset(m, 0, sizeof *m);
    *skip = MOE_MAIL_KEPT;
    const char *text = raw;
    size_t mbox_line = mail_mbox_line(text, n);
    text += mbox_line;
    n -= mbox_line;
    if (only_white_space(text, n)) {
        *skip = MOE_MAIL_SKIP_EMPTY;
        return MOE_OK;
    }
    GMimeMessage *msg = mail_gmime_parse(text, n);
    if (!msg) {
        *skip = MOE_MAIL_SKIP_NOT_MAIL;
        return MOE_OK;
    }
    char *subject = mail_header_subject(msg), *from = mail_header_from(msg);
    GString *body = g_string_new(NULL);
    int binary_parts = 0;
    mail_body_text(g_mime_message_get_mime_part(msg), body, &binary_parts);

    m->subject = header_copy(subject);
    m->from = header_copy(from);
    m->body = clean_copy(body->str, body->len, MOE_MAIL_MAX_BODY, 0, &m->body_len, &m->body_cut);
    g_free(subject);
    g_free(from);
    g_string_free(body, TRUE);
    g_object_unref(msg);
    if (!m->subject || !m->from || !m->body) {
        moe_mail_free(m);
        return moe_error(MOE_ERR_NOMEM, "moe_mail_parse: out of memory");
    }
    if (!m->subject[0] && !m->body_len) {
        moe_mail_free(m);
        *skip = binary_parts ? MOE_MAIL_SKIP_BINARY : MOE_MAIL_SKIP_NO_TEXT;
        return MOE_OK;
    }
    m->hash = mail_text_hash(m->subject, m->body, m->body_len);
    return MOE_OK;
}

void moe_mail_free(moe_mail *m) {
    if (!m) return;
    free(m->path);
    free(m->subject);
    free(m->from);
    free(m->body);
    memset(m, 0, sizeof *m);
}

const char *moe_mail_skip_name(moe_mail_skip s) {
    static const char *const names[MOE_MAIL_N_SKIPS] = {
        "kept", "unreadable", "unlabelled", "empty", "not_mail", "binary", "no_text"};
    return (unsigned)s < MOE_MAIL_N_SKIPS ? names[s] : "?";
}

const char *moe_mail_label_name(moe_mail_label l) {
    return l == MOE_MAIL_HAM ? "ham" : l == MOE_MAIL_SPAM ? "spam" : "?";
}

const char *moe_mail_group_name(moe_mail_group g) {
    static const char *const names[MOE_MAIL_N_GROUPS] = {"easy_ham", "hard_ham", "spam"};
    return (unsigned)g < MOE_MAIL_N_GROUPS ? names[g] : "?";
}

const char *moe_mail_split_name(moe_mail_split s) {
    static const char *const names[MOE_MAIL_N_SPLITS] = {"train", "val", "test"};
    return (unsigned)s < MOE_MAIL_N_SPLITS ? names[s] : "?";
}
