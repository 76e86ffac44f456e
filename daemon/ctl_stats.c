/* harmonicctl stats: placeholder until its issue lands. */
#include <stdio.h>

#include "ctl.h"

int
ctl_stats_main(int argc, char **argv)
{
	fprintf(stderr, "harmonicctl stats: not implemented yet\n");
	return 1;
}
