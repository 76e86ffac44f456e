/*
 * upstream: curl multi (socket-action API) in the event loop.
 *
 * A transfer lives from upstream_start until its CURLMSG_DONE or
 * upstream_abort.  This module moves bytes and reports: the status and
 * Content-Type, each piece of body (to the owner's on_data, which may ask
 * for a pause) and the end (on_done).  What the bytes mean for a request,
 * a client or a retry is decided above it (relay.c).
 */
#include "upstream.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "config.h"
#include "ev.h"
#include "log.h"
#include "sched.h"
#include "xmalloc.h"


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
	struct upstream_xfer *x = ud;
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
		if (vl >= sizeof(x->ctype))
			vl = sizeof(x->ctype) - 1;
		memcpy(x->ctype, v, vl);
		x->ctype[vl] = '\0';
	} else if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		x->ctype[0] = '\0'; /* a new response (after 100 Continue) */
	}
	return len;
}

/* Body bytes: the status is known by now; the owner decides. */
static size_t
on_body(char *data, size_t size, size_t n, void *ud)
{
	struct upstream_xfer *x = ud;
	size_t r;

	if (x->status == 0)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	r = x->on_data(x, data, size * n);
	if (r == CURL_WRITEFUNC_PAUSE)
		x->paused = true; /* curl hands the same bytes again on resume */
	return r;
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
new_easy(const char *base, const char *path, struct curl_slist **headers, double timeout_s)
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
	if ((size_t)snprintf(url, sizeof(url), "%s%s", base, path) >= sizeof(url)) {
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
upstream_start(struct upstream_xfer *x, const char *base, const char *path, const char *body, size_t len,
    double timeout_s)
{
	CURL *e;
	bool ok = true;

	x->status = 0;
	x->ctype[0] = '\0';
	x->paused = false;
	e = new_easy(base, path, &x->headers, timeout_s);
	if (e == NULL)
		return -1;
	EASY_SET(ok, e, CURLOPT_POST, 1L);
	EASY_SET(ok, e, CURLOPT_POSTFIELDS, body);
	EASY_SET(ok, e, CURLOPT_POSTFIELDSIZE, (long)len);
	EASY_SET(ok, e, CURLOPT_HEADERFUNCTION, on_header);
	EASY_SET(ok, e, CURLOPT_HEADERDATA, x);
	EASY_SET(ok, e, CURLOPT_WRITEFUNCTION, on_body);
	EASY_SET(ok, e, CURLOPT_WRITEDATA, x);
	EASY_SET(ok, e, CURLOPT_PRIVATE, x);
	if (!ok || curl_multi_add_handle(multi, e) != CURLM_OK) {
		easy_failed(e, &x->headers, ok ? "the multi handle refused it" : "an option was refused");
		return -1;
	}
	x->easy = e;
	active++;
	return 0;
}

static void
detach(struct upstream_xfer *x)
{
	curl_multi_remove_handle(multi, x->easy);
	easy_put(x->easy);
	curl_slist_free_all(x->headers);
	x->headers = NULL;
	x->easy = NULL;
	x->paused = false;
	active--;
}

const char *
upstream_strerror(CURLcode rc)
{
	return curl_easy_strerror(rc);
}

void
upstream_abort(struct upstream_xfer *x)
{
	if (x->easy != NULL)
		detach(x);
}

void
upstream_resume(struct upstream_xfer *x)
{
	if (x->easy == NULL || !x->paused)
		return;
	x->paused = false;
	if (curl_easy_pause(x->easy, CURLPAUSE_CONT) != CURLE_OK)
		log_debug("curl: unpause failed");
}

/* The transfer ended: detach, then tell the owner (which may start a new
 * one on the same x). */
static void
transfer_done(struct upstream_xfer *x, CURLcode rc)
{
	long status = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	x->status = status;
	detach(x);
	x->on_done(x, rc);
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
	CURL *e = new_easy(h->cfg->url, path, &pr->headers, timeout_s);
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
