/*
 * autotune: the loop side of parallel = "auto".  The controller itself
 * (autoslot) is pure; this file reads sched's counters, feeds it, and
 * applies what it decides.  The marks it diffs against live in the
 * controller's struct, inside the placement, so a reload (which copies
 * placements) carries them with the counters they were read from.
 */
#include "autotune.h"

#include "autoslot.h"
#include "config.h"
#include "ev.h"
#include "log.h"
#include "sched.h"

static struct ev_timer timer;

static void
mark(struct rt_placement *p, uint64_t now)
{
	struct autoslot_marks *mk = &p->autoslot.marks;

	mk->at_us = now;
	mk->tokens = p->streamed_tokens;
	mk->completed = p->outcome[STATS_COMPLETED];
	mk->failed = p->outcome[STATS_FAILED];
	mk->busy_until_us = p->busy_until_us;
}

/* One sample for p; returns true when its limit rose (dispatch then). */
static bool
feed(struct rt_placement *p, uint64_t now)
{
	struct autoslot *a = &p->autoslot;
	const struct autoslot_marks *mk = &a->marks;
	struct autoslot_sample s;
	struct autoslot_change c;
	int old = p->slots;

	if (mk->at_us == 0 || now <= mk->at_us || p->streamed_tokens < mk->tokens) {
		mark(p, now); /* first reading */
		return false;
	}
	s.dt_us = now - mk->at_us;
	s.tokens = p->streamed_tokens - mk->tokens;
	s.completed = (unsigned)(p->outcome[STATS_COMPLETED] - mk->completed);
	s.failed = (unsigned)(p->outcome[STATS_FAILED] - mk->failed);
	/* sched_placement_busy() pushes busy_until_us on every 503. */
	s.busy = p->busy_until_us != mk->busy_until_us ? 1 : 0;
	s.in_flight = p->in_flight;
	s.waiting = p->model->queued > 0;
	mark(p, now);
	if (!p->host->up)
		return false; /* a dead host measures nothing */
	if (!autoslot_feed(a, &s, &c))
		return false;
	p->slots = a->limit;
	if (c.at_limit > 0 && c.best_limit > 0)
		log_info("auto: %s@%s %d -> %d (%s: %.0f tok/s at %d, best %.0f tok/s at %d)", p->model->cfg->name,
		    p->host->cfg->name, c.from, c.to, autoslot_reason_name(c.reason), c.at_rate, c.at_limit,
		    c.best_rate, c.best_limit);
	else
		log_info("auto: %s@%s %d -> %d (%s)", p->model->cfg->name, p->host->cfg->name, c.from, c.to,
		    autoslot_reason_name(c.reason));
	return p->slots > old;
}

static void
tick(void *arg)
{
	uint64_t now = ev_update_now();
	bool raised = false;

	for (int i = 0; sched != NULL && i < sched->n_models; i++) {
		struct rt_model *m = &sched->models[i];
		for (int k = 0; k < m->n_placements; k++)
			if (m->placements[k].cfg->parallel_auto)
				raised |= feed(&m->placements[k], now);
	}
	if (raised)
		sched_dispatch();
	ev_timer_start(&timer, AUTOTUNE_TICK_US);
}

void
autotune_init(void)
{
	ev_timer_init(&timer, tick, NULL);
	ev_timer_start(&timer, AUTOTUNE_TICK_US);
}

void
autotune_shutdown(void)
{
	ev_timer_stop(&timer);
}
