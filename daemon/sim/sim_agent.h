/*
 * sim_agent: the agent APIs as Ollama serves them, POST /v1/messages
 * (Anthropic Messages) and POST /v1/responses (OpenAI Responses).  Like
 * Ollama's middlewares, it turns each request into an Ollama chat request
 * (which sim_http then runs exactly like /api/chat: same slots, queue,
 * timing, faults and counting) and writes the chat's tokens back in the
 * API's own JSON bodies and SSE events (reference/agent-apis.md).
 * sim_llama serves the same routes in llama-server mode through these
 * (its own errors, model echo and slots; usage then reports cache reads).
 */
#ifndef HARMONIC_SIM_AGENT_H
#define HARMONIC_SIM_AGENT_H

#include <jansson.h>

#include "sim_engine.h"

/*
 * Validate and convert req->body (req->api is SIM_API_MESSAGES or
 * SIM_API_RESPONSES) into the equivalent /api/chat request body: model,
 * messages, stream, options.num_predict, tools and tool_choice.  Sets the
 * ids, the message_start estimate and the fields /v1/responses echoes.
 * Returns the body (caller owns, json_decref), or NULL when an error reply
 * in the API's shape has been set.
 */
json_t *sim_agent_convert(struct sim_req *req);

/* The engine's output (sim_engine_init): the agent APIs' events and
 * bodies here, every other API through sim_wire_output. */
extern const struct sim_output sim_agent_output;

#endif
