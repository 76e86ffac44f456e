/* health: the probe cadence and the down/up verdicts; what a probe asks is
 * the host kind's (backend.h). */
#include "health.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "config.h"
#include "ev.h"
#include "log.h"
#include "sched.h"
#include "xmalloc.h"

#define HEALTH_FAILS_DOWN 2 /* probes in a row that must fail before a host is down */

struct host_state {
	bool probing;
	bool probed;            /* answered or failed at least once */
	bool warmed;            /* warm-up sent since it was last seen up */
};

static struct ev_timer tick;
static struct host_state *states;
static int n_states;

static void
on_probe_done(struct rt_host *h, enum backend_verdict v)
{
	struct host_state *st;

	if (sched == NULL || h->index >= n_states || v == BACKEND_CANCELLED)
		return;
	st = &states[h->index];
	st->probing = false;
	st->probed = true;
	if (v == BACKEND_UP) {
		h->fails = 0;
		sched_host_set_up(h, true);
		if (!st->warmed) {
			st->warmed = true;
			backend_of(h)->came_up(h);
		}
	} else if (v == BACKEND_NOT_READY || ++h->fails >= HEALTH_FAILS_DOWN) {
		/* One late answer is a busy host (or a loaded machine), not a
		 * dead one: a host that refuses connections is marked down at
		 * once by the request path (health_suspect). */
		st->warmed = false;
		if (h->up && v == BACKEND_NOT_READY)
			log_info("host %s: %s says it is not ready (loading its model)", h->cfg->name, backend_of(h)->name);
		else if (h->up)
			log_warnx("host %s: %d probes in a row failed (%s is not up)", h->cfg->name, h->fails,
			    backend_of(h)->name);
		sched_host_set_up(h, false);
	}
}

static void
probe_host(struct rt_host *h)
{
	struct host_state *st = &states[h->index];
	double t = sched->cfg->health_interval;

	if (st->probing)
		return;
	st->probing = true;
	if (backend_of(h)->probe(h, t < 2.0 ? (t > 0.5 ? t : 0.5) : 2.0) < 0)
		st->probing = false;
}

static void
on_tick(void *arg)
{
	for (int i = 0; i < sched->n_hosts; i++)
		probe_host(&sched->hosts[i]);
	ev_timer_start(&tick, (uint64_t)(sched->cfg->health_interval * 1e6));
}

void
health_init(void)
{
	n_states = sched->n_hosts;
	states = xcalloc((size_t)n_states, sizeof(*states));
	backend_set_verdict_sink(on_probe_done);
	ev_timer_init(&tick, on_tick, NULL);
	on_tick(NULL);
}

void
health_shutdown(void)
{
	ev_timer_stop(&tick);
	free(states);
	states = NULL;
	n_states = 0;
}

void
health_suspect(struct rt_host *h)
{
	if (states == NULL)
		return;
	states[h->index].warmed = false;
	sched_host_set_up(h, false);
	probe_host(h);
}

bool
health_first_round_done(void)
{
	for (int i = 0; i < n_states; i++)
		if (!states[i].probed)
			return false;
	return true;
}
