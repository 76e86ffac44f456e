/*
 * utf8: client bytes (URLs, headers, JSON), backend text and config strings
 * end up in JSON and headers, where only valid UTF-8 may go.
 */
#ifndef HARMONIC_UTF8_H
#define HARMONIC_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF, no NUL) of the n bytes at s. */
bool utf8_valid(const char *s, size_t n);
/* A copy of s (NUL-terminated) with every byte that is not part of valid
 * UTF-8 replaced by U+FFFD; caller frees. */
char *utf8_sanitize(const char *s);

#endif
