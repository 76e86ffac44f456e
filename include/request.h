/*
 * request: one client request from its first header to its last byte.
 *
 * References (refs), and who holds them:
 *   - the HTTP connection: from request_new until MHD's completion callback
 *     (http.c: on_completed);
 *   - the relay response: from MHD_create_response_from_callback until its
 *     free callback (http.c);
 *   - a deferred backend unpause or relay wake while one is scheduled
 *     (upstream.c).
 * The tier queue, the curl easy handle, the queue timer and the disconnect
 * watch only point at the request: request_close() detaches all of them
 * synchronously, so they never outlive it.  The last unref frees at the end
 * of the loop iteration, never inline.
 *
 * Every request ends in exactly one accounting outcome (request_close) and
 * returns its slot exactly once (sched_release via request_close or the
 * upstream's completion).
 */
#ifndef HARMONIC_REQUEST_H
#define HARMONIC_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "compat_queue.h"
#include "ev.h"
#include "sched.h"
#include "stats.h"
#include "tokscan.h"
#include "upstream.h"

struct MHD_Connection;
struct config;
struct route;

enum request_state {
	REQUEST_READING,   /* receiving the body */
	REQUEST_QUEUED,    /* waiting for a slot (connection suspended) */
	REQUEST_WAITING,   /* slot held, backend asked, nothing relayed yet */
	REQUEST_RELAYING,  /* response committed; bytes flowing */
	REQUEST_DRAINING,  /* backend finished, slot returned; client reads the rest */
	REQUEST_REPLYING,  /* a complete local answer is ready or sent */
	REQUEST_CLOSED,    /* nothing left to do but drop references */
	REQUEST_STATE_COUNT
};

#define RELAY_HIGH_WATER (256u * 1024u) /* pause the backend above this */
#define RELAY_LOW_WATER (64u * 1024u)   /* resume it below this */

struct request {
	int refs;
	TAILQ_ENTRY(request) all;       /* every live request, for shutdown */
	uint64_t id;
	enum request_state state;
	const struct route *route;
	struct config *cfg;             /* the config it started with; a reference */

	/* client side */
	struct MHD_Connection *conn;    /* NULL once MHD reported completion */
	bool suspended;                 /* we suspended conn and nobody resumed */
	bool client_gone;
	bool response_queued;
	struct ev_io watch;             /* EPOLLRDHUP on the client fd */
	bool watching;
	char *agent;                    /* who it is (agents.h): header, key name or "anonymous"; owned */
	char *session;                  /* X-Harmonic-Session (affinity's conversation key), or NULL; owned */
	char *body;                     /* request body; owned, <= max_body */
	size_t body_len, body_cap;
	bool body_too_large;

	/* scheduling: what sched sees of this request */
	struct sched_item si;
	int retries;                    /* failovers after a failure before the first byte */
	int busy_retries;               /* re-queues after a backend 503 */
	bool accounted;
	bool unqueued;                  /* /api/show: no slot, no queue */
	bool stream;                    /* the client asked for a stream */
	struct ev_timer timer;          /* queue timeout */
	struct ev_timer watch_timer;    /* arms the disconnect watch if still waiting */
	uint64_t t_arrive_us, t_first_byte_us;

	/* model name echo: the backend answers with its tag; clients expect
	 * the name they sent (checklist item 11).  Both NULL when they match. */
	char *echo_from;                /* "\"model\":\"TAG\"" as the backend writes it; owned */
	char *echo_to;                  /* "\"model\":\"NAME\"" JSON-escaped; owned */
	char *tail;                     /* partial line held back for the rename; owned */
	size_t tail_len;

	/* upstream */
	char *client_model;             /* the model as the client named it; owned */
	char *up_body;                  /* rewritten JSON for the backend, as the client's dialect; owned */
	size_t up_body_len;
	struct backend_call call;       /* what the placement's backend kind made of it (relay_start); owned */
	struct upstream_xfer up;        /* the backend transfer (relay.c) */
	bool unpause_scheduled;
	bool wake_scheduled;            /* relay wake deferred to the end of the iteration */
	bool up_done;
	struct tokscan scan;
	char *errbody;                  /* non-2xx backend body, bounded; owned */
	size_t errbody_len;

	/* relay buffer: bytes for the client, [buf_off, buf_len) pending */
	char *buf;
	size_t buf_off, buf_len, buf_cap;
	char buf_last;                  /* last byte ever appended, sent or not ('\0': none) */

	/* a local answer (errors, small JSON) */
	int reply_status;
	char *reply_body;               /* owned */
	size_t reply_len;
	const char *reply_ctype;
	int retry_after;                /* seconds; 0 = no header */
};

const char *request_state_name(enum request_state s);

/* New request owned by the connection's reference. */
struct request *request_new(struct MHD_Connection *conn, const struct route *route, struct config *cfg);
struct request *request_ref(struct request *req);
void request_unref(struct request *req);
/* Move to state s; asserts the transition is legal and logs it at debug. */
void request_set_state(struct request *req, enum request_state s);

/* Resume the connection if we suspended it, so MHD calls us again, through
 * the waker the HTTP front registered (request_set_waker). */
void request_wake(struct request *req);
void request_set_waker(void (*wake)(struct request *req));

/* Prepare a complete answer (body copied) and wake the connection. */
void request_reply(struct request *req, int status, const char *ctype, const char *body, size_t len);
/* An error in the request's API shape (Ollama or OpenAI) with status. */
void request_reply_error(struct request *req, int status, const char *msg);
/* 503 with Retry-After. */
void request_reply_busy(struct request *req, const char *msg, int retry_after);

/*
 * Bind req to the current configuration and runtime (one consistent pair):
 * parse its body against them, set model, stream flag and the upstream body
 * (tag, pinned options).  Returns false when an error answer was prepared
 * (bad body, unknown or removed model).
 */
bool request_bind(struct request *req);
/*
 * Queue req (at_head for a retry) with queue_timeout counted from its first
 * enqueue; returns false when it was answered instead: 503 + Retry-After
 * while draining, when the tier queue is full or the time is up.
 */
bool request_enqueue(struct request *req, bool at_head);
/* sched_reload's requeue callback: re-bind a waiting request to the new
 * configuration (or answer 404 if its model is gone) and queue it again. */
void request_requeue_after_reload(struct sched_item *it);

/* The request around a scheduler item. */
static inline struct request *
request_of(struct sched_item *it)
{
	return (struct request *)(void *)((char *)it - offsetof(struct request, si));
}

/* Relay buffer. */
void request_buf_append(struct request *req, const char *data, size_t len);
size_t request_buf_pending(const struct request *req);

/*
 * The one close path: record outcome once, leave the queue, abort the
 * backend transfer, return the slot, stop timers and watches.  Idempotent;
 * later calls only detach what is still attached.
 */
void request_close(struct request *req, enum stats_outcome outcome, const char *reason);
/* The client went away (completion code, RDHUP): cancel and clean up. */
void request_client_gone(struct request *req, const char *how);
/* Number of requests alive (for leak checks and /stats). */
uint64_t request_live_count(void);
/* Call fn for every live request, oldest first (reload; not a hot path). */
void request_foreach(void (*fn)(struct request *req, void *arg), void *arg);
/* request_client_gone() for every live request (shutdown). */
void request_close_all(const char *why);

#endif
