/*
 * health: probes every host with calls that take no inference slot
 * (GET /api/version for liveness, GET /api/ps for loaded models), marks
 * hosts down and up, and warms each placed model (Ollama's empty-prompt
 * load with the pinned keep_alive) at start and when a host comes back.
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
