/*
 * status: process-wide facts that the lifecycle (server) and the HTTP front
 * (http) write and the views (/stats, /readyz) read: draining, reload
 * outcomes, connection counts.  Plain data; no behaviour.
 */
#ifndef HARMONIC_STATUS_H
#define HARMONIC_STATUS_H

#include <stdbool.h>
#include <stdint.h>

struct reload_status {
	uint64_t reloads;       /* successful reloads */
	uint64_t failures;      /* rejected reloads (the old config kept) */
	double last_ok_s;       /* uptime of the last success; -1 = never */
	double last_failure_s;  /* uptime of the last failure; -1 = never */
	char last_error[512];   /* first error of the last failure */
};

struct conn_status {
	unsigned open;                  /* client connections open now */
	unsigned long long slow_cut;    /* cut for a request head past header_timeout */
	unsigned long long refused;     /* refused with 503 past max_connections */
};

struct status {
	bool draining;
	struct reload_status reload;
	struct conn_status conns;
};

/* The one instance. */
extern struct status daemon_status;

#endif
