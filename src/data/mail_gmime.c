/* GMime for the mail parser: initialised once per process; raw bytes to a
 * GMimeMessage, with the header block ended where a mail forgot its blank
 * line; the mbox separator line the corpus keeps before each mail. */
#include "data/mail_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;
static GMimeParserOptions *parser_options;

/* GMime 3.2 cannot be initialised again after g_mime_shutdown (its tables
 * stay freed), so it is set up on first use and shut down at exit. */
static void gmime_shutdown(void) {
    g_mime_parser_options_free(parser_options);
    g_mime_shutdown();
}

static void gmime_setup(void) {
    g_mime_init();
    parser_options = g_mime_parser_options_new();
    /* raw 8-bit header text: UTF-8 if it is valid, else the usual Western
     * charset of the time */
    const char *fallback[] = {"UTF-8", "windows-1252", NULL};
    g_mime_parser_options_set_fallback_charsets(parser_options, fallback);
    atexit(gmime_shutdown);
}

void mail_gmime_init(void) {
    pthread_once(&gmime_once, gmime_setup);
}

static GMimeMessage *parse(const char *raw, size_t n) {
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, n);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, parser_options);
    g_object_unref(parser);
    g_object_unref(stream);
    return msg;
}

/* "Name:" with a field name of printable ASCII (RFC 5322 2.2) */
static int is_header_line(const char *p, const char *end) {
    const char *q = p;
    for (; q < end && *q != ':'; q++)
        if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 127) return 0;
    return q > p && q < end;
}

/* Where the header block stops without the blank line that should end it:
 * the offset of the first line that is neither a header nor a folded
 * continuation; n when the blank line is there (or the file ends first). */
static size_t missing_blank_line(const char *raw, size_t n) {
    size_t at = 0;
    while (at < n) {
        const char *line = raw + at, *nl = memchr(line, '\n', n - at);
        const char *end = nl ? nl : raw + n;
        if (line == end || (end - line == 1 && *line == '\r')) return n; /* blank: fine */
        int folded = at > 0 && (*line == ' ' || *line == '\t');
        if (!folded && !is_header_line(line, end)) return at;
        at = nl ? (size_t)(nl - raw) + 1 : n;
    }
    return n;
}

size_t mail_mbox_line(const char *raw, size_t n) {
    if (n < 5 || memcmp(raw, "From ", 5)) return 0;
    const char *nl = memchr(raw, '\n', n);
    return nl ? (size_t)(nl - raw) + 1 : n;
}

GMimeMessage *mail_gmime_parse(const char *raw, size_t n) {
    mail_gmime_init();
    /* GMime drops a line that is not a header from the header block, and
     * without a blank line the whole body with it: end the headers there
     * (at 0 the whole file is body) */
    size_t at = missing_blank_line(raw, n);
    if (at == n) return parse(raw, n);
    char *fixed = g_malloc(n + 1); /* aborts when out of memory, as GMime does */
    memcpy(fixed, raw, at);
    fixed[at] = '\n';
    memcpy(fixed + at + 1, raw + at, n - at);
    GMimeMessage *msg = parse(fixed, n + 1);
    g_free(fixed);
    return msg;
}
