/*
 * Helpers shared by the unit tests: finding the source tree (so test data
 * such as tests/config/ and etc/examples/ is found whatever the working
 * directory), and searching config diagnostics.
 */
#ifndef HARMONIC_TEST_UTIL_H
#define HARMONIC_TEST_UTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "xmalloc.h"

static inline bool
test_is_top(const char *dir)
{
	char *probe = xasprintf("%s/tests/config", dir);
	struct stat st;
	bool yes = stat(probe, &st) == 0 && S_ISDIR(st.st_mode);

	free(probe);
	return yes;
}

/*
 * The repository root: $HARMONIC_TOP if set, else three levels above the
 * test binary (BUILD/tests/test_x, BUILD being build/ or build-asan/), else
 * the working directory.  The result lives until exit.
 */
static inline const char *
test_top(void)
{
	static char exe[PATH_MAX], *top;
	const char *env = getenv("HARMONIC_TOP");
	ssize_t n;

	if (top != NULL)
		return top;
	if (env != NULL && *env != '\0')
		return top = xstrdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		for (int up = 0; up < 3; up++) {
			char *slash = strrchr(exe, '/');
			if (slash == NULL)
				break;
			*slash = '\0';
		}
		if (test_is_top(exe))
			return top = exe;
	}
	return top = xstrdup(".");
}

/* TOP/rel; caller frees. */
static inline char *
test_path(const char *rel)
{
	return xasprintf("%s/%s", test_top(), rel);
}

/* Index of the first diagnostic containing needle (and prefix, if given, at
 * its start), or -1. */
static inline int
diags_find(const struct config_diags *d, const char *prefix, const char *needle)
{
	for (int i = 0; i < d->n; i++) {
		if (prefix != NULL && strncmp(d->v[i].text, prefix, strlen(prefix)) != 0)
			continue;
		if (strstr(d->v[i].text, needle) != NULL)
			return i;
	}
	return -1;
}

/* Print every diagnostic to stderr: context for a failing assertion. */
static inline void
diags_dump(const struct config_diags *d)
{
	for (int i = 0; i < d->n; i++)
		fprintf(stderr, "    diag: %s\n", d->v[i].text);
}

#endif
