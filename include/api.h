/*
 * api: the wire side of a request, pure: parsing for the forwarded endpoints
 * (JSON body -> model, stream flag, the body sent upstream with pinned
 * num_ctx/keep_alive), Ollama's and OpenAI's error shapes, and the JSON
 * answer helper of local endpoints.
 */
#ifndef HARMONIC_API_H
#define HARMONIC_API_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "endpoint.h"

struct affinity_keys;
struct config;

enum api_result {
	API_PARSED,     /* model, stream and up_body are set */
	API_REJECTED,   /* status and error are set */
};


/* Result of parsing a body, separate from the request so it can be fuzzed. */
struct api_parsed {
	char *model;            /* as the client sent it; owned */
	bool stream;
	char *up_body;          /* owned */
	size_t up_body_len;
	struct affinity_keys *aff; /* prompt-prefix keys (affinity.h) when its model routes by
	                         * affinity over several placements, else NULL; owned */
	int status;             /* error status when parsing failed */
	char *error;            /* error message; owned */
};
/* An error body in the shape of r's dialect (Ollama's when r is NULL):
 * Ollama's {"error":"msg"}, OpenAI's {"error":{"message","type",...}},
 * Anthropic's {"type":"error","error":{"type","message"}}.  Caller owns it. */
json_t *api_error_body(const struct route *r, int status, const char *msg);
struct cfg_model;
/* Set m's pinned options.num_ctx and keep_alive on a native request body o
 * (requests and warm-up loads alike, so a load matches what requests ask). */
void api_pin_options(json_t *o, const struct cfg_model *m);
/* The fixed body of a 500 when an answer cannot be encoded (caller frees). */
void api_internal_error(char **body, size_t *len);
/* api_error_body encoded; never NULL (the internal error at worst). */
char *api_error_text(const struct route *r, int status, const char *msg, size_t *len);
/* Fill out with status and o serialised (compact); takes o's reference. */
void api_answer_json(struct local_answer *out, int status, json_t *o);

/* Pure parser behind api_parse: model lookup through find (NULL = unknown).
 * Returns API_PARSED or API_REJECTED with status/error set. */
enum api_result api_parse_body(const struct route *r, const char *body, size_t len, const struct config *cfg,
    struct api_parsed *out);
void api_parsed_free(struct api_parsed *p);
/* Ollama's wording for an unknown model, which differs by endpoint. */
char *api_unknown_model_message(const struct route *r, const char *name);

#endif
