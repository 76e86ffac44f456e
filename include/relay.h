/*
 * relay: a request's backend exchange, from the start of its transfer to
 * the last byte for the client: commit on the first 2xx byte, the bounded
 * relay buffer with backpressure, token counts, and the judgement of every
 * ending (retry, back-off, 502, the mid-stream error line).
 */
#ifndef HARMONIC_RELAY_H
#define HARMONIC_RELAY_H

struct request;
struct sched_hooks;

/* 503 busy answers one request may get before it is answered 503 itself
 * (its queue_timeout usually ends it first; see docs/reliability.md). */
#define RELAY_BUSY_RETRIES 16

/* Send req (holding a slot on its placement, or unqueued) to its host.
 * Returns 0, or -1 if the transfer could not even be set up. */
int relay_start(struct request *req);
/* The client drained the buffer below the low-water mark: resume the
 * backend (deferred to the end of the iteration; holds a reference). */
void relay_unpause(struct request *req);
/* What the request layer does with the scheduler's decisions (sched_init):
 * start a dispatched request's transfer; answer one whose hosts all went
 * down. */
extern const struct sched_hooks relay_sched_hooks;

#endif
