/*
 * endpoint: what a route is (path, methods, kind, API shape, auth) and the
 * shape of a local answer.  Types only, so that the pure modules (api) and
 * the request path can read a route without the route table (route.c),
 * which names every local handler and sits in the HTTP front.
 */
#ifndef HARMONIC_ENDPOINT_H
#define HARMONIC_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

struct dialect;

enum route_kind {
	ROUTE_LOCAL,    /* answered by harmonicd itself */
	ROUTE_FORWARD,  /* queued, slot-limited, relayed */
	ROUTE_SHOW,     /* forwarded to one host, no slot */
	ROUTE_UNSUPPORTED, /* model management belongs on the hosts */
};

enum route_auth {
	AUTH_NONE,      /* open: liveness, readiness, statistics */
	AUTH_AGENT,     /* api_keys_file, when set */
	AUTH_ADMIN,     /* admin_keys_file; refused when unset */
};

/* A local answer, filled by a route's handler. */
struct local_answer {
	int status;
	const char *ctype;
	char *body;             /* owned by the answer (free) */
	size_t len;
	int retry_after;
};

struct route {
	const char *path;
	bool prefix;            /* path is a prefix (e.g. /v1/models/) */
	const char *methods;    /* "GET HEAD", "POST" */
	enum route_kind kind;
	const struct dialect *dialect; /* the client API it speaks (dialect.h) */
	bool stream_default;    /* /api/generate, /api/chat: true */
	bool streams;           /* can stream at all */
	void (*local)(const char *url, struct local_answer *out);
	enum route_auth auth;
};

/* The backend path a forwarded route goes to: the same path. */
static inline const char *
route_upstream_path(const struct route *r)
{
	return r->path;
}

#endif
