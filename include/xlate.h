/*
 * xlate: Ollama-native requests (/api/chat, /api/generate, /api/embed,
 * /api/embeddings) translated for hosts that speak only the
 * OpenAI-compatible API (llama.cpp's llama-server, vLLM), and their
 * answers translated back into Ollama's NDJSON lines or single object
 * (SPEC 10).  Pure logic: no I/O, no clock reads (times are passed in),
 * no globals.  What maps and what is dropped: the table atop xlate.c.
 */
#ifndef HARMONIC_XLATE_H
#define HARMONIC_XLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum xlate_route {
	XLATE_CHAT,       /* /api/chat */
	XLATE_GENERATE,   /* /api/generate */
	XLATE_EMBED,      /* /api/embed */
	XLATE_EMBEDDINGS, /* /api/embeddings (legacy) */
	XLATE_ROUTE_COUNT
};

/* The native route a request path is (query string ignored), or -1 when
 * the path is not one this module translates. */
int xlate_route_of(const char *path);
/* "chat", "generate", ... for logs. */
const char *xlate_route_name(enum xlate_route r);

struct xlate_target {
	/* true: llama-server, whose sampling extensions (typical_p,
	 * repeat_penalty, repeat_last_n, mirostat*, chat_template_kwargs) may
	 * be sent.  false: a generic OpenAI server (vLLM's names where they
	 * differ: repetition_penalty; llama.cpp-only fields are dropped). */
	bool llamacpp;
};

/*
 * The backend request for the native body (as harmonicd rewrote it: its
 * "model" is already the backend's model name).  Returns the backend body
 * (caller owns, json_decref) and sets *path to a static string
 * ("/v1/chat/completions", "/v1/completions" or "/v1/embeddings"); or NULL
 * with *err (caller frees) = the message of a 400 for the client (an image
 * that is not base64, tool arguments that are not an object, ...).
 */
json_t *xlate_request(enum xlate_route r, const json_t *native, const struct xlate_target *t,
    const char **path, char **err);

/*
 * The answer Ollama gives without running the model, or NULL when the
 * backend must be asked: a chat without messages or a generate without
 * prompt is a load request ({"done":true,"done_reason":"load"}, "unload"
 * with keep_alive 0), an embed of empty input answers no vectors.
 * client_model: the name as the client sent it.  Caller owns the result.
 */
json_t *xlate_local_answer(enum xlate_route r, const json_t *native, const char *client_model,
    int64_t now_unix_ns);

/* The state of translating one backend answer. */
struct xlate_answer;

/* client_model: the model name written in every answer object (as the
 * client sent it); stream: the client asked for a stream (Ollama's default
 * is true for chat and generate; ignored for embeddings); t_start_ns:
 * monotonic ns when the backend request was sent.  Caller frees. */
struct xlate_answer *xlate_answer_new(enum xlate_route r, const char *client_model, bool stream,
    int64_t t_start_ns);
void xlate_answer_free(struct xlate_answer *a);

/* Feed raw backend body bytes (2xx answers; any split, SSE or JSON).
 * Ollama output, if any, is appended to the buffer xlate_take() returns.
 * now_ns: monotonic now; now_unix_ns: wall clock for created_at. */
void xlate_feed(struct xlate_answer *a, const char *data, size_t len, int64_t now_ns, int64_t now_unix_ns);

/*
 * The backend body ended cleanly: emits the rest (the final chunk, or the
 * whole object for a non-stream answer).  Returns true if the answer was
 * complete.  false, with *why set (valid until xlate_answer_free: the
 * backend's own error message, or a static description), when it was not:
 * the stream was cut before its finish_reason/[DONE], the JSON did not
 * parse, the backend sent an error event.  The rule for a failed answer:
 * if this answer had produced any output, the output now ends with one
 * Ollama error line {"error":"..."}\n (the client's stream has started);
 * if it had produced none, it produces none, and the caller answers the
 * client itself (502 with {"error": why}).
 */
bool xlate_finish(struct xlate_answer *a, int64_t now_ns, int64_t now_unix_ns, const char **why);

/* Output produced and not yet taken: pointer and *len (0 when none); valid
 * until the next call on a; marks it taken. */
const char *xlate_take(struct xlate_answer *a, size_t *len);

/* true once output has been produced (the client's stream has started). */
bool xlate_started(const struct xlate_answer *a);

/* The message of a backend error body (llama-server's and OpenAI's
 * {"error":{"message":...}}, vLLM's older {"object":"error","message":...},
 * FastAPI's {"detail":...}, {"error":"..."}, or plain text), for Ollama's
 * {"error": msg}.  Never NULL; caller frees. */
char *xlate_error_message(const char *body, size_t len, long status);

#endif
