/* auth: constant-time API key check (Bearer or x-api-key). */
#include "auth.h"

#include <string.h>
#include <strings.h>

/* Compare in time that depends only on the lengths, never on where the
 * first difference is. */
static bool
same(const char *a, size_t al, const char *b, size_t bl)
{
	unsigned char diff = (unsigned char)(al != bl);
	size_t n = al > bl ? al : bl;

	for (size_t i = 0; i < n; i++) {
		unsigned char x = i < al ? (unsigned char)a[i] : 0;
		unsigned char y = i < bl ? (unsigned char)b[i] : 0;
		diff |= x ^ y;
	}
	return diff == 0;
}

/* The token of a header value without surrounding blanks: *len bytes from
 * the result. */
static const char *
trim(const char *v, size_t *len)
{
	size_t n;

	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	*len = n;
	return v;
}

/*
 * Fold "token matches keys[i]" into *found and *idx for every key, without a
 * branch on the outcome: the first matching index wins, and the work is
 * the same whichever key matches, or none.
 */
static void
match(char *const *keys, int n, const char *tok, size_t tl, unsigned *found, unsigned *idx)
{
	for (int i = 0; i < n; i++) {
		unsigned eq = same(tok, tl, keys[i], strlen(keys[i]));
		unsigned take = 0u - (eq & (*found ^ 1u)); /* all ones on the first match */
		*idx = (*idx & ~take) | ((unsigned)i & take);
		*found |= eq;
	}
}

int
auth_find(char *const *keys, int n, const char *authorization, const char *x_api_key)
{
	unsigned found = 0, idx = 0;
	size_t tl;
	const char *tok;

	if (n == 0)
		return AUTH_OPEN;
	if (authorization != NULL && strncasecmp(authorization, "Bearer ", 7) == 0) {
		tok = trim(authorization + 7, &tl);
		if (tl > 0)
			match(keys, n, tok, tl, &found, &idx);
	}
	if (x_api_key != NULL) {
		tok = trim(x_api_key, &tl);
		if (tl > 0)
			match(keys, n, tok, tl, &found, &idx);
	}
	return found ? (int)idx : AUTH_NO_MATCH;
}
