/*
 * dialect: what differs between the client APIs harmonicd speaks, behind
 * one interface.  A route names its dialect; the request path asks it and
 * never switches on routes: body checks before the model lookup, the
 * wording of a missing or unknown model, the rewrite for the backend
 * (which options a dialect can carry), the error shape, token accounting
 * over the answer's framing (one line at a time, see tokscan), and how a
 * stream that failed after its first byte must end so that the client's
 * SDK sees a failure, not a clean finish.
 *
 * Dialects are pure (no I/O, no transport): the backend kind decides where
 * a request goes, the dialect what it looks like.
 */
#ifndef HARMONIC_DIALECT_H
#define HARMONIC_DIALECT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct cfg_model;
struct route;
struct tokscan;

struct dialect {
	const char *name;
	/* The model member is missing or empty: the status, and the message
	 * in *msg (caller frees). */
	int (*missing_model)(const struct route *r, char **msg);
	/* Members checked before the model lookup (types, required fields):
	 * an error text (caller frees, answered 400) or NULL. */
	char *(*check)(const struct route *r, const json_t *body);
	/* The message for a model that is not configured (answered 404). */
	char *(*unknown_model)(const struct route *r, const char *name);
	/* Rewrite body for the backend model m, beyond the model member (set
	 * by the caller): e.g. the pinned options, where the dialect has them. */
	void (*rewrite)(const struct route *r, json_t *body, const struct cfg_model *m);
	/* An error body in the dialect's shape for status; never NULL. */
	json_t *(*error_body)(int status, const char *msg);
	/* Token accounting: one complete line of the answer, without its
	 * newline; returns 1 when it carries one streamed token. */
	size_t (*scan_line)(struct tokscan *ts, const char *s, size_t n);
	/* A stream of this dialect is finished only by its terminal event:
	 * one that ends without it has failed (tokscan's done stays false). */
	bool needs_terminal;
	/* What ends a stream that failed after its first byte, in the
	 * dialect's framing (caller frees). */
	char *(*stream_failure)(const char *why, size_t *len);
};

extern const struct dialect dialect_ollama;         /* /api/generate, /api/chat, /api/show, local answers */
extern const struct dialect dialect_ollama_embed;   /* /api/embed, /api/embeddings */
extern const struct dialect dialect_openai;         /* /v1/chat/completions, /v1/completions, /v1/models */
extern const struct dialect dialect_openai_embed;   /* /v1/embeddings */
extern const struct dialect dialect_responses;      /* /v1/responses */
extern const struct dialect dialect_anthropic;      /* /v1/messages */
extern const struct dialect dialect_harmonic;       /* harmonicd's own routes: Ollama's error shape */

/* Set m's pinned options.num_ctx and keep_alive on a native body o (the
 * only dialect that carries them; warm-up loads use it too). */
void dialect_pin_options(json_t *o, const struct cfg_model *m);

/* ---- helpers shared by the dialect modules ---- */

/* Go's name for the JSON type of v, as Ollama's decoder words it. */
const char *dialect_type_word(const json_t *v);
/* "json: cannot unmarshal T into field NAME of type WANT" when member
 * `name` of o exists, is not null and is not of type `type`; else NULL. */
char *dialect_member_type(const json_t *o, const char *name, json_type type, const char *want);
/* The two error shapes most dialects share. */
json_t *dialect_ollama_error(int status, const char *msg);
json_t *dialect_openai_error(int status, const char *msg);
/* One event name of an SSE dialect and the code it scans as. */
struct dialect_event {
	const char *name;
	int code;
};
/* If s is an "event: NAME" line, set ts->event to NAME's code in table (0
 * when NAME is not in it) and return true. */
bool dialect_event_line(struct tokscan *ts, const char *s, size_t n, const struct dialect_event *table,
    size_t count);
/* usage {input_tokens, output_tokens} of o, if it has one, as the counts
 * (Anthropic's messages and Responses' response objects alike). */
void dialect_take_usage(struct tokscan *ts, const json_t *o);
/* before + o encoded + after (o consumed; "{}" if it cannot be encoded). */
char *dialect_framed(json_t *o, const char *before, const char *after, size_t *len);
/* An SSE event "event: NAME\ndata: JSON\n\n" of o (consumed). */
char *dialect_sse_event(const char *name, json_t *o, size_t *len);

#endif
