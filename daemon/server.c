/* server: placeholder until the routing core lands; validates and exits. */
#include "server.h"

#include "config.h"
#include "log.h"

int
server_run(const char *file, bool debug)
{
	struct config_diags diags = {0};
	struct config *cfg = config_load(file, &diags);

	(void)debug;
	config_diags_print(&diags, stderr);
	config_diags_free(&diags);
	if (cfg == NULL)
		return CONFIG_EXIT_ERROR;
	log_errx("serving is not implemented yet");
	config_unref(cfg);
	return 1;
}
