/*
 * libFuzzer target for the config loader: config_load_string() on arbitrary
 * text.  Checks: a config comes back exactly when no error was reported,
 * every diagnostic has text, and a loaded config survives ref/unref.
 * Inputs that would read special files (@include, /dev, /proc, /sys) are
 * skipped: that is file reading, not the parser under test; key files
 * named by relative paths resolve in build-fuzz/ and are harmless.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	struct config_diags d = {0};
	struct config *cfg;
	char *text;

	if (!init) {
		log_init("fuzz_config", LOG_LEVEL_ERR);
		init = true;
	}
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	if (strstr(text, "@include") || strstr(text, "/dev") || strstr(text, "/proc") || strstr(text, "/sys")) {
		free(text);
		return 0;
	}
	cfg = config_load_string(text, "fuzz.conf", &d);
	if ((cfg == NULL) != (d.errors > 0))
		abort();
	for (int i = 0; i < d.n; i++)
		if (d.v[i].text == NULL)
			abort();
	if (cfg != NULL) {
		config_unref(config_ref(cfg));
		config_unref(cfg);
	}
	config_diags_free(&d);
	free(text);
	return 0;
}
