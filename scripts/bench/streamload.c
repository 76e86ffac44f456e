/*
 * streamload: the load generator of scripts/bench-proxy.sh case (b).
 * N concurrent streaming /api/generate requests on one curl multi handle
 * for D seconds (each stream restarts when it ends).  For every token line
 * it records the receive time minus the line's created_at (harmonic-sim
 * stamps real wall time), so the same run against the backend directly and
 * through a proxy gives the latency the proxy adds per token.  A C client
 * keeps its own jitter far below a millisecond; prints one JSON object.
 *
 *   streamload URL CONCURRENCY SECONDS NUM_PREDICT
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct stream {
	CURL *easy;
	char line[4096];
	size_t len;
};

static double *delays;
static size_t n_delays, cap_delays;
static long tokens, errors, streams;
static double end_at;

static double
now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "2026-11-23T22:55:19.318398952Z" -> seconds since the epoch. */
static double
parse_created(const char *s)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	double frac = 0, scale = 0.1;

	if (p == NULL)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += (*p - '0') * scale;
	return (double)timegm(&tm) + frac;
}

static void
on_line(const char *l, double now)
{
	const char *c;

	if (strstr(l, "\"done\":false") == NULL)
		return;
	tokens++;
	if ((c = strstr(l, "\"created_at\":\"")) == NULL || now >= end_at)
		return;
	double t = parse_created(c + 14);
	if (t < 0)
		return;
	if (n_delays == cap_delays) {
		cap_delays = cap_delays ? cap_delays * 2 : 65536;
		delays = realloc(delays, cap_delays * sizeof(*delays));
		if (delays == NULL)
			abort();
	}
	delays[n_delays++] = (now - t) * 1000.0;
}

static size_t
on_data(char *data, size_t size, size_t n, void *ud)
{
	struct stream *st = ud;
	double now = now_real();

	for (size_t i = 0; i < size * n; i++) {
		if (data[i] == '\n') {
			st->line[st->len] = '\0';
			on_line(st->line, now);
			st->len = 0;
		} else if (st->len < sizeof(st->line) - 1) {
			st->line[st->len++] = data[i];
		}
	}
	return size * n;
}

static void
start(CURLM *m, struct stream *st, const char *url, const char *body, struct curl_slist *hdrs)
{
	st->easy = curl_easy_init();
	st->len = 0;
	curl_easy_setopt(st->easy, CURLOPT_URL, url);
	curl_easy_setopt(st->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(st->easy, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(st->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(st->easy, CURLOPT_WRITEDATA, st);
	curl_easy_setopt(st->easy, CURLOPT_PRIVATE, st);
	curl_easy_setopt(st->easy, CURLOPT_NOPROXY, "*");
	curl_multi_add_handle(m, st->easy);
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	char body[256];
	struct curl_slist *hdrs;
	struct stream *sts;
	CURLM *m;
	int n, running;
	double t0, wall;

	if (argc != 5) {
		fprintf(stderr, "usage: streamload URL CONCURRENCY SECONDS NUM_PREDICT\n");
		return 64;
	}
	n = atoi(argv[2]);
	t0 = now_real();
	end_at = t0 + atof(argv[3]);
	snprintf(body, sizeof(body), "{\"model\":\"bench\",\"prompt\":\"hi\",\"options\":{\"num_predict\":%d}}",
	    atoi(argv[4]));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)n);
	hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	sts = calloc((size_t)n, sizeof(*sts));
	for (int i = 0; i < n; i++)
		start(m, &sts[i], argv[1], body, hdrs);
	do {
		CURLMsg *msg;
		int left;
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct stream *st;
			long code = 0;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&st);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			if (msg->data.result != CURLE_OK || code != 200)
				errors++;
			else
				streams++;
			curl_multi_remove_handle(m, st->easy);
			curl_easy_cleanup(st->easy);
			st->easy = NULL;
			if (now_real() < end_at)
				start(m, st, argv[1], body, hdrs);
		}
		if (now_real() >= end_at)
			break;
		curl_multi_poll(m, NULL, 0, 100, NULL);
	} while (1);
	wall = now_real() - t0;
	qsort(delays, n_delays, sizeof(*delays), cmp);
	printf("{\"tokens\":%ld,\"tokens_per_s\":%.1f,\"delay_p50_ms\":%.3f,\"delay_p99_ms\":%.3f,\"errors\":%ld,"
	       "\"streams\":%ld}\n",
	    tokens, (double)tokens / wall, n_delays ? delays[n_delays / 2] : 0,
	    n_delays ? delays[(size_t)((double)n_delays * 0.99)] : 0, errors, streams);
	for (int i = 0; i < n; i++)
		if (sts[i].easy != NULL) {
			curl_multi_remove_handle(m, sts[i].easy);
			curl_easy_cleanup(sts[i].easy);
		}
	free(sts);
	free(delays);
	curl_slist_free_all(hdrs);
	curl_multi_cleanup(m);
	curl_global_cleanup();
	return 0;
}
