/* A text part's bytes to UTF-8. The declared charset when iconv knows it;
 * else UTF-8 when the bytes are (mostly) UTF-8; else windows-1252, what
 * undeclared 8-bit mail of the time mostly was. A byte that does not decode
 * becomes U+FFFD instead of failing the part, so no charset error loses a
 * mail. */
#include "data/mail_internal.h"

#include <errno.h>
#include <string.h>

#define REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD in UTF-8 */

/* Converts with iconv, a U+FFFD for each byte it cannot decode. 0 when
 * iconv does not know the charset. */
static int convert_lossy(GString *out, const char *bytes, size_t n, const char *from) {
    iconv_t cd = g_mime_iconv_open("UTF-8", from);
    if (cd == (iconv_t)-1) return 0;
    char buf[4096];
    char *in = (char *)bytes;
    size_t in_left = n;
    while (in_left > 0) {
        char *o = buf;
        size_t o_left = sizeof buf;
        size_t r = iconv(cd, &in, &in_left, &o, &o_left);
        g_string_append_len(out, buf, o - buf);
        if (r == (size_t)-1 && errno != E2BIG) { /* EILSEQ, or EINVAL: cut short at the end */
            g_string_append(out, REPLACEMENT);
            in++;
            in_left--;
            iconv(cd, NULL, NULL, NULL, NULL); /* back to the initial shift state */
        }
    }
    char *o = buf;
    size_t o_left = sizeof buf;
    iconv(cd, NULL, NULL, &o, &o_left); /* a stateful charset's closing sequence */
    g_string_append_len(out, buf, o - buf);
    g_mime_iconv_close(cd);
    return 1;
}

/* Whether bytes are UTF-8: valid multi-byte sequences at least as many as
 * bytes that are not UTF-8. Text in an 8-bit charset almost never forms a
 * valid sequence, while UTF-8 text with a stray bad byte keeps its many. */
static int mostly_utf8(const char *bytes, size_t n, int *all_valid) {
    size_t valid = 0, invalid = 0;
    const char *p = bytes, *end = bytes + n;
    while (p < end) {
        if ((unsigned char)*p < 0x80) {
            p++;
            continue;
        }
        gunichar c = g_utf8_get_char_validated(p, end - p);
        if (c == (gunichar)-1 || c == (gunichar)-2) {
            invalid++;
            p++;
        } else {
            valid++;
            p = g_utf8_next_char(p);
        }
    }
    *all_valid = invalid == 0;
    return valid >= invalid;
}

void mail_append_utf8(GString *out, const char *bytes, size_t n, const char *charset) {
    const char *canon = charset ? g_mime_charset_canon_name(charset) : NULL;
    int is_utf8 = canon && !g_ascii_strcasecmp(canon, "utf-8");
    int is_ascii = canon && !g_ascii_strcasecmp(canon, "us-ascii");
    if (canon && !is_utf8 && !is_ascii &&
        convert_lossy(out, bytes, n, g_mime_charset_iconv_name(charset)))
        return;
    int all_valid;
    if (mostly_utf8(bytes, n, &all_valid) || is_utf8) {
        if (all_valid) {
            g_string_append_len(out, bytes, (gssize)n);
        } else {
            char *fixed = g_utf8_make_valid(bytes, (gssize)n); /* bad bytes to U+FFFD */
            g_string_append(out, fixed);
            g_free(fixed);
        }
    } else if (!convert_lossy(out, bytes, n, "WINDOWS-1252")) {
        convert_lossy(out, bytes, n, "ISO-8859-1");
    }
}

int mail_is_binary(const char *bytes, size_t n) {
    /* control bytes no text charset uses; tab, newline, form feed, carriage
     * return and escape (ISO-2022 shifts) are text */
    size_t controls = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)bytes[i];
        controls += (b < 0x20 && b != '\t' && b != '\n' && b != '\f' && b != '\r' && b != 0x1b) ||
                    b == 0x7f;
    }
    /* over 5% (random bytes have about 12%); a few stray ones are no sign */
    return controls >= 4 && controls * 20 > n;
}
