/*
 * server: the running daemon.  Owns the event loop, the process lifecycle
 * (start, reload, drain, stop) and the lifetime of every module; main.c
 * only parses the command line.
 */
#ifndef HARMONIC_SERVER_H
#define HARMONIC_SERVER_H

#include <stdbool.h>
#include <stdint.h>

/* Load FILE and serve until SIGTERM/SIGINT.  Returns the exit status
 * (0, CONFIG_EXIT_ERROR, or 1). */
int server_run(const char *file, bool debug);
/* Reload the config file: validate it whole, then swap it in, or keep the
 * running one.  Returns 0 or -1. */
int server_reload(void);
/* Start a graceful shutdown: stop accepting, answer queued requests 503,
 * let streams finish up to shutdown_grace, then exit 0. */
void server_drain(const char *why);

#endif
