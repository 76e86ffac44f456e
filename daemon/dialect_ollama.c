/*
 * dialect_ollama: Ollama's native API (/api/generate, /api/chat, /api/show
 * and the embedding routes): NDJSON streams whose last object carries
 * "done":true and the counts (eval_count, prompt_eval_count), errors as
 * {"error":"..."}, Ollama's exact wording (reference/ollama-api.md 3), and
 * the pinned num_ctx / keep_alive, which only this dialect can carry.
 */
#include "dialect.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "endpoint.h"
#include "jsonx.h"
#include "tokscan.h"
#include "xmalloc.h"

/* Members whose type harmonicd checks itself rather than relaying Ollama's
 * 400: a clearer error, and no slot is spent on a request the backend
 * would refuse.  null is accepted (Go unmarshals it to the zero value). */
static const struct member_type {
	const char *path;
	const char *member;
	json_type type;
	const char *want;
} member_types[] = {
	{"/api/generate", "prompt", JSON_STRING, "string"},
	{"/api/generate", "options", JSON_OBJECT, "object"},
	{"/api/chat", "messages", JSON_ARRAY, "array"},
	{"/api/chat", "options", JSON_OBJECT, "object"},
	{"/api/embed", "options", JSON_OBJECT, "object"},
	{"/api/embeddings", "prompt", JSON_STRING, "string"},
	{"/api/embeddings", "options", JSON_OBJECT, "object"},
};

static char *
check(const struct route *r, const json_t *o)
{
	for (size_t i = 0; i < sizeof(member_types) / sizeof(member_types[0]); i++) {
		const struct member_type *t = &member_types[i];
		char *bad;
		if (strcmp(t->path, r->path) == 0 && (bad = dialect_member_type(o, t->member, t->type, t->want)) != NULL)
			return bad;
	}
	return NULL;
}

/* Ollama answers an empty model with 404 on generate and embed, 400 elsewhere. */
static int
missing_model(const struct route *r, char **msg)
{
	if (strcmp(r->path, "/api/generate") == 0 || strcmp(r->path, "/api/embed") == 0) {
		*msg = xstrdup("model '' not found");
		return 404;
	}
	*msg = xstrdup("model is required");
	return 400;
}

static char *
unknown_model(const struct route *r, const char *name)
{
	return xasprintf("model '%s' not found", name);
}

static char *
unknown_model_embed(const struct route *r, const char *name)
{
	return xasprintf("model \"%s\" not found, try pulling it first", name);
}

/* The pinned num_ctx and keep_alive of m, on a native inference request
 * (and on warm-up loads, so that a load matches what requests ask). */
void
dialect_pin_options(json_t *o, const struct cfg_model *m)
{
	if (m->num_ctx > 0) {
		json_t *opts = json_object_get(o, "options");
		if (!json_is_object(opts)) {
			opts = json_object();
			json_object_set_new(o, "options", opts);
		}
		json_object_set_new(opts, "num_ctx", json_integer(m->num_ctx));
	}
	if (m->keep_alive_kind == KEEP_ALIVE_SECONDS)
		json_object_set_new(o, "keep_alive", jx_real(m->keep_alive_s));
	else if (m->keep_alive_kind == KEEP_ALIVE_STRING)
		json_object_set_new(o, "keep_alive", jx_str(m->keep_alive_str));
}

static void
rewrite(const struct route *r, json_t *o, const struct cfg_model *m)
{
	if (r->kind == ROUTE_FORWARD)
		dialect_pin_options(o, m);
}

static void
rewrite_none(const struct route *r, json_t *o, const struct cfg_model *m)
{
}

/* Counts from an Ollama object: the final chunk of a stream or a whole
 * non-stream answer.  A load reply (done_reason "load": the empty-prompt
 * preload) generated nothing, whatever its line count says. */
static void
take_counts(struct tokscan *ts, const char *s, size_t n)
{
	json_t *o = tokscan_json(s, n);
	int64_t ev, pe, ns;

	if (o == NULL)
		return;
	if (json_object_get(o, "error") != NULL)
		ts->error = true;
	if (json_is_true(json_object_get(o, "done")))
		ts->done = true;
	ev = tokscan_int(o, "eval_count");
	pe = tokscan_int(o, "prompt_eval_count");
	if ((ns = tokscan_int(o, "prompt_eval_duration")) >= 0)
		ts->prompt_eval_us = ns / 1000;
	if (ev >= 0 || pe >= 0)
		tokscan_set_counts(ts, ev, pe);
	else if (ts->done && json_is_string(json_object_get(o, "done_reason")) &&
	    strcmp(json_string_value(json_object_get(o, "done_reason")), "load") == 0)
		tokscan_set_counts(ts, 0, 0);
	json_decref(o);
}

static size_t
scan_line(struct tokscan *ts, const char *s, size_t n)
{
	if (*s != '{')
		return 0;
	/* Fast path: an ordinary token chunk ends with its "not done" marker. */
	if (tokscan_ends_with(s, n, "\"done\":false}"))
		return 1;
	if (memmem(s, n, "\"eval_count\"", 12) || memmem(s, n, "\"prompt_eval_count\"", 19) ||
	    memmem(s, n, "\"error\"", 7) || memmem(s, n, "\"done\":true", 11)) {
		take_counts(ts, s, n);
		return 0;
	}
	return 1;
}

/* Embeddings stream nothing: the one body carries prompt_eval_count
 * (/api/embed) or no count at all (/api/embeddings). */
static size_t
scan_line_embed(struct tokscan *ts, const char *s, size_t n)
{
	if (*s == '{')
		take_counts(ts, s, n);
	return 0;
}

/* Ollama itself ends a failed stream with one {"error":...} line. */
static char *
stream_failure(const char *why, size_t *len)
{
	return dialect_framed(dialect_ollama_error(500, why), "", "\n", len);
}

const struct dialect dialect_ollama = {
	"ollama", missing_model, check, unknown_model, rewrite, dialect_ollama_error, scan_line, false, stream_failure,
};

const struct dialect dialect_ollama_embed = {
	"ollama-embed", missing_model, check, unknown_model_embed, rewrite, dialect_ollama_error, scan_line_embed, false,
	stream_failure,
};

/* Local answers of harmonicd's own routes: Ollama's error shape. */
const struct dialect dialect_harmonic = {
	"harmonic", missing_model, check, unknown_model, rewrite_none, dialect_ollama_error, scan_line, false,
	stream_failure,
};
