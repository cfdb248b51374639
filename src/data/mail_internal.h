/* The pieces of the mail parser (src/data/mail_*.c) that call each other.
 * Internal: GMime and GLib stay out of the public headers. */
#ifndef MOE_DATA_MAIL_INTERNAL_H
#define MOE_DATA_MAIL_INTERNAL_H

#include "moe/mail.h"

#include <gmime/gmime.h>

/* GMime set up once per process (mail_gmime.c). */
void mail_gmime_init(void);
/* The length of an mbox "From " separator line at the start of raw (the
 * corpus keeps one before each mail; it is no header), else 0. */
size_t mail_mbox_line(const char *raw, size_t n);
/* The message in raw (without its mbox line), or NULL when GMime finds
 * none. A missing blank line after the headers is inserted. */
GMimeMessage *mail_gmime_parse(const char *raw, size_t n);

/* Subject and sender, decoded to UTF-8 (mail_header.c); g_free them. ""
 * when absent. */
char *mail_header_subject(GMimeMessage *msg);
char *mail_header_from(GMimeMessage *msg);

/* Appends the body text of a MIME tree to out (mail_body.c): text/plain
 * parts, text/html ones only without a plain alternative, attachments
 * skipped. *binary_parts counts text parts dropped as binary. */
void mail_body_text(GMimeObject *root, GString *out, int *binary_parts);

/* Appends bytes in charset (NULL: undeclared) to out as UTF-8, best effort
 * (mail_charset.c). */
void mail_append_utf8(GString *out, const char *bytes, size_t n, const char *charset);
/* 1 when bytes look binary rather than text in any charset. */
int mail_is_binary(const char *bytes, size_t n);

/* Appends the text of an HTML document: tags dropped, script and style
 * skipped, entities decoded, block elements on their own lines
 * (mail_html.c). */
void mail_html_to_text(const char *html, size_t n, GString *out);

/* In place: CR and control characters out, runs of blank lines cut to one,
 * white space trimmed at both ends; returns the new length (mail_text.c). */
size_t mail_text_clean(char *s, size_t n);
/* The longest prefix of s[0, n) of at most cap bytes that ends on a
 * character boundary. */
size_t mail_utf8_cut(const char *s, size_t n, size_t cap);
/* 64-bit hash of subject and body with case and white space folded. */
uint64_t mail_text_hash(const char *subject, const char *body, size_t body_len);

#endif
