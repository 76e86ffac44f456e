/*
 * stats: counters and sliding-window token rates, fed from the request
 * close path and the relay.  Cheap by construction: answering /stats reads
 * these aggregates and never walks requests.
 */
#ifndef HARMONIC_STATS_H
#define HARMONIC_STATS_H

#include <stdint.h>

#define STATS_WINDOW_S 61 /* one-second buckets: enough for the 60 s rate */
#define STATS_HIST_BUCKETS 40

/* Tokens per one-second bucket; rate_over() sums the newest buckets. */
struct stats_rate {
	uint64_t sec[STATS_WINDOW_S];   /* bucket -> absolute second it holds */
	uint64_t count[STATS_WINDOW_S];
};

/* Log-scale latency histogram in ms: bucket i holds values up to 0.5 * 2^(i/2) ms. */
struct stats_hist {
	uint64_t bucket[STATS_HIST_BUCKETS];
	uint64_t count;
	double sum_ms;
};

enum stats_outcome {
	STATS_COMPLETED,    /* backend answered in full */
	STATS_FAILED,       /* backend or relay failed */
	STATS_REJECTED,     /* refused before a slot: queue full, timeout, down */
	STATS_CANCELLED,    /* the client went away */
	STATS_OUTCOME_COUNT
};

struct stats_totals {
	uint64_t requests;
	uint64_t outcome[STATS_OUTCOME_COUNT];
	uint64_t prompt_tokens;
	uint64_t eval_tokens;
};

const char *stats_outcome_name(enum stats_outcome o);

void stats_rate_add(struct stats_rate *r, uint64_t now_us, uint64_t n);
/* Tokens per second over the last window_s seconds ending now. */
double stats_rate_get(const struct stats_rate *r, uint64_t now_us, int window_s);

void stats_hist_add(struct stats_hist *h, double ms);
/* Approximate quantile (0..1) in ms from the histogram. */
double stats_hist_quantile(const struct stats_hist *h, double q);
/* Upper bound in ms of bucket i (for Prometheus "le" labels). */
double stats_hist_bound(int i);

#endif
