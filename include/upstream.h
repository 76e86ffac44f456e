/*
 * upstream: HTTP to the Ollama hosts through one curl multi handle driven
 * by the event loop (socket-action API).  Owns every easy handle.  Relays
 * response bytes into the request's bounded buffer, pausing the transfer
 * when the client reads slower than the backend writes.
 */
#ifndef HARMONIC_UPSTREAM_H
#define HARMONIC_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

struct request;
struct rt_host;

int upstream_init(int max_connections);
void upstream_shutdown(void);

/* Send req (holding a slot on req->placement, or unqueued) to its host.
 * Returns 0, or -1 if the transfer could not even be created. */
int upstream_start(struct request *req);
/* Abort req's transfer at once (client gone, timeout); no callbacks follow. */
void upstream_abort(struct request *req);
/* The client drained the buffer below the low-water mark: resume reading. */
void upstream_unpause(struct request *req);

/* A small GET to a host outside the slot accounting (health probes).
 * cb gets the HTTP status (0 on transport error) and the body. */
typedef void (*upstream_probe_cb)(struct rt_host *h, const char *path, long status,
    const char *body, size_t len, void *arg);
int upstream_probe(struct rt_host *h, const char *path, const char *post_body,
    double timeout_s, upstream_probe_cb cb, void *arg);
/* Abort every probe; their callbacks run with status -1 (reload). */
void upstream_cancel_probes(void);
/* Transfers currently running (requests and probes). */
int upstream_active(void);

/* 503 busy answers one request may get before it is answered 503 itself
 * (its queue_timeout usually ends it first; see docs/reliability.md). */
#define UPSTREAM_BUSY_RETRIES 16

#endif
