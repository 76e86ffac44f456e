/*
 * dialect_anthropic: Anthropic's Messages API as Ollama serves it at
 * /v1/messages for Claude Code and the Anthropic SDKs
 * (reference/agent-apis.md 2): SSE events "event: NAME\ndata: JSON", one
 * content_block_delta per token, the real counts in message_delta's usage
 * (message_start's input_tokens is only Ollama's estimate), message_stop
 * as the one sign of a finished stream, errors as
 * {"type":"error","error":{"type","message"}}.  A stream that fails after
 * its first byte ends with an "event: error", which the SDKs raise.
 */
#include "dialect.h"

#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "jsonx.h"
#include "log.h"
#include "tokscan.h"
#include "xmalloc.h"

enum { EV_OTHER, EV_DELTA, EV_MESSAGE_DELTA, EV_MESSAGE_STOP, EV_ERROR };

static int
missing_model(const struct route *r, char **msg)
{
	*msg = xstrdup("model is required");
	return 400;
}

/* Ollama's checks, in its order (model first, by the caller). */
static char *
check(const struct route *r, const json_t *o)
{
	const json_t *mt = json_object_get(o, "max_tokens"), *msgs = json_object_get(o, "messages");
	char *bad;

	if ((bad = dialect_member_type(o, "max_tokens", JSON_INTEGER, "int")) != NULL)
		return bad;
	if (!json_is_integer(mt) || json_integer_value(mt) <= 0)
		return xstrdup("max_tokens is required and must be positive");
	if ((bad = dialect_member_type(o, "messages", JSON_ARRAY, "[]anthropic.MessageParam")) != NULL)
		return bad;
	if (!json_is_array(msgs) || json_array_size(msgs) == 0)
		return xstrdup("messages is required");
	return NULL;
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

static const char *
error_type(int status)
{
	switch (status) {
	case 400: return "invalid_request_error";
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 413: return "request_too_large";
	case 429: return "rate_limit_error";
	case 503:
	case 529: return "overloaded_error";
	default: return "api_error";
	}
}

static json_t *
error_body(int status, const char *msg)
{
	json_t *o = jx_pack("{s:s,s:{s:s,s:o}}", "type", "error", "error", "type", error_type(status), "message",
	    jx_str(msg));

	if (o == NULL)
		fatalx("out of memory (error body)");
	return o;
}

static const struct dialect_event events[] = {
	{"content_block_delta", EV_DELTA}, {"message_delta", EV_MESSAGE_DELTA},
	{"message_stop", EV_MESSAGE_STOP}, {"error", EV_ERROR},
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
		case EV_MESSAGE_DELTA:
			if ((o = tokscan_json(s, n)) != NULL) {
				dialect_take_usage(ts, o);
				json_decref(o);
			}
			return 0;
		case EV_MESSAGE_STOP:
			ts->done = true;
			return 0;
		case EV_ERROR:
			ts->error = true;
			return 0;
		default:
			return 0;
		}
	}
	if (*s != '{')
		return 0;
	/* A non-stream answer: the whole message, or an error object. */
	if ((o = tokscan_json(s, n)) != NULL) {
		if (json_object_get(o, "error") != NULL)
			ts->error = true;
		else if (json_object_get(o, "usage") != NULL) {
			dialect_take_usage(ts, o);
			ts->done = true;
		}
		json_decref(o);
	}
	return 0;
}

static char *
stream_failure(const char *why, size_t *len)
{
	return dialect_sse_event("error", error_body(500, why), len);
}

const struct dialect dialect_anthropic = {
	"anthropic", missing_model, check, unknown_model, rewrite, error_body, scan_line, true, stream_failure,
};
