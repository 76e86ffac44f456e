/* harmonicctl bench: placeholder until its issue lands. */
#include <stdio.h>

#include "ctl.h"

int
ctl_bench_main(int argc, char **argv)
{
	fprintf(stderr, "harmonicctl bench: not implemented yet\n");
	return 1;
}
