/*
 * ev: the one event loop.  Owns an epoll fd, a timer heap and a list of
 * deferred calls run at the end of each iteration.  Everything in harmonicd
 * runs on the thread that calls ev_run(); no other thread touches loop state.
 */
#ifndef HARMONIC_EV_H
#define HARMONIC_EV_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*ev_fd_cb)(int fd, uint32_t events, void *arg);
typedef void (*ev_timer_cb)(void *arg);
typedef void (*ev_defer_cb)(void *arg);
/* Called before each wait; returns the ms the caller needs the loop to wake
 * within (-1 = no limit).  Used by MHD's own timeout. */
typedef int64_t (*ev_prepare_cb)(void *arg);

struct ev_io {
	int fd;
	ev_fd_cb cb;
	void *arg;
};

struct ev_timer {
	uint64_t due_us;       /* monotonic */
	int heap_index;        /* -1 when not armed */
	ev_timer_cb cb;
	void *arg;
};

int ev_init(void);
void ev_shutdown(void);

/* Monotonic clock in microseconds (cached per iteration by ev_now_us). */
uint64_t ev_now_us(void);
/* Wall clock in nanoseconds since the epoch (timestamps in answers). */
int64_t ev_wall_ns(void);
/* Fresh monotonic reading, updating the cache. */
uint64_t ev_update_now(void);

/* Watch io->fd for events (EPOLLIN, ...).  io must outlive the watch. */
int ev_io_add(struct ev_io *io, uint32_t events);
int ev_io_mod(struct ev_io *io, uint32_t events);
void ev_io_del(struct ev_io *io);

void ev_timer_init(struct ev_timer *t, ev_timer_cb cb, void *arg);
/* (Re)arm t to fire after delay_us; a no-op cost if already armed elsewhere. */
void ev_timer_start(struct ev_timer *t, uint64_t delay_us);
void ev_timer_stop(struct ev_timer *t);
bool ev_timer_armed(const struct ev_timer *t);

/* Run cb(arg) once at the end of this iteration (after all I/O callbacks). */
void ev_defer(ev_defer_cb cb, void *arg);
/* Run the deferred calls now (shutdown, after the loop has stopped). */
void ev_flush(void);
/* Register a prepare hook (at most a few). */
void ev_add_prepare(ev_prepare_cb cb, void *arg);

/* Loop until ev_break(); returns 0, or -1 on a fatal epoll error. */
int ev_run(void);
void ev_break(void);

#endif
