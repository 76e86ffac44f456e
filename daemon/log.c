/*
 * log: stderr logging with journald priorities.  Owns only the program name
 * and the current level; no allocation.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *prog = "harmonic";
static enum log_level cur_level = LOG_LEVEL_INFO;
static bool journal;

static const char *const level_names[LOG_LEVEL_COUNT] = {"error", "warn", "info", "debug"};
static const int sd_prio[LOG_LEVEL_COUNT] = {3, 4, 6, 7};

void
log_init(const char *progname, enum log_level level)
{
	prog = progname;
	cur_level = level;
	journal = getenv("JOURNAL_STREAM") != NULL;
}

void
log_set_level(enum log_level level)
{
	cur_level = level;
}

bool
log_enabled(enum log_level level)
{
	return level <= cur_level;
}

int
log_level_parse(const char *s)
{
	for (int i = 0; i < LOG_LEVEL_COUNT; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "warning") == 0)
		return LOG_LEVEL_WARN;
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	return level < LOG_LEVEL_COUNT ? level_names[level] : "?";
}

static void
vlog(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char msg[2048];

	if (level > cur_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (journal) {
		fprintf(stderr, "<%d>%s%s%s\n", sd_prio[level], msg, suffix ? ": " : "",
		    suffix ? suffix : "");
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s[%s] %s%s%s\n", when, ts.tv_nsec / 1000000, prog,
		    level_names[level], msg, suffix ? ": " : "", suffix ? suffix : "");
	}
}

#define LOG_FN(name, level)                    \
	void name(const char *fmt, ...)        \
	{                                      \
		va_list ap;                    \
		va_start(ap, fmt);             \
		vlog(level, NULL, fmt, ap);    \
		va_end(ap);                    \
	}
LOG_FN(log_warnx, LOG_LEVEL_WARN)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_errx, LOG_LEVEL_ERR)

void
log_mhd(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	if (!log_enabled(LOG_LEVEL_DEBUG))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("mhd: %s", msg);
}

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_WARN, strerror(saved), fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERR, strerror(saved), fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
