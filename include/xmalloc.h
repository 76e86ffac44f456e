/*
 * xmalloc: allocation that aborts on out-of-memory, so callers never carry
 * NULL checks for memory.  Bound input-driven sizes before calling these.
 */
#ifndef HARMONIC_XMALLOC_H
#define HARMONIC_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
/* Zeroed array; checks nmemb * size for overflow. */
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
/* Make the byte buffer p (capacity *cap) hold at least need bytes, doubling
 * from min: amortised O(1) appends.  Returns the (maybe moved) buffer. */
void *xgrow(void *p, size_t *cap, size_t need, size_t min);
/* Caller owns the copy (free). */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Caller owns the formatted string (free). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
