/*
 * server: the running daemon.  Owns the event loop, the process lifecycle
 * (start, reload, drain, stop) and the lifetime of every module; main.c
 * only parses the command line.
 */
#ifndef HARMONIC_SERVER_H
#define HARMONIC_SERVER_H

#include <stdbool.h>
#include <stdint.h>

struct local_answer;

struct reload_status {
	uint64_t reloads;       /* successful reloads */
	uint64_t failures;      /* rejected reloads (the old config kept) */
	double last_ok_s;       /* uptime of the last success; -1 = never */
	double last_failure_s;  /* uptime of the last failure; -1 = never */
	char last_error[512];   /* first error of the last failure */
};

/* Load FILE and serve until SIGTERM/SIGINT.  Returns the exit status
 * (0, CONFIG_EXIT_ERROR, or 1). */
int server_run(const char *file, bool debug);
/* Reload the config file: validate it whole, then swap it in, or keep the
 * running one.  Returns 0 or -1. */
int server_reload(void);
/* Start a graceful shutdown: stop accepting, answer queued requests 503,
 * let streams finish up to shutdown_grace, then exit 0. */
void server_drain(const char *why);
bool server_draining(void);
const struct reload_status *server_reload_status(void);

/* POST /admin/reload and POST /admin/drain. */
void server_admin_reload(const char *url, struct local_answer *out);
void server_admin_drain(const char *url, struct local_answer *out);

#endif
