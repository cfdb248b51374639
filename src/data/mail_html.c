/* HTML mail to plain text, for HTML-only mails (mostly spam): tags dropped,
 * script, style, title and comments skipped, block elements on their own lines,
 * white space collapsed as a browser would, character references decoded
 * (numeric ones, and the named ones mail actually uses). Malformed markup
 * degrades to text: an unclosed quote or comment never eats the rest. */
#include "data/mail_internal.h"

#include <string.h>

static const struct {
    const char *name;
    gunichar code;
} named[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},      {"apos", '\''},
    {"nbsp", ' '},     {"copy", 0xa9},    {"reg", 0xae},     {"trade", 0x2122},  {"euro", 0x20ac},
    {"pound", 0xa3},   {"yen", 0xa5},     {"cent", 0xa2},    {"sect", 0xa7},     {"deg", 0xb0},
    {"plusmn", 0xb1},  {"middot", 0xb7},  {"bull", 0x2022},  {"hellip", 0x2026}, {"mdash", 0x2014},
    {"ndash", 0x2013}, {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201c},  {"rdquo", 0x201d},
    {"laquo", 0xab},   {"raquo", 0xbb},   {"times", 0xd7},   {"divide", 0xf7},   {"frac12", 0xbd},
    {"iexcl", 0xa1},   {"iquest", 0xbf},  {"eacute", 0xe9},  {"egrave", 0xe8},   {"aacute", 0xe1},
    {"agrave", 0xe0},  {"ccedil", 0xe7},  {"auml", 0xe4},    {"ouml", 0xf6},     {"uuml", 0xfc},
    {"szlig", 0xdf},   {"ntilde", 0xf1},
};

/* HTML5: &#128; to &#159; mean the windows-1252 characters at those bytes */
static const gunichar cp1252_c1[32] = {
    0x20ac, 0x81,   0x201a, 0x192,  0x201e, 0x2026, 0x2020, 0x2021, 0x2c6,  0x2030, 0x160,
    0x2039, 0x152,  0x8d,   0x17d,  0x8f,   0x90,   0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
    0x2013, 0x2014, 0x2dc,  0x2122, 0x161,  0x203a, 0x153,  0x9d,   0x17e,  0x178};

/* Elements that start a new line. */
static const char *const blocks[] = {
    "br", "p",  "div", "tr",         "li",  "ul", "ol", "table", "h1",     "h2",   "h3",     "h4",
    "h5", "h6", "hr",  "blockquote", "pre", "dl", "dt", "dd",    "center", "form", "address"};

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* One space between words: none at the start of a line or after another. */
static void put_space(GString *out) {
    if (out->len && out->str[out->len - 1] != ' ' && out->str[out->len - 1] != '\n')
        g_string_append_c(out, ' ');
}

static void put_newline(GString *out) {
    while (out->len && out->str[out->len - 1] == ' ') g_string_truncate(out, out->len - 1);
    g_string_append_c(out, '\n');
}

static void put_char(GString *out, gunichar c) {
    if (c == ' ')
        put_space(out);
    else
        g_string_append_unichar(out, c);
}

static size_t find_ci(const char *s, size_t n, size_t from, const char *what) {
    size_t len = strlen(what);
    for (size_t i = from; i + len <= n; i++)
        if (!g_ascii_strncasecmp(s + i, what, len)) return i;
    return n;
}

/* The index just past the '>' closing the tag at s[at] == '<'. Quoted
 * attribute values may hold '>'; if a quote never closes, the first '>'
 * ends the tag instead. */
static size_t tag_end(const char *s, size_t n, size_t at) {
    char quote = 0;
    for (size_t i = at + 1; i < n; i++) {
        if (quote) {
            if (s[i] == quote) quote = 0;
        } else if (s[i] == '"' || s[i] == '\'') {
            quote = s[i];
        } else if (s[i] == '>') {
            return i + 1;
        }
    }
    const char *gt = memchr(s + at, '>', n - at);
    return gt ? (size_t)(gt - s) + 1 : n;
}

/* Decodes the reference at s[at] == '&'; returns its length, 0 if it is
 * none (the '&' is then text). */
static size_t entity(const char *s, size_t n, size_t at, gunichar *c) {
    size_t i = at + 1;
    if (i < n && s[i] == '#') {
        int hex = i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X');
        i += 1 + hex;
        size_t digits = i;
        guint64 v = 0;
        while (i < n && (hex ? g_ascii_isxdigit(s[i]) : g_ascii_isdigit(s[i])) && i - digits < 8)
            v = v * (hex ? 16 : 10) + (guint64)(hex ? g_ascii_xdigit_value(s[i]) : s[i] - '0'), i++;
        if (i == digits) return 0;
        if (v >= 0x80 && v < 0xa0) v = cp1252_c1[v - 0x80];
        *c = v == 0 || v > 0x10ffff || (v >= 0xd800 && v < 0xe000) ? 0xfffd : (gunichar)v;
        return i - at + (i < n && s[i] == ';');
    }
    size_t name = i;
    while (i < n && g_ascii_isalnum(s[i]) && i - name < 10) i++;
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++)
        if (strlen(named[k].name) == i - name && !strncmp(s + name, named[k].name, i - name)) {
            /* the oldest names are often written without their ';' */
            int semicolon = i < n && s[i] == ';';
            if (!semicolon && k > 5) return 0;
            *c = named[k].code;
            return i - at + semicolon;
        }
    return 0;
}

/* Handles the markup at s[at] == '<'; returns where the text goes on, or at
 * itself when the '<' is plain text. */
static size_t markup(const char *s, size_t n, size_t at, GString *out) {
    if (at + 4 <= n && !memcmp(s + at, "<!--", 4)) {
        size_t end = find_ci(s, n, at + 4, "-->");
        return end < n ? end + 3 : tag_end(s, n, at); /* unclosed: as a tag */
    }
    size_t i = at + 1;
    if (i < n && (s[i] == '!' || s[i] == '?')) return tag_end(s, n, at);
    int closing = i < n && s[i] == '/';
    i += closing;
    char name[16];
    size_t len = 0;
    while (i < n && g_ascii_isalnum(s[i]) && len < sizeof name - 1)
        name[len++] = g_ascii_tolower(s[i++]);
    name[len] = '\0';
    if (!len || !g_ascii_isalpha(name[0])) return at;
    size_t end = tag_end(s, n, at);
    /* content no mail reader shows */
    if (!closing && (!strcmp(name, "script") || !strcmp(name, "style") || !strcmp(name, "title"))) {
        char close[16];
        g_snprintf(close, sizeof close, "</%s", name);
        size_t stop = find_ci(s, n, end, close);
        return stop < n ? tag_end(s, n, stop) : n;
    }
    if (!strcmp(name, "td") || !strcmp(name, "th")) {
        put_space(out);
        return end;
    }
    for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++)
        if (!strcmp(name, blocks[k])) {
            put_newline(out);
            break;
        }
    return end;
}

void mail_html_to_text(const char *html, size_t n, GString *out) {
    size_t i = 0;
    while (i < n) {
        if (html[i] == '<') {
            size_t next = markup(html, n, i, out);
            if (next != i) {
                i = next;
                continue;
            }
        } else if (html[i] == '&') {
            gunichar c;
            size_t len = entity(html, n, i, &c);
            if (len) {
                put_char(out, c);
                i += len;
                continue;
            }
        } else if (is_space(html[i])) {
            put_space(out);
            i++;
            continue;
        }
        g_string_append_c(out, html[i++]);
    }
}
