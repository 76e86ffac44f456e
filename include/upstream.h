/*
 * upstream: HTTP to the backends through one curl multi handle driven by
 * the event loop (socket-action API).  Owns every easy handle.  An I/O
 * adapter: it reports what arrives (status, body pieces, the end) to the
 * owner of each transfer and acts only when asked (pause, resume, abort).
 */
#ifndef HARMONIC_UPSTREAM_H
#define HARMONIC_UPSTREAM_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

struct rt_host;

/* on_data's answer asking curl to pause (it hands the same bytes again
 * after upstream_resume). */
#define UPSTREAM_PAUSE CURL_WRITEFUNC_PAUSE

/* One transfer, embedded in its owner (a request). */
struct upstream_xfer {
	CURL *easy;                     /* NULL when no transfer runs */
	struct curl_slist *headers;
	long status;                    /* HTTP status once known, else 0 */
	char ctype[128];                /* the answer's Content-Type */
	bool paused;
	/* A piece of the body: return len to take it, UPSTREAM_PAUSE, or 0
	 * to abort the transfer. */
	size_t (*on_data)(struct upstream_xfer *x, const char *data, size_t len);
	/* The transfer ended (rc; x->status), already detached: x may start
	 * again from here. */
	void (*on_done)(struct upstream_xfer *x, CURLcode rc);
};

int upstream_init(int max_connections);
void upstream_shutdown(void);

/* POST body (len bytes; must outlive the transfer) to base + path.
 * Returns 0, or -1 if the transfer could not even be set up (logged). */
int upstream_start(struct upstream_xfer *x, const char *base, const char *path, const char *body, size_t len,
    double timeout_s);
/* What went wrong, in curl's words. */
const char *upstream_strerror(CURLcode rc);
/* Abort x's transfer at once; no callbacks follow. */
void upstream_abort(struct upstream_xfer *x);
/* Resume a transfer paused by on_data (call outside its callbacks). */
void upstream_resume(struct upstream_xfer *x);

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

#endif
