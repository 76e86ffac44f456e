/* harmonic-sim: placeholder entry until the simulator lands. */
#include <stdio.h>

int
main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "harmonic-sim: not implemented yet\n");
	return 1;
}
