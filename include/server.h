/*
 * server: the running daemon.  Owns the event loop and the lifetime of
 * every module; main.c only parses the command line.
 */
#ifndef HARMONIC_SERVER_H
#define HARMONIC_SERVER_H

#include <stdbool.h>

/* Load FILE and serve until SIGTERM/SIGINT.  Returns the exit status
 * (0, CONFIG_EXIT_ERROR, or 1). */
int server_run(const char *file, bool debug);

#endif
