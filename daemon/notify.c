/* notify: sd_notify messages and the watchdog, driven by loop timers. */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "ev.h"
#include "log.h"
#include "sched.h"
#include "stats.h"

#define STATUS_INTERVAL_US (5u * 1000000u)

static struct ev_timer watchdog_timer, status_timer;
static uint64_t watchdog_every_us;

static void
on_watchdog(void *arg)
{
	/* Sent from a loop timer: if the loop hangs, systemd stops hearing. */
	sd_notify(0, "WATCHDOG=1");
	ev_timer_start(&watchdog_timer, watchdog_every_us);
}

void
notify_status(void)
{
	char msg[256];
	int in_flight = 0, queued = 0, up = 0;

	if (sched == NULL)
		return;
	for (int i = 0; i < sched->n_tiers; i++) {
		in_flight += sched->tiers[i].in_flight;
		queued += sched->tiers[i].queued;
	}
	for (int i = 0; i < sched->n_hosts; i++)
		up += sched->hosts[i].up;
	snprintf(msg, sizeof(msg), "STATUS=%d in flight, %d queued, %.1f tok/s (10s), %d/%d hosts up", in_flight,
	    queued, stats_rate_get(&sched->rate, ev_update_now(), 10), up, sched->n_hosts);
	sd_notify(0, msg);
}

static void
on_status(void *arg)
{
	notify_status();
	ev_timer_start(&status_timer, STATUS_INTERVAL_US);
}

void
notify_init(void)
{
	uint64_t usec = 0;

	ev_timer_init(&watchdog_timer, on_watchdog, NULL);
	ev_timer_init(&status_timer, on_status, NULL);
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		watchdog_every_us = usec / 2;
		log_info("systemd watchdog: pinging every %llu ms", (unsigned long long)(watchdog_every_us / 1000));
		on_watchdog(NULL);
	}
	if (getenv("NOTIFY_SOCKET") != NULL)
		ev_timer_start(&status_timer, STATUS_INTERVAL_US);
}

void
notify_shutdown(void)
{
	ev_timer_stop(&watchdog_timer);
	ev_timer_stop(&status_timer);
}

void
notify_ready(void)
{
	sd_notify(0, "READY=1");
	notify_status();
}

void
notify_reloading(void)
{
	struct timespec ts;
	char msg[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
	    (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000ull);
	sd_notify(0, msg);
}

void
notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}
