/*
 * ctl_bench: harmonicctl bench, the seed report's benchmark as a tool.
 *
 * For each parallel level n, n identical streaming /api/generate requests
 * are sent at once and timed; the aggregate rate is the sum of eval_count
 * over the wall time from the first send to the last "done".  Three files
 * share the work: ctl_bench.c (options, the run plan, progress, medians),
 * ctl_bench_run.c (one burst of requests over curl multi) and
 * ctl_bench_out.c (the tables, CSV, JSON and SVG).  This header is the
 * interface between them; nothing else uses it.
 */
#ifndef HARMONIC_CTL_BENCH_H
#define HARMONIC_CTL_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_MAX_LEVELS 64
#define BENCH_MAX_MODELS 64
#define BENCH_MAX_PARALLEL 1024 /* requests in one burst */
#define BENCH_MAX_TRIALS 100

/* Where a series was measured: the host itself or through harmonicd. */
enum bench_target {
	BENCH_TARGET_DIRECT,
	BENCH_TARGET_THROUGH,
	BENCH_TARGET_COUNT
};

const char *bench_target_name(enum bench_target t);

/* One streamed request of a burst. */
struct bench_request {
	int status;             /* HTTP status, 0 if none arrived */
	bool ok;                /* 200 and a "done" line, no error line */
	int64_t eval_count;     /* from the done line */
	int64_t eval_duration;  /* ns, the backend's clock */
	double ttft_s;          /* first send to first line; < 0 if none */
	double end_s;           /* first send to done (or to the failure) */
	char error[160];        /* why it failed; empty when ok */
};

/* One burst: `level` requests at once. */
struct bench_trial {
	int level;
	int ok, errors;
	int64_t tokens;         /* sum of eval_count over ok requests */
	double wall_s;          /* first send to last done, wall clock */
	double agg_tps;         /* tokens / wall_s / speed divisor */
	double req_tps;         /* mean of eval_count / eval_duration */
	double ttft_p50_s;      /* scaled by the speed divisor */
	double ttft_p95_s;
	struct bench_request *reqs; /* `level` entries; owned */
};

/* One parallel level of a series: its trials and their medians. */
struct bench_point {
	int level;
	int ntrials;
	struct bench_trial *trials; /* ntrials entries; owned */
	bool valid;             /* some trial completed a request */
	double agg_tps;         /* medians over the trials with ok > 0 */
	double req_tps;
	double ttft_p50_s;
	double ttft_p95_s;
	int errors;             /* summed over the trials */
};

/* One line of the plot and one row of the table: a model on a target. */
struct bench_series {
	const char *model;
	const char *url;
	enum bench_target target;
	int npoints;
	struct bench_point *points; /* npoints entries, level order; owned */
};

struct bench_opts {
	const char *url;
	const char *through;    /* harmonicd URL for the comparison, or NULL */
	const char *models[BENCH_MAX_MODELS];
	int nmodels;
	int levels[BENCH_MAX_LEVELS];
	int nlevels;
	int trials;
	const char *prompt;
	long num_ctx;
	long num_predict;       /* < 0: not sent (the backend's default) */
	bool warmup;
	double speed_divisor;   /* harmonic-sim --speed: wall rates / this */
	double timeout_s;       /* per request */
	bool quiet;             /* no progress on stderr */
	const char *csv, *json, *svg;
	const char *title;      /* SVG title, or NULL for one naming the URL */
};

/* A whole run: every series, in the order they were measured. */
struct bench_result {
	const struct bench_opts *opts;
	struct bench_series *series; /* nseries entries; owned */
	int nseries;
};

struct bench_runner;

/* A runner owns the curl multi handle, kept across bursts so connections are
 * reused.  Returns NULL (message on stderr) if curl cannot start. */
struct bench_runner *bench_runner_new(const struct bench_opts *opts);
void bench_runner_free(struct bench_runner *r);

/* Send `level` identical requests for model to url at once and wait for all
 * of them.  Fills *out (out->reqs is allocated; bench_trial_free releases
 * it) including the per-trial aggregates.  Returns 0, or -1 if the burst
 * could not be started at all. */
int bench_runner_burst(struct bench_runner *r, const char *url,
    const char *model, long num_predict, int level, struct bench_trial *out);
void bench_trial_free(struct bench_trial *t);

/* Outputs (ctl_bench_out.c).  The writers return 0, or -1 after a message
 * on stderr. */
void bench_print_table(const struct bench_result *res, FILE *out);
void bench_print_details(const struct bench_result *res, FILE *out);
void bench_print_comparison(const struct bench_result *res, FILE *out);
int bench_write_csv(const struct bench_result *res, const char *path);
int bench_write_json(const struct bench_result *res, const char *path);
int bench_write_svg(const struct bench_result *res, const char *path);

/* The point of s with the highest median aggregate rate, or NULL. */
const struct bench_point *bench_series_peak(const struct bench_series *s);
/* The point of s at level, or NULL if that level was not run. */
const struct bench_point *bench_series_point(const struct bench_series *s,
    int level);

#endif
