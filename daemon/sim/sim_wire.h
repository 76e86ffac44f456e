/*
 * sim_wire: what the simulator puts on the wire.  Ollama's NDJSON chunks,
 * final chunks and error shapes (Anthropic's too), the OpenAI-compatible
 * SSE and JSON bodies, tool calls on both chat APIs, the deterministic
 * answer text and embeddings, ids, and time stamps and JSON in Go's
 * formats.  Writes into a request's output buffers; never touches sockets.
 */
#ifndef HARMONIC_SIM_WIRE_H
#define HARMONIC_SIM_WIRE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_engine.h"


void sim_buf_append(struct sim_buf *b, const char *data, size_t len);
void sim_buf_free(struct sim_buf *b);

/* The i-th word of the deterministic answer for a seed (" word" form). */
const char *sim_wire_word(uint64_t seed, int64_t i);

/* Approximate token count of a text (about 4 bytes per token, >= 1). */
int64_t sim_wire_count_tokens(const char *text);

/* Go RFC 3339 with trimmed nanoseconds: UTC with "Z" when utc, else local
 * time with a numeric offset.  t_ns is CLOCK_REALTIME ns. */
void sim_wire_time(char *buf, size_t size, int64_t t_ns, bool utc);
int64_t sim_wire_realtime_ns(void);

/* Serialize compactly; caller owns the string (free). */
char *sim_wire_dump(const json_t *j);
/* Serialize as Go's encoding/json does: compact, HTML-safe (<, >, & as
 * \u003c...), keys sorted when sorted (Go maps) else in insertion order
 * (Go structs).  Caller owns the string (free). */
char *sim_wire_dump_go(const json_t *j, bool sorted);
/* A fresh random id: prefix then n characters of alphabet. */
void sim_wire_rand_id(char *buf, size_t size, const char *prefix, const char *alphabet, int n);

/* One generated token: a stream chunk, or text kept for the final body. */
void sim_wire_token(struct sim_req *req, const char *word);
/* The request completed: final chunk (stream) or whole body. */
void sim_wire_finish(struct sim_req *req, const char *done_reason);
/* The OpenAI-compatible /v1 routes (their bodies end in a newline). */
bool sim_wire_is_v1(const struct sim_req *req);
/* /v1/messages and /v1/responses (sim_agent; bodies end in a newline). */
bool sim_wire_is_agent(const struct sim_req *req);
/* A complete reply body in the route's content type; steals j. */
void sim_wire_reply(struct sim_req *req, int status, json_t *j);
/* Empty-prompt reply, done_reason "load" or "unload" (one JSON object). */
void sim_wire_load_reply(struct sim_req *req, const char *reason);
/* Error before the first byte: a complete reply with the API's shape
 * (Ollama's, OpenAI's, or Anthropic's on /v1/messages). */
void sim_wire_error(struct sim_req *req, int status, const char *message);
/* Error after streaming began: one inline error line, then the end. */
void sim_wire_error_inline(struct sim_req *req, int status, const char *message);

/* A deterministic L2-normalized embedding of text; caller owns (json_decref). */
json_t *sim_wire_embedding(const char *text, int dims, uint64_t seed);

/* OpenAI's base64 embedding: the vector's little-endian float32 bytes,
 * base64-encoded, as a JSON string (caller owns). */
json_t *sim_wire_base64_floats(const json_t *vec);

/* The engine's output in the wire format above (sim_engine_init). */
extern const struct sim_output sim_wire_output;

#endif
