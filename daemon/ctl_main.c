/*
 * harmonicctl: the operator CLI.  Subcommands: check (as harmonicd --check),
 * stats and bench (later).
 */
#include <stdio.h>
#include <string.h>

#include "budget.h"
#include "log.h"

#define EXIT_USAGE 64

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: harmonicctl check FILE\n"
	    "       harmonicctl -V | --version\n");
}

int
main(int argc, char **argv)
{
	log_init("harmonicctl", LOG_LEVEL_INFO);
	if (argc >= 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
		printf("harmonicctl %s\n", HARMONIC_VERSION);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "check") == 0)
		return budget_check_file(argv[2], stdout, stderr);
	usage(stderr);
	return EXIT_USAGE;
}
