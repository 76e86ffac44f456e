/*
 * Unit tests of the scheduler: slot limits, weighted sharing between tiers,
 * reserves, agent fairness, no head-of-line blocking across models,
 * replicas, affinity routing (sticky conversations, bounded load, the
 * wait for a full affine replica, shared prefixes, least_loaded, reload),
 * busy back-off, draining, reload, and dispatch cost against queue length.
 *
 * sched is pure logic: it links with what sits below it and nothing else.
 * The test plays the layer above: its items stand for requests, and the
 * hooks it hands to sched_init record what the dispatcher decided.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "affinity.h"
#include "config.h"
#include "ev.h"
#include "log.h"
#include "sched.h"

/* ---- the layer above, played by the test ---- */

static int started, unservable;
static struct sched_item *running[100000];
static int n_running;
static int running_lo; /* running[i] is NULL for every i below it */
static struct sched_item *items[100000]; /* every item, freed at teardown */
static int n_items;

static void
on_start(struct sched_item *it)
{
	started++;
	running[n_running++] = it;
}

static void
on_unservable(struct sched_item *it)
{
	unservable++;
	sched->totals.outcome[STATS_REJECTED]++;
}

static const struct sched_hooks hooks = {on_start, on_unservable};

static struct config *
load(const char *text)
{
	struct config_diags d = {0};
	struct config *cfg = config_load_string(text, "test.conf", &d);

	if (cfg == NULL)
		config_diags_print(&d, stderr);
	config_diags_free(&d);
	assert_non_null(cfg);
	return cfg;
}

static struct config *cfg;

static int
setup_with(const char *text)
{
	ev_init();
	cfg = load(text);
	sched_init(cfg, &hooks);
	started = unservable = 0;
	n_running = running_lo = 0;
	return 0;
}

/* Take it out of wherever it still is. */
static void
finish(struct sched_item *it)
{
	if (it->aq != NULL)
		sched_dequeue(it);
	if (it->holds_slot)
		sched_release(it);
}

static int
teardown(void **state)
{
	for (int i = 0; i < n_items; i++) {
		finish(items[i]);
		sched_unbind(items[i]);
		free(items[i]->aff);
		free(items[i]);
	}
	n_items = 0;
	ev_flush();
	sched_shutdown();
	config_unref(cfg);
	ev_shutdown();
	return 0;
}

/* A new item bound to model, for agent (not queued). */
static struct sched_item *
new_item(const char *model, const char *agent)
{
	struct sched_item *it = calloc(1, sizeof(*it));

	assert_non_null(it);
	it->agent = agent;
	sched_bind(it, sched_find_model(model));
	assert_non_null(it->model);
	items[n_items++] = it;
	return it;
}

/* A queued request for model on behalf of agent, or NULL when refused. */
static struct sched_item *
submit(const char *model, const char *agent)
{
	struct sched_item *it = new_item(model, agent);

	sched->totals.requests++;
	if (sched_enqueue(it, false) < 0) {
		sched->totals.outcome[STATS_REJECTED]++;
		return NULL;
	}
	return it;
}

/* Complete the i-th started request and let the dispatcher run. */
static struct sched_item *
complete(int i)
{
	struct sched_item *it = running[i];

	running[i] = NULL;
	sched_release(it);
	ev_flush();
	return it;
}

static int
oldest_running(void)
{
	/* From running_lo, not 0: the slots below are all finished, and
	 * rescanning them made each call slower as a test went on, which the
	 * dispatch-cost comparison below read as a cost of the queue length. */
	for (int i = running_lo; i < n_running; i++)
		if (running[i] != NULL)
			return running_lo = i;
	return -1;
}

/* ---- tests ---- */

static const char *two_tiers =
    "hosts = ( { name = \"h\"; url = \"http://127.0.0.1:1\"; memory_gb = 100.0; num_parallel = 64; max_parallel = 1; } );\n"
    "tiers = ( { name = \"hi\"; weight = 8; queue_depth = 1000; }, { name = \"lo\"; weight = 1; queue_depth = 1000; } );\n"
    "models = ( { name = \"a\"; tier = \"hi\"; placements = ( { host = \"h\"; parallel = 1; } ); },\n"
    "           { name = \"b\"; tier = \"lo\"; placements = ( { host = \"h\"; parallel = 1; } ); } );\n";

static int setup_two_tiers(void **s) { return setup_with(two_tiers); }

static void
test_weighted_share(void **state)
{
	int hi = 0, lo = 0;

	for (int i = 0; i < 400; i++) {
		submit("a", "");
		submit("b", "");
	}
	sched_dispatch();
	for (int n = 0; n < 180; n++) {
		int i = oldest_running();
		assert_true(i >= 0);
		if (running[i]->model->tier->index == 0)
			hi++;
		else
			lo++;
		complete(i);
	}
	/* 8:1 within 15%, and the low tier is not starved. */
	assert_true(lo > 0);
	double ratio = (double)hi / lo;
	assert_true(ratio > 8 * 0.85 && ratio < 8 * 1.15);
}

static void
test_slot_limit_and_queue(void **state)
{
	for (int i = 0; i < 20; i++)
		submit("a", "");
	sched_dispatch();
	assert_int_equal(started, 1); /* max_parallel = 1 */
	assert_int_equal(sched->tiers[0].queued, 19);
	assert_int_equal(sched->hosts[0].in_flight, 1);
	complete(oldest_running());
	assert_int_equal(started, 2);
	assert_int_equal(sched->hosts[0].in_flight, 1);
}

static const char *parallel3 =
    "hosts = ( { name = \"h\"; url = \"http://127.0.0.1:1\"; memory_gb = 100.0; num_parallel = 64; } );\n"
    "tiers = ( { name = \"t\"; queue_depth = 5; } );\n"
    "models = ( { name = \"a\"; tier = \"t\"; placements = ( { host = \"h\"; parallel = 3; } ); },\n"
    "           { name = \"b\"; tier = \"t\"; placements = ( { host = \"h\"; parallel = 2; } ); } );\n";

static int setup_parallel3(void **s) { return setup_with(parallel3); }

static void
test_no_head_of_line_blocking(void **state)
{
	/* Model a's slots are full and requests wait; b's request, newer,
	 * still goes at once. */
	for (int i = 0; i < 5; i++)
		submit("a", "");
	sched_dispatch();
	assert_int_equal(started, 3);
	assert_non_null(submit("b", ""));
	sched_dispatch();
	assert_int_equal(started, 4);
	assert_string_equal(running[3]->model->cfg->name, "b");
}

static void
test_queue_depth_rejects(void **state)
{
	int accepted = 0;

	for (int i = 0; i < 10; i++)
		accepted += submit("a", "") != NULL;
	assert_int_equal(accepted, 5); /* queue_depth 5, nothing dispatched yet */
	assert_int_equal(sched->totals.outcome[STATS_REJECTED], 5);
}

static void
test_agent_round_robin(void **state)
{
	struct sched_item *late;

	/* Agent x floods; agent y arrives after; y is served second. */
	for (int i = 0; i < 4; i++)
		submit("b", "x");
	late = submit("b", "y");
	sched_dispatch(); /* b has 2 slots: x1 and y */
	assert_int_equal(started, 2);
	assert_ptr_equal(running[1], late);
}

static const char *reserve_cfg =
    "hosts = ( { name = \"h\"; url = \"http://127.0.0.1:1\"; memory_gb = 100.0; num_parallel = 64; max_parallel = 4; } );\n"
    "tiers = ( { name = \"exec\"; weight = 8; reserve = 2; }, { name = \"spec\"; weight = 1; } );\n"
    "models = ( { name = \"e\"; tier = \"exec\"; placements = ( { host = \"h\"; parallel = 4; } ); },\n"
    "           { name = \"s\"; tier = \"spec\"; placements = ( { host = \"h\"; parallel = 4; } ); } );\n";

static int setup_reserve(void **s) { return setup_with(reserve_cfg); }

static void
test_reserve_keeps_slots_for_higher_tier(void **state)
{
	for (int i = 0; i < 10; i++)
		submit("s", "");
	sched_dispatch();
	assert_int_equal(started, 2); /* 4 slots - 2 reserved */
	submit("e", "");
	sched_dispatch();
	assert_int_equal(started, 3); /* the executive request does not wait */
	assert_string_equal(running[2]->model->cfg->name, "e");
}

static const char *replicas_cfg =
    "hosts = ( { name = \"big\"; url = \"http://127.0.0.1:1\"; memory_gb = 100.0; num_parallel = 64; },\n"
    "          { name = \"small\"; url = \"http://127.0.0.1:2\"; memory_gb = 100.0; num_parallel = 64; } );\n"
    "tiers = ( { name = \"t\"; } );\n"
    "models = ( { name = \"r\"; tier = \"t\"; placements = ( { host = \"big\"; parallel = 8; }, { host = \"small\"; parallel = 2; } ); } );\n";

static int setup_replicas(void **s) { return setup_with(replicas_cfg); }

static void
test_replicas_most_free_relative(void **state)
{
	int on_big = 0;

	for (int i = 0; i < 10; i++)
		submit("r", "");
	sched_dispatch();
	assert_int_equal(started, 10);
	for (int i = 0; i < 10; i++)
		on_big += strcmp(running[i]->placement->host->cfg->name, "big") == 0;
	assert_int_equal(on_big, 8);
	/* A host that is down gets nothing. */
	for (int i = 0; i < 10; i++)
		complete(i);
	sched_host_set_up(&sched->hosts[0], false);
	n_running = running_lo = 0;
	for (int i = 0; i < 3; i++)
		submit("r", "");
	sched_dispatch();
	assert_int_equal(n_running, 2);
	assert_string_equal(running[0]->placement->host->cfg->name, "small");
	assert_string_equal(running[1]->placement->host->cfg->name, "small");
}

static void
test_busy_backoff_shrinks_slots(void **state)
{
	struct rt_placement *p = &sched->models[0].placements[0];

	for (int i = 0; i < 5; i++)
		submit("a", "");
	sched_dispatch();
	assert_int_equal(p->in_flight, 3);
	sched_placement_busy(p);
	assert_int_equal(sched_placement_limit(p), 2);
	complete(0);
	complete(1);
	assert_int_equal(p->in_flight, 2); /* one finished, no new one started */
}

/* parallel = 1 and a 503: the placement pauses (limit 0) for the back-off,
 * so the retried request cannot go straight back (issue 13: 15,000
 * attempts in a test before this). */
static void
test_busy_with_one_slot_pauses(void **state)
{
	struct rt_placement *p = &sched->models[0].placements[0];

	submit("a", "");
	submit("a", "");
	sched_dispatch();
	assert_int_equal(p->in_flight, 1);
	sched_placement_busy(p); /* the request that got 503 still holds its slot */
	assert_int_equal(sched_placement_limit(p), 0);
	complete(0);
	assert_int_equal(p->in_flight, 0); /* the slot is free, but nobody is sent */
	assert_int_equal(n_running, 1);
	p->busy_until_us = ev_now_us(); /* the back-off ends */
	sched_dispatch();
	assert_int_equal(n_running, 2);
}

/* The back-off doubles per consecutive 503 from 0.25 s up to 8 s, jittered
 * over [d/2, d]; a success ends the streak. */
static void
test_busy_backoff_doubles_with_jitter(void **state)
{
	struct rt_placement *p = &sched->models[0].placements[0];

	assert_int_equal(sched_backoff_us(1, 0), 125000);
	assert_int_equal(sched_backoff_us(1, 125000), 250000);
	assert_int_equal(sched_backoff_us(2, 0), 250000);
	assert_int_equal(sched_backoff_us(3, 500000), 1000000);
	assert_int_equal(sched_backoff_us(30, UINT64_MAX), 4000000 + UINT64_MAX % 4000001);
	for (int s = 1; s < 40; s++)
		for (uint64_t r = 0; r < 5; r++) {
			uint64_t d = sched_backoff_us(s, r * 7919);
			assert_true(d >= 125000 && d <= 8000000);
		}
	submit("a", "");
	sched_dispatch();
	sched_placement_busy(p);
	sched_placement_busy(p);
	assert_int_equal(p->busy_streak, 2);
	assert_true(p->busy_until_us - ev_now_us() <= 500000);
	sched_placement_ok(p);
	assert_int_equal(p->busy_streak, 0);
	assert_int_equal(p->busy_answers, 0);
}

/* Draining: nothing enters a queue, retries included. */
static void
test_drain_refuses_enqueue(void **state)
{
	struct sched_item *it = new_item("a", "");

	sched_drain();
	assert_int_equal(sched_enqueue(it, false), SCHED_DRAINING);
	assert_int_equal(sched_enqueue(it, true), SCHED_DRAINING);
	assert_int_equal(sched->tiers[0].queued, 0);
}

/* Waits add up across re-queues: the first enqueue time stays. */
static void
test_requeue_keeps_first_enqueue_time(void **state)
{
	struct sched_item *it = submit("a", "");
	uint64_t first = it->t_enqueue_us;

	assert_true(first != 0);
	sched_dequeue(it);
	ev_update_now();
	assert_int_equal(sched_enqueue(it, true), 0);
	assert_int_equal(it->t_enqueue_us, first);
}

/* Every host of a model down: its queued items go back to the layer above
 * (which answers them), none is dispatched. */
static void
test_host_down_hands_queued_items_up(void **state)
{
	for (int i = 0; i < 5; i++)
		submit("a", "");
	sched_dispatch();
	assert_int_equal(started, 3);
	sched_host_set_up(&sched->hosts[0], false);
	assert_int_equal(unservable, 2);
	assert_int_equal(sched->tiers[0].queued, 0);
	assert_int_equal(sched->models[0].queued, 0);
}

static struct sched_item *requeued[16];
static int n_requeued;

static void
on_requeue(struct sched_item *it)
{
	requeued[n_requeued++] = it;
}

/* A reload re-points every bound item: in-flight ones keep their slot
 * where their placement survives and are recounted; queued ones are handed
 * back, oldest first, with their model (or NULL when it is gone). */
static void
test_reload_moves_items(void **state)
{
	static const char *without_a =
	    "hosts = ( { name = \"h\"; url = \"http://127.0.0.1:1\"; memory_gb = 100.0; num_parallel = 64; } );\n"
	    "tiers = ( { name = \"t\"; queue_depth = 5; } );\n"
	    "models = ( { name = \"b\"; tier = \"t\"; placements = ( { host = \"h\"; parallel = 2; } ); } );\n";
	struct config *same = load(parallel3), *gone = load(without_a);
	struct sched_item *q1, *q2, *b1;

	for (int i = 0; i < 3; i++)
		submit("a", "");
	sched_dispatch();
	q1 = submit("a", "");
	q2 = submit("a", "");
	b1 = submit("b", "");
	sched_dispatch();
	assert_int_equal(started, 4); /* three of a, one of b */
	n_requeued = 0;
	sched_reload(same, on_requeue);
	assert_int_equal(n_requeued, 2);
	assert_ptr_equal(requeued[0], q1);
	assert_ptr_equal(requeued[1], q2);
	assert_string_equal(q1->model->cfg->name, "a");
	assert_int_equal(sched->models[0].placements[0].in_flight, 3); /* recounted */
	assert_int_equal(sched->hosts[0].in_flight, 4);
	n_requeued = 0;
	sched_reload(gone, on_requeue);
	assert_int_equal(n_requeued, 0); /* nothing was queued again */
	assert_null(running[0]->model);  /* a is gone */
	assert_false(running[0]->holds_slot);
	assert_ptr_equal(b1->model, &sched->models[0]);
	assert_true(b1->holds_slot);
	assert_int_equal(sched->hosts[0].in_flight, 1);
	running[0] = running[1] = running[2] = NULL; /* their slots went with a */
	config_unref(same);
	config_unref(gone);
}

/* ---- affinity ---- */

static const char *affinity_cfg =
    "affinity_wait = 0.5;\n"
    "hosts = ( { name = \"h0\"; url = \"http://127.0.0.1:1\"; memory_gb = 100.0; num_parallel = 64; },\n"
    "          { name = \"h1\"; url = \"http://127.0.0.1:2\"; memory_gb = 100.0; num_parallel = 64; } );\n"
    "tiers = ( { name = \"t\"; queue_depth = 1000; } );\n"
    "models = ( { name = \"c\"; tier = \"t\"; placements = ( { host = \"h0\"; parallel = 2; }, { host = \"h1\"; parallel = 2; } ); },\n"
    "           { name = \"l\"; tier = \"t\"; routing = \"least_loaded\";\n"
    "             placements = ( { host = \"h0\"; parallel = 2; }, { host = \"h1\"; parallel = 2; } ); } );\n";

static int setup_affinity(void **s) { return setup_with(affinity_cfg); }

#define SHARED_KEY 77 /* h0: the system prompt every conversation shares */

/* A queued request of conversation conv at turn (1, 2, ...): the shared
 * key, then one key per message (2 * turn - 1 of them). */
static struct sched_item *
submit_turn(const char *model, const char *agent, int conv, int turn)
{
	struct sched_item *it = new_item(model, agent);

	it->aff = calloc(1, sizeof(*it->aff));
	assert_non_null(it->aff);
	it->aff->key[it->aff->n++] = SHARED_KEY;
	for (int i = 1; i <= 2 * turn - 1; i++)
		it->aff->key[it->aff->n++] = (uint64_t)conv * 1000 + (uint64_t)i;
	sched->totals.requests++;
	assert_int_equal(sched_enqueue(it, false), 0);
	return it;
}

static const char *
host_of(const struct sched_item *it)
{
	return it->placement->host->cfg->name;
}

/* Run it (just queued) and return it finished, or NULL if it did not start. */
static struct sched_item *
run_now(struct sched_item *it)
{
	int before = n_running;

	sched_dispatch();
	if (n_running == before)
		return NULL;
	return complete(n_running - 1);
}

static struct rt_placement *
placement_of(const char *model, int k)
{
	return &sched_find_model(model)->placements[k];
}

/* A conversation's turns stay on the replica of its first turn while it has
 * room, also when the other replica is emptier (within bounded load). */
static void
test_affinity_sticks(void **state)
{
	struct sched_item *filler, *t;

	/* Turn 1 on h0 (both idle: the first); a filler with no keys on h1. */
	t = run_now(submit_turn("c", "a", 1, 1));
	assert_string_equal(host_of(t), "h0");
	filler = submit("c", "f");
	sched_dispatch();
	assert_string_equal(host_of(filler), "h0"); /* least loaded tie: h0 */
	/* h0 carries one of two, h1 none: affinity keeps turn 2 on h0. */
	t = run_now(submit_turn("c", "a", 1, 2));
	assert_non_null(t);
	assert_string_equal(host_of(t), "h0");
	assert_int_equal(placement_of("c", 0)->affinity_hits, 1);
	assert_int_equal(placement_of("c", 0)->affinity_spills, 0);
	/* least_loaded: the same situation goes to the emptier replica. */
	t = run_now(submit_turn("l", "a", 2, 1));
	assert_string_equal(host_of(t), "h0");
	filler = submit("l", "f");
	sched_dispatch();
	assert_string_equal(host_of(filler), "h0");
	t = run_now(submit_turn("l", "a", 2, 2));
	assert_string_equal(host_of(t), "h1");
	assert_int_equal(placement_of("l", 0)->affinity_hits + placement_of("l", 1)->affinity_hits, 0);
}

/* Full affine replica, the other idle: spill at once, counted. */
static void
test_affinity_spills_to_idle(void **state)
{
	struct sched_item *t;

	t = run_now(submit_turn("c", "a", 1, 1));
	assert_string_equal(host_of(t), "h0");
	for (int i = 0; i < 3; i++) { /* fillers without keys: h0, h1, h0 */
		submit("c", "f");
		sched_dispatch();
	}
	for (int i = 0; i < n_running; i++) /* h1 idle again */
		if (running[i] != NULL && running[i]->placement == placement_of("c", 1))
			complete(i);
	assert_int_equal(placement_of("c", 0)->in_flight, 2);
	assert_int_equal(placement_of("c", 1)->in_flight, 0);
	sched_placement_done(placement_of("c", 0), ev_now_us() - 100000); /* an estimate: it would wait if h1 were busy */
	t = submit_turn("c", "a", 1, 2);
	sched_dispatch();
	assert_true(t->holds_slot);
	assert_string_equal(host_of(t), "h1");
	assert_int_equal(placement_of("c", 0)->affinity_spills, 1);
	assert_int_equal(placement_of("c", 1)->affinity_hits, 0);
}

/* Full affine replica, the other busy but with room: the turn waits for
 * its replica when that one frees a slot soon; other agents' requests of
 * the model go past it; a freed slot on the affine replica takes it. */
static void
test_affinity_waits_then_hits(void **state)
{
	struct sched_item *t, *other, *h0a, *h0b, *h1a;

	run_now(submit_turn("c", "a", 1, 1)); /* conversation 1 lives on h0 */
	h0a = submit("c", "x");
	sched_dispatch();
	assert_string_equal(host_of(h0a), "h0");
	h1a = submit("c", "y");
	sched_dispatch();
	assert_string_equal(host_of(h1a), "h1");
	h0b = submit("c", "z");
	sched_dispatch();
	assert_string_equal(host_of(h0b), "h0");     /* tie on load: the first */
	/* h0 full (2/2), h1 busy 1/2.  h0 finishes a request every 0.1 s / 2. */
	sched_placement_done(placement_of("c", 0), ev_now_us() - 100000);
	t = submit_turn("c", "a", 1, 2);
	other = submit("c", "b");
	sched_dispatch();
	assert_false(t->holds_slot);                 /* waits for h0 */
	assert_true(other->holds_slot);              /* ... and does not block agent b */
	assert_string_equal(host_of(other), "h1");
	assert_int_equal(placement_of("c", 0)->affinity_spills, 0);
	/* A slot of h0 frees: the turn takes it. */
	for (int i = 0; i < n_running; i++)
		if (running[i] == h0a)
			complete(i);
	assert_true(t->holds_slot);
	assert_string_equal(host_of(t), "h0");
	assert_int_equal(placement_of("c", 0)->affinity_hits, 1);
}

/* The wait is bounded by affinity_wait: then it spills. */
static void
test_affinity_wait_runs_out(void **state)
{
	static const char *short_wait =
	    "affinity_wait = 0.03;\n"
	    "hosts = ( { name = \"h0\"; url = \"http://127.0.0.1:1\"; memory_gb = 100.0; num_parallel = 64; },\n"
	    "          { name = \"h1\"; url = \"http://127.0.0.1:2\"; memory_gb = 100.0; num_parallel = 64; } );\n"
	    "tiers = ( { name = \"t\"; queue_depth = 1000; } );\n"
	    "models = ( { name = \"c\"; tier = \"t\"; placements = ( { host = \"h0\"; parallel = 2; }, { host = \"h1\"; parallel = 2; } ); } );\n";
	struct config *c2 = load(short_wait);
	struct sched_item *t;

	n_requeued = 0;
	sched_reload(c2, on_requeue);
	run_now(submit_turn("c", "a", 1, 1));
	for (int i = 0; i < 3; i++) {
		submit("c", "x");
		sched_dispatch();
	}
	assert_int_equal(placement_of("c", 0)->in_flight, 2);
	assert_int_equal(placement_of("c", 1)->in_flight, 1);
	sched_placement_done(placement_of("c", 0), ev_now_us() - 20000);
	t = submit_turn("c", "a", 1, 2);
	sched_dispatch();
	assert_false(t->holds_slot);
	usleep(40000);
	ev_update_now();
	sched_dispatch(); /* what the timer does */
	assert_true(t->holds_slot);
	assert_string_equal(host_of(t), "h1");
	assert_int_equal(placement_of("c", 0)->affinity_spills, 1);
	config_unref(c2);
}

/* A flood sharing only the system prompt spreads over both replicas up to
 * their slot limits; so does a flood of one identical conversation. */
static void
test_affinity_shared_prefix_spreads(void **state)
{
	run_now(submit_turn("c", "a", 1, 1)); /* the shared prefix is now known on h0 */
	for (int i = 0; i < 10; i++)
		submit_turn("c", "a", 100 + i, 1);
	sched_dispatch();
	assert_int_equal(placement_of("c", 0)->in_flight, 2);
	assert_int_equal(placement_of("c", 1)->in_flight, 2);
	for (int i = 0, n = n_running; i < n; i++)
		if (running[i] != NULL)
			complete(i);
	assert_int_equal(placement_of("c", 0)->in_flight, 2); /* the freed slots refilled on both */
	assert_int_equal(placement_of("c", 1)->in_flight, 2);
	assert_int_equal(placement_of("c", 0)->max_in_flight, 2);
	assert_int_equal(placement_of("c", 1)->max_in_flight, 2);
	for (int i = 0; i < n_running; i++) /* completions dispatch the rest, which this loop reaches too */
		if (running[i] != NULL)
			complete(i);
	assert_int_equal(placement_of("c", 0)->in_flight + placement_of("c", 1)->in_flight, 0);
	/* Identical conversations: a deep match on h0, bounded load sends the
	 * rest to h1 once h0 is half fuller. */
	run_now(submit_turn("c", "a", 5, 3));
	for (int i = 0; i < 4; i++)
		submit_turn("c", "a", 5, 3);
	sched_dispatch();
	assert_int_equal(placement_of("c", 0)->in_flight, 2);
	assert_int_equal(placement_of("c", 1)->in_flight, 2);
}

/* The record survives a reload for placements that remain (by model and
 * host name); a removed placement's entries are ignored. */
static void
test_affinity_reload(void **state)
{
	static const char *only_h1 =
	    "hosts = ( { name = \"h1\"; url = \"http://127.0.0.1:2\"; memory_gb = 100.0; num_parallel = 64; },\n"
	    "          { name = \"h2\"; url = \"http://127.0.0.1:3\"; memory_gb = 100.0; num_parallel = 64; } );\n"
	    "tiers = ( { name = \"t\"; queue_depth = 1000; } );\n"
	    "models = ( { name = \"c\"; tier = \"t\"; placements = ( { host = \"h2\"; parallel = 2; }, { host = \"h1\"; parallel = 2; } ); } );\n";
	struct config *same = load(affinity_cfg), *moved = load(only_h1);
	struct sched_item *t, *filler;
	struct affinity_usage u;

	/* Conversation 1 on h1: h0 busy with a filler when it starts. */
	filler = submit("c", "f");
	sched_dispatch();
	assert_string_equal(host_of(filler), "h0");
	t = run_now(submit_turn("c", "a", 1, 1));
	assert_string_equal(host_of(t), "h1");
	for (int i = 0; i < n_running; i++)
		if (running[i] == filler)
			complete(i);
	sched_affinity_usage(&u);
	assert_true(u.entries >= 2);
	assert_true(u.bytes <= u.cap_bytes);
	sched_reload(same, on_requeue);
	t = run_now(submit_turn("c", "a", 1, 2));
	assert_string_equal(host_of(t), "h1");       /* kept: both idle, least loaded would say h0 */
	assert_int_equal(placement_of("c", 1)->affinity_hits, 1);
	sched_reload(moved, on_requeue);
	t = run_now(submit_turn("c", "a", 1, 3));
	assert_string_equal(host_of(t), "h1");       /* h1 stays (now the second placement) */
	assert_int_equal(placement_of("c", 1)->affinity_hits, 2); /* counters carried */
	config_unref(same);
	config_unref(moved);
}

static double
seconds_for_cycles(int cycles)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < cycles; i++) {
		complete(oldest_running());
		submit("a", "");
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static void
test_dispatch_cost_independent_of_queue_length(void **state)
{
	enum { CYCLES = 10000 }; /* 6 rounds of this many stay within running[] */
	double short_q, long_q;

	/* Same work with 10 and with 10000 requests waiting, compared in the
	 * same process, best of three each.  Measured here with nothing else
	 * running: 0.8-1.1x.  A linear scan
	 * of the queue costs ~28 us a dispatch on this machine, 50-70x the
	 * cycle, so the verdict sits at 25x (over 20x the idle figure, 2x
	 * under a scan), plus 20 ms for a preemption on a loaded machine
	 * (10000 cycles take 4-7 ms). */
	for (int i = 0; i < 10; i++)
		submit("a", "");
	sched_dispatch();
	short_q = seconds_for_cycles(CYCLES);
	for (int r = 0; r < 2; r++) {
		double t = seconds_for_cycles(CYCLES);
		short_q = t < short_q ? t : short_q;
	}
	for (int i = 0; i < 9990; i++)
		submit("a", "");
	long_q = seconds_for_cycles(CYCLES);
	for (int r = 0; r < 2; r++) {
		double t = seconds_for_cycles(CYCLES);
		long_q = t < long_q ? t : long_q;
	}
	print_message("# dispatch cycle: %.2f us with 10 queued, %.2f us with 10000 (%.1fx; verdict at 25x + 20 ms)\n",
	    short_q / CYCLES * 1e6, long_q / CYCLES * 1e6, long_q / short_q);
	assert_true(long_q < short_q * 25 + 0.02);
}

static const char *deep_cfg =
    "hosts = ( { name = \"h\"; url = \"http://127.0.0.1:1\"; memory_gb = 100.0; num_parallel = 64; max_parallel = 1; } );\n"
    "tiers = ( { name = \"t\"; queue_depth = 20000; } );\n"
    "models = ( { name = \"a\"; tier = \"t\"; placements = ( { host = \"h\"; parallel = 1; } ); } );\n";

static int setup_deep(void **s) { return setup_with(deep_cfg); }

int
main(void)
{
	log_init("test_sched", LOG_LEVEL_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_weighted_share, setup_two_tiers, teardown),
		cmocka_unit_test_setup_teardown(test_slot_limit_and_queue, setup_two_tiers, teardown),
		cmocka_unit_test_setup_teardown(test_no_head_of_line_blocking, setup_parallel3, teardown),
		cmocka_unit_test_setup_teardown(test_queue_depth_rejects, setup_parallel3, teardown),
		cmocka_unit_test_setup_teardown(test_agent_round_robin, setup_parallel3, teardown),
		cmocka_unit_test_setup_teardown(test_busy_backoff_shrinks_slots, setup_parallel3, teardown),
		cmocka_unit_test_setup_teardown(test_busy_with_one_slot_pauses, setup_deep, teardown),
		cmocka_unit_test_setup_teardown(test_busy_backoff_doubles_with_jitter, setup_deep, teardown),
		cmocka_unit_test_setup_teardown(test_drain_refuses_enqueue, setup_deep, teardown),
		cmocka_unit_test_setup_teardown(test_requeue_keeps_first_enqueue_time, setup_deep, teardown),
		cmocka_unit_test_setup_teardown(test_host_down_hands_queued_items_up, setup_parallel3, teardown),
		cmocka_unit_test_setup_teardown(test_reload_moves_items, setup_parallel3, teardown),
		cmocka_unit_test_setup_teardown(test_reserve_keeps_slots_for_higher_tier, setup_reserve, teardown),
		cmocka_unit_test_setup_teardown(test_replicas_most_free_relative, setup_replicas, teardown),
		cmocka_unit_test_setup_teardown(test_dispatch_cost_independent_of_queue_length, setup_deep, teardown),
		cmocka_unit_test_setup_teardown(test_affinity_sticks, setup_affinity, teardown),
		cmocka_unit_test_setup_teardown(test_affinity_spills_to_idle, setup_affinity, teardown),
		cmocka_unit_test_setup_teardown(test_affinity_waits_then_hits, setup_affinity, teardown),
		cmocka_unit_test_setup_teardown(test_affinity_wait_runs_out, setup_affinity, teardown),
		cmocka_unit_test_setup_teardown(test_affinity_shared_prefix_spreads, setup_affinity, teardown),
		cmocka_unit_test_setup_teardown(test_affinity_reload, setup_affinity, teardown),
	};

	return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
