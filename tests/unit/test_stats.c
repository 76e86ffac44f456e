/*
 * Unit tests of stats: sliding-window token rates over 1/10/60 s with a
 * synthetic clock (steady rates, expiry, bucket reuse, the partial oldest
 * second) and the log-scale latency histogram (bounds, quantiles).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "log.h"
#include "stats.h"

#define SEC 1000000ull
#define T0 (1000 * SEC) /* an arbitrary monotonic start */

static void
assert_near(double got, double want, double tol)
{
	if (fabs(got - want) > tol)
		fail_msg("got %f, want %f +- %f", got, want, tol);
}

static void
test_rate_empty(void **state)
{
	struct stats_rate r;

	memset(&r, 0, sizeof(r));
	assert_true(stats_rate_get(&r, T0, 1) == 0);
	assert_true(stats_rate_get(&r, T0, 10) == 0);
	assert_true(stats_rate_get(&r, T0, 60) == 0);
	/* A zeroed struct claims second 0 for every bucket: near boot it must
	 * not invent tokens either. */
	assert_true(stats_rate_get(&r, 0, 60) == 0);
	assert_true(stats_rate_get(&r, 5 * SEC + 1, 10) == 0);
}

/* 20 tokens/s arriving one every 50 ms for two minutes, checked at many
 * phases of the second once the 60 s window is full. */
static void
test_rate_steady(void **state)
{
	struct stats_rate r;

	memset(&r, 0, sizeof(r));
	for (int i = 0; i < 120 * 20; i++) {
		uint64_t now = T0 + (uint64_t)i * 50000;
		stats_rate_add(&r, now, 1);
		if (i < 61 * 20)
			continue;
		for (uint64_t off = 0; off < 50000; off += 12500) {
			uint64_t q = now + off;
			assert_near(stats_rate_get(&r, q, 1), 20, 1.5);
			assert_near(stats_rate_get(&r, q, 10), 20, 0.2);
			assert_near(stats_rate_get(&r, q, 60), 20, 0.05);
		}
	}
}

/* A burst is visible in the short window first and decays out of it. */
static void
test_rate_windows_differ(void **state)
{
	struct stats_rate r;

	memset(&r, 0, sizeof(r));
	stats_rate_add(&r, T0 + SEC / 2, 600); /* in second 1000 */
	/* Half a second into the next second: the burst is one full second back. */
	uint64_t q = T0 + SEC + SEC / 2;
	assert_near(stats_rate_get(&r, q, 1), 600 * 0.5 / 1, 1e-9); /* oldest weighted by 1-frac */
	assert_near(stats_rate_get(&r, q, 10), 600.0 / 10, 1e-9);
	assert_near(stats_rate_get(&r, q, 60), 600.0 / 60, 1e-9);
	/* Five seconds later: gone from the 1 s window only. */
	q += 5 * SEC;
	assert_true(stats_rate_get(&r, q, 1) == 0);
	assert_near(stats_rate_get(&r, q, 10), 60, 1e-9);
	assert_near(stats_rate_get(&r, q, 60), 10, 1e-9);
	/* Fifteen seconds later: still in the 60 s window. */
	q += 10 * SEC;
	assert_true(stats_rate_get(&r, q, 10) == 0);
	assert_near(stats_rate_get(&r, q, 60), 10, 1e-9);
}

static void
test_rate_old_buckets_expire(void **state)
{
	struct stats_rate r;

	memset(&r, 0, sizeof(r));
	for (int s = 0; s < 30; s++)
		stats_rate_add(&r, T0 + (uint64_t)s * SEC, 100);
	assert_true(stats_rate_get(&r, T0 + 29 * SEC, 60) > 0);
	/* 61+ seconds after the last add nothing is left, at any window. */
	for (int later = 61; later < 200; later += 7) {
		uint64_t q = T0 + (uint64_t)(29 + later) * SEC + 300000;
		assert_true(stats_rate_get(&r, q, 1) == 0);
		assert_true(stats_rate_get(&r, q, 10) == 0);
		assert_true(stats_rate_get(&r, q, 60) == 0);
	}
	/* Exactly STATS_WINDOW_S seconds later the same bucket index is
	 * reused: the stale count must be dropped, not added to. */
	stats_rate_add(&r, T0 + (uint64_t)STATS_WINDOW_S * SEC, 7);
	assert_near(stats_rate_get(&r, T0 + (uint64_t)STATS_WINDOW_S * SEC, 1), 7, 1e-9);
	/* Second 0's bucket was overwritten; second 1..29's are all older
	 * than 60 s apart from those the 60 s window still reaches. */
	double r60 = stats_rate_get(&r, T0 + (uint64_t)STATS_WINDOW_S * SEC + SEC / 2, 60);
	/* Window covers seconds 1001..1061 (the oldest, 1001, at half weight):
	 * 28 full seconds of 100 (1002..1029), 50 from 1001, and the 7. */
	assert_near(r60, (28 * 100 + 50 + 7) / 60.0, 1e-9);
}

/* The same second accumulates; a new second starts from zero. */
static void
test_rate_accumulates_within_second(void **state)
{
	struct stats_rate r;

	memset(&r, 0, sizeof(r));
	stats_rate_add(&r, T0 + 100, 3);
	stats_rate_add(&r, T0 + 900000, 4);
	stats_rate_add(&r, T0 + SEC - 1, 5);
	assert_near(stats_rate_get(&r, T0 + SEC - 1, 1), 12, 1e-9);
	stats_rate_add(&r, T0 + SEC, 1);
	/* At the very start of the next second the previous one weighs fully. */
	assert_near(stats_rate_get(&r, T0 + SEC, 1), 13, 1e-9);
	assert_near(stats_rate_get(&r, T0 + 2 * SEC, 10), 13 / 10.0, 1e-9);
}

static void
test_rate_bad_window(void **state)
{
	struct stats_rate r;

	memset(&r, 0, sizeof(r));
	stats_rate_add(&r, T0, 100);
	assert_true(stats_rate_get(&r, T0, 0) == 0);
	assert_true(stats_rate_get(&r, T0, -5) == 0);
	assert_true(stats_rate_get(&r, T0, STATS_WINDOW_S) == 0);
	assert_true(stats_rate_get(&r, T0, 1000) == 0);
}

static void
test_hist_empty(void **state)
{
	struct stats_hist h;

	memset(&h, 0, sizeof(h));
	assert_true(stats_hist_quantile(&h, 0.5) == 0);
	assert_true(stats_hist_quantile(&h, 0.99) == 0);
	assert_true(stats_hist_quantile(&h, 0) == 0);
}

static void
test_hist_bounds(void **state)
{
	assert_near(stats_hist_bound(0), 0.5, 1e-12);
	assert_near(stats_hist_bound(2), 1.0, 1e-12);
	assert_near(stats_hist_bound(4), 2.0, 1e-12);
	for (int i = 1; i < STATS_HIST_BUCKETS; i++) {
		assert_true(stats_hist_bound(i) > stats_hist_bound(i - 1));
		assert_near(stats_hist_bound(i) / stats_hist_bound(i - 1), sqrt(2.0), 1e-9);
	}
	/* The top bucket reaches minutes. */
	assert_true(stats_hist_bound(STATS_HIST_BUCKETS - 1) > 300000);
}

static void
test_hist_quantiles_1_to_100(void **state)
{
	struct stats_hist h;
	double p50, p90, p99, p0;

	memset(&h, 0, sizeof(h));
	for (int v = 1; v <= 100; v++)
		stats_hist_add(&h, v);
	assert_int_equal(h.count, 100);
	assert_near(h.sum_ms, 5050, 1e-9);
	p50 = stats_hist_quantile(&h, 0.5);
	p90 = stats_hist_quantile(&h, 0.9);
	p99 = stats_hist_quantile(&h, 0.99);
	p0 = stats_hist_quantile(&h, 0);
	assert_true(p50 > 50 / 1.5 && p50 < 50 * 1.5);
	assert_true(p90 > 90 / 1.5 && p90 < 90 * 1.5);
	assert_true(p99 > 99 / 1.5 && p99 < 99 * 1.5);
	assert_true(p0 <= 1.0 && p0 >= 0);
	/* Monotone in q. */
	double prev = 0;
	for (double q = 0; q <= 1.0; q += 0.01) {
		double v = stats_hist_quantile(&h, q);
		assert_true(v >= prev);
		prev = v;
	}
	assert_true(stats_hist_quantile(&h, 1.0) <= 100 * 1.5);
}

/* Every value within a factor sqrt(2) of one constant: all quantiles too. */
static void
test_hist_single_value(void **state)
{
	struct stats_hist h;

	memset(&h, 0, sizeof(h));
	for (int i = 0; i < 1000; i++)
		stats_hist_add(&h, 250);
	for (double q = 0.01; q <= 1.0; q += 0.07) {
		double v = stats_hist_quantile(&h, q);
		assert_true(v > 250 / 1.5 && v <= 250 * 1.5);
	}
}

/* Out-of-range values land in the first and last buckets. */
static void
test_hist_extremes(void **state)
{
	struct stats_hist h;

	memset(&h, 0, sizeof(h));
	stats_hist_add(&h, 0);
	stats_hist_add(&h, -3);
	assert_int_equal(h.bucket[0], 2);
	stats_hist_add(&h, 1e12);
	assert_int_equal(h.bucket[STATS_HIST_BUCKETS - 1], 1);
	assert_true(stats_hist_quantile(&h, 1.0) <= stats_hist_bound(STATS_HIST_BUCKETS - 1));
	assert_true(stats_hist_quantile(&h, 0.1) <= stats_hist_bound(0));
}

static void
test_outcome_names(void **state)
{
	assert_string_equal(stats_outcome_name(STATS_COMPLETED), "completed");
	assert_string_equal(stats_outcome_name(STATS_FAILED), "failed");
	assert_string_equal(stats_outcome_name(STATS_REJECTED), "rejected");
	assert_string_equal(stats_outcome_name(STATS_CANCELLED), "cancelled");
	assert_string_equal(stats_outcome_name(STATS_OUTCOME_COUNT), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_empty),
		cmocka_unit_test(test_rate_steady),
		cmocka_unit_test(test_rate_windows_differ),
		cmocka_unit_test(test_rate_old_buckets_expire),
		cmocka_unit_test(test_rate_accumulates_within_second),
		cmocka_unit_test(test_rate_bad_window),
		cmocka_unit_test(test_hist_empty),
		cmocka_unit_test(test_hist_bounds),
		cmocka_unit_test(test_hist_quantiles_1_to_100),
		cmocka_unit_test(test_hist_single_value),
		cmocka_unit_test(test_hist_extremes),
		cmocka_unit_test(test_outcome_names),
	};

	log_init("test_stats", LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
