/*
 * libFuzzer target for the whole HTTP front: libmicrohttpd, routing, auth,
 * local answers, body parsing, error replies and forwarded requests, in the
 * daemon's own event loop.  Set up once like server_run (config from a temp
 * file, ev, upstream, sched, http; no health probes, so both hosts stay
 * "up" and forwarded requests try their closed port, 127.0.0.1:1, and end
 * in 502, or earlier in a 4xx/503).  Per input: a socketpair, one end handed to MHD with
 * http_adopt_fd(), the request bytes written to the other, the loop run
 * until the exchange is over, our end closed, the loop drained.
 *
 * Input: when it starts like a request line ("[A-Z]{1,16} "), it is sent
 * verbatim, to the daemon without API keys.  Otherwise the first HDR_LEN
 * bytes choose a request (route, method, headers, framing, API keys or
 * not, close mode, a second pipelined request) and the rest is a raw path
 * suffix, a blob (header values, raw header lines) and the body; see the
 * B_* offsets below.
 *
 * Checks after each input, once the connection is gone: no live request,
 * no backend transfer, no connection, every request accounted once
 * (completed + failed + rejected + cancelled = requests), no slot or queue
 * entry left anywhere; every response starts with a valid status line, and
 * every complete application/json body harmonicd sent parses.
 *
 * FUZZ_HTTP_VERBOSE=1 prints each request, its answer and the daemon's
 * debug log: `build-fuzz/fuzz_http FILE` shows what FILE does.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "ev.h"
#include "http.h"
#include "log.h"
#include "relay.h"
#include "request.h"
#include "sched.h"
#include "statsview.h"
#include "upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define API_KEY "fuzz-key-1"
#define MAX_REQUEST (256u * 1024u)   /* bytes sent per input, at most */
#define MAX_RESPONSE (4u << 20)      /* bytes kept for the checks */
#define EXCHANGE_US 100000u          /* phase 1 guard: the answer */
#define QUIET_US 2000u               /* close mode "wait": quiet time */
#define DRAIN_US 2000000u            /* phase 2 guard: cleanup after close */

static const char conf_fmt[] =
    "listen = \"127.0.0.1:0\";\n"
    "queue_timeout = 5.0;\n"
    "request_timeout = 5.0;\n"
    "connect_timeout = 0.5;\n"
    "max_body = 4096;\n"
    "%s\n"
    "log_level = \"error\";\n"
    "hosts = (\n"
    "  { name = \"h1\"; url = \"http://127.0.0.1:1\"; memory_gb = 64.0; num_parallel = 4; },\n"
    "  { name = \"h2\"; url = \"http://127.0.0.1:1/\"; memory_gb = 32.0; num_parallel = 4; }\n"
    ");\n"
    "tiers = (\n"
    "  { name = \"gold\"; weight = 4; queue_depth = 8; reserve = 1; },\n"
    "  { name = \"bulk\"; weight = 1; queue_depth = 2; }\n"
    ");\n"
    "models = (\n"
    "  { name = \"qwen3:4b\"; tier = \"gold\"; base_gb = 2.5; kv_gb = 0.3; num_ctx = 4096; keep_alive = \"30m\";\n"
    "    placements = ( { host = \"h1\"; parallel = 2; }, { host = \"h2\"; parallel = 1; } ); },\n"
    "  { name = \"Coder\"; ollama = \"qwen2.5-coder:7b\"; tier = \"bulk\"; base_gb = 5.0; kv_gb = 0.5;\n"
    "    num_ctx = 8192; keep_alive = 300; placements = ( { host = \"h1\"; parallel = 1; } ); },\n"
    "  { name = \"plain\"; tier = \"bulk\"; base_gb = 1.0; kv_gb = 0.1; num_ctx = 0;\n"
    "    placements = ( { host = \"h2\"; parallel = \"auto\"; max_parallel_slots = 2; } ); }\n"
    ");\n";

/* ---- what a structured input can ask for ---- */

/* Every route of daemon/route.c with its usual method, and a few near
 * misses.  body: a valid body without its closing brace (NULL: none). */
static const struct target {
	const char *method;
	const char *path;
	const char *body;
} targets[] = {
	{"GET", "/", NULL},
	{"HEAD", "/", NULL},
	{"GET", "/api/version", NULL},
	{"GET", "/api/tags", NULL},
	{"HEAD", "/api/tags", NULL},
	{"GET", "/api/ps", NULL},
	{"POST", "/api/generate", "{\"model\":\"qwen3:4b\",\"prompt\":\"hi\",\"stream\":false"},
	{"POST", "/api/generate", "{\"model\":\"Coder\",\"prompt\":\"hi\""},
	{"POST", "/api/chat", "{\"model\":\"Coder\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"},
	{"POST", "/api/embed", "{\"model\":\"plain\",\"input\":\"hi\""},
	{"POST", "/api/embeddings", "{\"model\":\"plain\",\"prompt\":\"hi\""},
	{"POST", "/api/show", "{\"name\":\"coder:latest\""},
	{"POST", "/api/pull", "{\"model\":\"x\""},
	{"POST", "/api/push", NULL},
	{"POST", "/api/create", NULL},
	{"POST", "/api/copy", NULL},
	{"DELETE", "/api/delete", "{\"model\":\"plain\""},
	{"POST", "/v1/chat/completions", "{\"model\":\"Coder\",\"stream\":true,\"messages\":[]"},
	{"POST", "/v1/completions", "{\"model\":\"qwen3:4b\",\"prompt\":\"hi\""},
	{"POST", "/v1/embeddings", "{\"model\":\"plain\",\"input\":[\"a\",\"b\"]"},
	{"POST", "/v1/messages", "{\"model\":\"Coder\",\"max_tokens\":8,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"},
	{"POST", "/v1/messages", "{\"model\":\"qwen3:4b\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"},
	{"POST", "/v1/responses", "{\"model\":\"Coder\",\"input\":\"hi\",\"stream\":true"},
	{"POST", "/v1/responses", "{\"model\":\"plain\",\"input\":[{\"role\":\"user\",\"content\":\"hi\"}]"},
	{"GET", "/v1/models", NULL},
	{"GET", "/v1/models/", NULL},
	{"GET", "/v1/models/qwen3:4b", NULL},
	{"GET", "/v1/models/coder", NULL},
	{"GET", "/healthz", NULL},
	{"HEAD", "/healthz", NULL},
	{"GET", "/readyz", NULL},
	{"GET", "/stats", NULL},
	{"GET", "/metrics", NULL},
	{"GET", "/dashboard", NULL},
	{"POST", "/admin/reload", NULL},
	{"POST", "/admin/drain", NULL},
	{"GET", "/nope", NULL},
	{"GET", "/api/tags/", NULL},
	{"OPTIONS", "*", NULL},
	{"GET", "//api/tags", NULL},
};
#define N_TARGETS (sizeof(targets) / sizeof(targets[0]))

static const char *const methods[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "get", "BREW", "CONNECT", "TRACE"};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

static const char *const models[] = {"qwen3:4b", "Coder", "plain", "coder:LATEST", "QWEN3:4B", "nope",
	"", "qwen2.5-coder:7b"};
#define N_MODELS (sizeof(models) / sizeof(models[0]))

static const char *const versions[] = {"HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2"};

static const char *const odd_lengths[] = {"0", "-1", "99999999999999999999", "4097", "1e3", " 12", "+5",
	"18446744073709551616"};

static const size_t chunk_sizes[] = {1, 7, 100, SIZE_MAX};

enum close_mode {
	CLOSE_HALF,   /* shutdown(SHUT_WR) once written, read to EOF */
	CLOSE_HALF2,
	CLOSE_WAIT,   /* keep the connection open until the answers are in */
	CLOSE_ABRUPT, /* close() as soon as everything is written */
};

/* The fixed head of a structured input (missing bytes read as 0). */
enum {
	B_MODE,    /* 0-1 close mode, 2-3 version, 4 pipelined, 5-6 body kind, 7 Content-Type */
	B_TARGET,  /* index into targets */
	B_METHOD,  /* 0-3 method (>= N_METHODS: the target's), 4-7 path variant */
	B_HDR1,    /* 0 no Host, 1-2 auth, 3 agent, 4-5 Connection, 6 raw blob headers, 7 second Host */
	B_HDR2,    /* 0-1 framing, 2-4 chunk size / odd length, 5 Expect, 6 duplicate framing, 7 bare LF */
	B_SUFFIX,  /* raw path suffix length */
	B_BLOB_LO, /* blob length, little endian */
	B_BLOB_HI,
	B_INFLATE, /* 0-3 body to k KiB, 4-7 blob to k*4 KiB */
	B_TARGET2, /* the pipelined request's target */
	B_MODEL,   /* 0-2 model of the template body, 3 chunk extension, 4 trailer, 5 no API keys */
	HDR_LEN
};

/* ---- a byte buffer ---- */

struct buf {
	char *p;
	size_t len, cap;
};

static void
put(struct buf *b, const void *s, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (b->p == NULL)
			abort();
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void
puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
putf(struct buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		abort();
	put(b, tmp, (size_t)n);
}

/* s repeated to at least n bytes (s empty: 'x'). */
static void
inflate(struct buf *out, const uint8_t *s, size_t len, size_t n)
{
	if (len == 0) {
		s = (const uint8_t *)"x";
		len = 1;
	}
	while (out->len < n)
		put(out, s, len);
}

/* ---- request generation ---- */

struct shape {
	uint8_t h[HDR_LEN];
	const uint8_t *suffix, *blob, *rest;
	size_t suffix_len, blob_len, rest_len;
	struct buf blobx; /* the blob, inflated */
};

static void
parse_shape(struct shape *s, const uint8_t *data, size_t size)
{
	size_t n = size < HDR_LEN ? size : HDR_LEN;

	memset(s, 0, sizeof(*s));
	memcpy(s->h, data, n);
	data += n;
	size -= n;
	s->suffix_len = s->h[B_SUFFIX] < size ? s->h[B_SUFFIX] : size;
	s->suffix = data;
	data += s->suffix_len;
	size -= s->suffix_len;
	s->blob_len = (size_t)s->h[B_BLOB_LO] | (size_t)s->h[B_BLOB_HI] << 8;
	if (s->blob_len > size)
		s->blob_len = size;
	s->blob = data;
	s->rest = data + s->blob_len;
	s->rest_len = size - s->blob_len;
	put(&s->blobx, s->blob, s->blob_len);
	if (s->h[B_INFLATE] >> 4)
		inflate(&s->blobx, s->blob, s->blob_len, (size_t)(s->h[B_INFLATE] >> 4) * 4096u);
}

/* The body of the first request. */
static void
make_body(const struct shape *s, const struct target *t, struct buf *body)
{
	switch ((s->h[B_MODE] >> 5) & 3) {
	case 0:
	case 3:
		put(body, s->rest, s->rest_len);
		break;
	case 1: /* {"model":"M"REST} */
		puts_(body, "{\"model\":\"");
		puts_(body, models[(s->h[B_MODEL] & 7) % N_MODELS]);
		puts_(body, "\"");
		put(body, s->rest, s->rest_len);
		puts_(body, "}");
		break;
	case 2: /* the target's valid body with REST before the closing brace */
		if (t->body != NULL)
			puts_(body, t->body);
		else
			puts_(body, "{\"model\":\"qwen3:4b\"");
		put(body, s->rest, s->rest_len);
		puts_(body, "}");
		break;
	}
	if (s->h[B_INFLATE] & 15) {
		struct buf copy = {0};
		put(&copy, body->p, body->len);
		inflate(body, (const uint8_t *)copy.p, copy.len, (size_t)(s->h[B_INFLATE] & 15) * 1024u);
		free(copy.p);
	}
}

/* One request: line, headers, body.  Returns whether it is a HEAD. */
static bool
make_request(struct buf *o, const struct shape *s, const struct target *t, const struct buf *body, bool second)
{
	const uint8_t m = s->h[B_MODE], h1 = s->h[B_HDR1], h2 = second ? 0 : s->h[B_HDR2];
	const char *eol = (h2 & 0x80) ? "\n" : "\r\n";
	const char *method = t->method;
	int framing = h2 & 3;

	if (!second && (s->h[B_METHOD] & 15) < N_METHODS)
		method = methods[s->h[B_METHOD] & 15];

	/* Request line. */
	puts_(o, method);
	puts_(o, " ");
	if (!second && (s->h[B_METHOD] >> 4) == 13)
		puts_(o, "http://x");
	if (!second && (s->h[B_METHOD] >> 4) == 14 && t->path[0] == '/' && t->path[1] != '\0') {
		/* Every letter of the path percent-encoded: routed after unescaping. */
		for (const char *p = t->path; *p; p++) {
			if (*p >= 'a' && *p <= 'z')
				putf(o, "%%%02X", (unsigned)*p);
			else
				put(o, p, 1);
		}
	} else {
		puts_(o, t->path);
	}
	if (!second) {
		put(o, s->suffix, s->suffix_len);
		if ((s->h[B_METHOD] >> 4) == 12)
			puts_(o, "?x=1&y=%FF");
		else if ((s->h[B_METHOD] >> 4) == 15)
			puts_(o, "%00");
	}
	puts_(o, " ");
	puts_(o, versions[(m >> 2) & 3]);
	puts_(o, eol);

	/* Headers. */
	if (!(h1 & 1))
		putf(o, "Host: x%s", eol);
	switch ((h1 >> 1) & 3) {
	case 0:
		putf(o, "Authorization: Bearer " API_KEY "%s", eol);
		break;
	case 1:
		break;
	case 2:
		puts_(o, "Authorization: Bearer ");
		put(o, s->blobx.p, second ? 0 : s->blobx.len);
		puts_(o, eol);
		break;
	case 3:
		putf(o, "x-api-key: " API_KEY "%sauthorization: bEaReR   " API_KEY "  %s", eol, eol);
		break;
	}
	if ((h1 & 8) && !second) {
		puts_(o, "X-Harmonic-Agent: ");
		put(o, s->blobx.p, s->blobx.len);
		puts_(o, eol);
	}
	switch ((h1 >> 4) & 3) {
	case 1: putf(o, "Connection: keep-alive%s", eol); break;
	case 2: putf(o, "Connection: close%s", eol); break;
	case 3: putf(o, "Connection: Upgrade%sUpgrade: h2c%s", eol, eol); break;
	default: break;
	}
	if (h1 & 0x80)
		putf(o, "Host: y%s", eol);
	if (m & 0x80)
		putf(o, "Content-Type: application/json%s", eol);
	if (h2 & 0x20)
		putf(o, "Expect: 100-continue%s", eol);
	if ((h1 & 0x40) && !second) {
		/* The blob as raw header lines. */
		put(o, s->blobx.p, s->blobx.len);
		puts_(o, eol);
	}
	if (framing == 0 && (body->len > 0 || strcmp(method, "POST") == 0))
		putf(o, "Content-Length: %zu%s", body->len, eol);
	else if (framing == 1)
		putf(o, "Transfer-Encoding: chunked%s", eol);
	else if (framing == 3)
		putf(o, "Content-Length: %s%s", odd_lengths[(h2 >> 2) & 7], eol);
	if (h2 & 0x40) {
		/* Conflicting framing. */
		if (framing == 1)
			putf(o, "Content-Length: %zu%s", body->len, eol);
		else
			putf(o, "Content-Length: %zu%s", body->len + 1, eol);
	}
	puts_(o, eol);

	/* Body. */
	if (framing == 1) {
		size_t step = chunk_sizes[(h2 >> 2) & 3];
		bool ext = !second && (s->h[B_MODEL] & 0x08);
		for (size_t off = 0; off < body->len;) {
			size_t n = body->len - off < step ? body->len - off : step;
			putf(o, "%zx%s%s", n, ext ? ";ext=\"1\"" : "", eol);
			put(o, body->p + off, n);
			puts_(o, eol);
			off += n;
		}
		putf(o, "0%s", eol);
		if (!second && (s->h[B_MODEL] & 0x10))
			putf(o, "X-Trailer: 1%s", eol);
		puts_(o, eol);
	} else {
		put(o, body->p, body->len);
	}
	return strcmp(method, "HEAD") == 0;
}

/* ---- the client end ---- */

static struct client {
	int fd;
	struct ev_io io;
	bool watching;
	const char *out;
	size_t out_len, out_off;
	enum close_mode mode;
	bool eof, closed;
	struct buf in;      /* what came back, up to MAX_RESPONSE */
	size_t in_total;
	int expect;         /* answers to expect (structured inputs) */
	bool head[2];       /* request i was a HEAD */
	int done;           /* complete answers parsed so far */
	int phase;          /* 1: exchange, 2: drain */
} cl;

static struct ev_timer guard, quiet;
static bool guard_fired;

static void
client_unwatch(void)
{
	if (cl.watching) {
		ev_io_del(&cl.io);
		cl.watching = false;
	}
}

static void
client_close(void)
{
	client_unwatch();
	if (!cl.closed) {
		close(cl.fd);
		cl.closed = true;
	}
}

static int check_responses(bool final);

static void
flush_out(void)
{
	while (cl.out_off < cl.out_len) {
		ssize_t n = send(cl.fd, cl.out + cl.out_off, cl.out_len - cl.out_off, MSG_NOSIGNAL);
		if (n > 0) {
			cl.out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		cl.out_off = cl.out_len; /* MHD closed on us: stop sending */
	}
	if (cl.watching)
		ev_io_mod(&cl.io, EPOLLIN | EPOLLRDHUP);
	switch (cl.mode) {
	case CLOSE_HALF:
	case CLOSE_HALF2:
		shutdown(cl.fd, SHUT_WR);
		break;
	case CLOSE_ABRUPT:
		client_close();
		ev_break();
		break;
	case CLOSE_WAIT:
		ev_timer_start(&quiet, QUIET_US);
		break;
	}
}

static void
on_client(int fd, uint32_t events, void *arg)
{
	char tmp[16384];
	ssize_t n;

	if ((events & EPOLLOUT) && cl.out_off < cl.out_len)
		flush_out();
	if (cl.closed || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
		return;
	while ((n = recv(fd, tmp, sizeof(tmp), 0)) > 0) {
		cl.in_total += (size_t)n;
		if (cl.in.len + (size_t)n <= MAX_RESPONSE)
			put(&cl.in, tmp, (size_t)n);
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		cl.eof = true;
		client_unwatch();
		ev_break();
		return;
	}
	if (cl.mode == CLOSE_WAIT) {
		if (cl.expect > 0 && check_responses(false) >= cl.expect)
			ev_break();
		else if (cl.out_off == cl.out_len)
			ev_timer_start(&quiet, QUIET_US);
	}
}

static void
on_guard(void *arg)
{
	guard_fired = true;
	ev_break();
}

/* Nothing came back for a while: stop waiting unless a request is still
 * on its way to an answer (queued, at the backend, being answered). */
static void
count_busy(struct request *req, void *arg)
{
	if (req->state != REQUEST_READING && req->state != REQUEST_CLOSED)
		++*(int *)arg;
}

static void
on_quiet(void *arg)
{
	int busy = 0;

	request_foreach(count_busy, &busy);
	if (busy == 0)
		ev_break();
	else
		ev_timer_start(&quiet, QUIET_US);
}

static bool
drained(void)
{
	return http_connections() == 0 && request_live_count() == 0 && upstream_active() == 0;
}

/* Before each wait in the drain phase: stop as soon as all is clean (the
 * deferred frees of this iteration still run before ev_run returns). */
static int64_t
prepare(void *arg)
{
	if (cl.phase == 2 && drained()) {
		ev_break();
		return 0;
	}
	return -1;
}

/* ---- checks ---- */

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_http: invariant broken: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (cl.in.len > 0)
		fprintf(stderr, "fuzz_http: response bytes (%zu): %.*s\n", cl.in.len,
		    (int)(cl.in.len > 2000 ? 2000 : cl.in.len), cl.in.p);
	abort();
}

static const char *
find_crlf(const char *p, const char *end)
{
	for (; p + 1 < end; p++)
		if (p[0] == '\r' && p[1] == '\n')
			return p;
	return NULL;
}

/*
 * Parse the answers received so far; returns how many are complete.  A
 * structured input knows which requests were HEADs; a raw one only gets
 * its first status line checked.  final: the connection is over.
 */
static int
check_responses(bool final)
{
	const char *p, *end;
	int n = 0;

	if (cl.in.len == 0 || cl.in_total > cl.in.len)
		return 0;
	p = cl.in.p;
	end = cl.in.p + cl.in.len;
	if (cl.in.len >= 5 && memcmp(p, "HTTP/", 5) != 0)
		die("the answer does not start with a status line");
	while (p < end && n < 2) {
		const char *line = find_crlf(p, end), *h, *body;
		long long clen = -1;
		bool chunked = false, json = false, last = false;
		int status;
		char sl[16];

		if (line == NULL)
			break;
		if (line - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[12] != ' ')
			die("bad status line");
		memcpy(sl, p + 9, 3);
		sl[3] = '\0';
		status = atoi(sl);
		if (status < 100 || status > 599)
			die("bad status %d", status);
		/* Headers. */
		for (h = line + 2;;) {
			const char *e = find_crlf(h, end);
			if (e == NULL)
				return n;
			if (e == h) {
				body = e + 2;
				break;
			}
			if ((size_t)(e - h) > 15 && strncasecmp(h, "Content-Length:", 15) == 0)
				clen = strtoll(h + 15, NULL, 10);
			else if ((size_t)(e - h) > 18 && strncasecmp(h, "Transfer-Encoding:", 18) == 0)
				chunked = memmem(h, (size_t)(e - h), "chunked", 7) != NULL;
			else if ((size_t)(e - h) > 13 && strncasecmp(h, "Content-Type:", 13) == 0)
				json = memmem(h, (size_t)(e - h), "application/json", 16) != NULL;
			else if ((size_t)(e - h) > 11 && strncasecmp(h, "Connection:", 11) == 0)
				last = memmem(h, (size_t)(e - h), "close", 5) != NULL;
			h = e + 2;
		}
		if (status < 200) { /* 100 Continue */
			p = body;
			continue;
		}
		if (cl.expect == 0)
			return n; /* raw input: the first status line was enough */
		if (cl.head[n] || status == 204 || status == 304) {
			p = body;
		} else if (chunked) {
			struct buf dec = {0};
			const char *q = body;
			for (;;) {
				const char *e = find_crlf(q, end);
				unsigned long long len;
				char *stop;
				if (e == NULL) {
					free(dec.p);
					return n;
				}
				len = strtoull(q, &stop, 16);
				if (stop == q)
					die("bad chunk header");
				if (len == 0) {
					/* Trailers until an empty line. */
					const char *t = e + 2, *te;
					while ((te = find_crlf(t, end)) != NULL && te != t)
						t = te + 2;
					if (te == NULL) {
						free(dec.p);
						return n;
					}
					p = te + 2;
					break;
				}
				if ((size_t)(end - (e + 2)) < len + 2) {
					free(dec.p);
					return n;
				}
				put(&dec, e + 2, (size_t)len);
				q = e + 2 + len + 2;
			}
			if (json) {
				json_t *o = json_loadb(dec.p, dec.len, 0, NULL);
				if (!json_is_object(o))
					die("a chunked JSON answer (status %d) does not parse", status);
				json_decref(o);
			}
			free(dec.p);
		} else if (clen >= 0) {
			if ((size_t)(end - body) < (size_t)clen)
				return n;
			if (json) {
				json_t *o = json_loadb(body, (size_t)clen, 0, NULL);
				if (!json_is_object(o))
					die("a JSON answer (status %d, %lld bytes) does not parse", status, clen);
				json_decref(o);
			}
			p = body + clen;
		} else {
			/* Delimited by the end of the connection. */
			if (!final)
				return n;
			p = end;
		}
		n++;
		if (last)
			break;
	}
	return n;
}

static void
check_state(void)
{
	const struct stats_totals *t = &sched->totals;
	uint64_t sum = 0;

	if (request_live_count() != 0)
		die("%llu requests still live after the connection closed",
		    (unsigned long long)request_live_count());
	if (upstream_active() != 0)
		die("%d backend transfers still running", upstream_active());
	if (http_connections() != 0)
		die("%u connections still open", http_connections());
	for (int i = 0; i < STATS_OUTCOME_COUNT; i++)
		sum += t->outcome[i];
	if (sum != t->requests)
		die("totals: %llu requests but %llu outcomes (completed %llu, failed %llu, rejected %llu, cancelled %llu)",
		    (unsigned long long)t->requests, (unsigned long long)sum,
		    (unsigned long long)t->outcome[STATS_COMPLETED], (unsigned long long)t->outcome[STATS_FAILED],
		    (unsigned long long)t->outcome[STATS_REJECTED], (unsigned long long)t->outcome[STATS_CANCELLED]);
	for (int i = 0; i < sched->n_hosts; i++) {
		const struct rt_host *h = &sched->hosts[i];
		if (h->in_flight != 0)
			die("host %s: in_flight %d", h->cfg->name, h->in_flight);
		for (int k = 0; k < sched->n_tiers; k++)
			if (h->tier_in_flight[k] != 0)
				die("host %s: tier %d in_flight %d", h->cfg->name, k, h->tier_in_flight[k]);
	}
	for (int i = 0; i < sched->n_tiers; i++)
		if (sched->tiers[i].in_flight != 0 || sched->tiers[i].queued != 0)
			die("tier %s: in_flight %d, queued %d", sched->tiers[i].cfg->name, sched->tiers[i].in_flight,
			    sched->tiers[i].queued);
	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		if (m->queued != 0 || !TAILQ_EMPTY(&m->agents))
			die("model %s: %d queued", m->cfg->name, m->queued);
		for (int k = 0; k < m->n_placements; k++)
			if (m->placements[k].in_flight != 0)
				die("model %s on %s: in_flight %d", m->cfg->name, m->placements[k].host->cfg->name,
				    m->placements[k].in_flight);
	}
}

/*
 * The same configuration with and without api_keys_file.  sched runs on
 * the first; each input picks the one HTTP serves with http_set_config
 * (what a reload that drops the keys does): raw inputs are served open, so
 * a bare request line reaches every handler; structured ones require the
 * key unless they ask otherwise, so 401 and its variants are reached too.
 * No admin_keys_file: /admin/reload would reload a file server_run never
 * named here, /admin/drain would stop the fuzzed daemon for good.
 */
static struct config *cfg_keys, *cfg_open;

/* FUZZ_HTTP_VERBOSE=1: each request and its answer on stderr (escaped). */
static bool verbose;

static void
dump(const char *what, const char *p, size_t n)
{
	fprintf(stderr, "--- %s (%zu bytes)\n", what, n);
	for (size_t i = 0; i < n && i < 4096; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\n')
			fputs("\\n\n", stderr);
		else if (c == '\r')
			fputs("\\r", stderr);
		else if (c < 32 || c > 126 || c == '\\')
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
	fputc('\n', stderr);
}

/* ---- setup ---- */

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		perror(path);
		abort();
	}
}

static void
setup(void)
{
	char dir[] = "/tmp/fuzz_http.XXXXXX", keys[64], conf[64];
	struct config_diags d = {0};
	struct config *cfg;
	struct buf text = {0};
	int n;

	verbose = getenv("FUZZ_HTTP_VERBOSE") != NULL;
	log_init("fuzz_http", verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERR);
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(keys, sizeof(keys), "%s/keys", dir);
	snprintf(conf, sizeof(conf), "%s/harmonicd.conf", dir);
	write_file(keys, "# agents\n" API_KEY "\n  other-key  \n");
	for (int open = 0; open < 2; open++) {
		char line[128] = "";
		if (!open)
			snprintf(line, sizeof(line), "api_keys_file = \"%s\";", keys);
		n = snprintf(NULL, 0, conf_fmt, line);
		text.p = malloc((size_t)n + 1);
		snprintf(text.p, (size_t)n + 1, conf_fmt, line);
		write_file(conf, text.p);
		free(text.p);
		cfg = config_load(conf, &d);
		if (cfg == NULL) {
			config_diags_print(&d, stderr);
			abort();
		}
		config_diags_free(&d);
		*(open ? &cfg_open : &cfg_keys) = cfg;
	}
	unlink(keys);
	unlink(conf);
	rmdir(dir);
	cfg = cfg_keys;

	if (ev_init() < 0 || upstream_init(cfg->max_connections) < 0)
		abort();
	sched_init(cfg, &relay_sched_hooks);
	if (http_init(cfg) < 0)
		abort();
	statsview_start();
	ev_add_prepare(prepare, NULL);
	ev_timer_init(&guard, on_guard, NULL);
	ev_timer_init(&quiet, on_quiet, NULL);
}

/* Raw input: it starts like a request line. */
static bool
looks_raw(const uint8_t *data, size_t size)
{
	size_t i = 0;

	while (i < size && i < 16 && data[i] >= 'A' && data[i] <= 'Z')
		i++;
	return i > 0 && i < size && data[i] == ' ';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct buf req = {0};
	int sv[2];

	if (!ready) {
		setup();
		ready = true;
	}
	memset(&cl, 0, sizeof(cl));
	if (looks_raw(data, size)) {
		put(&req, data, size);
		cl.mode = CLOSE_HALF;
		http_set_config(cfg_open);
	} else {
		struct shape s;
		struct buf body = {0}, empty = {0};
		const struct target *t;

		parse_shape(&s, data, size);
		t = &targets[s.h[B_TARGET] % N_TARGETS];
		make_body(&s, t, &body);
		cl.head[0] = make_request(&req, &s, t, &body, false);
		cl.expect = 1;
		if (s.h[B_MODE] & 0x10) {
			const struct target *t2 = &targets[s.h[B_TARGET2] % N_TARGETS];
			struct buf body2 = {0};
			if (t2->body != NULL) {
				puts_(&body2, t2->body);
				puts_(&body2, "}");
			}
			cl.head[1] = make_request(&req, &s, t2, t2->body ? &body2 : &empty, true);
			cl.expect = 2;
			free(body2.p);
		}
		cl.mode = (enum close_mode)(s.h[B_MODE] & 3);
		http_set_config((s.h[B_MODEL] & 0x20) ? cfg_open : cfg_keys);
		free(body.p);
		free(s.blobx.p);
	}
	if (req.len > MAX_REQUEST)
		req.len = MAX_REQUEST;
	if (verbose)
		dump("request", req.p, req.len);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		abort();
	}
	if (http_adopt_fd(sv[0]) < 0) {
		fprintf(stderr, "fuzz_http: http_adopt_fd refused the connection\n");
		abort();
	}
	cl.fd = sv[1];
	cl.out = req.p;
	cl.out_len = req.len;
	cl.io.fd = cl.fd;
	cl.io.cb = on_client;
	if (ev_io_add(&cl.io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) < 0)
		abort();
	cl.watching = true;

	/* Phase 1: the exchange. */
	cl.phase = 1;
	guard_fired = false;
	ev_timer_start(&guard, EXCHANGE_US);
	flush_out();
	if (!cl.closed)
		ev_run();
	ev_timer_stop(&quiet);
	client_close();
	if (verbose)
		dump(cl.eof ? "answer, then EOF" : "answer", cl.in.p, cl.in.len);
	cl.done = check_responses(cl.eof);

	/* Phase 2: our end is closed; MHD completes the connection, the
	 * request is closed and freed. */
	cl.phase = 2;
	guard_fired = false;
	ev_timer_start(&guard, DRAIN_US);
	if (!drained())
		ev_run();
	ev_timer_stop(&guard);
	if (guard_fired)
		fprintf(stderr, "fuzz_http: not drained after %u ms\n", DRAIN_US / 1000u);
	check_state();

	free(req.p);
	free(cl.in.p);
	return 0;
}
