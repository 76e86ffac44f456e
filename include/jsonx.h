/*
 * jsonx: the one checked way across the jansson boundary.
 *
 * jansson reports every failure (invalid UTF-8 in a string, a NaN real, a
 * NULL member, no memory) by returning NULL, and json_dumps(NULL) is a NULL
 * dereference away.  Everything the daemon builds or encodes goes through
 * these helpers: strings from outside (client bytes, backend text, config)
 * are made valid UTF-8 first, packing failures are logged with the format
 * that failed, and a failed dump is a NULL the caller turns into a 500.
 */
#ifndef HARMONIC_JSONX_H
#define HARMONIC_JSONX_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "utf8.h"

/* A JSON string of s made valid first (see utf8_sanitize); never NULL. */
json_t *jx_str(const char *s);
/* A JSON real, with NaN and infinities (which jansson refuses) as 0. */
json_t *jx_real(double v);
/* json_pack with the failure logged (format and jansson's reason); NULL on
 * failure.  A NULL "o" member is a failure, like in json_pack. */
json_t *jx_pack(const char *fmt, ...);
/* Compact encoding of o, or NULL (logged) when o is NULL or cannot be
 * encoded.  *len gets the length when len is not NULL.  Caller frees. */
char *jx_dump(const json_t *o, size_t *len);

#endif
