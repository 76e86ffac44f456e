/*
 * harmonicctl stats: fetch /stats with libcurl (easy interface) and print
 * it as aligned tables: a summary, then tiers, hosts, placements and the
 * busiest agents.  With --watch the view is redrawn in place every
 * interval (cursor home, each line cleared to its end, the rest of the
 * screen cleared), so it does not scroll; when stdout is not a terminal
 * the frames are printed one after another instead.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "xmalloc.h"

#define DEFAULT_URL "http://127.0.0.1:11435"
#define MAX_BODY (16u << 20) /* a /stats document is kilobytes; refuse anything absurd */
#define MAX_COLS 12
#define AGENTS_SHOWN 10 /* the busiest agents; the rest are summed up in one line */

struct body {
	char *data;
	size_t len;
};

/* A table of strings printed with each column as wide as its widest cell. */
struct table {
	int ncols;
	const char *align;      /* per column: 'l' or 'r' */
	char **cells;           /* row-major; owned */
	int nrows;
};

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static size_t
on_write(char *data, size_t size, size_t n, void *ud)
{
	struct body *b = ud;
	size_t len = size * n;

	if (b->len + len > MAX_BODY)
		return 0; /* curl reports a write error */
	b->data = xreallocarray(b->data, b->len + len + 1, 1);
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

/* GET url and parse it; NULL with a message in err on any failure. */
static json_t *
fetch(CURL *easy, const char *url, char *err, size_t errlen)
{
	struct body b = {NULL, 0};
	char cerr[CURL_ERROR_SIZE] = "";
	long code = 0;
	json_error_t jerr;
	json_t *o = NULL;
	CURLcode rc;

	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(easy);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", url, cerr[0] ? cerr : curl_easy_strerror(rc));
		goto done;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200) {
		snprintf(err, errlen, "%s: HTTP %ld", url, code);
		goto done;
	}
	if ((o = json_loadb(b.data ? b.data : "", b.len, 0, &jerr)) == NULL || !json_is_object(o)) {
		snprintf(err, errlen, "%s: not a /stats document (%s)", url, o ? "not an object" : jerr.text);
		json_decref(o);
		o = NULL;
	}
done:
	free(b.data);
	return o;
}

static void
table_init(struct table *t, int ncols, const char *align)
{
	t->ncols = ncols;
	t->align = align;
	t->cells = NULL;
	t->nrows = 0;
}

/* Append a row of ncols cells (printf-formatted strings, consumed in order). */
static void
table_row(struct table *t, ...)
{
	va_list ap;

	t->cells = xreallocarray(t->cells, (size_t)(t->nrows + 1) * (size_t)t->ncols, sizeof(char *));
	va_start(ap, t);
	for (int c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = xstrdup(va_arg(ap, const char *));
	va_end(ap);
	t->nrows++;
}

static void
table_print(struct table *t, FILE *out)
{
	int w[MAX_COLS] = {0};

	for (int r = 0; r < t->nrows; r++)
		for (int c = 0; c < t->ncols; c++) {
			int n = (int)strlen(t->cells[r * t->ncols + c]);
			if (n > w[c])
				w[c] = n;
		}
	for (int r = 0; r < t->nrows; r++) {
		for (int c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			bool last = c == t->ncols - 1;
			if (t->align[c] == 'r')
				fprintf(out, "%*s", w[c], s);
			else if (last)
				fputs(s, out); /* no trailing blanks */
			else
				fprintf(out, "%-*s", w[c], s);
			if (!last)
				fputs("  ", out);
		}
		fputc('\n', out);
	}
	for (int i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

/* Small formatting helpers; each returns a pointer into a rotating buffer. */
static const char *
fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static const char *
fmt(const char *f, ...)
{
	static char ring[64][64];
	static int next;
	char *s = ring[next++ % 64];
	va_list ap;

	va_start(ap, f);
	vsnprintf(s, sizeof(ring[0]), f, ap);
	va_end(ap);
	return s;
}

static double
num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static const char *
str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "?";
}

static double
rate(const json_t *o, const char *window)
{
	return num(json_object_get(o, "tokens_per_s"), window);
}

/* Busiest first: live tokens/s, then requests waiting or running, then
 * all requests (qsort order over /stats "agents" entries). */
static int
busier(const void *pa, const void *pb)
{
	const json_t *a = *(const json_t *const *)pa, *b = *(const json_t *const *)pb;
	double d = rate(b, "10s") - rate(a, "10s");

	if (d == 0)
		d = num(b, "in_flight") + num(b, "queued") - num(a, "in_flight") - num(a, "queued");
	if (d == 0)
		d = num(b, "requests") - num(a, "requests");
	return d > 0 ? 1 : d < 0 ? -1 : 0;
}

static void
render_agents(const json_t *agents, FILE *out)
{
	size_t n = json_array_size(agents), i;
	const json_t **v;
	struct table t;

	if (n == 0)
		return;
	v = xcalloc(n, sizeof(*v));
	for (i = 0; i < n; i++)
		v[i] = json_array_get(agents, i);
	qsort(v, n, sizeof(*v), busier);
	table_init(&t, 9, "lrrrrrrrr");
	table_row(&t, "AGENT", "IN FLIGHT", "QUEUED", "TOK/S 10S", "REQUESTS", "COMPLETED", "FAILED", "PROMPT TOKENS",
	    "EVAL TOKENS");
	for (i = 0; i < n && i < AGENTS_SHOWN; i++)
		table_row(&t, str(v[i], "name"), fmt("%.0f", num(v[i], "in_flight")), fmt("%.0f", num(v[i], "queued")),
		    fmt("%.1f", rate(v[i], "10s")), fmt("%.0f", num(v[i], "requests")), fmt("%.0f", num(v[i], "completed")),
		    fmt("%.0f", num(v[i], "failed")), fmt("%.0f", num(v[i], "prompt_tokens")),
		    fmt("%.0f", num(v[i], "eval_tokens")));
	fputc('\n', out);
	table_print(&t, out);
	if (n > AGENTS_SHOWN)
		fprintf(out, "(%zu more agents)\n", n - AGENTS_SHOWN);
	free(v);
}

static void
render(json_t *s, FILE *out)
{
	const json_t *totals = json_object_get(s, "totals");
	const json_t *tiers = json_object_get(s, "tiers"), *hosts = json_object_get(s, "hosts");
	const json_t *models = json_object_get(s, "models"), *v;
	int in_flight = 0, slots = 0, up = 0, queued = 0;
	struct table t;
	size_t i, k;

	json_array_foreach(hosts, i, v) {
		in_flight += (int)num(v, "in_flight");
		slots += (int)num(v, "max_parallel");
		up += json_is_true(json_object_get(v, "up"));
	}
	json_array_foreach(tiers, i, v)
		queued += (int)num(v, "queued");
	fprintf(out, "harmonicd %s  up %.0f s  hosts up %d/%zu\n", str(s, "version"), num(s, "uptime_s"), up,
	    json_array_size(hosts));
	fprintf(out, "tokens/s  1s %.1f  10s %.1f  60s %.1f    in flight %d/%d  queued %d\n", rate(s, "1s"),
	    rate(s, "10s"), rate(s, "60s"), in_flight, slots, queued);
	fprintf(out, "requests  %.0f  completed %.0f  failed %.0f  rejected %.0f  cancelled %.0f    "
	    "tokens prompt %.0f  eval %.0f\n\n", num(totals, "requests"), num(totals, "completed"),
	    num(totals, "failed"), num(totals, "rejected"), num(totals, "cancelled"), num(totals, "prompt_tokens"),
	    num(totals, "eval_tokens"));

	table_init(&t, 9, "lrrrrrrrr");
	table_row(&t, "TIER", "WEIGHT", "QUEUED", "IN FLIGHT", "COMPLETED", "TOK/S 10S", "WAIT P50", "WAIT P95",
	    "WAIT P99");
	json_array_foreach(tiers, i, v) {
		const json_t *w = json_object_get(v, "queue_wait_ms");
		table_row(&t, str(v, "name"), fmt("%.0f", num(v, "weight")), fmt("%.0f", num(v, "queued")),
		    fmt("%.0f", num(v, "in_flight")), fmt("%.0f", num(v, "completed")), fmt("%.1f", rate(v, "10s")),
		    fmt("%.1f ms", num(w, "p50")), fmt("%.1f ms", num(w, "p95")), fmt("%.1f ms", num(w, "p99")));
	}
	table_print(&t, out);
	fputc('\n', out);

	table_init(&t, 8, "llrrrrrl");
	table_row(&t, "HOST", "UP", "IN FLIGHT", "TOK/S 1S", "TOK/S 10S", "TOK/W", "MEMORY GB", "LOADED");
	json_array_foreach(hosts, i, v) {
		const json_t *mem = json_object_get(v, "memory_gb"), *l;
		char loaded[256] = "";
		size_t n = 0;
		json_array_foreach(json_object_get(v, "loaded"), k, l)
			n += (size_t)snprintf(loaded + n, n < sizeof(loaded) ? sizeof(loaded) - n : 0, "%s%s",
			    k ? "," : "", json_string_value(l) ? json_string_value(l) : "?");
		table_row(&t, str(v, "name"), json_is_true(json_object_get(v, "up")) ? "yes" : "DOWN",
		    fmt("%.0f/%.0f", num(v, "in_flight"), num(v, "max_parallel")), fmt("%.1f", rate(v, "1s")),
		    fmt("%.1f", rate(v, "10s")), num(v, "tokens_per_watt") > 0 ? fmt("%.2f", num(v, "tokens_per_watt")) : "-",
		    fmt("%.1f/%.1f", num(mem, "planned"), num(mem, "budget")), n ? loaded : "-");
	}
	table_print(&t, out);
	/* Option-less requests reload models at another context (docs/operations.md). */
	json_array_foreach(hosts, i, v) {
		const char *advice = json_string_value(json_object_get(v, "context_advice"));
		if (advice != NULL)
			fprintf(out, "warning: %s: models reload between option-less and /api requests: %s\n",
			    str(v, "name"), advice);
	}
	fputc('\n', out);

	table_init(&t, 10, "lllrrrrrrr");
	table_row(&t, "MODEL", "TIER", "HOST", "IN FLIGHT", "COMPLETED", "FAILED", "EVAL TOKENS", "TOK/S 10S",
	    "TTFT P50", "TTFT P95");
	json_array_foreach(models, i, v) {
		const json_t *p;
		json_array_foreach(json_object_get(v, "placements"), k, p) {
			const json_t *tt = json_object_get(p, "ttft_ms");
			table_row(&t, str(v, "name"), str(v, "tier"), str(p, "host"),
			    fmt("%.0f/%.0f", num(p, "in_flight"), num(p, json_object_get(p, "limit") ? "limit" : "parallel")),
			    fmt("%.0f", num(p, "completed")), fmt("%.0f", num(p, "failed")),
			    fmt("%.0f", num(p, "eval_tokens")), fmt("%.1f", rate(p, "10s")), fmt("%.1f ms", num(tt, "p50")),
			    fmt("%.1f ms", num(tt, "p95")));
		}
	}
	table_print(&t, out);
	render_agents(json_object_get(s, "agents"), out);
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: harmonicctl stats [-u URL] [--watch] [-i SECONDS]\n"
	             "  -u URL       the daemon (default " DEFAULT_URL "); /stats is appended\n"
	             "  -w, --watch  redraw in place until interrupted\n"
	             "  -i SECONDS   refresh interval with --watch (default 1)\n");
}

/* The /stats URL for a base URL given as -u (with or without /stats). */
static char *
stats_url(const char *base)
{
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (n >= 6 && strncmp(base + n - 6, "/stats", 6) == 0)
		return xstrndup(base, n);
	return xasprintf("%.*s/stats", (int)n, base);
}

int
ctl_stats_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"url", required_argument, NULL, 'u'},
		{"watch", no_argument, NULL, 'w'},
		{"interval", required_argument, NULL, 'i'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *base = DEFAULT_URL;
	bool watch = false, tty = isatty(STDOUT_FILENO), first = true;
	double interval = 1.0;
	char err[512], *url, *frame = NULL;
	size_t frame_len = 0;
	int ch, status = 0;
	CURL *easy;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "u:wi:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'u': base = optarg; break;
		case 'w': watch = true; break;
		case 'i': {
			char *end;
			interval = strtod(optarg, &end);
			if (*end != '\0' || !(interval >= 0.1 && interval <= 3600)) {
				fprintf(stderr, "harmonicctl stats: -i: %s is not a number of seconds (min 0.1, max 3600)\n",
				    optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return CTL_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (easy = curl_easy_init()) == NULL) {
		fprintf(stderr, "harmonicctl stats: cannot initialise libcurl\n");
		return 1;
	}
	url = stats_url(base);
	if (watch) {
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
	}
	do {
		json_t *s = fetch(easy, url, err, sizeof(err));
		FILE *mem = open_memstream(&frame, &frame_len);
		if (mem == NULL) {
			perror("harmonicctl stats: open_memstream");
			status = 1;
			break;
		}
		if (s != NULL) {
			render(s, mem);
			json_decref(s);
		} else {
			fprintf(mem, "harmonicctl stats: %s\n", err);
			status = 1;
		}
		fclose(mem);
		if (!watch) {
			fputs(frame, s != NULL ? stdout : stderr);
		} else if (tty) {
			/* Home, then each line cleared to its end, then the rest:
			 * no flicker and nothing left over from a longer frame. */
			fputs(first ? "\033[H\033[2J" : "\033[H", stdout);
			for (char *line = frame, *nl; *line; line = nl + 1) {
				if ((nl = strchr(line, '\n')) == NULL)
					nl = line + strlen(line) - 1;
				fwrite(line, 1, (size_t)(nl - line) + (*nl != '\n'), stdout);
				fputs("\033[K\n", stdout);
			}
			fprintf(stdout, "\n(every %.1f s, Ctrl-C to stop)\033[K\n\033[J", interval);
			status = 0;
		} else {
			fputs(frame, stdout);
			fputs("\n", stdout);
			status = 0;
		}
		fflush(stdout);
		free(frame);
		frame = NULL;
		first = false;
		if (watch && !stop) {
			struct timespec ts = {(time_t)interval, (long)((interval - floor(interval)) * 1e9)};
			nanosleep(&ts, NULL); /* a signal cuts it short */
		}
	} while (watch && !stop);
	free(url);
	curl_easy_cleanup(easy);
	curl_global_cleanup();
	return status;
}
