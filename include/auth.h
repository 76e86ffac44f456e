/*
 * auth: Bearer keys for the agent and admin endpoints.  Comparison takes
 * the same time whatever the presented key, so a client cannot find a key
 * byte by byte from response times.
 */
#ifndef HARMONIC_AUTH_H
#define HARMONIC_AUTH_H

#include <stdbool.h>

/* True if header is "Bearer KEY" for one of keys[0..n).  With n == 0 every
 * request passes (no keys configured). */
bool auth_bearer_ok(char *const *keys, int n, const char *header);

#endif
