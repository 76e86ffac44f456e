/* dialect: helpers shared by the dialect modules (see dialect.h). */
#include "dialect.h"

#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "log.h"
#include "tokscan.h"
#include "xmalloc.h"

const char *
dialect_type_word(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER:
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "bool";
	default: return "null";
	}
}

char *
dialect_member_type(const json_t *o, const char *name, json_type type, const char *want)
{
	const json_t *v = json_object_get(o, name);

	if (v == NULL || json_is_null(v) || json_typeof(v) == type ||
	    (type == JSON_TRUE && json_is_boolean(v)) || (type == JSON_REAL && json_is_number(v)))
		return NULL;
	return xasprintf("json: cannot unmarshal %s into field %s of type %s", dialect_type_word(v), name, want);
}

json_t *
dialect_ollama_error(int status, const char *msg)
{
	json_t *o = jx_pack("{s:o}", "error", jx_str(msg));

	if (o == NULL)
		fatalx("out of memory (error body)");
	return o;
}

static const char *
openai_error_type(int status)
{
	if (status == 401 || status == 403)
		return "authentication_error";
	if (status == 404)
		return "not_found_error";
	if (status >= 400 && status < 500)
		return "invalid_request_error";
	return "api_error";
}

json_t *
dialect_openai_error(int status, const char *msg)
{
	json_t *o = jx_pack("{s:{s:o,s:s,s:n,s:n}}", "error", "message", jx_str(msg), "type",
	    openai_error_type(status), "param", "code");

	if (o == NULL)
		fatalx("out of memory (error body)");
	return o;
}

char *
dialect_framed(json_t *o, const char *before, const char *after, size_t *len)
{
	char *data = jx_dump(o, NULL), *out;

	json_decref(o);
	out = xasprintf("%s%s%s", before, data != NULL ? data : "{}", after);
	free(data);
	*len = strlen(out);
	return out;
}

char *
dialect_sse_event(const char *name, json_t *o, size_t *len)
{
	char *before = xasprintf("event: %s\ndata: ", name), *out = dialect_framed(o, before, "\n\n", len);

	free(before);
	return out;
}

bool
dialect_event_line(struct tokscan *ts, const char *s, size_t n, const struct dialect_event *table, size_t count)
{
	if (n < 6 || memcmp(s, "event:", 6) != 0)
		return false;
	s += 6;
	n -= 6;
	while (n > 0 && *s == ' ') {
		s++;
		n--;
	}
	ts->event = 0;
	for (size_t i = 0; i < count; i++)
		if (strlen(table[i].name) == n && memcmp(s, table[i].name, n) == 0)
			ts->event = table[i].code;
	return true;
}

void
dialect_take_usage(struct tokscan *ts, const json_t *o)
{
	const json_t *usage = json_object_get(o, "usage");

	if (json_is_object(usage))
		tokscan_set_counts(ts, tokscan_int(usage, "output_tokens"), tokscan_int(usage, "input_tokens"));
}
