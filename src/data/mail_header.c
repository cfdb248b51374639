/* The subject and sender of a mail as UTF-8. GMime decodes RFC 2047 words
 * and reads raw 8-bit text as UTF-8, else windows-1252; spam often writes
 * its subject raw in the charset its body declares (GB2312, Big5, ...), so
 * that charset is tried first for such a subject. */
#include "data/mail_internal.h"

#include <string.h>

/* The charset the mail or its first text part declares; NULL if none. */
static const char *declared_charset(GMimeObject *o, int depth) {
    if (!o || depth > 16) return NULL;
    const char *charset = g_mime_object_get_content_type_parameter(o, "charset");
    if (charset || !GMIME_IS_MULTIPART(o)) return charset;
    GMimeMultipart *mp = GMIME_MULTIPART(o);
    for (int i = 0; i < g_mime_multipart_get_count(mp) && !charset; i++)
        charset = declared_charset(g_mime_multipart_get_part(mp, i), depth + 1);
    return charset;
}

char *mail_header_subject(GMimeMessage *msg) {
    GMimeHeaderList *headers = g_mime_object_get_header_list(GMIME_OBJECT(msg));
    GMimeHeader *h = g_mime_header_list_get_header(headers, "Subject");
    const char *raw = h ? g_mime_header_get_raw_value(h) : NULL;
    if (!raw) return g_strdup("");
    const char *charset = declared_charset(g_mime_message_get_mime_part(msg), 0);
    if (!charset || g_utf8_validate(raw, -1, NULL))
        return g_strdup(g_mime_message_get_subject(msg) ? g_mime_message_get_subject(msg) : "");
    GMimeParserOptions *options = g_mime_parser_options_new();
    const char *fallback[] = {charset, "UTF-8", "windows-1252", NULL};
    g_mime_parser_options_set_fallback_charsets(options, fallback);
    char *subject = g_mime_utils_header_decode_text(options, raw);
    g_mime_parser_options_free(options);
    return subject;
}

char *mail_header_from(GMimeMessage *msg) {
    InternetAddressList *from = g_mime_message_get_from(msg);
    char *text = from ? internet_address_list_to_string(from, NULL, FALSE) : NULL;
    return text ? text : g_strdup("");
}
