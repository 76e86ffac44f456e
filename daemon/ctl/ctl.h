/*
 * ctl: the harmonicctl subcommands.  Each takes the argv that follows the
 * subcommand name (argv[0] is the subcommand) and returns an exit status
 * (0, 64 usage, 78 config, 1 other failure).
 */
#ifndef HARMONIC_CTL_H
#define HARMONIC_CTL_H

#define CTL_EXIT_USAGE 64

/* harmonicctl stats [-u URL] [--watch]: a terminal view of /stats. */
int ctl_stats_main(int argc, char **argv);
/* harmonicctl bench -u URL -m MODEL ...: the report's benchmark. */
int ctl_bench_main(int argc, char **argv);

#endif
