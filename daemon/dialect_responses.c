/*
 * dialect_responses: OpenAI's Responses API as Ollama serves it at
 * /v1/responses for Codex and the OpenAI Agents SDK
 * (reference/agent-apis.md 3): SSE events "event: TYPE\ndata: JSON", one
 * delta event per token (text, reasoning summary, function-call
 * arguments), the counts in response.completed's response.usage, which is
 * also the one sign of a finished stream; errors in OpenAI's shape.  A
 * stream that fails after its first byte ends with response.failed.
 */
#include "dialect.h"

#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "jsonx.h"
#include "log.h"
#include "tokscan.h"
#include "xmalloc.h"

enum { EV_OTHER, EV_DELTA, EV_COMPLETED, EV_FAILED };

static int
missing_model(const struct route *r, char **msg)
{
	*msg = xstrdup("model is required");
	return 400;
}

static char *
check(const struct route *r, const json_t *o)
{
	const json_t *in = json_object_get(o, "input");

	if (in != NULL && !json_is_string(in) && !json_is_array(in) && !json_is_null(in))
		return xasprintf("input must be a string or array: json: cannot unmarshal %s into Go value of type "
		                 "[]json.RawMessage", dialect_type_word(in));
	return dialect_member_type(o, "max_output_tokens", JSON_INTEGER, "int");
}

static char *
unknown_model(const struct route *r, const char *name)
{
	return xasprintf("model '%s' not found", name);
}

static void
rewrite(const struct route *r, json_t *o, const struct cfg_model *m)
{
}

static const struct dialect_event events[] = {
	{"response.output_text.delta", EV_DELTA},
	{"response.reasoning_summary_text.delta", EV_DELTA},
	{"response.reasoning_text.delta", EV_DELTA},
	{"response.function_call_arguments.delta", EV_DELTA},
	{"response.completed", EV_COMPLETED},
	{"response.incomplete", EV_COMPLETED},
	{"response.failed", EV_FAILED},
	{"error", EV_FAILED},
};


static size_t
scan_line(struct tokscan *ts, const char *s, size_t n)
{
	json_t *o;

	if (dialect_event_line(ts, s, n, events, sizeof(events) / sizeof(events[0])))
		return 0;
	if (tokscan_sse_data(&s, &n)) {
		switch (ts->event) {
		case EV_DELTA:
			return 1;
		case EV_COMPLETED:
			if ((o = tokscan_json(s, n)) != NULL) {
				dialect_take_usage(ts, json_object_get(o, "response"));
				json_decref(o);
			}
			ts->done = true;
			return 0;
		case EV_FAILED:
			ts->error = true;
			return 0;
		default:
			return 0;
		}
	}
	if (*s != '{')
		return 0;
	/* A non-stream answer: the whole response object, or an error. */
	if ((o = tokscan_json(s, n)) != NULL) {
		if (json_is_object(json_object_get(o, "error")))
			ts->error = true;
		if (json_object_get(o, "usage") != NULL) {
			dialect_take_usage(ts, o);
			ts->done = true;
		}
		json_decref(o);
	}
	return 0;
}

/* response.failed with a failed response object: the openai SDK's stream
 * helper ends with status "failed" instead of a clean completion. */
static char *
stream_failure(const char *why, size_t *len)
{
	json_t *o = jx_pack("{s:s,s:{s:s,s:s,s:{s:s,s:o},s:[]}}", "type", "response.failed", "response", "object",
	    "response", "status", "failed", "error", "code", "server_error", "message", jx_str(why), "output");

	if (o == NULL)
		fatalx("out of memory (failure event)");
	return dialect_sse_event("response.failed", o, len);
}

const struct dialect dialect_responses = {
	"responses", missing_model, check, unknown_model, rewrite, dialect_openai_error, scan_line, true,
	stream_failure,
};
