/*
 * log: the one logging API.  Lines go to stderr; under systemd (JOURNAL_STREAM
 * set) each line carries an sd-daemon "<N>" priority prefix so journald keeps
 * the level, otherwise a timestamp and level word.
 */
#ifndef HARMONIC_LOG_H
#define HARMONIC_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LEVEL_ERR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG, LOG_LEVEL_COUNT };

/* Set the program name, the most verbose level printed, and detect systemd. */
void log_init(const char *progname, enum log_level level);
/* Change the verbosity at run time. */
void log_set_level(enum log_level level);
/* True when messages at this level would be printed (guards costly args). */
bool log_enabled(enum log_level level);
/* Parse "error", "warn", "info", "debug"; -1 when unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level level);

/* A libmicrohttpd external logger: its messages are routine (client
 * disconnects) and go to the debug level, one line each. */
void log_mhd(void *cls, const char *fmt, va_list ap);

/* log_warn appends strerror(errno) and preserves errno. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1); fatal appends strerror(errno). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
