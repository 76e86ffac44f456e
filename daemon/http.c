/*
 * http: libmicrohttpd front in external epoll mode.
 *
 * The access handler runs three times per forwarded request: at the
 * headers (route, method, size checks, request object), for each piece of
 * body (bounded append), and at the end of the body (parse, enqueue,
 * suspend).  Whoever later has an answer (dispatcher, upstream, timeout)
 * prepares it on the request and resumes the connection; MHD then calls
 * the handler once more and respond() queues the answer.  A handler that
 * neither queues a response nor suspends would make MHD busy-loop, so
 * every path below does one or the other, or returns MHD_NO.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "agents.h"
#include "api.h"
#include "route.h"
#include "auth.h"
#include "config.h"
#include "ev.h"
#include "log.h"
#include "request.h"
#include "sched.h"
#include "status.h"
#include "relay.h"
#include "upstream.h"
#include "utf8.h"
#include "xmalloc.h"

#define MAX_LISTEN 16
#define AGENT_MAX 128
#define WATCH_DELAY_US 20000u /* disconnect watch for requests still open after 20 ms */
#define RELAY_BLOCK (8 * 1024) /* MHD's per-response send buffer */

struct listener {
	struct MHD_Daemon *mhd;
	struct ev_io io;
	int fd;
	char *unix_path;        /* unlinked at shutdown; owned */
};

/* A connection that has not yet sent a complete request head.  MHD's own
 * timeout is for inactivity, so a client trickling one byte at a time
 * (slowloris) would never hit it; header_timeout bounds the whole head,
 * the first one and every later one on a kept-alive connection.
 *
 * A kept-alive connection waiting for its next request is idle, not slow:
 * it sits on the `idle` list, where the sweep reads the kernel's count of
 * bytes received (TCP_INFO) every IDLE_CHECK; once it grew, a head has
 * begun and the connection moves to `fresh` with the head clock running.
 * MHD has already read those bytes, so nothing else shows them. */
struct fresh_conn {
	struct MHD_Connection *conn;
	uint64_t since_us;      /* fresh: head began; idle: last check */
	uint64_t rx_bytes;      /* idle: bytes received at the last check */
	bool listed;
	bool idle;
	TAILQ_ENTRY(fresh_conn) link;
};

static TAILQ_HEAD(conn_list, fresh_conn) fresh = TAILQ_HEAD_INITIALIZER(fresh),
    idle = TAILQ_HEAD_INITIALIZER(idle);
#define IDLE_CHECK_US 1000000u
static struct ev_timer sweep_timer;

/* MHD's own cap sits above ours so that we, not the kernel backlog, answer
 * the connections past max_connections. */
#define CONN_HEADROOM 256u

static struct listener listeners[MAX_LISTEN];
static int n_listeners;
static struct ev_timer mhd_timer;
static struct config *current_cfg; /* a reference; new requests use it */
/* The connection context of a request for a local answer: the answer is
 * queued at the end of the request, never from the header call, because
 * libmicrohttpd 0.9.75 closes a connection whose answer was queued before
 * its (possibly empty) body was read.  The URL comes again with each call. */
static char local_pending;
static bool resumed;               /* a connection was resumed since the last MHD_run */

/* request_wake's way back to MHD: resume, and run MHD before the next wait
 * (in external mode nothing else guarantees it notices promptly). */
static void
wake_connection(struct request *req)
{
	MHD_resume_connection(req->conn);
	resumed = true;
}

static void
run_all(void)
{
	for (int i = 0; i < n_listeners; i++)
		if (listeners[i].mhd != NULL)
			MHD_run(listeners[i].mhd);
}

static void
on_mhd_ready(int fd, uint32_t events, void *arg)
{
	MHD_run(((struct listener *)arg)->mhd);
}

static void
on_mhd_timer(void *arg)
{
	run_all();
}

/* Before each wait: let MHD's own timeouts wake the loop. */
static int64_t
prepare(void *arg)
{
	MHD_UNSIGNED_LONG_LONG best = 0;
	bool have = false;

	/* Resumes from our callbacks: let MHD act on them before we sleep.
	 * Bounded: a resume inside MHD_run is handled on the next pass. */
	for (int pass = 0; resumed && pass < 4; pass++) {
		resumed = false;
		run_all();
	}
	for (int i = 0; i < n_listeners; i++) {
		MHD_UNSIGNED_LONG_LONG t;
		if (listeners[i].mhd != NULL && MHD_get_timeout(listeners[i].mhd, &t) == MHD_YES &&
		    (!have || t < best)) {
			best = t;
			have = true;
		}
	}
	if (have)
		ev_timer_start(&mhd_timer, (uint64_t)best * 1000u);
	else
		ev_timer_stop(&mhd_timer);
	return -1;
}

/* MHD's %XX decoding, except that an encoded NUL would cut the string
 * short ("/api/tags%00x" routed as "/api/tags"): such a URL or argument
 * becomes empty, which no route matches (404). */
static size_t
unescape_url(void *cls, struct MHD_Connection *c, char *s)
{
	size_t n = MHD_http_unescape(s);

	if (memchr(s, '\0', n) != NULL) {
		s[0] = '\0';
		return 0;
	}
	return n;
}

/* ---- answers ----
 * Every response is built and queued through these helpers, which check
 * each libmicrohttpd result: a response that cannot be created (no memory)
 * or a header MHD refuses ends in MHD_NO, which closes the connection and
 * is logged, never in a NULL dereference. */

static bool
add_header(struct MHD_Response *r, const char *name, const char *value)
{
	if (MHD_add_response_header(r, name, value) == MHD_YES)
		return true;
	log_warnx("http: header %s refused", name);
	return false;
}

/* A response with body (ownership passes: freed on every path) and its
 * Content-Type, plus Retry-After when retry_after > 0; NULL on failure. */
static struct MHD_Response *
new_response(char *body, size_t len, const char *ctype, int retry_after)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	char v[16];

	if (r == NULL) {
		log_warnx("http: cannot create a response of %zu bytes", len);
		free(body);
		return NULL;
	}
	snprintf(v, sizeof(v), "%d", retry_after);
	if (!add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) ||
	    (retry_after > 0 && !add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v))) {
		MHD_destroy_response(r);
		return NULL;
	}
	return r;
}

/* Queue r (may be NULL: creation failed) and drop our reference. */
static enum MHD_Result
send_response(struct MHD_Connection *c, int status, struct MHD_Response *r)
{
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	ret = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	if (ret != MHD_YES)
		log_debug("http: MHD refused a %d answer; closing the connection", status);
	return ret;
}

static enum MHD_Result
queue_buffer(struct MHD_Connection *c, int status, const char *ctype, char *body, size_t len, int retry_after)
{
	return send_response(c, status, new_response(body, len, ctype, retry_after));
}

static enum MHD_Result
queue_text(struct MHD_Connection *c, int status, const char *text)
{
	return queue_buffer(c, status, "text/plain; charset=utf-8", xstrdup(text), strlen(text), 0);
}

static enum MHD_Result
queue_error(struct MHD_Connection *c, const struct route *r, int status, const char *msg)
{
	size_t len;
	char *s = api_error_text(r, status, msg, &len);

	return queue_buffer(c, status, "application/json; charset=utf-8", s, len, 0);
}

static enum MHD_Result
queue_unauthorized(struct MHD_Connection *c, const struct route *r)
{
	size_t len;
	char *s = api_error_text(r, 401, "missing or wrong API key", &len);
	struct MHD_Response *resp = new_response(s, len, "application/json; charset=utf-8", 0);

	if (resp != NULL && !add_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer")) {
		MHD_destroy_response(resp);
		resp = NULL;
	}
	return send_response(c, 401, resp);
}

/* Informational headers: a refused one is logged and left out. */
static void
add_harmonic_headers(struct MHD_Response *r, const struct request *req)
{
	char v[32];

	if (req->si.placement != NULL)
		add_header(r, "X-Harmonic-Host", req->si.placement->host->cfg->name);
	if (req->si.t_enqueue_us != 0) {
		/* From the first enqueue to the last dispatch: retries included. */
		uint64_t end = req->si.t_dispatch_us >= req->si.t_enqueue_us ? req->si.t_dispatch_us : ev_now_us();
		snprintf(v, sizeof(v), "%llu", (unsigned long long)((end - req->si.t_enqueue_us) / 1000u));
		add_header(r, "X-Harmonic-Queue-Ms", v);
	}
}

static ssize_t
relay_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct request *req = cls;
	size_t pending = request_buf_pending(req);

	if (req->client_gone)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (pending > 0) {
		size_t n = pending < max ? pending : max;
		memcpy(buf, req->buf + req->buf_off, n);
		req->buf_off += n;
		if (req->up.paused && pending - n <= RELAY_LOW_WATER)
			relay_unpause(req);
		return (ssize_t)n;
	}
	if (req->up_done)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing to send yet: suspend (a bare 0 would busy-loop MHD). */
	req->suspended = true;
	MHD_suspend_connection(req->conn);
	return 0;
}

static void
relay_free(void *cls)
{
	request_unref(cls);
}

/* Queue r (NULL: creation failed), a request's answer, with harmonicd's
 * headers; drops our reference. */
static enum MHD_Result
queue_answer(struct request *req, int status, struct MHD_Response *r)
{
	if (r != NULL)
		add_harmonic_headers(r, req);
	req->response_queued = true;
	return send_response(req->conn, status, r);
}

static enum MHD_Result
respond(struct request *req)
{
	struct MHD_Response *r;
	char *copy;

	if (req->response_queued)
		return MHD_YES;
	switch (req->state) {
	case REQUEST_REPLYING:
		copy = xmalloc(req->reply_len + 1); /* the body may hold NULs (a backend's 4xx) */
		memcpy(copy, req->reply_body, req->reply_len);
		r = new_response(copy, req->reply_len, req->reply_ctype, req->retry_after);
		return queue_answer(req, req->reply_status, r);
	case REQUEST_RELAYING:
	case REQUEST_DRAINING:
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, RELAY_BLOCK, relay_read, request_ref(req),
		    relay_free);
		if (r == NULL) {
			log_warnx("http: cannot create the relay response of request %llu", (unsigned long long)req->id);
			request_unref(req); /* the reference the response would have held */
			request_client_gone(req, "no memory for the response");
			return MHD_NO;
		}
		/* A translated answer has the translation's type; the backend's
		 * Content-Type may hold bytes MHD refuses. */
		if (!add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, req->call.ctype ? req->call.ctype :
		        req->up.ctype[0] ? req->up.ctype : "application/json; charset=utf-8"))
			add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
		if (req->stream)
			add_header(r, "X-Accel-Buffering", "no");
		return queue_answer(req, (int)req->up.status, r);
	case REQUEST_QUEUED:
	case REQUEST_WAITING:
		/* Woken without an answer: wait again. */
		req->suspended = true;
		MHD_suspend_connection(req->conn);
		return MHD_YES;
	case REQUEST_CLOSED:
	default:
		return MHD_NO; /* client gone: let MHD close the connection */
	}
}

/* ---- disconnect watch ---- */

static void
on_rdhup(int fd, uint32_t events, void *arg)
{
	struct request *req = arg;

	if (!req->watching)
		return;
	request_client_gone(req, "peer closed");
}

static void
watch_client(struct request *req)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	if (req->watching || ci == NULL)
		return;
	req->watch.fd = ci->connect_fd;
	req->watch.cb = on_rdhup;
	req->watch.arg = req;
	if (ev_io_add(&req->watch, EPOLLRDHUP | EPOLLONESHOT) == 0)
		req->watching = true;
}

static void
unwatch_client(struct request *req)
{
	if (!req->watching)
		return;
	ev_io_del(&req->watch);
	req->watching = false;
}

/* The request has waited WATCH_DELAY_US: from now on a client that leaves
 * is noticed at once, even while its connection is suspended. */
static void
on_watch_due(void *arg)
{
	struct request *req = arg;

	if (req->conn != NULL && !req->client_gone && !req->up_done)
		watch_client(req);
}

/* ---- the handler ---- */

/* Body complete: parse, then queue (or send /api/show straight on). */
static void
start_request(struct request *req)
{
	struct rt_model *m;

	if (req->body_too_large) {
		char *msg = xasprintf("request body exceeds max_body (%lld bytes)", (long long)req->cfg->max_body);
		request_close(req, STATS_REJECTED, "body too large");
		request_reply_error(req, 413, msg);
		free(msg);
		return;
	}
	if (daemon_status.draining) {
		/* Its head came before the drain began, its body after. */
		request_close(req, STATS_REJECTED, "draining");
		request_reply_busy(req, "harmonicd is shutting down", 1);
		return;
	}
	/* One snapshot: the configuration and runtime in force now, whatever
	 * reloads happened while the body arrived. */
	if (!request_bind(req))
		return;
	m = req->si.model;
	if (!sched_model_available(m)) {
		request_close(req, STATS_REJECTED, "every host down");
		request_reply_busy(req, "every host serving this model is down",
		    (int)(req->cfg->health_interval + 0.999));
		return;
	}
	if (req->unqueued) {
		for (int k = 0; k < m->n_placements && req->si.placement == NULL; k++)
			if (m->placements[k].host->up)
				req->si.placement = &m->placements[k];
		request_set_state(req, REQUEST_WAITING);
		if (relay_start(req) < 0) {
			request_close(req, STATS_FAILED, "cannot start backend transfer");
			request_reply_error(req, 502, "harmonicd: cannot start the backend request");
		}
		return;
	}
	if (request_enqueue(req, false))
		sched_dispatch();
}

static void
unlist_fresh(struct fresh_conn *fc)
{
	if (fc != NULL && fc->listed) {
		TAILQ_REMOVE(fc->idle ? &idle : &fresh, fc, link);
		fc->listed = false;
	}
}

/* Bytes the kernel received on c's socket, or UINT64_MAX when it cannot
 * tell (a Unix socket): such a connection is then timed from the end of
 * its last request, like a head in progress. */
static uint64_t
rx_bytes(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (ci == NULL || getsockopt(ci->connect_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		return UINT64_MAX;
	return ti.tcpi_bytes_received;
}

static void
arm_sweep(void)
{
	if (!ev_timer_armed(&sweep_timer))
		ev_timer_start(&sweep_timer, 1000000u);
}

/* A request ended on a connection MHD keeps open: wait for the next head. */
static void
list_kept_alive(struct fresh_conn *fc)
{
	if (fc == NULL || fc->listed)
		return;
	fc->since_us = ev_update_now();
	fc->rx_bytes = rx_bytes(fc->conn);
	fc->idle = fc->rx_bytes != UINT64_MAX;
	fc->listed = true;
	TAILQ_INSERT_TAIL(fc->idle ? &idle : &fresh, fc, link);
	arm_sweep();
}

/* Past max_connections: answer 503 on the raw socket and close it, rather
 * than leaving the client in the kernel's backlog with no word.  MHD has
 * read nothing yet; the shutdown makes it drop the connection itself. */
static void
refuse(struct MHD_Connection *c)
{
	static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\n"
				  "Content-Type: application/json; charset=utf-8\r\n"
				  "Retry-After: 1\r\nConnection: close\r\nContent-Length: 44\r\n\r\n"
				  "{\"error\":\"harmonicd: too many connections\"}\n";
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

	daemon_status.conns.refused++;
	if (ci == NULL)
		return;
	(void)!send(ci->connect_fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(ci->connect_fd, SHUT_RDWR);
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode toe)
{
	struct fresh_conn *fc = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		if (++daemon_status.conns.open > (unsigned)current_cfg->max_connections) {
			refuse(c);
			return;
		}
		fc = xcalloc(1, sizeof(*fc));
		fc->conn = c;
		fc->since_us = ev_update_now();
		fc->listed = true;
		TAILQ_INSERT_TAIL(&fresh, fc, link);
		*socket_context = fc;
		/* Per connection, so that a reload's idle_timeout applies to the
		 * connections that open after it. */
		MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)current_cfg->idle_timeout);
		arm_sweep();
	} else {
		daemon_status.conns.open--;
		unlist_fresh(fc);
		free(fc);
		*socket_context = NULL;
	}
}

/* Once a second: cut connections whose request head is overdue.  shutdown()
 * rather than close(): MHD still owns the fd and closes it itself. */
static void
on_sweep(void *arg)
{
	uint64_t limit = (uint64_t)(current_cfg->header_timeout * 1e6), now = ev_update_now();
	struct fresh_conn *fc;

	/* Idle kept-alive connections whose next head has begun move over,
	 * their head clock starting now (within IDLE_CHECK of the first byte). */
	while ((fc = TAILQ_FIRST(&idle)) != NULL && now - fc->since_us >= IDLE_CHECK_US) {
		uint64_t rx = rx_bytes(fc->conn);
		TAILQ_REMOVE(&idle, fc, link);
		fc->since_us = now;
		fc->idle = rx == fc->rx_bytes;
		fc->rx_bytes = rx;
		TAILQ_INSERT_TAIL(fc->idle ? &idle : &fresh, fc, link);
	}
	while ((fc = TAILQ_FIRST(&fresh)) != NULL && now - fc->since_us > limit) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(fc->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		unlist_fresh(fc);
		if (ci != NULL)
			shutdown(ci->connect_fd, SHUT_RDWR);
		daemon_status.conns.slow_cut++;
		log_debug("closed a connection that sent no complete request head in %.1f s", current_cfg->header_timeout);
	}
	if (!TAILQ_EMPTY(&fresh) || !TAILQ_EMPTY(&idle))
		ev_timer_start(&sweep_timer, 1000000u);
}

static unsigned conn_cap; /* MHD's connection limit, fixed when it started */

unsigned
http_connection_cap(void)
{
	return conn_cap;
}

/* The agent's name, at most AGENT_MAX bytes cut on a character boundary
 * (v is valid UTF-8). */
static char *
agent_name(const char *v)
{
	size_t n = strnlen(v, AGENT_MAX);

	while (n > 0 && v[n] != '\0' && ((unsigned char)v[n] & 0xC0u) == 0x80u)
		n--;
	return xstrndup(v, n);
}

/* Who the request is (docs/observability.md, "Agents"): its
 * X-Harmonic-Agent header, else the name of the API key it presented
 * (key: auth_find's answer), else "anonymous".  Caller frees. */
static char *
agent_identity(struct MHD_Connection *c, const struct route *r, int key)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Harmonic-Agent");

	if (v != NULL && *v != '\0')
		return agent_name(v);
	if (r->auth == AUTH_AGENT && key >= 0 && key < current_cfg->n_api_keys && current_cfg->api_key_names[key] != NULL)
		return xstrdup(current_cfg->api_key_names[key]);
	return xstrdup(AGENTS_ANONYMOUS);
}

/* The end of a request for a local answer (its body, if any, discarded). */
static enum MHD_Result
local_answer(struct MHD_Connection *c, const char *url)
{
	const struct route *r = route_find(url);
	struct local_answer a = {0};

	r->local(url, &a);
	return queue_buffer(c, a.status, a.ctype, a.body, a.len, a.retry_after);
}

static enum MHD_Result
first_call(struct MHD_Connection *c, const char *url, const char *method, void **con_cls)
{
	const struct route *r = route_find(url);
	const union MHD_ConnectionInfo *sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	const char *v;
	struct request *req;
	int key = AUTH_OPEN;

	if (sc != NULL)
		unlist_fresh(sc->socket_context);

	if (r == NULL)
		return queue_text(c, 404, "404 page not found");
	if (!route_allows(r, method))
		return queue_text(c, 405, "405 method not allowed");
	/* Client bytes reach JSON answers, logs and /stats: only UTF-8. */
	if (!utf8_valid(url, strlen(url)))
		return queue_error(c, r, 400, "the request path is not valid UTF-8");
	v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Harmonic-Agent");
	if (v != NULL && !utf8_valid(v, strlen(v)))
		return queue_error(c, r, 400, "the X-Harmonic-Agent header is not valid UTF-8");
	if (r->auth != AUTH_NONE) {
		const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
		bool admin = r->auth == AUTH_ADMIN;
		if (admin && current_cfg->n_admin_keys == 0)
			return queue_error(c, r, 403, "admin endpoints are disabled: set admin_keys_file");
		key = auth_find(admin ? current_cfg->admin_keys : current_cfg->api_keys,
		    admin ? current_cfg->n_admin_keys : current_cfg->n_api_keys, h, x);
		if (key == AUTH_NO_MATCH)
			return queue_unauthorized(c, r);
	}
	if (r->kind == ROUTE_LOCAL) {
		*con_cls = &local_pending; /* answered at the end of the request */
		return MHD_YES;
	}
	if (r->kind == ROUTE_UNSUPPORTED)
		return queue_error(c, r, 501,
		    "harmonicd does not manage models: pull, push, create, copy and delete on the hosts themselves");
	v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (v != NULL && strtoull(v, NULL, 10) > (unsigned long long)current_cfg->max_body) {
		char *msg = xasprintf("request body exceeds max_body (%lld bytes)", (long long)current_cfg->max_body);
		enum MHD_Result ret;
		char *who = agent_identity(c, r, key);
		struct agent *a = agents_arrive(who);
		free(who);
		agents_outcome(a, STATS_REJECTED); /* no request object: counted here, as in the totals */
		agents_leave(a);
		sched->totals.requests++;
		sched->totals.outcome[STATS_REJECTED]++;
		ret = queue_error(c, r, 413, msg);
		free(msg);
		return ret;
	}
	if (daemon_status.draining)
		return queue_error(c, r, 503, "harmonicd is shutting down");
	req = request_new(c, r, current_cfg);
	req->unqueued = r->kind == ROUTE_SHOW;
	req->agent = agent_identity(c, r, key);
	req->si.agent = req->agent; /* fairness and statistics know the same agent */
	req->si.who = agents_arrive(req->agent);
	/* Names the conversation for affinity routing; only hashed, never echoed. */
	v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Harmonic-Session");
	if (v != NULL && *v != '\0')
		req->session = xstrndup(v, 1024);
	sched->totals.requests++;
	*con_cls = req;
	return MHD_YES;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
    const char *upload, size_t *upload_size, void **con_cls)
{
	struct request *req = *con_cls;

	if (req == NULL)
		return first_call(c, url, method, con_cls);
	if (*con_cls == &local_pending) {
		if (*upload_size > 0) {
			*upload_size = 0; /* local answers read no body */
			return MHD_YES;
		}
		return local_answer(c, url);
	}
	if (*upload_size > 0) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (req->body_too_large || req->body_len + n > (size_t)req->cfg->max_body) {
			req->body_too_large = true; /* keep reading, answer 413 at the end */
			return MHD_YES;
		}
		req->body = xgrow(req->body, &req->body_cap, req->body_len + n, 1024);
		memcpy(req->body + req->body_len, upload, n);
		req->body_len += n;
		return MHD_YES;
	}
	if (req->state == REQUEST_READING) {
		start_request(req);
		if (req->state == REQUEST_QUEUED || req->state == REQUEST_WAITING) {
			req->suspended = true;
			MHD_suspend_connection(c);
			/* Most requests at saturation finish in a few ms; arm the
			 * watch (two epoll_ctl calls) only for those still going. */
			req->watch_timer.cb = on_watch_due;
			ev_timer_start(&req->watch_timer, WATCH_DELAY_US);
			return MHD_YES;
		}
	}
	return respond(req);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct request *req = *con_cls;
	const union MHD_ConnectionInfo *sc;

	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK &&
	    (sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT)) != NULL)
		list_kept_alive(sc->socket_context); /* the next head is timed too */
	if (req == NULL || *con_cls == &local_pending) {
		*con_cls = NULL;
		return;
	}
	*con_cls = NULL;
	ev_timer_stop(&req->watch_timer);
	unwatch_client(req); /* before MHD closes the fd */
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		request_client_gone(req, "connection ended");
	else if (!req->accounted)
		request_close(req, STATS_CANCELLED, "completed without an outcome");
	req->conn = NULL;
	req->suspended = false;
	request_unref(req);
}

/* ---- listening sockets ---- */

static int
listen_on(const char *addr, char **unix_path)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", addr + 5);
		unlink(un->sun_path);
		sl = sizeof(*un);
		*unix_path = xstrdup(addr + 5);
	} else {
		char host[128];
		const char *colon = strrchr(addr, ':');
		size_t hl = (size_t)(colon - addr);
		int port = atoi(colon + 1);
		if (addr[0] == '[') {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
			snprintf(host, sizeof(host), "%.*s", (int)(hl - 2), addr + 1);
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)port);
			if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
				return -1;
			sl = sizeof(*in6);
		} else {
			struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
			snprintf(host, sizeof(host), "%.*s", (int)hl, addr);
			in4->sin_family = AF_INET;
			in4->sin_port = htons((uint16_t)port);
			if (strcmp(host, "localhost") == 0)
				snprintf(host, sizeof(host), "127.0.0.1");
			if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
				return -1;
			sl = sizeof(*in4);
		}
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (ss.ss_family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 1024) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int
start_listener(int fd, const struct config *cfg, char *unix_path)
{
	struct listener *l = &listeners[n_listeners];
	const union MHD_DaemonInfo *info;

	conn_cap = (unsigned)cfg->max_connections;
	l->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    on_access, NULL, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)cfg->idle_timeout, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections + CONN_HEADROOM,
	    MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_UNESCAPE_CALLBACK, unescape_url, NULL,
	    MHD_OPTION_END);
	if (l->mhd == NULL)
		return -1;
	info = MHD_get_daemon_info(l->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL) {
		MHD_stop_daemon(l->mhd);
		l->mhd = NULL;
		return -1;
	}
	l->fd = fd;
	l->unix_path = unix_path;
	l->io.fd = info->epoll_fd;
	l->io.cb = on_mhd_ready;
	l->io.arg = l;
	if (ev_io_add(&l->io, EPOLLIN) < 0) {
		MHD_stop_daemon(l->mhd);
		l->mhd = NULL;
		return -1;
	}
	n_listeners++;
	return 0;
}

int
http_init(struct config *cfg)
{
	int passed = sd_listen_fds(1);

	current_cfg = config_ref(cfg);
	request_set_waker(wake_connection);
	ev_timer_init(&mhd_timer, on_mhd_timer, NULL);
	ev_timer_init(&sweep_timer, on_sweep, NULL);
	ev_add_prepare(prepare, NULL);
	if (passed > 0) {
		for (int i = 0; i < passed && i < MAX_LISTEN; i++) {
			int fd = SD_LISTEN_FDS_START + i;
			if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
				log_errx("socket activation: fd %d is not a listening stream socket", fd);
				return -1;
			}
			if (start_listener(fd, cfg, NULL) < 0) {
				log_errx("cannot serve on the socket passed by systemd (fd %d)", fd);
				return -1;
			}
		}
		log_info("listening on %d socket(s) passed by systemd", passed);
		return 0;
	}
	for (int i = 0; i < cfg->n_listen && i < MAX_LISTEN; i++) {
		char *unix_path = NULL;
		int fd = listen_on(cfg->listen[i], &unix_path);
		if (fd < 0) {
			log_warn("cannot listen on %s", cfg->listen[i]);
			free(unix_path);
			return -1;
		}
		if (start_listener(fd, cfg, unix_path) < 0) {
			log_errx("cannot start the HTTP server on %s", cfg->listen[i]);
			close(fd);
			free(unix_path);
			return -1;
		}
		log_info("listening on %s", cfg->listen[i]);
	}
	return 0;
}

void
http_set_config(struct config *cfg)
{
	struct config *old = current_cfg;

	current_cfg = config_ref(cfg);
	config_unref(old);
}

void
http_quiesce(void)
{
	for (int i = 0; i < n_listeners; i++) {
		if (listeners[i].mhd != NULL && listeners[i].fd >= 0) {
			MHD_socket s = MHD_quiesce_daemon(listeners[i].mhd);
			if (s != MHD_INVALID_SOCKET)
				close(s);
			listeners[i].fd = -1;
		}
	}
}

unsigned
http_connections(void)
{
	unsigned n = 0;

	for (int i = 0; i < n_listeners; i++) {
		const union MHD_DaemonInfo *info;
		if (listeners[i].mhd == NULL)
			continue;
		info = MHD_get_daemon_info(listeners[i].mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (info != NULL)
			n += info->num_connections;
	}
	return n;
}

void
http_shutdown(void)
{
	/* MHD aborts if stopped with suspended connections: resume first
	 * (callers have closed every request), then let MHD see the resumes. */
	request_close_all("shutdown");
	run_all();
	for (int i = 0; i < n_listeners; i++) {
		ev_io_del(&listeners[i].io);
		MHD_stop_daemon(listeners[i].mhd);
		listeners[i].mhd = NULL;
		if (listeners[i].unix_path != NULL) {
			unlink(listeners[i].unix_path);
			free(listeners[i].unix_path);
		}
	}
	n_listeners = 0;
	ev_timer_stop(&mhd_timer);
	ev_timer_stop(&sweep_timer);
	config_unref(current_cfg);
	current_cfg = NULL;
}

int
http_adopt_fd(int fd)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

	if (n_listeners == 0 || listeners[0].mhd == NULL)
		return -1;
	if (MHD_add_connection(listeners[0].mhd, fd, (const struct sockaddr *)&sa, sizeof(sa)) != MHD_YES)
		return -1;
	resumed = true; /* let MHD look at it before the next wait */
	return 0;
}
