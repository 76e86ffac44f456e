/*
 * dialect_openai: OpenAI's chat and completions API as Ollama serves it
 * under /v1 (and /v1/embeddings): SSE "data:" lines ending with
 * "data: [DONE]", counts in the "usage" object (completion_tokens,
 * prompt_tokens), errors as {"error":{"message","type","param","code"}}.
 * No options member: the pinned num_ctx cannot ride on these requests.
 */
#include "dialect.h"

#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "jsonx.h"
#include "tokscan.h"
#include "xmalloc.h"

static int
missing_model(const struct route *r, char **msg)
{
	*msg = xstrdup("model is required");
	return 400;
}

static char *
check(const struct route *r, const json_t *o)
{
	if (strcmp(r->path, "/v1/chat/completions") == 0)
		return dialect_member_type(o, "messages", JSON_ARRAY, "array");
	return NULL;
}

static char *
unknown_model(const struct route *r, const char *name)
{
	return xasprintf("model \"%s\" not found, try pulling it first", name);
}

static void
rewrite(const struct route *r, json_t *o, const struct cfg_model *m)
{
}

static void
take_usage(struct tokscan *ts, const char *s, size_t n)
{
	json_t *o = tokscan_json(s, n);
	const json_t *usage, *timings;
	int64_t cached;

	if (o == NULL)
		return;
	if (json_object_get(o, "error") != NULL)
		ts->error = true;
	if (json_is_object(usage = json_object_get(o, "usage"))) {
		tokscan_set_counts(ts, tokscan_int(usage, "completion_tokens"), tokscan_int(usage, "prompt_tokens"));
		/* OpenAI's and llama-server's cached part of the prompt. */
		cached = tokscan_int(json_object_get(usage, "prompt_tokens_details"), "cached_tokens");
		if (cached >= 0)
			ts->cached_tokens = cached;
		ts->done = true;
	}
	/* llama-server's own timings: cache_n (cached), prompt_ms. */
	if (json_is_object(timings = json_object_get(o, "timings"))) {
		const json_t *ms = json_object_get(timings, "prompt_ms");
		if (ts->cached_tokens < 0 && (cached = tokscan_int(timings, "cache_n")) >= 0)
			ts->cached_tokens = cached;
		if (json_is_number(ms) && json_number_value(ms) >= 0)
			ts->prompt_eval_us = (int64_t)(json_number_value(ms) * 1000.0);
	}
	json_decref(o);
}

static size_t
scan_line(struct tokscan *ts, const char *s, size_t n)
{
	if (tokscan_sse_data(&s, &n)) {
		if (n >= 6 && memcmp(s, "[DONE]", 6) == 0) {
			ts->done = true;
			return 0;
		}
	} else if (*s != '{') {
		return 0; /* SSE comments, stray text */
	}
	/* Fast path: an ordinary delta carries no counts. */
	if (tokscan_ends_with(s, n, "\"finish_reason\":null}]}"))
		return 1;
	if (memmem(s, n, "\"usage\"", 7) || memmem(s, n, "\"error\"", 7) || memmem(s, n, "\"timings\"", 9)) {
		take_usage(ts, s, n);
		return 0;
	}
	return 1;
}

static size_t
scan_line_embed(struct tokscan *ts, const char *s, size_t n)
{
	if (*s == '{')
		take_usage(ts, s, n);
	return 0;
}

/* The event an OpenAI SDK raises as an APIError: data with an "error". */
static char *
stream_failure(const char *why, size_t *len)
{
	return dialect_framed(dialect_openai_error(500, why), "data: ", "\n\n", len);
}

const struct dialect dialect_openai = {
	"openai", missing_model, check, unknown_model, rewrite, dialect_openai_error, scan_line, false, stream_failure,
};

const struct dialect dialect_openai_embed = {
	"openai-embed", missing_model, check, unknown_model, rewrite, dialect_openai_error, scan_line_embed, false,
	stream_failure,
};
