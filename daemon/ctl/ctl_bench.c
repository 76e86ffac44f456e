/*
 * ctl_bench: harmonicctl bench.  Parses the options, runs the plan (for
 * each model, each level, each trial: one burst per target), shows progress
 * on stderr, takes the medians and hands the result to the writers in
 * ctl_bench_out.c.  See include/ctl_bench.h for the measurement itself.
 */
#include "ctl_bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "xmalloc.h"

#define DEFAULT_PROMPT "/nothink Explain quantum computing briefly"
#define DEFAULT_LEVELS "1,2,4,8,12,16,20,24,32"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: harmonicctl bench -u URL -m MODEL [-m MODEL ...] [-p LEVELS] [-t TRIALS]\n"
	    "           [--prompt P] [--num-ctx N] [--num-predict N] [--warmup]\n"
	    "           [--through URL2] [--speed-divisor X] [--timeout S] [-q]\n"
	    "           [--csv F] [--json F] [--svg F] [--title T]\n"
	    "\n"
	    "  -u, --url URL        Ollama, harmonicd or harmonic-sim base URL\n"
	    "  -m, --model MODEL    model to measure; repeat for several\n"
	    "  -p, --levels LIST    parallel levels (default " DEFAULT_LEVELS ")\n"
	    "  -t, --trials N       trials per level, median reported (default 3)\n"
	    "      --prompt P       (default \"" DEFAULT_PROMPT "\")\n"
	    "      --num-ctx N      options.num_ctx (default 2048)\n"
	    "      --num-predict N  options.num_predict (default: not sent)\n"
	    "      --warmup         load each model with one request first\n"
	    "      --through URL2   also run every burst through URL2 (harmonicd)\n"
	    "                       and print the ratio per level\n"
	    "      --speed-divisor X  divide wall-clock rates by X and multiply\n"
	    "                       latencies by X (harmonic-sim --speed X)\n"
	    "      --timeout S      per-request timeout in seconds (default 600)\n"
	    "  -q, --quiet          no progress on stderr\n"
	    "      --csv F, --json F, --svg F  write every measurement / a plot\n"
	    "      --title T        the SVG plot's title\n");
}

/* Parse a whole decimal number within [min, max]; false if it is not one. */
static bool
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool
parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max))
		return false;
	*out = v;
	return true;
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* "1,2,4" -> sorted, distinct levels.  False on a bad or empty list. */
static bool
parse_levels(const char *s, struct bench_opts *o)
{
	char *copy = xstrdup(s), *save = NULL, *tok;
	bool good = true;

	o->nlevels = 0;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		long v;

		if (o->nlevels == BENCH_MAX_LEVELS ||
		    !parse_long(tok, 1, BENCH_MAX_PARALLEL, &v)) {
			good = false;
			break;
		}
		o->levels[o->nlevels++] = (int)v;
	}
	free(copy);
	if (!good || o->nlevels == 0)
		return false;
	qsort(o->levels, (size_t)o->nlevels, sizeof(int), cmp_int);
	int n = 1;
	for (int i = 1; i < o->nlevels; i++)
		if (o->levels[i] != o->levels[n - 1])
			o->levels[n++] = o->levels[i];
	o->nlevels = n;
	return true;
}

/* A base URL without its trailing slashes; caller owns the result. */
static char *
base_url(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '/')
		n--;
	return xstrndup(s, n);
}

enum {
	OPT_PROMPT = 256, OPT_NUM_CTX, OPT_NUM_PREDICT, OPT_WARMUP, OPT_THROUGH,
	OPT_DIVISOR, OPT_TIMEOUT, OPT_CSV, OPT_JSON, OPT_SVG, OPT_TITLE
};

/* Returns 0, or CTL_EXIT_USAGE after a message (or -1 for --help). */
static int
parse_options(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "model", required_argument, NULL, 'm' },
		{ "levels", required_argument, NULL, 'p' },
		{ "trials", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "prompt", required_argument, NULL, OPT_PROMPT },
		{ "num-ctx", required_argument, NULL, OPT_NUM_CTX },
		{ "num-predict", required_argument, NULL, OPT_NUM_PREDICT },
		{ "warmup", no_argument, NULL, OPT_WARMUP },
		{ "through", required_argument, NULL, OPT_THROUGH },
		{ "speed-divisor", required_argument, NULL, OPT_DIVISOR },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "csv", required_argument, NULL, OPT_CSV },
		{ "json", required_argument, NULL, OPT_JSON },
		{ "svg", required_argument, NULL, OPT_SVG },
		{ "title", required_argument, NULL, OPT_TITLE },
		{ NULL, 0, NULL, 0 },
	};
	const char *levels = DEFAULT_LEVELS;
	long v;
	int c;

	o->trials = 3;
	o->prompt = DEFAULT_PROMPT;
	o->num_ctx = 2048;
	o->num_predict = -1;
	o->speed_divisor = 1;
	o->timeout_s = 600;
	optind = 1;
	while ((c = getopt_long(argc, argv, "u:m:p:t:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'u':
			o->url = optarg;
			break;
		case 'm':
			if (o->nmodels == BENCH_MAX_MODELS) {
				fprintf(stderr, "harmonicctl bench: at most %d models\n",
				    BENCH_MAX_MODELS);
				return CTL_EXIT_USAGE;
			}
			o->models[o->nmodels++] = optarg;
			break;
		case 'p':
			levels = optarg;
			break;
		case 't':
			if (!parse_long(optarg, 1, BENCH_MAX_TRIALS, &v))
				goto bad;
			o->trials = (int)v;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			usage(stdout);
			return -1;
		case OPT_PROMPT:
			o->prompt = optarg;
			break;
		case OPT_NUM_CTX:
			if (!parse_long(optarg, 1, 1L << 24, &o->num_ctx))
				goto bad;
			break;
		case OPT_NUM_PREDICT:
			if (!parse_long(optarg, 1, 1L << 24, &o->num_predict))
				goto bad;
			break;
		case OPT_WARMUP:
			o->warmup = true;
			break;
		case OPT_THROUGH:
			o->through = optarg;
			break;
		case OPT_DIVISOR:
			if (!parse_double(optarg, 0.001, 1e6, &o->speed_divisor))
				goto bad;
			break;
		case OPT_TIMEOUT:
			if (!parse_double(optarg, 0.1, 1e6, &o->timeout_s))
				goto bad;
			break;
		case OPT_CSV:
			o->csv = optarg;
			break;
		case OPT_JSON:
			o->json = optarg;
			break;
		case OPT_SVG:
			o->svg = optarg;
			break;
		case OPT_TITLE:
			o->title = optarg;
			break;
		default:
			usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "harmonicctl bench: unexpected argument '%s'\n",
		    argv[optind]);
		return CTL_EXIT_USAGE;
	}
	if (o->url == NULL || o->nmodels == 0) {
		fprintf(stderr, "harmonicctl bench: -u URL and -m MODEL are required\n");
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (!parse_levels(levels, o)) {
		fprintf(stderr, "harmonicctl bench: -p: want levels 1..%d separated "
		    "by commas, got '%s'\n", BENCH_MAX_PARALLEL, levels);
		return CTL_EXIT_USAGE;
	}
	return 0;
bad:
	fprintf(stderr, "harmonicctl bench: bad value '%s' for %s\n", optarg,
	    argv[optind - 1]);
	return CTL_EXIT_USAGE;
}

/* Progress on stderr: a bar redrawn in place on a terminal, otherwise one
 * line per finished level so logs stay readable. */
struct progress {
	bool enabled, tty;
	int done, total;
};

static void
progress_trial(struct progress *p, const struct bench_series *s,
    const struct bench_trial *t, int trial, int trials)
{
	enum { WIDTH = 30 };
	int fill;

	p->done++;
	if (!p->enabled || !p->tty)
		return;
	fill = p->total > 0 ? p->done * WIDTH / p->total : WIDTH;
	fprintf(stderr, "\r\033[K[%.*s%*s] %3d%% %s%s %dx trial %d/%d: %.1f tok/s%s",
	    fill, "##############################", WIDTH - fill, "",
	    p->total > 0 ? p->done * 100 / p->total : 100, s->model,
	    s->target == BENCH_TARGET_THROUGH ? " (through)" : "", t->level,
	    trial + 1, trials, t->agg_tps, t->errors ? " (errors)" : "");
	fflush(stderr);
}

static void
progress_point(struct progress *p, const struct bench_series *s,
    const struct bench_point *pt)
{
	if (!p->enabled || p->tty)
		return;
	fprintf(stderr, "[%3d%%] %s%s %dx: %.1f tok/s, %d error%s\n",
	    p->total > 0 ? p->done * 100 / p->total : 100, s->model,
	    s->target == BENCH_TARGET_THROUGH ? " (through)" : "", pt->level,
	    pt->agg_tps, pt->errors, pt->errors == 1 ? "" : "s");
}

static void
progress_end(struct progress *p)
{
	if (p->enabled && p->tty)
		fprintf(stderr, "\r\033[K");
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Medians over the trials that completed at least one request. */
static void
point_summarize(struct bench_point *pt)
{
	double *v = xreallocarray(NULL, (size_t)pt->ntrials, 4 * sizeof(*v));
	double *agg = v, *req = v + pt->ntrials, *p50 = req + pt->ntrials,
	       *p95 = p50 + pt->ntrials;
	int n = 0;

	pt->errors = 0;
	for (int i = 0; i < pt->ntrials; i++) {
		const struct bench_trial *t = &pt->trials[i];

		pt->errors += t->errors;
		if (t->ok == 0)
			continue;
		agg[n] = t->agg_tps;
		req[n] = t->req_tps;
		p50[n] = t->ttft_p50_s;
		p95[n] = t->ttft_p95_s;
		n++;
	}
	pt->valid = n > 0;
	if (pt->valid) {
		pt->agg_tps = median(agg, n);
		pt->req_tps = median(req, n);
		pt->ttft_p50_s = median(p50, n);
		pt->ttft_p95_s = median(p95, n);
	}
	free(v);
}

/* One request per model and target, not measured: loads the model with the
 * same options so the first burst does not time a load. */
static void
warm_up(struct bench_runner *r, const struct bench_series *s)
{
	struct bench_trial t;

	if (bench_runner_burst(r, s->url, s->model, 1, 1, &t) == 0 &&
	    t.errors > 0)
		fprintf(stderr, "harmonicctl bench: warm-up of %s at %s: %s\n",
		    s->model, s->url, t.reqs[0].error);
	bench_trial_free(&t);
}

static void
result_init(struct bench_result *res, const struct bench_opts *o,
    char *urls[BENCH_TARGET_COUNT])
{
	int ntargets = o->through ? 2 : 1;

	res->opts = o;
	res->nseries = o->nmodels * ntargets;
	res->series = xcalloc((size_t)res->nseries, sizeof(*res->series));
	for (int m = 0; m < o->nmodels; m++) {
		for (int k = 0; k < ntargets; k++) {
			struct bench_series *s = &res->series[m * ntargets + k];

			s->model = o->models[m];
			s->target = (enum bench_target)k;
			s->url = urls[k];
			s->npoints = o->nlevels;
			s->points = xcalloc((size_t)o->nlevels, sizeof(*s->points));
			for (int l = 0; l < o->nlevels; l++) {
				s->points[l].level = o->levels[l];
				s->points[l].trials = xcalloc((size_t)o->trials,
				    sizeof(struct bench_trial));
			}
		}
	}
}

static void
result_free(struct bench_result *res)
{
	for (int i = 0; i < res->nseries; i++) {
		struct bench_series *s = &res->series[i];

		for (int l = 0; l < s->npoints; l++) {
			for (int t = 0; t < s->points[l].ntrials; t++)
				bench_trial_free(&s->points[l].trials[t]);
			free(s->points[l].trials);
		}
		free(s->points);
	}
	free(res->series);
}

/*
 * The plan: model by model, level by level; within a level the targets
 * alternate trial by trial, so a drifting host biases direct and through
 * alike.  Returns 0, or -1 if a burst could not be started.
 */
static int
run_plan(struct bench_runner *r, struct bench_result *res)
{
	const struct bench_opts *o = res->opts;
	int ntargets = o->through ? 2 : 1;
	struct progress prog = {
		.enabled = !o->quiet,
		.tty = isatty(STDERR_FILENO) == 1,
		.total = res->nseries * o->nlevels * o->trials,
	};

	for (int m = 0; m < o->nmodels; m++) {
		struct bench_series *ss = &res->series[m * ntargets];

		if (o->warmup)
			for (int k = 0; k < ntargets; k++)
				warm_up(r, &ss[k]);
		for (int l = 0; l < o->nlevels; l++) {
			for (int t = 0; t < o->trials; t++) {
				for (int k = 0; k < ntargets; k++) {
					struct bench_point *pt = &ss[k].points[l];
					struct bench_trial *tr = &pt->trials[t];

					if (bench_runner_burst(r, ss[k].url, ss[k].model,
					    o->num_predict, pt->level, tr) != 0) {
						bench_trial_free(tr);
						progress_end(&prog);
						return -1;
					}
					pt->ntrials++;
					progress_trial(&prog, &ss[k], tr, t, o->trials);
				}
			}
			for (int k = 0; k < ntargets; k++) {
				point_summarize(&ss[k].points[l]);
				progress_point(&prog, &ss[k], &ss[k].points[l]);
			}
		}
	}
	progress_end(&prog);
	return 0;
}

/* Report the requests that failed, once per distinct reason and series. */
static void
report_errors(const struct bench_result *res)
{
	for (int i = 0; i < res->nseries; i++) {
		const struct bench_series *s = &res->series[i];
		const char *last = NULL;

		for (int l = 0; l < s->npoints; l++) {
			const struct bench_point *pt = &s->points[l];

			for (int t = 0; t < pt->ntrials; t++)
				for (int q = 0; q < pt->trials[t].level; q++) {
					const struct bench_request *rq =
					    &pt->trials[t].reqs[q];

					if (rq->ok || (last && strcmp(last, rq->error) == 0))
						continue;
					last = rq->error;
					fprintf(stderr, "harmonicctl bench: %s at %s, %dx: %s\n",
					    s->model, s->url, pt->level, rq->error);
				}
		}
	}
}

int
ctl_bench_main(int argc, char **argv)
{
	struct bench_opts o = { 0 };
	struct bench_result res = { 0 };
	struct bench_runner *r;
	char *urls[BENCH_TARGET_COUNT] = { NULL, NULL };
	int rc;

	if ((rc = parse_options(argc, argv, &o)) != 0)
		return rc < 0 ? 0 : rc;
	urls[BENCH_TARGET_DIRECT] = base_url(o.url);
	if (o.through)
		urls[BENCH_TARGET_THROUGH] = base_url(o.through);
	if ((r = bench_runner_new(&o)) == NULL) {
		rc = 1;
		goto out;
	}
	result_init(&res, &o, urls);
	rc = run_plan(r, &res) == 0 ? 0 : 1;
	bench_runner_free(r);

	report_errors(&res);
	bench_print_table(&res, stdout);
	printf("\n");
	bench_print_details(&res, stdout);
	if (o.through) {
		printf("\n");
		bench_print_comparison(&res, stdout);
	}
	fflush(stdout);
	if (o.csv && bench_write_csv(&res, o.csv) != 0)
		rc = 1;
	if (o.json && bench_write_json(&res, o.json) != 0)
		rc = 1;
	if (o.svg && bench_write_svg(&res, o.svg) != 0)
		rc = 1;
	/* A series with no completed request measured nothing: say so. */
	for (int i = 0; i < res.nseries; i++)
		if (bench_series_peak(&res.series[i]) == NULL)
			rc = 1;
	result_free(&res);
out:
	free(urls[BENCH_TARGET_DIRECT]);
	free(urls[BENCH_TARGET_THROUGH]);
	return rc;
}
