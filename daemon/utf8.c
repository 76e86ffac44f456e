/* utf8: strict validation and repair of byte strings from outside. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

#include "xmalloc.h"

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return s[0] != 0;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		len = 2, cp = s[0] & 0x1Fu;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		len = 3, cp = s[0] & 0x0Fu;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		len = 4, cp = s[0] & 0x07u;
	else
		return 0; /* continuation byte, overlong lead (C0, C1) or past F4 */
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0u) != 0x80u)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3Fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

bool
utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	while (n > 0) {
		size_t k = utf8_seq(p, n);
		if (k == 0)
			return false;
		p += k;
		n -= k;
	}
	return true;
}

char *
utf8_sanitize(const char *s)
{
	size_t n = strlen(s), o = 0;
	const unsigned char *p = (const unsigned char *)s;
	char *out = xmalloc(n * 3 + 1); /* each bad byte becomes 3 */

	while (n > 0) {
		size_t k = utf8_seq(p, n);
		if (k == 0) {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			k = 1;
		} else {
			memcpy(out + o, p, k);
			o += k;
		}
		p += k;
		n -= k;
	}
	out[o] = '\0';
	return out;
}

