/*
 * autoslot: the controller behind parallel = "auto" (SPEC section 7).  It
 * owns one placement's slot limit and moves it toward the level where the
 * placement's aggregate decode rate (tokens/s) is highest, from periodic
 * samples the caller takes (autotune does, every 250 ms).
 *
 * Pure: no I/O, no clock, no globals, no allocation.  Time exists only as
 * the sample intervals it is fed, so tests drive it with synthetic curves
 * at any speed.  The state is a plain struct so sched can embed it in the
 * placement and a reload can carry it over by copying.
 *
 * Algorithm (docs/adaptive-slots.md): compass search with shrinking steps.
 * A measurement waits until in-flight requests match the limit, discards a
 * settling stretch, then takes the median rate of a few sub-windows (each
 * a number of tokens, at least one sample long).  A neighbour at +-step
 * replaces the best level only when it beats it by `tolerance`; when both
 * neighbours fail the step halves, and at step 1 the search holds.  While
 * holding it keeps measuring, restarts when the rate drifts, and re-probes
 * +-1 at growing intervals.  Without waiting requests nothing is measured
 * and the limit stays.  A backend 503 or an error burst cuts the limit
 * multiplicatively and caps it below that level for a while.
 */
#ifndef HARMONIC_AUTOSLOT_H
#define HARMONIC_AUTOSLOT_H

#include <stdbool.h>
#include <stdint.h>

#define AUTOSLOT_SUBS_MAX 7   /* sub-windows per measurement, at most */
#define AUTOSLOT_SEEN 32      /* levels remembered during one search */

/* Tunables; autoslot_params_default() fills them. */
struct autoslot_params {
	int start;               /* first limit (clamped to max) */
	int step;                /* first search step; 0 = max / 8 within 1..16 */
	uint64_t sub_tokens;     /* a sub-window ends after this many tokens... */
	uint64_t sub_min_us;     /* ...and no sooner than this */
	uint64_t sub_max_us;     /* ...or after this long whatever the tokens */
	int subs;                /* sub-windows per measurement; the median counts */
	uint64_t settle_tokens;  /* discarded once in-flight matches the limit */
	double tolerance;        /* relative gain a neighbour needs to win */
	double drift;            /* relative change of the held rate that restarts the search */
	int reprobe_min;         /* measurements while holding before a +-1 re-probe */
	int reprobe_max;         /* the interval doubles up to this while the peak holds */
	int starve_samples;      /* consecutive samples without waiting requests before giving up */
	double backoff;          /* limit factor after a 503 or an error burst */
	uint64_t backoff_hold_us;/* how long the level that failed stays out of reach */
	double error_ratio;      /* failed / (failed + completed) in a measurement that counts as a burst */
};

enum autoslot_phase {
	AUTOSLOT_CLIMBING,  /* search, no failed probe yet */
	AUTOSLOT_REFINING,  /* search, probing around the best with shrinking steps */
	AUTOSLOT_HOLDING,   /* at the best level, measuring it, re-probing now and then */
	AUTOSLOT_BACKOFF,   /* cut after a 503 / errors, first measurement pending */
	AUTOSLOT_PHASE_COUNT
};

/* Why the limit changed. */
enum autoslot_reason {
	AUTOSLOT_R_CLIMB,     /* the last probe won: keep going that way */
	AUTOSLOT_R_PROBE,     /* trying a neighbour of the best level */
	AUTOSLOT_R_CONVERGED, /* neither neighbour wins at step 1: back to the best */
	AUTOSLOT_R_REPROBE,   /* periodic check of the neighbours while holding */
	AUTOSLOT_R_DRIFT,     /* the held rate moved: load changed, search again */
	AUTOSLOT_R_BUSY,      /* backend answered 503 */
	AUTOSLOT_R_ERRORS,    /* error burst at this level */
	AUTOSLOT_R_STARVED,   /* not enough load to measure: back to the best known */
	AUTOSLOT_R_MAX,       /* the maximum changed (reload) */
	AUTOSLOT_REASON_COUNT
};

/* One sample: what happened on the placement since the previous one. */
struct autoslot_sample {
	uint64_t dt_us;       /* time covered */
	uint64_t tokens;      /* generated tokens streamed in that time */
	int in_flight;        /* requests holding a slot now */
	bool waiting;         /* requests for the model are queued now */
	unsigned busy;        /* backend 503s in that time */
	unsigned completed;   /* requests completed */
	unsigned failed;      /* requests failed (backend or relay) */
};

/* A limit change, for the log line. */
struct autoslot_change {
	int from, to;
	enum autoslot_reason reason;
	int at_limit;         /* newest measurement: level and rate (0 = none) */
	double at_rate;
	int best_limit;       /* best level of the search and its rate (0 = none) */
	double best_rate;
};

/* Counter readings the feeder diffs between samples.  Kept with the
 * controller so they move with it across a reload; autoslot never reads them. */
struct autoslot_marks {
	uint64_t at_us;       /* 0 = no reading yet */
	uint64_t tokens, completed, failed, busy_until_us;
};

struct autoslot {
	struct autoslot_params par;
	int limit;            /* current limit, 1..max */
	int max;              /* max_parallel_slots (memory-capped by config) */
	enum autoslot_phase phase;
	int step, step0, dir; /* search step and preferred direction (+1/-1) */
	bool have_best;
	int best_limit;       /* centre of the search; the held level */
	double best_rate;     /* tokens/s */
	int last_limit;       /* newest measurement (0 = none) */
	double last_rate;
	bool starved;         /* no waiting requests: not measuring */
	/* measurement in progress */
	int stage;            /* 0 fill, 1 settle, 2 sample */
	int unsat;            /* consecutive samples without saturation */
	uint64_t acc_tokens, acc_us;
	double sub[AUTOSLOT_SUBS_MAX];
	int n_sub;
	unsigned acc_completed, acc_failed;
	bool busy_guard;      /* ignore 503s until the cut limit is reached */
	/* levels measured in this search (stale ones are forgotten on restart) */
	struct {
		int limit;
		double rate;
	} seen[AUTOSLOT_SEEN];
	int n_seen, seen_next;
	/* holding */
	double hold[3];       /* newest measurements at best_limit */
	int n_hold;
	int held;             /* measurements since holding began / the last re-probe */
	int reprobe_every;
	unsigned reprobes;    /* re-probes started */
	int search_from;      /* best level when the current search began */
	bool reprobing;
	/* back-off */
	int ceiling;          /* levels >= ceiling are out of reach until ceiling_until_us */
	uint64_t ceiling_until_us;
	uint64_t clock_us;    /* sum of sample intervals */
	/* counters */
	uint64_t changes, measurements, backoffs;
	struct autoslot_marks marks;
};

/* Defaults: start 4, 256-token sub-windows (>= 250 ms), 3 per measurement,
 * 4 % tolerance, re-probe every 8..64 measurements, back-off x0.75 for 60 s. */
void autoslot_params_default(struct autoslot_params *par);
/* Set a up for a placement whose ceiling is max (>= 1) with par (NULL =
 * defaults).  Returns the first limit. */
int autoslot_init(struct autoslot *a, const struct autoslot_params *par, int max);
/* Feed one sample.  Returns true when the limit changed; *chg (may be NULL)
 * then says from what, to what and why.  The new limit is a->limit. */
bool autoslot_feed(struct autoslot *a, const struct autoslot_sample *s, struct autoslot_change *chg);
/* A new maximum (reload): keeps what was learnt, clamps the limit.
 * Returns the limit. */
int autoslot_set_max(struct autoslot *a, int max);
/* Highest limit the search may use now (max, or below a 503 ceiling). */
int autoslot_ceiling(const struct autoslot *a);

const char *autoslot_phase_name(enum autoslot_phase p);
const char *autoslot_reason_name(enum autoslot_reason r);

#endif
