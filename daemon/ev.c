/*
 * ev: epoll + a binary min-heap of timers + a deferred-call queue.
 * Deferred calls exist so that objects referenced by callbacks still on the
 * stack are freed only once the iteration is over (tmux's event_once idea).
 */
#include "ev.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

/*
 * Events handled per iteration.  Small on purpose: a relayed chunk reaches
 * its client only when the iteration ends (deferred wakes, then MHD in the
 * prepare hook), so a batch of 256 ready backend sockets made the first
 * token wait for 255 others' reads.  Measured with scripts/bench-proxy.sh
 * case (a): 256 -> 0.84-0.90x HAProxy's requests/s, 4 -> 1.00-1.03x
 * (docs/performance.md).
 */
#define MAX_EVENTS 4
#define MAX_PREPARE 4

struct deferred {
	ev_defer_cb cb;
	void *arg;
};

static int epfd = -1;
static uint64_t now_us;
static bool stop;

static struct ev_timer **heap;
static int heap_len, heap_cap;

static struct deferred *defers;
static int defer_len, defer_cap;

static struct {
	ev_prepare_cb cb;
	void *arg;
} prepares[MAX_PREPARE];
static int n_prepares;

uint64_t
ev_update_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	return now_us;
}

uint64_t
ev_now_us(void)
{
	return now_us;
}

int64_t
ev_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
ev_init(void)
{
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return -1;
	ev_update_now();
	return 0;
}

void
ev_shutdown(void)
{
	if (epfd >= 0)
		close(epfd);
	epfd = -1;
	free(heap);
	heap = NULL;
	heap_len = heap_cap = 0;
	free(defers);
	defers = NULL;
	defer_len = defer_cap = 0;
	n_prepares = 0;
}

int
ev_io_add(struct ev_io *io, uint32_t events)
{
	struct epoll_event e = {.events = events, .data.ptr = io};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, io->fd, &e);
}

int
ev_io_mod(struct ev_io *io, uint32_t events)
{
	struct epoll_event e = {.events = events, .data.ptr = io};

	return epoll_ctl(epfd, EPOLL_CTL_MOD, io->fd, &e);
}

void
ev_io_del(struct ev_io *io)
{
	/* ENOENT/EBADF are fine: the fd may already be closed by its owner. */
	(void)epoll_ctl(epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

/* ---- timer heap ---- */

static void
heap_swap(int a, int b)
{
	struct ev_timer *t = heap[a];

	heap[a] = heap[b];
	heap[b] = t;
	heap[a]->heap_index = a;
	heap[b]->heap_index = b;
}

static void
heap_up(int i)
{
	while (i > 0) {
		int parent = (i - 1) / 2;
		if (heap[parent]->due_us <= heap[i]->due_us)
			break;
		heap_swap(i, parent);
		i = parent;
	}
}

static void
heap_down(int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;
		if (l < heap_len && heap[l]->due_us < heap[m]->due_us)
			m = l;
		if (r < heap_len && heap[r]->due_us < heap[m]->due_us)
			m = r;
		if (m == i)
			break;
		heap_swap(i, m);
		i = m;
	}
}

void
ev_timer_init(struct ev_timer *t, ev_timer_cb cb, void *arg)
{
	t->due_us = 0;
	t->heap_index = -1;
	t->cb = cb;
	t->arg = arg;
}

bool
ev_timer_armed(const struct ev_timer *t)
{
	return t->heap_index >= 0;
}

void
ev_timer_stop(struct ev_timer *t)
{
	int i = t->heap_index;

	if (i < 0)
		return;
	heap_len--;
	if (i != heap_len) {
		heap[i] = heap[heap_len];
		heap[i]->heap_index = i;
		heap_up(i);
		heap_down(heap[i]->heap_index);
	}
	t->heap_index = -1;
}

void
ev_timer_start(struct ev_timer *t, uint64_t delay_us)
{
	ev_timer_stop(t);
	t->due_us = ev_update_now() + delay_us;
	if (heap_len == heap_cap) {
		heap_cap = heap_cap ? heap_cap * 2 : 64;
		heap = xreallocarray(heap, (size_t)heap_cap, sizeof(*heap));
	}
	heap[heap_len] = t;
	t->heap_index = heap_len++;
	heap_up(t->heap_index);
}

static void
run_timers(void)
{
	ev_update_now();
	while (heap_len > 0 && heap[0]->due_us <= now_us) {
		struct ev_timer *t = heap[0];
		ev_timer_stop(t);
		t->cb(t->arg);
	}
}

/* ---- deferred calls ---- */

void
ev_defer(ev_defer_cb cb, void *arg)
{
	if (defer_len == defer_cap) {
		defer_cap = defer_cap ? defer_cap * 2 : 64;
		defers = xreallocarray(defers, (size_t)defer_cap, sizeof(*defers));
	}
	defers[defer_len].cb = cb;
	defers[defer_len].arg = arg;
	defer_len++;
}

static void
run_deferred(void)
{
	/* A deferred call may defer more; run until the queue is empty. */
	for (int i = 0; i < defer_len; i++)
		defers[i].cb(defers[i].arg);
	defer_len = 0;
}

void
ev_flush(void)
{
	run_deferred();
}

void
ev_add_prepare(ev_prepare_cb cb, void *arg)
{
	if (n_prepares == MAX_PREPARE)
		fatalx("ev: too many prepare hooks");
	prepares[n_prepares].cb = cb;
	prepares[n_prepares].arg = arg;
	n_prepares++;
}

void
ev_break(void)
{
	stop = true;
}

int
ev_run(void)
{
	struct epoll_event events[MAX_EVENTS];

	stop = false;
	while (!stop) {
		int64_t timeout_ms = -1;
		int n;

		for (int i = 0; i < n_prepares; i++) {
			int64_t t = prepares[i].cb(prepares[i].arg);
			if (t >= 0 && (timeout_ms < 0 || t < timeout_ms))
				timeout_ms = t;
		}
		if (defer_len > 0)
			timeout_ms = 0;
		if (heap_len > 0) {
			uint64_t now = ev_update_now();
			int64_t t = heap[0]->due_us <= now ? 0 : (int64_t)((heap[0]->due_us - now + 999) / 1000);
			if (timeout_ms < 0 || t < timeout_ms)
				timeout_ms = t;
		}
		if (timeout_ms > 60000)
			timeout_ms = 60000;
		n = epoll_wait(epfd, events, MAX_EVENTS, (int)timeout_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_warn("epoll_wait");
			return -1;
		}
		ev_update_now();
		for (int i = 0; i < n; i++) {
			struct ev_io *io = events[i].data.ptr;
			io->cb(io->fd, events[i].events, io->arg);
		}
		run_timers();
		run_deferred();
	}
	return 0;
}
