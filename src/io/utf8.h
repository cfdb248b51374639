/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF):
 * the one validator the request parser, the served texts and the routing
 * traces share. Internal to libmoe. */
#ifndef MOE_IO_UTF8_H
#define MOE_IO_UTF8_H

#include <stddef.h>

/* Length (1..4) of the valid character at s[0..n), or 0 when the bytes
 * there are not one (n == 0 included). NUL is a valid 1-byte character. */
size_t utf8_char_len(const unsigned char *s, size_t n);
/* 1 when s[0..n) is valid UTF-8 throughout. */
int utf8_is_valid(const unsigned char *s, size_t n);
/* s[0..n) as a NUL-terminated valid UTF-8 string (malloc'd, NULL when out
 * of memory): each byte that is not part of a character, and each NUL,
 * becomes U+FFFD. */
char *utf8_sanitize(const unsigned char *s, size_t n);

#endif
