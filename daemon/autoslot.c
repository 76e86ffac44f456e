/*
 * autoslot: the parallel = "auto" controller.  Pure: state in, state out.
 * See include/autoslot.h for the contract and docs/adaptive-slots.md for
 * why it converges on the report's curves.
 */
#include "autoslot.h"

#include <assert.h>
#include <math.h>
#include <string.h>

enum { STAGE_FILL, STAGE_SETTLE, STAGE_SAMPLE };

static const char *const phase_names[AUTOSLOT_PHASE_COUNT] = {
	"climbing", "refining", "holding", "backoff"};

static const char *const reason_names[AUTOSLOT_REASON_COUNT] = {
	"climbing", "probing", "converged", "re-probing", "load changed", "backend busy (503)",
	"backend errors", "not enough load", "new maximum"};

const char *
autoslot_phase_name(enum autoslot_phase p)
{
	return p < AUTOSLOT_PHASE_COUNT ? phase_names[p] : "?";
}

const char *
autoslot_reason_name(enum autoslot_reason r)
{
	return r < AUTOSLOT_REASON_COUNT ? reason_names[r] : "?";
}

void
autoslot_params_default(struct autoslot_params *par)
{
	memset(par, 0, sizeof(*par));
	par->start = 4;
	par->step = 0;
	par->sub_tokens = 256;
	par->sub_min_us = 250000;
	par->sub_max_us = 5000000;
	par->subs = 3;
	par->settle_tokens = 128;
	par->tolerance = 0.04;
	par->drift = 0.20;
	par->reprobe_min = 8;
	par->reprobe_max = 64;
	par->starve_samples = 8;
	par->backoff = 0.75;
	par->backoff_hold_us = 60000000;
	par->error_ratio = 0.20;
}

static int
clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

int
autoslot_ceiling(const struct autoslot *a)
{
	if (a->ceiling > 0 && a->clock_us < a->ceiling_until_us)
		return clampi(a->ceiling - 1, 1, a->max);
	return a->max;
}

static void
forget(struct autoslot *a)
{
	a->n_seen = 0;
	a->seen_next = 0;
}

static const double *
seen_rate(const struct autoslot *a, int limit)
{
	for (int i = 0; i < a->n_seen; i++)
		if (a->seen[i].limit == limit)
			return &a->seen[i].rate;
	return NULL;
}

static void
remember(struct autoslot *a, int limit, double rate)
{
	for (int i = 0; i < a->n_seen; i++)
		if (a->seen[i].limit == limit) {
			a->seen[i].rate = rate;
			return;
		}
	/* Full: overwrite the oldest (a search visits far fewer levels). */
	a->seen[a->seen_next].limit = limit;
	a->seen[a->seen_next].rate = rate;
	a->seen_next = (a->seen_next + 1) % AUTOSLOT_SEEN;
	if (a->n_seen < AUTOSLOT_SEEN)
		a->n_seen++;
}

/* Start a fresh measurement (after a change, or when load returns). */
static void
restart_measure(struct autoslot *a)
{
	a->stage = STAGE_FILL;
	a->unsat = 0;
	a->acc_tokens = a->acc_us = 0;
	a->n_sub = 0;
	a->acc_completed = a->acc_failed = 0;
}

static bool
set_limit(struct autoslot *a, int to, enum autoslot_reason why, struct autoslot_change *chg)
{
	int from = a->limit;

	to = clampi(to, 1, autoslot_ceiling(a));
	restart_measure(a);
	if (to == from)
		return false;
	a->limit = to;
	a->changes++;
	if (chg != NULL) {
		chg->from = from;
		chg->to = to;
		chg->reason = why;
		chg->at_limit = a->last_limit;
		chg->at_rate = a->last_rate;
		chg->best_limit = a->have_best ? a->best_limit : 0;
		chg->best_rate = a->have_best ? a->best_rate : 0;
	}
	return true;
}

int
autoslot_init(struct autoslot *a, const struct autoslot_params *par, int max)
{
	memset(a, 0, sizeof(*a));
	if (par != NULL)
		a->par = *par;
	else
		autoslot_params_default(&a->par);
	if (a->par.subs < 1)
		a->par.subs = 1;
	if (a->par.subs > AUTOSLOT_SUBS_MAX)
		a->par.subs = AUTOSLOT_SUBS_MAX;
	a->max = max < 1 ? 1 : max;
	a->step0 = a->par.step > 0 ? a->par.step : clampi(a->max / 8, 1, 16);
	a->step = a->step0;
	a->dir = 1;
	a->limit = clampi(a->par.start, 1, a->max);
	a->phase = a->max == 1 ? AUTOSLOT_HOLDING : AUTOSLOT_CLIMBING;
	a->reprobe_every = a->par.reprobe_min;
	restart_measure(a);
	return a->limit;
}

int
autoslot_set_max(struct autoslot *a, int max)
{
	if (max < 1)
		max = 1;
	if (max == a->max)
		return a->limit;
	a->max = max;
	if (a->step0 > clampi(max / 8, 1, 16) && a->par.step == 0)
		a->step0 = clampi(max / 8, 1, 16);
	if (a->limit > max || (a->have_best && a->best_limit > max)) {
		/* What was learnt above the new maximum no longer applies. */
		forget(a);
		a->have_best = false;
		a->phase = max == 1 ? AUTOSLOT_HOLDING : AUTOSLOT_CLIMBING;
		a->step = a->step0;
		set_limit(a, a->limit, AUTOSLOT_R_MAX, NULL);
	} else if (a->phase == AUTOSLOT_HOLDING && max > 1) {
		a->held = a->reprobe_every; /* re-probe soon: there may be room now */
	}
	return a->limit;
}

/*
 * Choose the next level to measure around the best one: the untried
 * neighbour at +-step (preferred direction first); when both are known the
 * step halves; at step 1 with both known the search is over.  why is the
 * reason to log for a probe (-1: climbing when the last probe won in the
 * preferred direction, else probing).
 */
static bool
next_probe(struct autoslot *a, int why, bool moved, struct autoslot_change *chg)
{
	int hi = autoslot_ceiling(a);

	for (;;) {
		for (int k = 0; k < 2; k++) {
			int d = k == 0 ? a->dir : -a->dir;
			int cand = a->best_limit + d * a->step;
			enum autoslot_reason r;
			if (cand < 1 || cand > hi || seen_rate(a, cand) != NULL)
				continue;
			r = why >= 0 ? (enum autoslot_reason)why : moved && k == 0 ? AUTOSLOT_R_CLIMB : AUTOSLOT_R_PROBE;
			return set_limit(a, cand, r, chg);
		}
		if (a->step > 1) {
			a->step /= 2;
			a->phase = AUTOSLOT_REFINING;
			continue;
		}
		break;
	}
	/* Converged.  A re-probe that found the same peak stretches the
	 * schedule; one that moved the peak keeps checking often. */
	if (a->reprobing && a->best_limit == a->search_from)
		a->reprobe_every = a->reprobe_every * 2 > a->par.reprobe_max ? a->par.reprobe_max : a->reprobe_every * 2;
	else
		a->reprobe_every = a->par.reprobe_min;
	a->reprobing = false;
	a->phase = AUTOSLOT_HOLDING;
	a->n_hold = 0;
	a->held = 0;
	return set_limit(a, a->best_limit, AUTOSLOT_R_CONVERGED, chg);
}

/* Begin a search around the best level: forget the old levels (their rates
 * belong to an older load), keep the best one's fresh rate. */
static bool
search(struct autoslot *a, int step, int dir, enum autoslot_reason why, struct autoslot_change *chg)
{
	forget(a);
	remember(a, a->best_limit, a->best_rate);
	a->step = step < 1 ? 1 : step;
	a->dir = dir;
	a->phase = AUTOSLOT_REFINING;
	a->search_from = a->best_limit;
	a->reprobing = why == AUTOSLOT_R_REPROBE;
	return next_probe(a, (int)why, false, chg);
}

static double
median(const double *v, int n)
{
	double t[AUTOSLOT_SUBS_MAX];

	assert(n >= 1 && n <= AUTOSLOT_SUBS_MAX);
	memcpy(t, v, (size_t)n * sizeof(*t));
	for (int i = 1; i < n; i++) /* insertion sort: n <= 7 */
		for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
			double x = t[j];
			t[j] = t[j - 1];
			t[j - 1] = x;
		}
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* Cut the limit after a 503 or an error burst at level `at`, and keep
 * levels >= at out of reach for backoff_hold_us. */
static bool
back_off(struct autoslot *a, int at, enum autoslot_reason why, struct autoslot_change *chg)
{
	int to;

	at = clampi(at, 1, a->limit);
	to = (int)floor(at * a->par.backoff);
	if (to >= at)
		to = at - 1;
	if (to < 1)
		to = 1;
	a->ceiling = at > 1 ? at : 2; /* never below one slot */
	a->ceiling_until_us = a->clock_us + a->par.backoff_hold_us;
	a->backoffs++;
	forget(a);
	a->have_best = false;
	a->reprobing = false;
	a->phase = AUTOSLOT_BACKOFF;
	a->step = a->step0 / 2 > 1 ? a->step0 / 2 : 1;
	a->dir = 1;
	a->busy_guard = true;
	return set_limit(a, to, why, chg);
}

/* A measurement finished: rate r at a->limit. */
static bool
measured(struct autoslot *a, double r, struct autoslot_change *chg)
{
	int at = a->limit;

	a->measurements++;
	a->last_limit = at;
	a->last_rate = r;
	if (a->acc_failed >= 2 &&
	    (double)a->acc_failed > a->par.error_ratio * (double)(a->acc_failed + a->acc_completed))
		return back_off(a, at, AUTOSLOT_R_ERRORS, chg);
	if (a->max == 1) {
		a->have_best = true;
		a->best_limit = 1;
		a->best_rate = r;
		restart_measure(a);
		return false;
	}
	if (a->phase == AUTOSLOT_HOLDING) {
		double m;
		a->hold[a->n_hold % 3] = r;
		a->n_hold++;
		a->held++;
		m = median(a->hold, a->n_hold < 3 ? a->n_hold : 3);
		if (a->n_hold >= 3 && fabs(m - a->best_rate) > a->par.drift * a->best_rate) {
			/* Sustained change of the held rate: the load changed (prompt
			 * lengths, another model on the host).  Search again. */
			a->best_rate = m;
			return search(a, a->step0, 1, AUTOSLOT_R_DRIFT, chg);
		}
		if (a->n_hold >= 3)
			a->best_rate = m;
		if (a->held >= a->reprobe_every && a->max > 1) {
			/* Mostly +-1; every fourth time +-step0, which sees past a
			 * plateau that a slow change of load may have left. */
			a->dir = -a->dir; /* alternate which side is looked at first */
			return search(a, ++a->reprobes % 4 == 0 ? a->step0 : 1, a->dir, AUTOSLOT_R_REPROBE, chg);
		}
		restart_measure(a);
		a->stage = STAGE_SAMPLE; /* the limit did not move: no fill, no settle */
		return false;
	}
	remember(a, at, r);
	if (!a->have_best) {
		a->have_best = true;
		a->best_limit = at;
		a->best_rate = r;
		a->search_from = at;
		if (a->phase == AUTOSLOT_BACKOFF)
			a->phase = AUTOSLOT_REFINING;
		return next_probe(a, -1, false, chg);
	}
	if (at == a->best_limit) {
		a->best_rate = r; /* re-measured (load came back) */
		return next_probe(a, -1, false, chg);
	}
	if (r > a->best_rate * (1 + a->par.tolerance)) {
		int d = at > a->best_limit ? 1 : -1;
		a->best_limit = at;
		a->best_rate = r;
		a->dir = d;
		return next_probe(a, -1, true, chg);
	}
	if (a->phase == AUTOSLOT_CLIMBING)
		a->phase = AUTOSLOT_REFINING;
	return next_probe(a, -1, false, chg);
}

/* Not enough load to measure: give the search up, stand at the best. */
static bool
starve(struct autoslot *a, struct autoslot_change *chg)
{
	bool changed = false;

	a->starved = true;
	if (a->have_best && a->phase != AUTOSLOT_HOLDING) {
		a->phase = AUTOSLOT_HOLDING;
		a->reprobing = false;
		a->n_hold = 0;
		/* Check the neighbours soon after the load returns. */
		a->reprobe_every = a->par.reprobe_min;
		a->held = 0;
		changed = set_limit(a, a->best_limit, AUTOSLOT_R_STARVED, chg);
	}
	restart_measure(a);
	return changed;
}

bool
autoslot_feed(struct autoslot *a, const struct autoslot_sample *s, struct autoslot_change *chg)
{
	bool saturated = s->waiting || s->in_flight >= a->limit;

	a->clock_us += s->dt_us;
	if (a->ceiling > 0 && a->clock_us >= a->ceiling_until_us)
		a->ceiling = 0;
	if (s->busy > 0 && !a->busy_guard)
		return back_off(a, s->in_flight < a->limit ? s->in_flight : a->limit, AUTOSLOT_R_BUSY, chg);
	if (a->starved) {
		if (!saturated)
			return false;
		a->starved = false;
		restart_measure(a);
	}
	if (!saturated) {
		/* Demand is below the limit: the rate says nothing about capacity. */
		a->acc_tokens = a->acc_us = 0;
		if (++a->unsat >= a->par.starve_samples)
			return starve(a, chg);
		return false;
	}
	a->unsat = 0;
	switch (a->stage) {
	case STAGE_FILL:
		/* After a cut, in-flight requests above the limit must finish first. */
		if (s->in_flight > a->limit)
			return false;
		a->busy_guard = false;
		a->stage = STAGE_SETTLE;
		a->acc_tokens = a->acc_us = 0;
		return false;
	case STAGE_SETTLE:
		a->acc_tokens += s->tokens;
		a->acc_us += s->dt_us;
		if ((a->acc_tokens >= a->par.settle_tokens || a->acc_us >= a->par.sub_max_us) &&
		    a->acc_us >= a->par.sub_min_us) {
			a->stage = STAGE_SAMPLE;
			a->acc_tokens = a->acc_us = 0;
		}
		return false;
	default:
		break;
	}
	a->acc_tokens += s->tokens;
	a->acc_us += s->dt_us;
	a->acc_completed += s->completed;
	a->acc_failed += s->failed;
	if ((a->acc_tokens < a->par.sub_tokens && a->acc_us < a->par.sub_max_us) || a->acc_us < a->par.sub_min_us)
		return false;
	a->sub[a->n_sub++] = (double)a->acc_tokens * 1e6 / (double)a->acc_us;
	a->acc_tokens = a->acc_us = 0;
	if (a->n_sub < a->par.subs)
		return false;
	return measured(a, median(a->sub, a->n_sub), chg);
}
