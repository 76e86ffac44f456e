/*
 * health: probes every host on the health_interval cadence and turns the
 * answers into down/up verdicts (two failed rounds in a row mark a host
 * down; a refused connection at once, health_suspect).  What a round asks
 * and what "up" means is the host kind's (backend.h): Ollama's
 * /api/version, llama-server's /health, an OpenAI server's /v1/models.
 * A host that comes (back) up is handed to its kind (Ollama warms its
 * models).
 */
#ifndef HARMONIC_HEALTH_H
#define HARMONIC_HEALTH_H

#include <stdbool.h>

struct rt_host;

void health_init(void);
void health_shutdown(void);
/* A request could not connect: mark h down now and probe it at once. */
void health_suspect(struct rt_host *h);
/* True once every host has answered or failed one probe. */
bool health_first_round_done(void);
#endif
