/*
 * Unit tests of agents: entries by name in order of first arrival, the cap
 * and the "other" entry, names cut on a UTF-8 boundary, outcome and token
 * counters and the live rate, and the queued / in-flight gauges that sched
 * keeps on the items it queues, dispatches, releases, drops and re-points
 * at a reload.  The per-agent sums must equal the totals at every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "config.h"
#include "ev.h"
#include "log.h"
#include "sched.h"

#define SEC 1000000ull

static int
reset(void **state)
{
	agents_init();
	return 0;
}

/* Sum of a field over every entry, "other" included. */
static uint64_t
sum_at(size_t off, bool is_int)
{
	uint64_t s = 0;

	for (int i = -1; i < agents_count(); i++) {
		const char *a = (const char *)(i < 0 ? agents_other() : agents_at(i));
		s += is_int ? (uint64_t)*(const int *)(const void *)(a + off) : *(const uint64_t *)(const void *)(a + off);
	}
	return s;
}

#define SUM(field) sum_at(offsetof(struct agent, field), _Generic(((struct agent *)0)->field, int: true, default: false))

static void
test_entries_by_name(void **state)
{
	struct agent *a = agents_arrive("coder-1"), *b = agents_arrive("anonymous"), *c = agents_arrive("coder-1");

	assert_ptr_equal(a, c);
	assert_ptr_not_equal(a, b);
	assert_int_equal(agents_count(), 2);
	assert_string_equal(agents_at(0)->name, "coder-1"); /* order of first arrival */
	assert_string_equal(agents_at(1)->name, "anonymous");
	assert_null(agents_at(2));
	assert_null(agents_at(-1));
	assert_int_equal(a->requests, 2);
	assert_int_equal(a->live, 2);
	assert_int_equal(b->requests, 1);
	agents_leave(a);
	agents_leave(c);
	assert_int_equal(a->live, 0);
	assert_int_equal(a->requests, 2); /* a counter never goes back */
	/* Names are compared whole: a prefix is another agent. */
	assert_ptr_not_equal(agents_arrive("coder"), a);
	assert_ptr_not_equal(agents_arrive("coder-10"), a);
	assert_int_equal(agents_count(), 4);
	assert_int_equal(agents_other()->requests, 0);
}

static void
test_cap_and_other(void **state)
{
	char name[32];

	for (int i = 0; i < AGENTS_MAX + 10; i++) {
		snprintf(name, sizeof(name), "agent-%d", i);
		agents_arrive(name);
	}
	assert_int_equal(agents_count(), AGENTS_MAX);
	assert_int_equal(agents_other()->requests, 10);
	assert_string_equal(agents_other()->name, "other");
	/* Known names keep their entry once the table is full. */
	assert_ptr_equal(agents_arrive("agent-3"), agents_at(3));
	/* A client calling itself "other" lands in the overflow entry. */
	assert_ptr_equal(agents_arrive("other"), agents_other());
	assert_int_equal(agents_other()->requests, 11);
	assert_int_equal(SUM(requests), AGENTS_MAX + 12);
	assert_int_equal(SUM(live), AGENTS_MAX + 12);
	/* "other" is never a named entry, even with room left. */
	agents_init();
	assert_ptr_equal(agents_arrive("other"), agents_other());
	assert_int_equal(agents_count(), 0);
	assert_int_equal(agents_other()->requests, 1);
}

static void
test_names_cut_on_character_boundary(void **state)
{
	char longname[300], *p = longname;
	const struct agent *a;

	/* 127 ASCII bytes, then "é" (2 bytes) across the 128-byte limit. */
	memset(p, 'x', 127);
	p += 127;
	strcpy(p, "\xc3\xa9" "tail");
	a = agents_arrive(longname);
	assert_int_equal(strlen(a->name), 127);
	/* Same first 127 bytes, another tail: the same agent. */
	strcpy(longname + 127, "\xc3\xa8" "other tail");
	assert_ptr_equal(agents_arrive(longname), a);
	/* Exactly 128 bytes is kept whole. */
	memset(longname, 'y', 128);
	longname[128] = '\0';
	assert_int_equal(strlen(agents_arrive(longname)->name), 128);
	/* A 4-byte character straddling the limit is dropped whole. */
	memset(longname, 'z', 126);
	strcpy(longname + 126, "\xf0\x9f\x98\x80");
	assert_int_equal(strlen(agents_arrive(longname)->name), 126);
}

static void
test_outcomes_and_tokens(void **state)
{
	struct agent *a = agents_arrive("a"), *b = agents_arrive("b");
	uint64_t t0 = 1000 * SEC;

	agents_outcome(a, STATS_COMPLETED);
	agents_outcome(a, STATS_CANCELLED);
	agents_outcome(b, STATS_FAILED);
	agents_outcome(b, STATS_OUTCOME_COUNT); /* ignored */
	assert_int_equal(a->outcome[STATS_COMPLETED], 1);
	assert_int_equal(a->outcome[STATS_CANCELLED], 1);
	assert_int_equal(b->outcome[STATS_FAILED], 1);
	assert_int_equal(b->outcome[STATS_REJECTED], 0);
	agents_final(a, 12, 34);
	agents_final(a, 1, 2);
	assert_int_equal(a->prompt_tokens, 13);
	assert_int_equal(a->eval_tokens, 36);
	/* 20 tokens a second for 12 s: the 10 s rate says 20. */
	for (int i = 0; i < 12 * 20; i++)
		agents_streamed(a, t0 + (uint64_t)i * 50000, 1);
	assert_int_equal(a->streamed_tokens, 240);
	assert_true(stats_rate_get(&a->rate, t0 + 12 * SEC, 10) > 19.5);
	assert_true(stats_rate_get(&a->rate, t0 + 12 * SEC, 10) < 20.5);
	assert_true(stats_rate_get(&b->rate, t0 + 12 * SEC, 10) == 0);
	agents_streamed(a, t0, 0);
	assert_int_equal(a->streamed_tokens, 240);
}

/* Requests that never got an entry (NULL) are no one's. */
static void
test_null_is_nobody(void **state)
{
	agents_leave(NULL);
	agents_outcome(NULL, STATS_COMPLETED);
	agents_streamed(NULL, SEC, 5);
	agents_final(NULL, 1, 1);
	assert_int_equal(agents_count(), 0);
	assert_int_equal(agents_other()->requests, 0);
	assert_int_equal(agents_other()->outcome[STATS_COMPLETED], 0);
}

/* ---- the gauges sched keeps: queued and in flight ---- */

static int n_started, n_unservable;
static struct sched_item *started[16];

static void
on_start(struct sched_item *it)
{
	started[n_started++] = it;
}

static void
on_unservable(struct sched_item *it)
{
	n_unservable++;
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

static const char *two_models =
    "hosts = ( { name = \"h\"; url = \"http://127.0.0.1:1\"; memory_gb = 100.0; num_parallel = 64; } );\n"
    "tiers = ( { name = \"t\"; queue_depth = 100; } );\n"
    "models = ( { name = \"a\"; tier = \"t\"; placements = ( { host = \"h\"; parallel = 2; } ); },\n"
    "           { name = \"b\"; tier = \"t\"; placements = ( { host = \"h\"; parallel = 1; } ); } );\n";

static struct sched_item *
item(const char *model, const char *agent)
{
	struct sched_item *it = calloc(1, sizeof(*it));

	assert_non_null(it);
	it->agent = agent;
	it->who = agents_arrive(agent);
	sched_bind(it, sched_find_model(model));
	return it;
}

static void
drop(struct sched_item *it)
{
	if (it->aq != NULL)
		sched_dequeue(it);
	if (it->holds_slot)
		sched_release(it);
	sched_unbind(it);
	agents_leave(it->who);
	free(it);
}

/* sched_reload's requeue callback: queue again, unless its model went
 * (the request layer answers 404 then). */
static void
requeue(struct sched_item *it)
{
	if (it->model != NULL)
		assert_int_equal(sched_enqueue(it, false), 0);
}

/* The gauges summed over agents equal sched's own, at every step. */
static void
check_sums(void)
{
	int queued = 0, in_flight = 0;

	for (int i = 0; i < sched->n_tiers; i++) {
		queued += sched->tiers[i].queued;
		in_flight += sched->tiers[i].in_flight; /* requests only: no warm-ups */
	}
	assert_int_equal(SUM(queued), queued);
	assert_int_equal(SUM(in_flight), in_flight);
}

static void
test_sched_gauges(void **state)
{
	static const char *without_a =
	    "hosts = ( { name = \"h\"; url = \"http://127.0.0.1:1\"; memory_gb = 100.0; num_parallel = 64; } );\n"
	    "tiers = ( { name = \"t\"; queue_depth = 100; } );\n"
	    "models = ( { name = \"b\"; tier = \"t\"; placements = ( { host = \"h\"; parallel = 1; } ); } );\n";
	struct config *cfg, *same, *gone;
	struct sched_item *x1, *x2, *x3, *y1, *y2, *y3;
	const struct agent *x, *y;

	ev_init();
	cfg = load(two_models);
	same = load(two_models);
	gone = load(without_a);
	sched_init(cfg, &hooks);
	n_started = n_unservable = 0;

	x1 = item("a", "x");
	x2 = item("a", "x");
	x3 = item("a", "x");
	y1 = item("a", "y");
	y2 = item("b", "y");
	x = x1->who;
	y = y1->who;
	for (struct sched_item **it = (struct sched_item *[]){x1, x2, x3, y1, y2, NULL}; *it; it++)
		assert_int_equal(sched_enqueue(*it, false), 0);
	assert_int_equal(x->queued, 3);
	assert_int_equal(y->queued, 2);
	check_sums();

	sched_dispatch(); /* a: 2 slots (x, then y by round-robin), b: 1 slot */
	assert_int_equal(n_started, 3);
	assert_int_equal(x->in_flight, 1);
	assert_int_equal(x->queued, 2);
	assert_int_equal(y->in_flight, 2);
	assert_int_equal(y->queued, 0);
	check_sums();

	/* A retry: the slot goes back and the item to the head of the queue. */
	sched_release(x1);
	assert_int_equal(sched_enqueue(x1, true), 0);
	assert_int_equal(x->in_flight, 0);
	assert_int_equal(x->queued, 3);
	check_sums();
	ev_flush(); /* the deferred dispatch gives the slot back to x */
	assert_int_equal(x->in_flight, 1);
	assert_int_equal(x->queued, 2);
	check_sums();

	/* A reload that keeps everything: in-flight items keep their slot,
	 * queued ones leave the old queues and are queued again. */
	sched_reload(same, requeue);
	assert_int_equal(x->in_flight, 1);
	assert_int_equal(x->queued, 2);
	assert_int_equal(y->in_flight, 2);
	check_sums();

	/* A reload without model a: its in-flight items finish outside the
	 * budget (no longer in flight), its queued ones are answered. */
	sched_reload(gone, requeue);
	assert_int_equal(x->in_flight, 0);
	assert_int_equal(x->queued, 0);
	assert_int_equal(y->in_flight, 1); /* y2 on b */
	check_sums();

	/* Every host of b down: its queued item is answered, not left counted. */
	y3 = item("b", "y");
	assert_int_equal(sched_enqueue(y3, false), 0);
	assert_int_equal(y->queued, 1);
	sched_host_set_up(&sched->hosts[0], false);
	assert_int_equal(n_unservable, 1);
	assert_int_equal(y->queued, 0);
	check_sums();

	for (struct sched_item **it = (struct sched_item *[]){x1, x2, x3, y1, y2, y3, NULL}; *it; it++)
		drop(*it);
	ev_flush();
	assert_int_equal(SUM(queued), 0);
	assert_int_equal(SUM(in_flight), 0);
	assert_int_equal(SUM(live), 0);
	assert_int_equal(SUM(requests), 6);
	sched_shutdown();
	config_unref(cfg);
	config_unref(same);
	config_unref(gone);
	ev_shutdown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_entries_by_name, reset),
		cmocka_unit_test_setup(test_cap_and_other, reset),
		cmocka_unit_test_setup(test_names_cut_on_character_boundary, reset),
		cmocka_unit_test_setup(test_outcomes_and_tokens, reset),
		cmocka_unit_test_setup(test_null_is_nobody, reset),
		cmocka_unit_test_setup(test_sched_gauges, reset),
	};

	log_init("test_agents", LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
