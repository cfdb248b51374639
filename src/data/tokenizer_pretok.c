/* GPT-2's pre-tokenizer: the regex of OpenAI's encoder.py (and of the npm
 * package gpt-3-encoder) through PCRE2, over any bytes.
 *
 * \s is spelled out as JavaScript's whitespace set, which is what
 * gpt-3-encoder matches with; PCRE2's \s (Unicode Z plus ASCII controls)
 * differs on U+FEFF and U+0085. \p{L} and \p{N} are PCRE2's (Unicode 14 in
 * Debian 12's 10.42); code points assigned later count as "other" here.
 *
 * Invalid UTF-8: every byte that does not start a valid sequence is matched
 * as if it were U+0001, a character of the "other" class ([^\s\p{L}\p{N}]),
 * the class of U+FFFD too. So the chunks end where they would after Node
 * decoded the bytes to text with replacement characters, while the chunks
 * keep the original bytes and decode(encode(x)) == x. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/tokenizer_internal.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define JS_SPACE                                                                                   \
    "\\t\\n\\x0b\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}"    \
    "\\x{3000}\\x{feff}"
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" JS_SPACE "\\p{L}\\p{N}]+|[" JS_SPACE
    "]+(?![^" JS_SPACE "])|[" JS_SPACE "]+";

#define STAND_IN 0x01 /* what an invalid byte is matched as */

struct tok_pretok {
    pcre2_code *code;
};

moe_status tok_pretok_create(tok_pretok **p) {
    *p = calloc(1, sizeof **p);
    if (!*p) return moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory");
    int err;
    PCRE2_SIZE at;
    (*p)->code = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                               PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    if (!(*p)->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        free(*p);
        *p = NULL;
        return moe_error(MOE_ERR_UNSUPPORTED,
                         "tokenizer: PCRE2 rejects the GPT-2 pattern at offset %zu: %s (is "
                         "libpcre2 built with Unicode support?)",
                         (size_t)at, (const char *)msg);
    }
    /* JIT makes the split several times faster; without it (an
     * architecture PCRE2 has no JIT for) the interpreter gives the same
     * chunks. */
    pcre2_jit_compile((*p)->code, PCRE2_JIT_COMPLETE);
    return MOE_OK;
}

void tok_pretok_free(tok_pretok *p) {
    if (!p) return;
    pcre2_code_free(p->code);
    free(p);
}

/* Length of the valid UTF-8 sequence at s[0, n), or 0 if s[0] does not
 * start one (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF). */
static size_t utf8_sequence(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

/* text itself if it is valid UTF-8, else a malloc'd copy with every
 * invalid byte replaced by STAND_IN (same length, so offsets carry over). */
static moe_status valid_subject(const uint8_t *text, size_t n, const uint8_t **subject,
                                uint8_t **copy) {
    *subject = text;
    *copy = NULL;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_sequence(text + i, n - i);
        if (len) {
            i += len;
            continue;
        }
        if (!*copy) {
            *copy = malloc(n);
            if (!*copy) return moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory");
            memcpy(*copy, text, n);
            *subject = *copy;
        }
        (*copy)[i++] = STAND_IN;
    }
    return MOE_OK;
}

moe_status tok_pretok_split(const tok_pretok *p, const uint8_t *text, size_t n, tok_chunk_fn chunk,
                            void *user) {
    if (n == 0) return MOE_OK;
    const uint8_t *subject;
    uint8_t *copy;
    moe_status st = valid_subject(text, n, &subject, &copy);
    if (st != MOE_OK) return st;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->code, NULL);
    if (!md) {
        free(copy);
        return moe_error(MOE_ERR_NOMEM, "tokenizer: out of memory");
    }
    /* the subject is valid UTF-8 by construction; PCRE2 checks it once */
    uint32_t options = 0;
    size_t at = 0;
    while (st == MOE_OK && at < n) {
        int rc = pcre2_match(p->code, subject, n, at, options, md, NULL);
        options = PCRE2_NO_UTF_CHECK;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (rc < 0 || ov[0] != at || ov[1] <= at) {
            /* every character is a letter, number, space or other, so the
             * pattern matches at every position: this is a bug */
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc < 0 ? rc : PCRE2_ERROR_NOMATCH, msg, sizeof msg);
            st = moe_error(MOE_ERR_INVALID, "tokenizer: pre-tokenization failed at byte %zu: %s",
                           at, (const char *)msg);
            break;
        }
        st = chunk(user, at, ov[1] - at);
        at = ov[1];
    }
    pcre2_match_data_free(md);
    free(copy);
    return st;
}
