/*
 * auth: API keys for the agent and admin endpoints, presented as
 * "Authorization: Bearer KEY" or as Anthropic's "x-api-key: KEY".
 * Comparison takes the same time whatever the presented key and whichever
 * key it matches, so a client cannot find a key byte by byte, or learn
 * which key it hit, from response times.  Keys are never logged.
 */
#ifndef HARMONIC_AUTH_H
#define HARMONIC_AUTH_H

#include <stdbool.h>

enum {
	AUTH_NO_MATCH = -1,     /* keys are configured and none was presented */
	AUTH_OPEN = -2          /* no keys configured: every request passes */
};

/*
 * The index in keys[0..n) of the key the request presented, in its
 * Authorization header (authorization: "Bearer KEY", scheme in any case)
 * or its x-api-key header (either may be NULL; a match in either passes,
 * Bearer first); AUTH_NO_MATCH when neither matches; AUTH_OPEN when n == 0.
 */
int auth_find(char *const *keys, int n, const char *authorization, const char *x_api_key);

#endif
