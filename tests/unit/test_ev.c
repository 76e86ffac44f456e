/*
 * Unit tests of the event loop: the timer heap fires in due order however
 * timers were started, restarted and stopped; stopping an idle timer is a
 * no-op; deferred calls run at ev_flush and at the end of an iteration,
 * including calls they defer; an fd watch on a pipe fires within ev_run
 * and ev_break stops the loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ev.h"
#include "log.h"

#define N_TIMERS 300

/* A loop that never ends would hang the suite: every ev_run test arms this. */
static struct ev_timer watchdog;

static void
watchdog_fired(void *arg)
{
	fail_msg("watchdog: the loop did not stop by itself");
}

static int
setup(void **state)
{
	assert_int_equal(ev_init(), 0);
	ev_timer_init(&watchdog, watchdog_fired, NULL);
	return 0;
}

static int
teardown(void **state)
{
	ev_timer_stop(&watchdog);
	ev_flush();
	ev_shutdown();
	return 0;
}

static void
arm_watchdog(void)
{
	ev_timer_start(&watchdog, 5 * 1000000u);
}

/* ---- timers ---- */

static struct ev_timer timers[N_TIMERS];
static int fired_order[N_TIMERS];
static int fired_count[N_TIMERS];
static int n_fired, n_expected;
static uint64_t last_due;

static void
timer_fired(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct ev_timer *t = &timers[i];

	assert_false(ev_timer_armed(t));
	assert_true(ev_now_us() >= t->due_us);  /* never early */
	assert_true(t->due_us >= last_due);     /* heap order */
	last_due = t->due_us;
	fired_count[i]++;
	fired_order[n_fired++] = i;
	if (n_fired == n_expected)
		ev_break();
}

static void
reset_timer_log(void)
{
	memset(fired_order, 0, sizeof(fired_order));
	memset(fired_count, 0, sizeof(fired_count));
	n_fired = 0;
	last_due = 0;
}

static void
test_timer_heap_order(void **state)
{
	bool armed[N_TIMERS];
	int n_armed = 0;

	reset_timer_log();
	for (int i = 0; i < N_TIMERS; i++)
		ev_timer_init(&timers[i], timer_fired, (void *)(intptr_t)i);
	/* Delays in a scrambled order (a permutation of 0..N-1 x 40 us). */
	for (int i = 0; i < N_TIMERS; i++)
		ev_timer_start(&timers[i], (uint64_t)((i * 7919) % N_TIMERS) * 40);
	/* Stop every third, from the back, then restart every fifth of those
	 * with a new delay, and restart some armed ones too (re-arm moves them
	 * inside the heap). */
	for (int i = N_TIMERS - 1; i >= 0; i--)
		if (i % 3 == 0)
			ev_timer_stop(&timers[i]);
	for (int i = 0; i < N_TIMERS; i += 15)
		ev_timer_start(&timers[i], (uint64_t)((i * 31) % 97) * 100);
	for (int i = 1; i < N_TIMERS; i += 11)
		if (ev_timer_armed(&timers[i]))
			ev_timer_start(&timers[i], (uint64_t)((i * 13) % 50) * 150);
	/* A stop in the middle of the heap and one at the end. */
	ev_timer_stop(&timers[N_TIMERS / 2 + 1]);
	ev_timer_stop(&timers[N_TIMERS - 2]);

	for (int i = 0; i < N_TIMERS; i++) {
		armed[i] = ev_timer_armed(&timers[i]);
		n_armed += armed[i];
	}
	assert_true(n_armed > N_TIMERS / 2 && n_armed < N_TIMERS);
	n_expected = n_armed;
	arm_watchdog();
	assert_int_equal(ev_run(), 0);
	assert_int_equal(n_fired, n_armed);
	for (int i = 0; i < N_TIMERS; i++) {
		assert_int_equal(fired_count[i], armed[i] ? 1 : 0);
		assert_false(ev_timer_armed(&timers[i]));
	}
	/* The order is also non-decreasing in due time when read back. */
	for (int k = 1; k < n_fired; k++)
		assert_true(timers[fired_order[k]].due_us >= timers[fired_order[k - 1]].due_us);
	assert_true(ev_timer_armed(&watchdog));
}

static void
test_timer_stop_not_armed(void **state)
{
	struct ev_timer idle;

	reset_timer_log();
	ev_timer_init(&idle, timer_fired, NULL);
	assert_false(ev_timer_armed(&idle));
	ev_timer_stop(&idle);
	ev_timer_stop(&idle);
	assert_false(ev_timer_armed(&idle));

	ev_timer_init(&timers[0], timer_fired, (void *)(intptr_t)0);
	ev_timer_init(&timers[1], timer_fired, (void *)(intptr_t)1);
	ev_timer_start(&timers[0], 2000);
	ev_timer_start(&timers[1], 1000);
	ev_timer_stop(&idle); /* must not disturb the armed ones */
	assert_true(ev_timer_armed(&timers[0]));
	assert_true(ev_timer_armed(&timers[1]));
	ev_timer_stop(&timers[1]);
	ev_timer_stop(&timers[1]); /* twice: the second is a no-op */
	assert_false(ev_timer_armed(&timers[1]));
	assert_true(ev_timer_armed(&timers[0]));
	n_expected = 1;
	arm_watchdog();
	assert_int_equal(ev_run(), 0);
	assert_int_equal(n_fired, 1);
	assert_int_equal(fired_order[0], 0);
	assert_int_equal(fired_count[1], 0);
}

/* A timer callback may re-arm its own timer. */
static int rearms;
static struct ev_timer self_timer;

static void
self_rearm(void *arg)
{
	if (++rearms < 5)
		ev_timer_start(&self_timer, 100);
	else
		ev_break();
}

static void
test_timer_rearm_from_callback(void **state)
{
	rearms = 0;
	ev_timer_init(&self_timer, self_rearm, NULL);
	ev_timer_start(&self_timer, 100);
	arm_watchdog();
	assert_int_equal(ev_run(), 0);
	assert_int_equal(rearms, 5);
	assert_false(ev_timer_armed(&self_timer));
}

/* ---- deferred calls ---- */

static int defer_log[1024];
static int n_defer_log;

static void
record(void *arg)
{
	defer_log[n_defer_log++] = (int)(intptr_t)arg;
}

/* Defers two children until the depth runs out: 2^7 - 1 calls in all,
 * more than the queue's initial capacity, so it grows mid-run. */
static void
fan_out(void *arg)
{
	int depth = (int)(intptr_t)arg;

	record(arg);
	if (depth > 1) {
		ev_defer(fan_out, (void *)(intptr_t)(depth - 1));
		ev_defer(fan_out, (void *)(intptr_t)(depth - 1));
	}
}

static void
test_defer_runs_at_flush(void **state)
{
	n_defer_log = 0;
	ev_defer(record, (void *)(intptr_t)1);
	ev_defer(record, (void *)(intptr_t)2);
	ev_defer(record, (void *)(intptr_t)3);
	assert_int_equal(n_defer_log, 0); /* nothing runs at ev_defer time */
	ev_flush();
	assert_int_equal(n_defer_log, 3);
	assert_int_equal(defer_log[0], 1);
	assert_int_equal(defer_log[1], 2);
	assert_int_equal(defer_log[2], 3);
	ev_flush(); /* empty: nothing runs again */
	assert_int_equal(n_defer_log, 3);
}

static void
test_defer_may_defer_more(void **state)
{
	int per_depth[8] = {0};

	n_defer_log = 0;
	ev_defer(fan_out, (void *)(intptr_t)7);
	ev_flush();
	assert_int_equal(n_defer_log, 127);
	/* Breadth first: all of one depth before the next. */
	for (int i = 0; i < n_defer_log; i++) {
		per_depth[defer_log[i]]++;
		if (i > 0)
			assert_true(defer_log[i] <= defer_log[i - 1]);
	}
	for (int d = 1; d <= 7; d++)
		assert_int_equal(per_depth[d], 1 << (7 - d));
	ev_flush();
	assert_int_equal(n_defer_log, 127);
}

/* ---- fd watches ---- */

struct pipe_watch {
	struct ev_io io;
	int reads;
	char last;
	bool break_now;
	uint32_t events;
};

static void
pipe_readable(int fd, uint32_t events, void *arg)
{
	struct pipe_watch *w = arg;
	char c;

	assert_int_equal(fd, w->io.fd);
	w->events = events;
	if (read(fd, &c, 1) == 1) {
		w->reads++;
		w->last = c;
	}
	if (w->break_now) {
		ev_defer(record, (void *)(intptr_t)42); /* still runs this iteration */
		ev_break();
	}
}

static void
break_timer(void *arg)
{
	ev_break();
}

static void
test_pipe_watch_and_break(void **state)
{
	int p[2];
	struct pipe_watch w = {.break_now = true};
	struct ev_timer later;

	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	w.io.fd = p[0];
	w.io.cb = pipe_readable;
	w.io.arg = &w;
	assert_int_equal(ev_io_add(&w.io, EPOLLIN), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	n_defer_log = 0;
	arm_watchdog();
	assert_int_equal(ev_run(), 0);
	assert_int_equal(w.reads, 1);
	assert_int_equal(w.last, 'x');
	assert_true(w.events & EPOLLIN);
	assert_int_equal(n_defer_log, 1); /* deferred from the callback, run before returning */
	assert_int_equal(defer_log[0], 42);

	/* ev_run can be entered again; a second byte fires the watch again. */
	assert_int_equal(write(p[1], "y", 1), 1);
	assert_int_equal(ev_run(), 0);
	assert_int_equal(w.reads, 2);
	assert_int_equal(w.last, 'y');

	/* After ev_io_del the watch is silent: only the timer stops the loop. */
	ev_io_del(&w.io);
	w.break_now = false;
	assert_int_equal(write(p[1], "z", 1), 1);
	ev_timer_init(&later, break_timer, NULL);
	ev_timer_start(&later, 20000);
	assert_int_equal(ev_run(), 0);
	assert_int_equal(w.reads, 2);

	/* ev_io_mod of a deleted watch fails (ENOENT) rather than re-adding it. */
	assert_int_equal(ev_io_mod(&w.io, EPOLLIN), -1);
	close(p[0]);
	close(p[1]);
}

/* Several watches: each fires for its own fd, with its own arg. */
static void
test_two_pipes(void **state)
{
	int a[2], b[2];
	struct pipe_watch wa = {.break_now = false}, wb = {.break_now = true};

	assert_int_equal(pipe2(a, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_NONBLOCK | O_CLOEXEC), 0);
	wa.io = (struct ev_io){.fd = a[0], .cb = pipe_readable, .arg = &wa};
	wb.io = (struct ev_io){.fd = b[0], .cb = pipe_readable, .arg = &wb};
	assert_int_equal(ev_io_add(&wa.io, EPOLLIN), 0);
	assert_int_equal(ev_io_add(&wb.io, EPOLLIN), 0);
	assert_int_equal(write(a[1], "a", 1), 1);
	arm_watchdog();
	/* Only a is readable: break comes from a timer after it was served. */
	struct ev_timer later;
	ev_timer_init(&later, break_timer, NULL);
	ev_timer_start(&later, 10000);
	assert_int_equal(ev_run(), 0);
	assert_int_equal(wa.reads, 1);
	assert_int_equal(wb.reads, 0);
	assert_int_equal(write(b[1], "b", 1), 1);
	n_defer_log = 0;
	assert_int_equal(ev_run(), 0);
	assert_int_equal(wb.reads, 1);
	assert_int_equal(wb.last, 'b');
	assert_int_equal(wa.reads, 1);
	ev_io_del(&wa.io);
	ev_io_del(&wb.io);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

/* A prepare hook's timeout bounds the wait; deferred work wakes the loop. */
static int prepares_run;

static int64_t
prepare_hook(void *arg)
{
	prepares_run++;
	return 1;
}

static void
break_deferred(void *arg)
{
	ev_break();
}

static void
test_defer_in_loop_and_prepare(void **state)
{
	prepares_run = 0;
	ev_add_prepare(prepare_hook, NULL);
	ev_defer(break_deferred, NULL);
	arm_watchdog();
	assert_int_equal(ev_run(), 0);
	assert_int_equal(prepares_run, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_timer_heap_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_stop_not_armed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_rearm_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_runs_at_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_may_defer_more, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipe_watch_and_break, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_pipes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_in_loop_and_prepare, setup, teardown),
	};

	log_init("test_ev", LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
