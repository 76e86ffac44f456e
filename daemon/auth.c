/* auth: constant-time Bearer key check. */
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

bool
auth_bearer_ok(char *const *keys, int n, const char *header)
{
	const char *tok;
	size_t tl;
	bool ok = false;

	if (n == 0)
		return true;
	if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
		return false;
	tok = header + 7;
	while (*tok == ' ')
		tok++;
	tl = strlen(tok);
	while (tl > 0 && tok[tl - 1] == ' ')
		tl--;
	/* Check every key, without stopping at a match. */
	for (int i = 0; i < n; i++)
		ok |= same(tok, tl, keys[i], strlen(keys[i]));
	return ok;
}
