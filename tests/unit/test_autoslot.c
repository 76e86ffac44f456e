/*
 * Unit tests of autoslot, the parallel = "auto" controller, against a
 * synthetic placement: an aggregate decode-rate curve (tokens/s at n
 * requests in flight), closed-loop demand, requests that take time to
 * drain after the limit falls, optional noise and a backend that answers
 * 503 above a level.  Curves: the report's DGX Spark qwen3:8b and Evo-X2
 * qwen3:4b (interpolated linearly, held past the last level, as
 * harmonic-sim does), a flat one, a noisy one.  Checks: the limit settles
 * in the peak's neighbourhood, stays there (bounded excursions), holds
 * without load, follows a moved peak, and backs off on 503s and errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autoslot.h"

#define TICK_US 250000ull
#define SEC 1000000ull

struct curve {
	const int *levels;
	const double *rates;
	int n;
};

static const int dgx8_levels[] = {1, 2, 4, 8, 12, 16, 20, 24};
static const double dgx8_rates[] = {35.8, 60.3, 109.2, 170.8, 216.4, 285.3, 206.8, 219.7};
static const struct curve dgx8 = {dgx8_levels, dgx8_rates, 8};

static const int evo4_levels[] = {1, 2, 4, 8, 12, 16, 20};
static const double evo4_rates[] = {27.7, 39.1, 54.2, 69.3, 222.6, 163.4, 150.0};
static const struct curve evo4 = {evo4_levels, evo4_rates, 7};

static const int flat_levels[] = {1, 64};
static const double flat_rates[] = {120.0, 120.0};
static const struct curve flat = {flat_levels, flat_rates, 2};

/* A peak at 8 (the DGX curve squeezed): for "the load changed" tests. */
static const int low_levels[] = {1, 4, 8, 12, 16, 24};
static const double low_rates[] = {35.0, 110.0, 200.0, 150.0, 140.0, 130.0};
static const struct curve low = {low_levels, low_rates, 6};

static double
curve_at(const struct curve *c, double n)
{
	if (n <= 0)
		return 0;
	if (n <= c->levels[0])
		return c->rates[0] * n / c->levels[0];
	for (int i = 1; i < c->n; i++)
		if (n <= c->levels[i]) {
			double f = (n - c->levels[i - 1]) / (c->levels[i] - c->levels[i - 1]);
			return c->rates[i - 1] + f * (c->rates[i] - c->rates[i - 1]);
		}
	return c->rates[c->n - 1];
}

static int
curve_peak(const struct curve *c, int max)
{
	int best = 1;

	for (int n = 1; n <= max; n++)
		if (curve_at(c, n) > curve_at(c, best))
			best = n;
	return best;
}

/* The synthetic placement. */
struct plant {
	const struct curve *curve;
	int demand;           /* closed-loop clients */
	double predict;       /* tokens per request */
	double noise;         /* +- relative, uniform... */
	int noise_ticks;      /* ...redrawn every this many samples (0 = 1) */
	double noise_now;
	int noise_age;
	int busy_above;       /* backend 503s when asked for more than this (0 = never) */
	double fail_ratio;    /* share of requests failing above busy_above (error mode) */
	bool errors_not_busy; /* above busy_above: fail requests instead of 503 */
	double in_flight;     /* requests holding a slot */
	double done_frac;     /* fractional completions carried between ticks */
	uint64_t rng;
	uint64_t t_us;
	/* trace */
	int changes;
	unsigned busy_total;
};

static double
rnd(struct plant *p)
{
	p->rng = p->rng * 6364136223846793005ull + 1442695040888963407ull;
	return (double)(p->rng >> 11) / (double)(1ull << 53);
}

/* One tick of the plant at the controller's limit; fills the sample. */
static void
plant_tick(struct plant *p, int limit, struct autoslot_sample *s)
{
	double want = p->demand < limit ? p->demand : limit;
	double n, rate, done;

	memset(s, 0, sizeof(*s));
	/* Requests start at once when the limit rises (they are queued); when
	 * it falls, the extra ones finish at their pace. */
	if (want >= p->in_flight) {
		p->in_flight = want;
	} else {
		double per = curve_at(p->curve, p->in_flight) / p->in_flight; /* tok/s per request */
		double leave = p->in_flight * per * ((double)TICK_US / SEC) / p->predict;
		p->in_flight = p->in_flight - leave < want ? want : p->in_flight - leave;
	}
	if (p->busy_above > 0 && p->in_flight > p->busy_above) {
		if (p->errors_not_busy) {
			s->failed = 3;
		} else {
			s->busy = 1;
			p->busy_total++;
			p->in_flight = p->busy_above; /* the refused ones go back to the queue */
		}
	}
	n = p->in_flight;
	if (p->noise_age++ % (p->noise_ticks > 0 ? p->noise_ticks : 1) == 0)
		p->noise_now = p->noise * (2 * rnd(p) - 1);
	rate = curve_at(p->curve, n) * (1 + p->noise_now);
	s->dt_us = TICK_US;
	s->tokens = (uint64_t)llround(rate * ((double)TICK_US / SEC));
	s->in_flight = (int)floor(n + 1e-9);
	s->waiting = p->demand > limit;
	done = p->done_frac + s->tokens / p->predict;
	s->completed = (unsigned)done;
	p->done_frac = done - s->completed;
	p->t_us += TICK_US;
}

/* Run for secs; returns the time (us) of the last limit change. */
static uint64_t
run(struct plant *p, struct autoslot *a, double secs, int *lo, int *hi)
{
	uint64_t end = p->t_us + (uint64_t)(secs * SEC), last = p->t_us;

	if (lo != NULL)
		*lo = a->limit, *hi = a->limit;
	while (p->t_us < end) {
		struct autoslot_sample s;
		struct autoslot_change c;
		plant_tick(p, a->limit, &s);
		if (autoslot_feed(a, &s, &c)) {
			assert_int_equal(c.to, a->limit);
			assert_true(a->limit >= 1 && a->limit <= a->max);
			p->changes++;
			last = p->t_us;
		}
		if (lo != NULL) {
			if (a->limit < *lo)
				*lo = a->limit;
			if (a->limit > *hi)
				*hi = a->limit;
		}
	}
	return last;
}

/* Time-weighted mean rate over secs at whatever the controller does. */
static double
mean_rate(struct plant *p, struct autoslot *a, double secs)
{
	uint64_t end = p->t_us + (uint64_t)(secs * SEC), tokens = 0, t0 = p->t_us;

	while (p->t_us < end) {
		struct autoslot_sample s;
		plant_tick(p, a->limit, &s);
		tokens += s.tokens;
		autoslot_feed(a, &s, NULL);
	}
	return (double)tokens * SEC / (double)(p->t_us - t0);
}

/* Time until the controller first holds. */
static double
settle(struct plant *p, struct autoslot *a, double max_secs)
{
	uint64_t t0 = p->t_us;

	while (a->phase != AUTOSLOT_HOLDING && p->t_us - t0 < (uint64_t)(max_secs * SEC)) {
		struct autoslot_sample s;
		plant_tick(p, a->limit, &s);
		autoslot_feed(a, &s, NULL);
	}
	return (double)(p->t_us - t0) / SEC;
}

static void
check_curve(const struct curve *c, int max, int demand, double noise, int lo_ok, int hi_ok, double min_share)
{
	struct plant p = {.curve = c, .demand = demand, .predict = 128, .noise = noise, .rng = 42};
	struct autoslot a;
	int lo, hi, peak = curve_peak(c, max);
	double t, got, best;

	autoslot_init(&a, NULL, max);
	t = settle(&p, &a, 300);
	print_message("    settled in %.1f s at %d (peak %d), %llu measurements\n", t, a.limit, peak,
	    (unsigned long long)a.measurements);
	assert_int_equal(a.phase, AUTOSLOT_HOLDING);
	assert_true(t < 120);
	assert_in_range(a.limit, lo_ok, hi_ok);
	/* Ten minutes more: it stays at the peak but for re-probes (+-1, and
	 * +-4 every fourth time). */
	p.changes = 0;
	run(&p, &a, 600, &lo, &hi);
	print_message("    next 600 s: %d changes, limits %d..%d, now %d\n", p.changes, lo, hi, a.limit);
	assert_in_range(a.limit, lo_ok, hi_ok);
	assert_true(lo >= lo_ok - 4 && hi <= hi_ok + 4);
	assert_true(p.changes <= 60); /* re-probes every 8..64 measurements */
	got = mean_rate(&p, &a, 300);
	best = curve_at(c, peak);
	print_message("    mean %.1f tok/s vs peak %.1f (%.1f %%)\n", got, best, 100 * got / best);
	assert_true(got >= min_share * best * (1 - noise / 2));
}

static void
test_dgx_qwen3_8b(void **state)
{
	check_curve(&dgx8, 32, 40, 0, 16, 16, 0.97);
}

static void
test_evo_qwen3_4b(void **state)
{
	check_curve(&evo4, 32, 40, 0, 12, 12, 0.97);
}

/* +-10 % noise, redrawn every sample (250 ms) or held for 2 s, so that a
 * whole sub-window can be off by 10 %. */
static void
test_dgx_noisy(void **state)
{
	for (uint64_t seed = 1; seed <= 16; seed++) {
		struct plant p = {.curve = &dgx8, .demand = 40, .predict = 128, .noise = 0.10,
		    .noise_ticks = seed > 8 ? 8 : 1, .rng = seed};
		struct autoslot a;
		int lo, hi;
		double t;

		autoslot_init(&a, NULL, 32);
		t = settle(&p, &a, 300);
		assert_true(t < 120);
		run(&p, &a, 600, &lo, &hi);
		print_message("    seed %llu: settled in %.1f s, then %d changes, limits %d..%d, now %d\n",
		    (unsigned long long)seed, t, p.changes, lo, hi, a.limit);
		assert_in_range(a.limit, 12, 20);
		assert_true(lo >= 8 && hi <= 24);
		assert_true(p.changes <= 80);
	}
}

static void
test_evo_noisy(void **state)
{
	for (uint64_t seed = 1; seed <= 16; seed++) {
		struct plant p = {.curve = &evo4, .demand = 40, .predict = 128, .noise = 0.10,
		    .noise_ticks = seed > 8 ? 8 : 1, .rng = seed};
		struct autoslot a;
		int lo, hi;

		autoslot_init(&a, NULL, 32);
		assert_true(settle(&p, &a, 300) < 120);
		run(&p, &a, 600, &lo, &hi);
		print_message("    seed %llu: %d changes, limits %d..%d, now %d\n", (unsigned long long)seed, p.changes,
		    lo, hi, a.limit);
		assert_in_range(a.limit, 8, 16);
		assert_true(lo >= 4 && hi <= 20);
	}
}

/* Flat: nothing beats the start by the tolerance, so it holds there. */
static void
test_flat(void **state)
{
	struct plant p = {.curve = &flat, .demand = 40, .predict = 128, .rng = 7};
	struct autoslot a;
	int lo, hi;

	autoslot_init(&a, NULL, 32);
	assert_true(settle(&p, &a, 300) < 60);
	assert_int_equal(a.limit, 4);
	run(&p, &a, 600, &lo, &hi);
	assert_int_equal(a.limit, 4);
	assert_true(lo >= 1 && hi <= 8);
}

/* Flat with noise: it may wander, but within a band, and slowly. */
static void
test_flat_noisy(void **state)
{
	struct plant p = {.curve = &flat, .demand = 40, .predict = 128, .noise = 0.10, .rng = 9};
	struct autoslot a;
	int lo, hi;

	autoslot_init(&a, NULL, 32);
	settle(&p, &a, 300);
	run(&p, &a, 900, &lo, &hi);
	print_message("    %d changes, limits %d..%d\n", p.changes, lo, hi);
	assert_true(p.changes <= 120);
	assert_true(hi - lo <= 8);
}

/* Demand below the limit: no measurement, no movement. */
static void
test_holds_without_load(void **state)
{
	struct plant p = {.curve = &dgx8, .demand = 3, .predict = 128, .rng = 1};
	struct autoslot a;

	autoslot_init(&a, NULL, 32);
	run(&p, &a, 120, NULL, NULL);
	assert_int_equal(a.limit, 4);
	assert_int_equal(a.changes, 0);
	assert_int_equal(a.measurements, 0);
	assert_true(a.starved);
	/* Load arrives: it climbs to the peak. */
	p.demand = 40;
	settle(&p, &a, 300);
	assert_int_equal(a.limit, 16);
	/* Load falls to 10 while holding: stays at 16 (nothing to measure). */
	p.demand = 10;
	run(&p, &a, 300, NULL, NULL);
	assert_int_equal(a.limit, 16);
	assert_true(a.starved);
	/* And back: still 16. */
	p.demand = 40;
	run(&p, &a, 120, NULL, NULL);
	assert_int_equal(a.limit, 16);
}

/* The load changes so the peak moves from 16 to 8 (longer prompts, say):
 * drift detection or the periodic re-probe finds the new peak. */
static void
test_follows_moved_peak(void **state)
{
	struct plant p = {.curve = &dgx8, .demand = 40, .predict = 128, .rng = 3};
	struct autoslot a;
	uint64_t t0;

	autoslot_init(&a, NULL, 32);
	settle(&p, &a, 300);
	assert_int_equal(a.limit, 16);
	run(&p, &a, 120, NULL, NULL);
	p.curve = &low;
	t0 = p.t_us;
	while (!(a.phase == AUTOSLOT_HOLDING && a.limit == 8) && p.t_us - t0 < 300 * SEC)
		run(&p, &a, 1, NULL, NULL);
	print_message("    peak 16 -> 8 followed in %.1f s\n", (double)(p.t_us - t0) / SEC);
	assert_int_equal(a.limit, 8);
	assert_true(p.t_us - t0 < 120 * SEC);
	/* And back. */
	p.curve = &dgx8;
	t0 = p.t_us;
	while (!(a.phase == AUTOSLOT_HOLDING && a.limit == 16) && p.t_us - t0 < 300 * SEC)
		run(&p, &a, 1, NULL, NULL);
	print_message("    peak 8 -> 16 followed in %.1f s\n", (double)(p.t_us - t0) / SEC);
	assert_int_equal(a.limit, 16);
}

/* The backend 503s above 10 (its own num_parallel): the controller cuts
 * multiplicatively, stays below 11 while the ceiling lasts, and the 503s
 * stay rare. */
static void
test_backoff_on_503(void **state)
{
	struct plant p = {.curve = &dgx8, .demand = 40, .predict = 128, .busy_above = 10, .rng = 5};
	struct autoslot a;
	int lo, hi;

	autoslot_init(&a, NULL, 32);
	run(&p, &a, 120, NULL, NULL);
	print_message("    after 120 s: limit %d, %u 503s, %llu back-offs\n", a.limit, p.busy_total,
	    (unsigned long long)a.backoffs);
	assert_true(a.backoffs >= 1);
	assert_true(a.limit <= 10 && a.limit >= 7);
	run(&p, &a, 600, &lo, &hi);
	print_message("    next 600 s: limits %d..%d, %u 503s in all, now %d\n", lo, hi, p.busy_total, a.limit);
	assert_true(lo >= 5);
	assert_true(a.limit <= 10);
	assert_true(p.busy_total <= 16); /* at most about one per ceiling expiry (60 s) */
}

/* A single 503 at the peak cuts to 0.75x, then the search climbs back. */
static void
test_single_503(void **state)
{
	struct plant p = {.curve = &dgx8, .demand = 40, .predict = 128, .rng = 5};
	struct autoslot a;
	struct autoslot_sample s;
	struct autoslot_change c;

	autoslot_init(&a, NULL, 32);
	settle(&p, &a, 300);
	assert_int_equal(a.limit, 16);
	plant_tick(&p, a.limit, &s);
	s.busy = 1;
	assert_true(autoslot_feed(&a, &s, &c));
	assert_int_equal(c.from, 16);
	assert_int_equal(c.to, 12);
	assert_int_equal(c.reason, AUTOSLOT_R_BUSY);
	assert_int_equal(a.phase, AUTOSLOT_BACKOFF);
	assert_int_equal(autoslot_ceiling(&a), 15);
	/* More 503s from requests dispatched before the cut are ignored. */
	s.busy = 1;
	assert_false(autoslot_feed(&a, &s, &c));
	assert_int_equal(a.limit, 12);
	run(&p, &a, 60, NULL, NULL);
	assert_true(a.limit >= 13 && a.limit <= 15);
	/* The ceiling expires; a re-probe finds 16 again. */
	run(&p, &a, 300, NULL, NULL);
	assert_int_equal(a.limit, 16);
}

/* Error bursts above a level act like 503s. */
static void
test_backoff_on_errors(void **state)
{
	struct plant p = {.curve = &dgx8, .demand = 40, .predict = 128, .busy_above = 10, .errors_not_busy = true,
	    .rng = 5};
	struct autoslot a;

	autoslot_init(&a, NULL, 32);
	run(&p, &a, 180, NULL, NULL);
	print_message("    limit %d, %llu back-offs\n", a.limit, (unsigned long long)a.backoffs);
	assert_true(a.backoffs >= 1);
	assert_true(a.limit <= 10);
}

static void
test_max_and_reload(void **state)
{
	struct plant p = {.curve = &dgx8, .demand = 40, .predict = 128, .rng = 5};
	struct autoslot a;

	/* A maximum below the peak: it climbs to the maximum and holds. */
	assert_int_equal(autoslot_init(&a, NULL, 10), 4);
	settle(&p, &a, 300);
	assert_int_equal(a.limit, 10);
	/* max 1: fixed. */
	assert_int_equal(autoslot_init(&a, NULL, 1), 1);
	run(&p, &a, 60, NULL, NULL);
	assert_int_equal(a.limit, 1);
	assert_int_equal(a.changes, 0);
	/* Reload: a larger maximum keeps the state and soon looks above. */
	autoslot_init(&a, NULL, 12);
	settle(&p, &a, 300);
	assert_int_equal(a.limit, 12);
	assert_int_equal(autoslot_set_max(&a, 32), 12);
	assert_int_equal(a.phase, AUTOSLOT_HOLDING);
	run(&p, &a, 120, NULL, NULL);
	assert_int_equal(a.limit, 16);
	/* A smaller one clamps at once. */
	assert_int_equal(autoslot_set_max(&a, 8), 8);
	assert_int_equal(a.limit, 8);
	settle(&p, &a, 300);
	assert_int_equal(a.limit, 8);
}

static void
test_names(void **state)
{
	assert_string_equal(autoslot_phase_name(AUTOSLOT_HOLDING), "holding");
	assert_string_equal(autoslot_reason_name(AUTOSLOT_R_BUSY), "backend busy (503)");
	assert_string_equal(autoslot_phase_name(AUTOSLOT_PHASE_COUNT), "?");
	assert_string_equal(autoslot_reason_name(AUTOSLOT_REASON_COUNT), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dgx_qwen3_8b),
		cmocka_unit_test(test_evo_qwen3_4b),
		cmocka_unit_test(test_dgx_noisy),
		cmocka_unit_test(test_evo_noisy),
		cmocka_unit_test(test_flat),
		cmocka_unit_test(test_flat_noisy),
		cmocka_unit_test(test_holds_without_load),
		cmocka_unit_test(test_follows_moved_peak),
		cmocka_unit_test(test_backoff_on_503),
		cmocka_unit_test(test_single_503),
		cmocka_unit_test(test_backoff_on_errors),
		cmocka_unit_test(test_max_and_reload),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
