/* stats: one-second token buckets and log-scale latency histograms. */
#include "stats.h"

#include <math.h>

static const char *const outcome_names[STATS_OUTCOME_COUNT] = {
	"completed", "failed", "rejected", "cancelled"};

const char *
stats_outcome_name(enum stats_outcome o)
{
	return o < STATS_OUTCOME_COUNT ? outcome_names[o] : "?";
}

void
stats_rate_add(struct stats_rate *r, uint64_t now_us, uint64_t n)
{
	uint64_t s = now_us / 1000000u;
	int i = (int)(s % STATS_WINDOW_S);

	if (r->sec[i] != s) {
		r->sec[i] = s;
		r->count[i] = 0;
	}
	r->count[i] += n;
}

double
stats_rate_get(const struct stats_rate *r, uint64_t now_us, int window_s)
{
	uint64_t s = now_us / 1000000u;
	double frac = (double)(now_us % 1000000u) / 1e6;
	uint64_t sum = 0;

	if (window_s < 1 || window_s >= STATS_WINDOW_S)
		return 0;
	/* The current partial second plus window_s full ones before it, with
	 * the oldest weighted by what is left of the window. */
	for (int k = 0; k <= window_s; k++) {
		int i;
		if ((uint64_t)k > s)
			break;
		i = (int)((s - (uint64_t)k) % STATS_WINDOW_S);
		if (r->sec[i] != s - (uint64_t)k)
			continue;
		if (k == window_s)
			sum += (uint64_t)llround((double)r->count[i] * (1.0 - frac));
		else
			sum += r->count[i];
	}
	return (double)sum / window_s;
}

double
stats_hist_bound(int i)
{
	return 0.5 * pow(2.0, (double)i / 2.0); /* 0.5 ms .. ~6 min */
}

void
stats_hist_add(struct stats_hist *h, double ms)
{
	int i = 0;

	while (i < STATS_HIST_BUCKETS - 1 && ms > stats_hist_bound(i))
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum_ms += ms;
}

double
stats_hist_quantile(const struct stats_hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank == 0)
		rank = 1;
	for (int i = 0; i < STATS_HIST_BUCKETS; i++) {
		uint64_t prev = seen;
		seen += h->bucket[i];
		if (seen >= rank) {
			/* Interpolate linearly inside the bucket. */
			double lo = i == 0 ? 0 : stats_hist_bound(i - 1);
			double hi = stats_hist_bound(i);
			double f = h->bucket[i] ? (double)(rank - prev) / (double)h->bucket[i] : 1;
			return lo + (hi - lo) * f;
		}
	}
	return stats_hist_bound(STATS_HIST_BUCKETS - 1);
}
