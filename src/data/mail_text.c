/* The text of a mail once decoded: cleaned for storage, cut to a size, and
 * hashed in a normalized form so that copies are found as duplicates. */
#include "data/mail_internal.h"

#include <string.h>

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

size_t mail_text_clean(char *s, size_t n) {
    size_t w = 0, line = 0; /* write position, start of the line being written */
    for (size_t r = 0; r < n; r++) {
        unsigned char c = (unsigned char)s[r];
        if (c == '\r') {
            if (r + 1 < n && s[r + 1] == '\n') continue;
            c = '\n';
        }
        if (c == '\n') {
            while (w > line && is_blank(s[w - 1])) w--;
            /* at most one blank line in a row, none at the start */
            if (w > 0 && !(w >= 2 && s[w - 1] == '\n' && s[w - 2] == '\n')) s[w++] = '\n';
            line = w;
            continue;
        }
        if (c == 0xc2 && r + 1 < n && (unsigned char)s[r + 1] >= 0x80 &&
            (unsigned char)s[r + 1] < 0xa0) { /* U+0080..U+009F, C1 controls */
            r++;
            c = ' ';
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            c = ' ';
        }
        if (w == 0 && is_blank((char)c)) continue; /* leading white space of the text */
        s[w++] = (char)c;
    }
    while (w > 0 && (is_blank(s[w - 1]) || s[w - 1] == '\n')) w--;
    s[w] = '\0';
    return w;
}

size_t mail_utf8_cut(const char *s, size_t n, size_t cap) {
    if (n <= cap) return n;
    size_t k = cap;
    while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80) k--; /* s[k]: a continuation byte */
    return k;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

/* FNV-1a over s with ASCII case folded and each run of white space read as
 * one space; white space at either end is ignored. */
static uint64_t fold(uint64_t h, const char *s, size_t n) {
    int started = 0, pending_space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            pending_space = started;
            continue;
        }
        if (pending_space) h = (h ^ ' ') * FNV_PRIME;
        started = 1;
        pending_space = 0;
        h = (h ^ (unsigned char)g_ascii_tolower((char)c)) * FNV_PRIME;
    }
    return h;
}

uint64_t mail_text_hash(const char *subject, const char *body, size_t body_len) {
    uint64_t h = fold(FNV_OFFSET, subject, strlen(subject));
    /* a byte no cleaned text holds between the two, so that text moved
     * from the subject to the body changes the hash */
    h = (h ^ 0x01) * FNV_PRIME;
    h = fold(h, body, body_len);
    /* splitmix64's finalizer: every bit of the hash depends on every input
     * bit, so ordering by hash (the split) is a fair shuffle */
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}
