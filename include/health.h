/*
 * health: probes every host with calls that take no inference slot
 * (GET /api/version for liveness, GET /api/ps for loaded models), marks
 * hosts down and up, and warms each placed model (Ollama's empty-prompt
 * load with the pinned keep_alive) at start and when a host comes back.
 *
 * From /api/ps it also reads the context each placed model is loaded with
 * (context_length) against the pinned num_ctx: requests in the option-less
 * dialects (/v1/chat/completions, /v1/messages, /v1/responses) load a model
 * at the host's default context, so where that differs from the pin, Ollama
 * reloads the model at every switch between them and /api traffic.  Such
 * a mismatch, and context changes between probes (reloads), are counted
 * per placement, warned about naming the host and the setting to change,
 * and shown in /stats (docs/operations.md, "Context length").
 */
#ifndef HARMONIC_HEALTH_H
#define HARMONIC_HEALTH_H

#include <stdbool.h>

#include <stdint.h>

struct rt_host;

#define HEALTH_CONTEXT_RECENT_US (600u * 1000000u)  /* advice stands this long after a mismatch */
#define HEALTH_CONTEXT_WARN_US (3600ull * 1000000u) /* one warning per placement and hour */

void health_init(void);
void health_shutdown(void);
/* A request could not connect: mark h down now and probe it at once. */
void health_suspect(struct rt_host *h);
/* True once every host has answered or failed one probe. */
bool health_first_round_done(void);
/* What to change on host h so that option-less requests load its models at
 * the pinned context, while a probe saw one at another context in the last
 * HEALTH_CONTEXT_RECENT_US; NULL otherwise.  Caller frees. */
char *health_context_advice(const struct rt_host *h);

#endif
