/* The text of a mail's MIME tree: text/plain parts decoded (transfer
 * encoding, then charset to UTF-8), text/html parts converted only where no
 * plain alternative exists, multiparts and attached messages walked,
 * attachments and non-text parts skipped. */
#include "data/mail_internal.h"

/* deeper nesting is junk (or an attack on the stack), not mail */
#define MAX_DEPTH 16

static int is_attachment(GMimeObject *o) {
    GMimeContentDisposition *d = g_mime_object_get_content_disposition(o);
    return d && g_mime_content_disposition_is_attachment(d);
}

static int is_type(GMimeObject *o, const char *type, const char *subtype) {
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    return ct && g_mime_content_type_is_type(ct, type, subtype);
}

/* 1 if the tree under o holds a text/plain part that is no attachment. */
static int has_plain(GMimeObject *o, int depth) {
    if (depth > MAX_DEPTH || is_attachment(o)) return 0;
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        for (int i = 0; i < g_mime_multipart_get_count(mp); i++)
            if (has_plain(g_mime_multipart_get_part(mp, i), depth + 1)) return 1;
        return 0;
    }
    return GMIME_IS_PART(o) && is_type(o, "text", "plain");
}

static void leaf_text(GMimePart *part, GString *out, int *binary_parts) {
    GMimeObject *o = GMIME_OBJECT(part);
    int html = is_type(o, "text", "html");
    if (!html && !is_type(o, "text", "plain")) return;
    GMimeDataWrapper *content = g_mime_part_get_content(part);
    if (!content) return;
    GMimeStream *decoded = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(content, decoded); /* undoes base64, q-p */
    GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(decoded));
    const char *raw = (const char *)bytes->data;
    if (mail_is_binary(raw, bytes->len)) {
        (*binary_parts)++;
    } else if (bytes->len) {
        GString *text = g_string_sized_new(bytes->len);
        mail_append_utf8(text, raw, bytes->len,
                         g_mime_object_get_content_type_parameter(o, "charset"));
        if (out->len) g_string_append(out, "\n\n");
        if (html)
            mail_html_to_text(text->str, text->len, out);
        else
            g_string_append_len(out, text->str, (gssize)text->len);
        g_string_free(text, TRUE);
    }
    g_object_unref(decoded);
}

static void walk(GMimeObject *o, GString *out, int *binary_parts, int depth) {
    if (!o || depth > MAX_DEPTH || is_attachment(o)) return;
    if (GMIME_IS_MESSAGE_PART(o)) { /* a forwarded mail, inline */
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        if (inner) walk(g_mime_message_get_mime_part(inner), out, binary_parts, depth + 1);
    } else if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        int n = g_mime_multipart_get_count(mp);
        if (is_type(o, "multipart", "alternative") && n > 0) {
            /* the same text in several forms: the first with plain text,
             * else the last, which RFC 2046 makes the richest (HTML) */
            int pick = n - 1;
            for (int i = 0; i < n && pick == n - 1; i++)
                if (has_plain(g_mime_multipart_get_part(mp, i), depth + 1)) pick = i;
            walk(g_mime_multipart_get_part(mp, pick), out, binary_parts, depth + 1);
            return;
        }
        for (int i = 0; i < n; i++)
            walk(g_mime_multipart_get_part(mp, i), out, binary_parts, depth + 1);
    } else if (GMIME_IS_PART(o)) {
        leaf_text(GMIME_PART(o), out, binary_parts);
    }
}

void mail_body_text(GMimeObject *root, GString *out, int *binary_parts) {
    walk(root, out, binary_parts, 0);
}
