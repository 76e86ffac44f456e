/*
 * route: the static route table of SPEC section 4 (path, methods, kind,
 * API shape, auth) and its lookup.  The table names the handlers of every
 * local answer, so it sits apart from the request-path modules (api,
 * request), which need only the fields of a route.
 */
#ifndef HARMONIC_ROUTE_H
#define HARMONIC_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

enum route_kind {
	ROUTE_LOCAL,    /* answered by harmonicd itself */
	ROUTE_FORWARD,  /* queued, slot-limited, relayed */
	ROUTE_SHOW,     /* forwarded to one host, no slot */
	ROUTE_UNSUPPORTED, /* model management belongs on the hosts */
};

enum route_api { API_OLLAMA, API_OPENAI, API_HARMONIC };

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
	enum route_api api;
	bool stream_default;    /* /api/generate, /api/chat: true */
	bool streams;           /* can stream at all */
	void (*local)(const char *url, struct local_answer *out);
	enum route_auth auth;
};

/* The route for url, or NULL (404). */
const struct route *route_find(const char *url);
bool route_allows(const struct route *r, const char *method);

static inline bool
route_is_openai(const struct route *r)
{
	return r->api == API_OPENAI;
}

/* The backend path a forwarded route goes to: the same path. */
static inline const char *
route_upstream_path(const struct route *r)
{
	return r->path;
}

#endif
