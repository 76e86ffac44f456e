/*
 * harmonicctl: the operator CLI.  Subcommands: check (as harmonicd
 * --check), stats (ctl_stats.c) and bench (ctl_bench.c).
 */
#include <stdio.h>
#include <string.h>

#include "budget.h"
#include "ctl.h"
#include "log.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: harmonicctl check FILE\n"
	    "       harmonicctl stats [-u URL] [--watch]\n"
	    "       harmonicctl bench -u URL -m MODEL [-p LEVELS] [-t TRIALS] [...]\n"
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
	if (argc >= 2 && strcmp(argv[1], "stats") == 0)
		return ctl_stats_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "bench") == 0)
		return ctl_bench_main(argc - 1, argv + 1);
	usage(stderr);
	return CTL_EXIT_USAGE;
}
