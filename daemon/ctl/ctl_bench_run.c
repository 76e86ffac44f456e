/*
 * ctl_bench_run: one burst of identical streaming requests over curl multi.
 *
 * Every request of a burst is added to one multi handle before the first
 * curl_multi_perform, so they leave together; one thread drives them all
 * with curl_multi_poll.  (The daemon uses the socket-action API because it
 * shares its loop with MHD; a CLI with nothing else to wait on does not
 * need that.)  The NDJSON stream is cut into lines here, whatever the
 * chunking: curl may hand us half a line, or several, per write.
 */
#include "ctl_bench.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "xmalloc.h"

#define LINE_MAX_BYTES (1u << 20) /* a longer line is an error */

struct bench_runner {
	const struct bench_opts *opts;
	CURLM *multi;
	struct curl_slist *headers;
};

/* The state of one request while its burst runs. */
struct stream {
	struct bench_request *rq;
	CURL *easy;
	double t0;              /* first send of the burst, monotonic s */
	char *line;             /* the current partial line; owned */
	size_t len, cap;
	bool overflow;
	bool error_line;        /* an {"error":...} line arrived */
	bool done;              /* the "done":true line arrived */
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *
bench_target_name(enum bench_target t)
{
	static const char *const names[BENCH_TARGET_COUNT] = {
		[BENCH_TARGET_DIRECT] = "direct",
		[BENCH_TARGET_THROUGH] = "through",
	};

	return t < BENCH_TARGET_COUNT ? names[t] : "?";
}

struct bench_runner *
bench_runner_new(const struct bench_opts *opts)
{
	struct bench_runner *r;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "harmonicctl bench: curl_global_init failed\n");
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->opts = opts;
	r->multi = curl_multi_init();
	if (r->multi == NULL) {
		fprintf(stderr, "harmonicctl bench: curl_multi_init failed\n");
		free(r);
		curl_global_cleanup();
		return NULL;
	}
	r->headers = curl_slist_append(NULL, "Content-Type: application/json");
	return r;
}

void
bench_runner_free(struct bench_runner *r)
{
	if (r == NULL)
		return;
	curl_multi_cleanup(r->multi);
	curl_slist_free_all(r->headers);
	free(r);
	curl_global_cleanup();
}

void
bench_trial_free(struct bench_trial *t)
{
	free(t->reqs);
	t->reqs = NULL;
}

static void
set_error(struct bench_request *rq, const char *msg)
{
	if (rq->error[0] == '\0')
		snprintf(rq->error, sizeof(rq->error), "%s", msg);
}

/*
 * Only the final line and error lines carry anything we need; the others
 * are just tokens.  A cheap scan picks the lines worth a JSON parse; a
 * false positive (the word inside the generated text) only costs the parse.
 */
static bool
line_may_matter(const char *s, size_t n)
{
	const char *p = memmem(s, n, "\"done\"", 6);

	if (memmem(s, n, "\"error\"", 7) != NULL)
		return true;
	while (p != NULL) {
		const char *q = p + 6, *end = s + n;

		while (q < end && (*q == ' ' || *q == ':' || *q == '\t'))
			q++;
		if (q < end && *q == 't')
			return true;
		p = memmem(q, (size_t)(end - q), "\"done\"", 6);
	}
	return false;
}

static void
parse_line(struct stream *st, const char *s, size_t n)
{
	struct bench_request *rq = st->rq;
	const json_t *v;
	json_t *o;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n == 0)
		return;
	if (rq->ttft_s < 0)
		rq->ttft_s = now_s() - st->t0;
	if (!line_may_matter(s, n))
		return;
	o = json_loadb(s, n, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return;
	}
	if ((v = json_object_get(o, "error")) != NULL) {
		st->error_line = true;
		set_error(rq, json_is_string(v) ? json_string_value(v) : "error line");
	}
	if (json_is_true(json_object_get(o, "done"))) {
		st->done = true;
		rq->end_s = now_s() - st->t0;
		v = json_object_get(o, "eval_count");
		rq->eval_count = json_is_integer(v) ? json_integer_value(v) : 0;
		v = json_object_get(o, "eval_duration");
		rq->eval_duration = json_is_integer(v) ? json_integer_value(v) : 0;
	}
	json_decref(o);
}

static void
append(struct stream *st, const char *buf, size_t n)
{
	if (st->overflow)
		return;
	if (st->len + n > LINE_MAX_BYTES) {
		st->overflow = true;
		set_error(st->rq, "response line longer than 1 MiB");
		return;
	}
	st->line = xgrow(st->line, &st->cap, st->len + n, 512);
	memcpy(st->line + st->len, buf, n);
	st->len += n;
}

/* Cut the bytes into lines; a line split across writes waits in st->line. */
static size_t
on_data(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct stream *st = arg;
	size_t n = size * nmemb, left = n;

	while (left > 0) {
		const char *nl = memchr(buf, '\n', left);
		size_t take = nl ? (size_t)(nl - buf) : left;

		if (nl == NULL) {
			append(st, buf, take);
			break;
		}
		if (st->len == 0 && !st->overflow) {
			parse_line(st, buf, take);  /* whole line: no copy */
		} else {
			append(st, buf, take);
			if (!st->overflow)
				parse_line(st, st->line, st->len);
			st->len = 0;
			st->overflow = false;
		}
		buf += take + 1;
		left -= take + 1;
	}
	return n;
}

static void
finish_stream(struct stream *st, CURLcode rc)
{
	struct bench_request *rq = st->rq;
	long status = 0;

	if (st->len > 0 && !st->overflow)
		parse_line(st, st->line, st->len); /* a body without a newline */
	st->len = 0;
	curl_easy_getinfo(st->easy, CURLINFO_RESPONSE_CODE, &status);
	rq->status = (int)status;
	if (rc != CURLE_OK)
		set_error(rq, curl_easy_strerror(rc));
	else if (status != 200) {
		/* Keep the body's {"error":...} message after the status. */
		char msg[sizeof(rq->error) + 32];

		snprintf(msg, sizeof(msg), "HTTP %ld%s%s", status,
		    rq->error[0] ? ": " : "", rq->error);
		memcpy(rq->error, msg, sizeof(rq->error) - 1);
		rq->error[sizeof(rq->error) - 1] = '\0';
	} else if (!st->done)
		set_error(rq, "stream ended without a done line");
	rq->ok = rc == CURLE_OK && status == 200 && st->done &&
	    !st->error_line && !st->overflow && rq->error[0] == '\0';
	if (!st->done)
		rq->end_s = now_s() - st->t0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of n sorted values (n > 0). */
static double
percentile(const double *v, int n, double p)
{
	int rank = (int)(p / 100.0 * n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static void
summarize(struct bench_trial *t, double divisor)
{
	double *ttft = xreallocarray(NULL, (size_t)t->level, sizeof(*ttft));
	double last_ok = 0, last_any = 0, rate_sum = 0;
	int nttft = 0, nrate = 0;

	for (int i = 0; i < t->level; i++) {
		const struct bench_request *rq = &t->reqs[i];

		if (rq->end_s > last_any)
			last_any = rq->end_s;
		if (!rq->ok) {
			t->errors++;
			continue;
		}
		t->ok++;
		t->tokens += rq->eval_count;
		if (rq->end_s > last_ok)
			last_ok = rq->end_s;
		if (rq->ttft_s >= 0)
			ttft[nttft++] = rq->ttft_s;
		if (rq->eval_duration > 0) {
			rate_sum += (double)rq->eval_count /
			    ((double)rq->eval_duration / 1e9);
			nrate++;
		}
	}
	/* "To the last done": a failure that trails the burst is not work. */
	t->wall_s = t->ok > 0 ? last_ok : last_any;
	t->agg_tps = t->wall_s > 0 ? (double)t->tokens / t->wall_s / divisor : 0;
	t->req_tps = nrate > 0 ? rate_sum / nrate : 0;
	if (nttft > 0) {
		qsort(ttft, (size_t)nttft, sizeof(*ttft), cmp_double);
		t->ttft_p50_s = percentile(ttft, nttft, 50) * divisor;
		t->ttft_p95_s = percentile(ttft, nttft, 95) * divisor;
	}
	free(ttft);
}

static char *
request_body(const struct bench_opts *o, const char *model, long num_predict)
{
	json_t *options = json_pack("{s:I}", "num_ctx", (json_int_t)o->num_ctx);
	json_t *body;
	char *text;

	if (num_predict >= 0)
		json_object_set_new(options, "num_predict",
		    json_integer(num_predict));
	body = json_pack("{s:s, s:s, s:b, s:o}", "model", model, "prompt",
	    o->prompt, "stream", 1, "options", options);
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL)
		fatalx("out of memory");
	return text;
}

int
bench_runner_burst(struct bench_runner *r, const char *url,
    const char *model, long num_predict, int level, struct bench_trial *out)
{
	char *endpoint = xasprintf("%s/api/generate", url);
	char *body = request_body(r->opts, model, num_predict);
	struct stream *st = xcalloc((size_t)level, sizeof(*st));
	int running = 0, rc = 0;
	double t0;

	memset(out, 0, sizeof(*out));
	out->level = level;
	out->reqs = xcalloc((size_t)level, sizeof(*out->reqs));
	for (int i = 0; i < level; i++) {
		CURL *e = curl_easy_init();

		if (e == NULL) {
			fprintf(stderr, "harmonicctl bench: curl_easy_init failed\n");
			rc = -1;
			goto out;
		}
		st[i].rq = &out->reqs[i];
		st[i].rq->ttft_s = -1;
		st[i].easy = e;
		curl_easy_setopt(e, CURLOPT_URL, endpoint);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
		    (long)(r->opts->timeout_s * 1000));
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &st[i]);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &st[i]);
		curl_multi_add_handle(r->multi, e);
	}

	t0 = now_s();
	for (int i = 0; i < level; i++)
		st[i].t0 = t0;
	do {
		CURLMcode mc = curl_multi_perform(r->multi, &running);
		struct CURLMsg *msg;
		int left;

		if (mc == CURLM_OK && running > 0)
			mc = curl_multi_poll(r->multi, NULL, 0, 1000, NULL);
		if (mc != CURLM_OK) {
			fprintf(stderr, "harmonicctl bench: curl: %s\n",
			    curl_multi_strerror(mc));
			rc = -1;
			break;
		}
		while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
			struct stream *s = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			finish_stream(s, msg->data.result);
		}
	} while (running > 0);
	summarize(out, r->opts->speed_divisor);

out:
	for (int i = 0; i < level; i++) {
		if (st[i].easy == NULL)
			continue;
		curl_multi_remove_handle(r->multi, st[i].easy);
		curl_easy_cleanup(st[i].easy);
		free(st[i].line);
	}
	free(st);
	free(body);
	free(endpoint);
	return rc;
}
