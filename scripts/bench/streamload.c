/*
 * streamload: the load generator of scripts/bench-proxy.sh case (b).
 * N concurrent streaming /api/generate requests on one curl multi handle
 * for D seconds (each stream restarts when it ends).  For every token line
 * it records the receive time minus the line's created_at (harmonic-sim
 * stamps real wall time), so the same run against the backend directly and
 * through a proxy gives the latency the proxy adds per token.  A C client
 * keeps its own jitter far below a millisecond; prints one JSON object.
 *
 * The streams form GROUPS groups (default: one per stream).  A group
 * stands for one model on one host decoding its sequences in one batch:
 * its streams start together and ask for the same length, so their tokens
 * arrive together; groups start spread over RAMP_S and lengths vary by
 * +-20% per group and generation (a fixed pseudo-random sequence, so every
 * target sees the same load).  GROUPS = 1 is the worst case: every token
 * of every stream due at the same instant, forever.
 *
 *   streamload URL CONCURRENCY SECONDS NUM_PREDICT [GROUPS]
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RAMP_S 0.1

struct stream {
	CURL *easy;
	char line[4096];
	size_t len;
	char body[192];
	int group, generation;
};

static double *delays;
static size_t n_delays, cap_delays;
static long tokens, errors, streams;
static double end_at;
static int predict;

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
start(CURLM *m, struct stream *st, const char *url, struct curl_slist *hdrs)
{
	/* The same length for every stream of a group in one generation. */
	unsigned h = (unsigned)st->group * 2654435761u ^ (unsigned)st->generation++ * 40503u;
	int np = predict * 4 / 5 + (int)((h ^ h >> 13) % (unsigned)(predict * 2 / 5 + 1));

	snprintf(st->body, sizeof(st->body),
	    "{\"model\":\"bench\",\"prompt\":\"hi\",\"options\":{\"num_predict\":%d}}", np);
	st->easy = curl_easy_init();
	st->len = 0;
	curl_easy_setopt(st->easy, CURLOPT_URL, url);
	curl_easy_setopt(st->easy, CURLOPT_POSTFIELDS, st->body);
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
	struct curl_slist *hdrs;
	struct stream *sts;
	CURLM *m;
	int n, groups, running, started = 0;
	double t0, wall;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: streamload URL CONCURRENCY SECONDS NUM_PREDICT [GROUPS]\n");
		return 64;
	}
	n = atoi(argv[2]);
	predict = atoi(argv[4]);
	groups = argc == 6 ? atoi(argv[5]) : n;
	if (n <= 0 || predict <= 0 || groups <= 0 || groups > n) {
		fprintf(stderr, "streamload: CONCURRENCY and NUM_PREDICT must be positive, 1 <= GROUPS <= CONCURRENCY\n");
		return 64;
	}
	t0 = now_real();
	end_at = t0 + atof(argv[3]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)n);
	hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");
	sts = calloc((size_t)n, sizeof(*sts));
	do {
		double now = now_real();
		int wait_ms = 100;

		/* Group g (streams g * n / groups ...) starts at t0 + g * RAMP_S / groups. */
		while (started < n) {
			int g = (int)((long)started * groups / n);
			double at = t0 + RAMP_S * g / groups;
			if (now < at) {
				wait_ms = 1 + (int)((at - now) * 1000.0);
				break;
			}
			sts[started].group = g;
			start(m, &sts[started++], argv[1], hdrs);
		}
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
				start(m, st, argv[1], hdrs);
		}
		if (now_real() >= end_at)
			break;
		curl_multi_poll(m, NULL, 0, wait_ms, NULL);
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
