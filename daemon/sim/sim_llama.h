/*
 * sim_llama: harmonic-sim as llama.cpp's llama-server (profile host.api =
 * "llamacpp" or --api llamacpp; reference/llamacpp-server.md).  The wire
 * side only: the GET endpoints (/health, /props, /slots, /metrics,
 * /v1/models), the request checks and conversion of the OpenAI-compatible
 * POSTs into what sim_http's inference path takes, and the engine's output
 * as llama-server's SSE chunks, JSON bodies and error shapes.  Its
 * /v1/messages (and count_tokens) and /v1/responses run through sim_agent
 * (conversion, events, bodies) with llama-server's errors, model echo and
 * slots.  Slots,
 * deferral and timing stay in sim_engine (-np = num_parallel, no queue limit).
 */
#ifndef HARMONIC_SIM_LLAMA_H
#define HARMONIC_SIM_LLAMA_H

#include <jansson.h>
#include <stdbool.h>

#include "sim_engine.h"

/* After sim_engine_init and sim_engine_preload_all: per-model slot views
 * and /metrics counters.  sim_llama_shutdown frees them. */
void sim_llama_init(void);
void sim_llama_shutdown(void);

/* True while the models load: every path but the model lists and /_sim
 * then gets llama-server's 503 "Loading model". */
bool sim_llama_loading(void);
/* Paths served while loading (/v1/models, /models, /api/tags). */
bool sim_llama_public_path(const char *url);

/*
 * A GET in llama mode.  model_arg is the ?model= query (NULL when none).
 * Returns the status; *body (caller frees) and *ctype are set.  Unknown
 * paths give llama-server's 404.
 */
int sim_llama_get(const char *url, const char *model_arg, char **body, const char **ctype);

/* The inference API of a POST path, or SIM_API_COUNT when none;
 * *count_only is set for /v1/messages/count_tokens (SIM_API_MESSAGES). */
enum sim_api sim_llama_post_api(const char *url, bool *count_only);

/*
 * Check a POST's body as llama-server would and convert it for sim_http's
 * inference path: the model resolved to a profile name (single-model mode
 * ignores the client's), n_predict as max_tokens, keep_alive forever,
 * response_format noted in req->llama_json.  For the agent APIs body is
 * sim_agent's chat (already checked): only the model is resolved.  *echo gets the name to echo
 * in answers (caller owns, free).  Returns the body (caller owns,
 * json_decref), or NULL when an error reply in llama's shape is set.
 */
json_t *sim_llama_prepare(struct sim_req *req, json_t *body, char **echo);

/* A complete error reply in llama-server's shape (Anthropic's envelope
 * around it on /v1/messages). */
void sim_llama_error(struct sim_req *req, int status, const char *message);
/* An error reply the shared inference path set (Ollama's or OpenAI's
 * shape, e.g. an armed fail fault) rewritten in llama-server's shape. */
void sim_llama_restyle_error(struct sim_req *req);

/* count_tokens' reply {"input_tokens": req->prompt_tokens}. */
void sim_llama_count_reply(struct sim_req *req);

/* The engine's output in llama-server's formats (sim_engine_init). */
extern const struct sim_output sim_llama_output;

#endif
