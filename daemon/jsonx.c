/* jsonx: checked jansson construction and encoding (see jsonx.h). */
#include "jsonx.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "utf8.h"
#include "xmalloc.h"

json_t *
jx_str(const char *s)
{
	json_t *v;

	if (s == NULL)
		s = "";
	if (utf8_valid(s, strlen(s))) {
		v = json_string(s);
	} else {
		char *clean = utf8_sanitize(s);
		v = json_string(clean);
		free(clean);
	}
	if (v == NULL)
		fatalx("out of memory (json string)");
	return v;
}

json_t *
jx_real(double v)
{
	json_t *r = json_real(isfinite(v) ? v : 0.0);

	if (r == NULL)
		fatalx("out of memory (json real)");
	return r;
}

json_t *
jx_pack(const char *fmt, ...)
{
	json_error_t err;
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	o = json_vpack_ex(&err, 0, fmt, ap);
	va_end(ap);
	if (o == NULL)
		log_warnx("json: cannot build %.40s: %s", fmt, err.text);
	return o;
}

char *
jx_dump(const json_t *o, size_t *len)
{
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	if (s == NULL) {
		log_warnx("json: cannot encode %s", o == NULL ? "a value that failed to build" : "a value");
		return NULL;
	}
	if (len != NULL)
		*len = strlen(s);
	return s;
}
