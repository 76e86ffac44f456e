/*
 * upstream: curl multi (socket-action API) in the event loop.
 *
 * A request's transfer lives from upstream_start until its CURLMSG_DONE or
 * upstream_abort.  Response bytes are held back until the status is known:
 * a 2xx commits the response to the client and streams it; anything else is
 * buffered (bounded) and judged at the end of the transfer, so a failure
 * before the first byte can still be retried on another placement.
 */
#include "upstream.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "api.h"
#include "config.h"
#include "health.h"
#include "ev.h"
#include "log.h"
#include "request.h"
#include "sched.h"
#include "xmalloc.h"

#define ERRBODY_MAX (64u * 1024u)

struct csock {
	struct ev_io io;
	bool dead;
};

struct probe {
	struct rt_host *host;
	char *path;
	char *post;
	upstream_probe_cb cb;
	void *arg;
	char *body;
	size_t len;
	struct curl_slist *headers;
	CURL *easy;
	TAILQ_ENTRY(probe) link;
};

static TAILQ_HEAD(, probe) probes = TAILQ_HEAD_INITIALIZER(probes);

static CURLM *multi;
static struct ev_timer curl_timer;
static int active;

/* Finished easy handles kept for reuse: creating one costs several
 * allocations per request; connections live in the multi's cache anyway. */
#define EASY_POOL_MAX 256
static CURL *easy_pool[EASY_POOL_MAX];
static int n_easy_pool;

static CURL *
easy_get(void)
{
	if (n_easy_pool > 0) {
		CURL *e = easy_pool[--n_easy_pool];
		curl_easy_reset(e);
		return e;
	}
	return curl_easy_init();
}

static void
easy_put(CURL *e)
{
	if (n_easy_pool < EASY_POOL_MAX)
		easy_pool[n_easy_pool++] = e;
	else
		curl_easy_cleanup(e);
}

static void check_done(void);

static void
on_sock_event(int fd, uint32_t events, void *arg)
{
	struct csock *cs = arg;
	int flags = 0, running;

	if (cs->dead)
		return;
	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(multi, fd, flags, &running);
	check_done();
}

static void
free_csock(void *arg)
{
	free(arg);
}

static int
on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct csock *cs = sockp;
	uint32_t ev = 0;

	if (what == CURL_POLL_REMOVE) {
		if (cs != NULL) {
			ev_io_del(&cs->io);
			cs->dead = true;
			curl_multi_assign(multi, fd, NULL);
			ev_defer(free_csock, cs); /* an event for it may be pending */
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		ev |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev |= EPOLLOUT;
	if (cs == NULL) {
		cs = xcalloc(1, sizeof(*cs));
		cs->io.fd = fd;
		cs->io.cb = on_sock_event;
		cs->io.arg = cs;
		if (ev_io_add(&cs->io, ev) < 0)
			log_warn("epoll add curl socket %d", fd);
		curl_multi_assign(multi, fd, cs);
	} else if (ev_io_mod(&cs->io, ev) < 0) {
		log_warn("epoll mod curl socket %d", fd);
	}
	return 0;
}

static void
on_curl_timer(void *arg)
{
	int running;

	curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

static int
on_timer_change(CURLM *m, long timeout_ms, void *userp)
{
	if (timeout_ms < 0)
		ev_timer_stop(&curl_timer);
	else
		ev_timer_start(&curl_timer, (uint64_t)timeout_ms * 1000u);
	return 0;
}

int
upstream_init(int max_connections)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	multi = curl_multi_init();
	if (multi == NULL)
		return -1;
	ev_timer_init(&curl_timer, on_curl_timer, NULL);
	/* Keep a backend connection per slot alive for reuse. */
	if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer_change) != CURLM_OK ||
	    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)(max_connections > 16 ? max_connections : 16)) != CURLM_OK) {
		curl_multi_cleanup(multi);
		multi = NULL;
		return -1;
	}
	return 0;
}

static void probe_free(struct probe *pr);

void
upstream_shutdown(void)
{
	while (!TAILQ_EMPTY(&probes))
		probe_free(TAILQ_FIRST(&probes));
	ev_timer_stop(&curl_timer);
	while (n_easy_pool > 0)
		curl_easy_cleanup(easy_pool[--n_easy_pool]);
	if (multi != NULL)
		curl_multi_cleanup(multi);
	multi = NULL;
	curl_global_cleanup();
}

int
upstream_active(void)
{
	return active;
}

/* ---- request transfers ---- */

static size_t
on_header(char *data, size_t size, size_t n, void *ud)
{
	struct request *req = ud;
	size_t len = size * n;

	if (len > 13 && strncasecmp(data, "content-type:", 13) == 0) {
		const char *v = data + 13;
		size_t vl = len - 13;
		while (vl > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl >= sizeof(req->up_ctype))
			vl = sizeof(req->up_ctype) - 1;
		memcpy(req->up_ctype, v, vl);
		req->up_ctype[vl] = '\0';
	} else if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		req->up_ctype[0] = '\0'; /* a new response (after 100 Continue) */
	}
	return len;
}

static void
count_tokens(struct request *req, uint64_t n)
{
	uint64_t now = ev_now_us();
	struct rt_placement *p = req->placement;

	if (n == 0 || p == NULL)
		return;
	stats_rate_add(&sched->rate, now, n);
	stats_rate_add(&req->model->tier->rate, now, n);
	stats_rate_add(&p->host->rate, now, n);
	stats_rate_add(&p->rate, now, n);
	p->streamed_tokens += n;
}

/* First body byte of a 2xx: the response is now the client's. */
static void
commit(struct request *req)
{
	req->t_first_byte_us = ev_now_us();
	/* /api/show is neither queued nor dispatched: no TTFT, no busy news. */
	if (req->placement != NULL && !req->unqueued) {
		stats_hist_add(&req->placement->ttft, (double)(req->t_first_byte_us - req->t_dispatch_us) / 1000.0);
		sched_placement_ok(req->placement);
	}
	request_set_state(req, REQUEST_RELAYING);
	request_wake(req);
}

/* Append one line (with its newline, if any) to the relay buffer with the
 * backend's model tag replaced by the client's name (first occurrence:
 * Ollama writes it once per object). */
static void
append_renamed(struct request *req, const char *line, size_t n)
{
	size_t fl = strlen(req->echo_from);
	const char *at = memmem(line, n, req->echo_from, fl);

	if (at == NULL) {
		request_buf_append(req, line, n);
		return;
	}
	request_buf_append(req, line, (size_t)(at - line));
	request_buf_append(req, req->echo_to, strlen(req->echo_to));
	request_buf_append(req, at + fl, n - (size_t)(at - line) - fl);
}

/* Relay with renaming: only whole lines leave; a partial one waits in
 * req->tail for its newline (or the end of the body). */
static void
relay_renamed(struct request *req, const char *data, size_t len)
{
	const char *nl;

	while ((nl = memchr(data, '\n', len)) != NULL) {
		size_t take = (size_t)(nl - data) + 1;
		if (req->tail_len > 0) {
			req->tail = xreallocarray(req->tail, req->tail_len + take, 1);
			memcpy(req->tail + req->tail_len, data, take);
			append_renamed(req, req->tail, req->tail_len + take);
			req->tail_len = 0;
		} else {
			append_renamed(req, data, take);
		}
		data += take;
		len -= take;
	}
	if (len > 0) {
		req->tail = xreallocarray(req->tail, req->tail_len + len, 1);
		memcpy(req->tail + req->tail_len, data, len);
		req->tail_len += len;
	}
}

static void
flush_tail(struct request *req)
{
	if (req->tail_len > 0)
		append_renamed(req, req->tail, req->tail_len);
	req->tail_len = 0;
}

static void
run_wake(void *arg)
{
	struct request *req = arg;

	req->wake_scheduled = false;
	request_wake(req);
	request_unref(req);
}

static size_t
on_data(char *data, size_t size, size_t n, void *ud)
{
	struct request *req = ud;
	size_t len = size * n;

	if (req->client_gone)
		return 0; /* backstop: abort the transfer */
	if (req->up_status == 0)
		curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &req->up_status);
	if (req->up_status < 200 || req->up_status >= 300) {
		/* Judged at the end of the transfer; keep a bounded copy. */
		size_t room = ERRBODY_MAX - req->errbody_len;
		if (len < room)
			room = len;
		if (room > 0) {
			req->errbody = xreallocarray(req->errbody, req->errbody_len + room + 1, 1);
			memcpy(req->errbody + req->errbody_len, data, room);
			req->errbody_len += room;
			req->errbody[req->errbody_len] = '\0';
		}
		return len;
	}
	if (req->state == REQUEST_WAITING)
		commit(req);
	/* A partial line held for renaming counts against the limit too. */
	if (request_buf_pending(req) > 0 && request_buf_pending(req) + req->tail_len + len > RELAY_HIGH_WATER) {
		req->up_paused = true; /* curl hands the same bytes again on resume */
		return CURL_WRITEFUNC_PAUSE;
	}
	if (req->echo_from != NULL) {
		relay_renamed(req, data, len);
		/* A line longer than the limit leaves as it is, in pieces, so the
		 * held-back part stays bounded. */
		if (req->tail_len > RELAY_HIGH_WATER)
			flush_tail(req);
	} else
		request_buf_append(req, data, len);
	count_tokens(req, tokscan_feed(&req->scan, data, len));
	/* Wake the client once per loop iteration, not once per chunk: chunks
	 * that arrived together leave in one write. */
	if (!req->wake_scheduled) {
		req->wake_scheduled = true;
		ev_defer(run_wake, request_ref(req));
	}
	return len;
}

static void
run_unpause(void *arg)
{
	struct request *req = arg;

	req->unpause_scheduled = false;
	if (req->easy != NULL && req->up_paused) {
		req->up_paused = false;
		if (curl_easy_pause(req->easy, CURLPAUSE_CONT) != CURLE_OK)
			log_debug("request %llu: curl unpause failed", (unsigned long long)req->id);
	}
	request_unref(req);
}

void
upstream_unpause(struct request *req)
{
	/* Deferred: we are inside MHD's reader, and the unpause re-enters
	 * on_data, which may wake this same connection. */
	if (!req->up_paused || req->unpause_scheduled)
		return;
	req->unpause_scheduled = true;
	ev_defer(run_unpause, request_ref(req));
}

/* Every curl_easy_setopt goes through here: one failed option (no memory,
 * a feature this libcurl lacks) fails the whole setup, so a transfer never
 * starts half-configured.  ok accumulates over a sequence of calls. */
#define EASY_SET(ok, e, opt, val) ((ok) = curl_easy_setopt((e), (opt), (val)) == CURLE_OK && (ok))

static void
easy_failed(CURL *e, struct curl_slist **headers, const char *what)
{
	log_warnx("curl: cannot set up a transfer (%s)", what);
	curl_slist_free_all(*headers);
	*headers = NULL;
	easy_put(e);
}

static CURL *
new_easy(const struct rt_host *h, const char *path, struct curl_slist **headers, double timeout_s)
{
	CURL *e = easy_get();
	struct curl_slist *more;
	char url[512];
	bool ok = true;

	*headers = NULL;
	if (e == NULL) {
		log_warnx("curl: cannot create a transfer handle");
		return NULL;
	}
	if ((size_t)snprintf(url, sizeof(url), "%s%s", h->cfg->url, path) >= sizeof(url)) {
		easy_failed(e, headers, "URL too long");
		return NULL;
	}
	EASY_SET(ok, e, CURLOPT_URL, url);
	EASY_SET(ok, e, CURLOPT_NOSIGNAL, 1L);
	EASY_SET(ok, e, CURLOPT_NOPROXY, "*");
	EASY_SET(ok, e, CURLOPT_TCP_NODELAY, 1L);
	EASY_SET(ok, e, CURLOPT_CONNECTTIMEOUT_MS, (long)(sched->cfg->connect_timeout * 1000));
	EASY_SET(ok, e, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
	/* curl derives Host from the URL: the backend's own host:port, which
	 * Ollama's loopback Host guard accepts. */
	*headers = curl_slist_append(NULL, "Content-Type: application/json");
	more = *headers ? curl_slist_append(*headers, "Expect:") : NULL;
	if (more == NULL) {
		easy_failed(e, headers, "no memory for headers");
		return NULL;
	}
	EASY_SET(ok, e, CURLOPT_HTTPHEADER, *headers);
	if (!ok) {
		easy_failed(e, headers, "an option was refused");
		return NULL;
	}
	return e;
}

int
upstream_start(struct request *req)
{
	const struct rt_host *h = req->placement->host;
	CURL *e;

	req->up_status = 0;
	req->up_ctype[0] = '\0';
	free(req->errbody);
	req->errbody = NULL;
	req->errbody_len = 0;
	bool ok = true;

	e = new_easy(h, route_upstream_path(req->route), &req->up_headers, req->cfg->request_timeout);
	if (e == NULL)
		return -1;
	EASY_SET(ok, e, CURLOPT_POST, 1L);
	EASY_SET(ok, e, CURLOPT_POSTFIELDS, req->up_body);
	EASY_SET(ok, e, CURLOPT_POSTFIELDSIZE, (long)req->up_body_len);
	EASY_SET(ok, e, CURLOPT_HEADERFUNCTION, on_header);
	EASY_SET(ok, e, CURLOPT_HEADERDATA, req);
	EASY_SET(ok, e, CURLOPT_WRITEFUNCTION, on_data);
	EASY_SET(ok, e, CURLOPT_WRITEDATA, req);
	EASY_SET(ok, e, CURLOPT_PRIVATE, req);
	if (!ok || curl_multi_add_handle(multi, e) != CURLM_OK) {
		easy_failed(e, &req->up_headers, ok ? "the multi handle refused it" : "an option was refused");
		return -1;
	}
	req->easy = e;
	active++;
	return 0;
}

static void
detach(struct request *req)
{
	curl_multi_remove_handle(multi, req->easy);
	easy_put(req->easy);
	curl_slist_free_all(req->up_headers);
	req->up_headers = NULL;
	req->easy = NULL;
	req->up_paused = false;
	active--;
}

void
upstream_abort(struct request *req)
{
	if (req->easy != NULL)
		detach(req);
}

/* The backend's {"error":"..."} message, or a fallback. */
static char *
backend_message(const struct request *req, const char *fallback)
{
	json_t *o = req->errbody ? json_loadb(req->errbody, req->errbody_len, 0, NULL) : NULL;
	const json_t *e = json_object_get(o, "error");
	char *msg;

	if (json_is_object(e))
		e = json_object_get(e, "message");
	msg = xstrdup(json_is_string(e) ? json_string_value(e) : fallback);
	json_decref(o);
	return msg;
}

/* Failure before the first byte: retry once elsewhere, else 502. */
static void
fail_before_first_byte(struct request *req, const char *why)
{
	struct rt_placement *p = req->placement;
	char *msg;

	if (req->holds_slot)
		sched_release(req);
	if (p == NULL || req->unqueued) {
		/* No retry: /api/show, or a placement removed by a reload. */
		msg = xasprintf("backend failed before the first byte: %s", why);
		request_close(req, STATS_FAILED, why);
		request_reply_error(req, 502, msg);
		free(msg);
		return;
	}
	if (req->retries == 0 && req->model->n_placements > 1) {
		for (int k = 0; k < req->model->n_placements; k++) {
			struct rt_placement *o = &req->model->placements[k];
			if (o != p && o->host->up) {
				req->retries++;
				req->excluded = p;
				log_info("request %llu: %s on %s; retrying on another placement",
				    (unsigned long long)req->id, why, p->host->cfg->name);
				if (request_enqueue(req, true))
					sched_dispatch();
				return;
			}
		}
	}
	msg = xasprintf("backend %s failed before the first byte: %s", p->host->cfg->name, why);
	log_warnx("request %llu: %s", (unsigned long long)req->id, msg);
	request_close(req, STATS_FAILED, why);
	request_reply_error(req, 502, msg);
	free(msg);
}

static void
finish_ok(struct request *req)
{
	struct rt_placement *p = req->placement;
	int64_t ev, pe;

	if (req->state == REQUEST_WAITING)
		commit(req); /* a 2xx with an empty body */
	if (req->echo_from != NULL)
		flush_tail(req);
	tokscan_finish(&req->scan);
	ev = req->scan.have_counts ? req->scan.eval_count : (int64_t)req->scan.token_lines;
	pe = req->scan.have_counts ? req->scan.prompt_eval_count : 0;
	if (ev > (int64_t)req->scan.token_lines)
		count_tokens(req, (uint64_t)(ev - (int64_t)req->scan.token_lines));
	sched->totals.eval_tokens += (uint64_t)ev;
	sched->totals.prompt_tokens += (uint64_t)pe;
	if (p != NULL) {
		p->eval_tokens += (uint64_t)ev;
		p->prompt_tokens += (uint64_t)pe;
		p->host->eval_tokens += (uint64_t)ev;
	}
	req->up_done = true;
	request_close(req, STATS_COMPLETED, "done");
	request_set_state(req, REQUEST_DRAINING);
	request_wake(req);
}

static void
finish_error_midstream(struct request *req, const char *why)
{
	char *line;
	size_t slen;
	char *s = api_error_text(NULL, 500, why, &slen); /* Ollama's shape, also inside OpenAI streams */

	if (req->stream && route_is_openai(req->route))
		line = xasprintf("data: %s\n\n", s);
	else
		line = xasprintf("%s\n", s);
	if (req->echo_from != NULL)
		flush_tail(req);
	/* Make sure the error starts on a line of its own, also when the
	 * partial line before it has already reached the client. */
	if (req->buf_last != '\0' && req->buf_last != '\n')
		request_buf_append(req, "\n", 1);
	request_buf_append(req, line, strlen(line));
	free(line);
	free(s);
	req->up_done = true;
	request_close(req, STATS_FAILED, why);
	request_set_state(req, REQUEST_DRAINING);
	request_wake(req);
}

static void
transfer_done(struct request *req, CURLcode rc)
{
	long status = 0;

	curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
	req->up_status = status;
	detach(req);
	if (rc != CURLE_OK) {
		const char *why = curl_easy_strerror(rc);
		if (rc == CURLE_COULDNT_CONNECT && req->placement != NULL)
			health_suspect(req->placement->host);
		if (req->state == REQUEST_WAITING)
			fail_before_first_byte(req, why);
		else
			finish_error_midstream(req, rc == CURLE_OPERATION_TIMEDOUT ?
			    "backend timed out (request_timeout)" : "backend connection failed mid-stream");
		return;
	}
	if (status >= 200 && status < 300) {
		finish_ok(req);
		return;
	}
	if (status == 503 && req->holds_slot && !req->unqueued) {
		/* Capacity signal: shrink the placement and back off (sched), and
		 * put the request back at the head of its queue, a bounded number
		 * of times and within its queue_timeout. */
		sched_placement_busy(req->placement);
		sched_release(req);
		if (++req->busy_retries > UPSTREAM_BUSY_RETRIES) {
			request_close(req, STATS_REJECTED, "backend busy");
			request_reply_busy(req, "server busy, please try again.  every host serving this model is busy",
			    sched_retry_after(req->model->tier));
			return;
		}
		request_enqueue(req, true); /* the back-off timer re-dispatches */
		return;
	}
	if (status >= 500 || status == 0) {
		char *msg = backend_message(req, "backend error");
		char *why = xasprintf("HTTP %ld: %s", status, msg);
		fail_before_first_byte(req, why);
		free(why);
		free(msg);
		return;
	}
	/* 4xx: the backend judged the request; pass its answer through. */
	request_close(req, STATS_FAILED, "backend rejected the request");
	request_reply(req, (int)status,
	    strstr(req->up_ctype, "json") ? "application/json; charset=utf-8" : "text/plain; charset=utf-8",
	    req->errbody ? req->errbody : "", req->errbody_len);
}

/* ---- probes: small requests outside the slot accounting ---- */

#define PROBE_TAG ((uintptr_t)1) /* low bit of CURLOPT_PRIVATE marks a probe */
#define PROBE_BODY_MAX (1u << 20)

static size_t
on_probe_data(char *data, size_t size, size_t n, void *ud)
{
	struct probe *pr = ud;
	size_t len = size * n;

	if (pr->len + len > PROBE_BODY_MAX)
		return 0;
	pr->body = xreallocarray(pr->body, pr->len + len + 1, 1);
	memcpy(pr->body + pr->len, data, len);
	pr->len += len;
	pr->body[pr->len] = '\0';
	return len;
}

int
upstream_probe(struct rt_host *h, const char *path, const char *post_body, double timeout_s,
    upstream_probe_cb cb, void *arg)
{
	struct probe *pr = xcalloc(1, sizeof(*pr));
	CURL *e = new_easy(h, path, &pr->headers, timeout_s);
	bool ok = true;

	if (e == NULL) {
		free(pr);
		return -1;
	}
	pr->host = h;
	pr->path = xstrdup(path);
	pr->cb = cb;
	pr->arg = arg;
	if (post_body != NULL) {
		pr->post = xstrdup(post_body);
		EASY_SET(ok, e, CURLOPT_POST, 1L);
		EASY_SET(ok, e, CURLOPT_POSTFIELDS, pr->post);
	}
	EASY_SET(ok, e, CURLOPT_WRITEFUNCTION, on_probe_data);
	EASY_SET(ok, e, CURLOPT_WRITEDATA, pr);
	EASY_SET(ok, e, CURLOPT_PRIVATE, (void *)((uintptr_t)pr | PROBE_TAG));
	if (!ok || curl_multi_add_handle(multi, e) != CURLM_OK) {
		easy_failed(e, &pr->headers, ok ? "the multi handle refused it" : "an option was refused");
		free(pr->path);
		free(pr->post);
		free(pr);
		return -1;
	}
	pr->easy = e;
	TAILQ_INSERT_TAIL(&probes, pr, link);
	active++;
	return 0;
}

static void
probe_free(struct probe *pr)
{
	TAILQ_REMOVE(&probes, pr, link);
	curl_multi_remove_handle(multi, pr->easy);
	easy_put(pr->easy);
	active--;
	curl_slist_free_all(pr->headers);
	free(pr->path);
	free(pr->post);
	free(pr->body);
	free(pr);
}

static void
probe_done(CURL *e, struct probe *pr, CURLcode rc)
{
	long status = 0;

	if (rc == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	pr->cb(pr->host, pr->path, status, pr->body ? pr->body : "", pr->len, pr->arg);
	probe_free(pr);
}

void
upstream_cancel_probes(void)
{
	/* Callbacks see status -1: "cancelled", neither success nor failure. */
	while (!TAILQ_EMPTY(&probes)) {
		struct probe *pr = TAILQ_FIRST(&probes);
		pr->cb(pr->host, pr->path, -1, "", 0, pr->arg);
		probe_free(pr);
	}
}

static void
check_done(void)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
		void *priv = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&priv);
		if ((uintptr_t)priv & PROBE_TAG)
			probe_done(msg->easy_handle, (struct probe *)((uintptr_t)priv & ~PROBE_TAG), msg->data.result);
		else
			transfer_done(priv, msg->data.result);
	}
}
