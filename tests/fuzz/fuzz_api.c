/*
 * libFuzzer target for the request parser: api_parse_body() on every
 * forwarded route (ROUTE_FORWARD and ROUTE_SHOW), with one config loaded
 * once.  The first input byte picks the route; the rest is the body.
 * Checks: the result is one of the two outcomes, a rejection carries a 4xx
 * status and a message, and a parsed body re-encodes as a JSON object whose
 * "model" is the configured backend tag.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "route.h"
#include "../unit/fixture_api.h"
#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const paths[] = {
	"/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/show",
	"/v1/chat/completions", "/v1/completions", "/v1/embeddings",
};
#define N_PATHS (sizeof(paths) / sizeof(paths[0]))


static struct config *cfg;
static const struct route *routes[N_PATHS];

static void
setup(void)
{
	struct config_diags d = {0};

	log_init("fuzz_api", LOG_LEVEL_ERR);
	cfg = config_load_string(fixture_api_conf, "fuzz.conf", &d);
	config_diags_free(&d);
	if (cfg == NULL)
		abort();
	for (size_t i = 0; i < N_PATHS; i++)
		if ((routes[i] = route_find(paths[i])) == NULL)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct route *r;
	struct api_parsed p;
	enum api_result res;

	if (cfg == NULL)
		setup();
	if (size < 1)
		return 0;
	r = routes[data[0] % N_PATHS];
	/* A heap copy of exactly the body, so ASan sees any over-read. */
	char *body = malloc(size - 1 ? size - 1 : 1);
	memcpy(body, data + 1, size - 1);
	res = api_parse_body(r, body, size - 1, cfg, &p);
	if (res == API_REJECTED) {
		if (p.status < 400 || p.status > 499 || p.error == NULL || p.model != NULL || p.up_body != NULL)
			abort();
	} else if (res == API_PARSED) {
		json_t *o, *model;
		const struct cfg_model *m;

		if (p.model == NULL || p.up_body == NULL || p.error != NULL || strlen(p.up_body) != p.up_body_len)
			abort();
		if ((m = config_find_model(cfg, p.model)) == NULL)
			abort();
		o = json_loadb(p.up_body, p.up_body_len, 0, NULL);
		model = json_object_get(o, "model");
		if (!json_is_object(o) || !json_is_string(model) || strcmp(json_string_value(model), m->ollama) != 0)
			abort();
		if (p.stream && !r->streams)
			abort();
		json_decref(o);
	} else {
		abort();
	}
	api_parsed_free(&p);
	free(body);
	return 0;
}
