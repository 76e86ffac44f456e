/*
 * harmonicd entry point: command line, config load, then the service
 * (server.c) runs until a signal ends it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "config.h"
#include "log.h"
#include "server.h"

#define EXIT_USAGE 64

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: harmonicd [-c FILE] [--check] [-d] [-V] [-h]\n"
	    "  -c, --config FILE  configuration (default /etc/harmonicd/harmonicd.conf,\n"
	    "                     or $HARMONICD_CONFIG)\n"
	    "      --check        validate the configuration, print the memory budget, exit\n"
	    "  -d, --debug        log at debug level\n"
	    "  -V, --version      print the version\n"
	    "  -h, --help         this help\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'C'},
		{"debug", no_argument, NULL, 'd'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *file = getenv("HARMONICD_CONFIG");
	int check = 0, debug = 0, c;

	if (file == NULL || *file == '\0')
		file = "/etc/harmonicd/harmonicd.conf";
	while ((c = getopt_long(argc, argv, "c:dVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': file = optarg; break;
		case 'C': check = 1; break;
		case 'd': debug = 1; break;
		case 'V': printf("harmonicd %s\n", HARMONIC_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	log_init("harmonicd", debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	if (check)
		return budget_check_file(file, stdout, stderr);
	return server_run(file, debug);
}
