/*
 * local: the answers harmonicd gives itself (/, /api/version, /api/tags,
 * /api/ps, /v1/models, /healthz, /readyz), in the shapes drop-in clients
 * expect (reference/ollama-api.md).
 */
#include "local.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "config.h"
#include "dialect.h"
#include "jsonx.h"
#include "sched.h"
#include "status.h"
#include "xmalloc.h"

#define OLLAMA_COMPAT_VERSION "0.15.2" /* what /api/version reports: the report's Ollama */

static void
answer_text(struct local_answer *out, int status, const char *text)
{
	out->status = status;
	out->ctype = "text/plain; charset=utf-8";
	out->body = xstrdup(text);
	out->len = strlen(text);
}

void
local_root(const char *url, struct local_answer *out)
{
	answer_text(out, 200, "Ollama is running");
}

void
local_version(const char *url, struct local_answer *out)
{
	api_answer_json(out, 200, jx_pack("{s:s,s:s}", "version", OLLAMA_COMPAT_VERSION, "harmonicd", HARMONIC_VERSION));
}

/* A stable 64-hex digest from the name (FNV-1a, four lanes): clients only
 * need it to be well-formed and stable. */
static void
name_digest(const char *name, char out[65])
{
	for (int lane = 0; lane < 4; lane++) {
		uint64_t h = 1469598103934665603ull ^ (uint64_t)(lane + 1);
		for (const char *p = name; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		snprintf(out + lane * 16, 17, "%016llx", (unsigned long long)h);
	}
}

static void
rfc3339_now(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *
model_entry(const struct cfg_model *m)
{
	char digest[65], when[40];
	char *display;
	json_t *o;

	/* Display form keeps the configured case but always shows the tag. */
	display = strchr(m->name, ':') ? xstrdup(m->name) : xasprintf("%s:latest", m->name);
	name_digest(m->key, digest);
	rfc3339_now(when, sizeof(when));
	o = jx_pack("{s:s,s:s,s:s,s:I,s:s,s:{s:s,s:s,s:s,s:[],s:s,s:s}}", "name", display, "model", display,
	    "modified_at", when, "size", (json_int_t)(m->base_gb * 1e9), "digest", digest, "details",
	    "parent_model", "", "format", "gguf", "family", "", "families", "parameter_size", "",
	    "quantization_level", "");
	free(display);
	return o;
}

void
local_tags(const char *url, struct local_answer *out)
{
	json_t *models = json_array();

	for (int i = 0; i < sched->n_models; i++)
		json_array_append_new(models, model_entry(sched->models[i].cfg));
	api_answer_json(out, 200, jx_pack("{s:o}", "models", models));
}

static bool
host_has_loaded(const struct rt_host *h, const char *tag)
{
	char *want = config_model_key(tag);
	bool found = false;

	for (int i = 0; i < h->n_loaded && !found; i++) {
		char *have = config_model_key(h->loaded[i]);
		found = strcmp(have, want) == 0;
		free(have);
	}
	free(want);
	return found;
}

void
local_ps(const char *url, struct local_answer *out)
{
	json_t *models = json_array();

	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		for (int k = 0; k < m->n_placements; k++) {
			const struct rt_placement *p = &m->placements[k];
			json_t *e;
			if (!host_has_loaded(p->host, m->cfg->ollama))
				continue;
			e = model_entry(m->cfg);
			json_object_set_new(e, "size_vram", json_integer((json_int_t)(p->cfg->memory_gb * 1e9)));
			json_object_set_new(e, "size", json_integer((json_int_t)(p->cfg->memory_gb * 1e9)));
			json_object_set_new(e, "expires_at", jx_str("2318-01-01T00:00:00Z"));
			json_object_set_new(e, "context_length", json_integer(m->cfg->num_ctx));
			json_object_del(e, "modified_at");
			json_array_append_new(models, e);
			break;
		}
	}
	api_answer_json(out, 200, jx_pack("{s:o}", "models", models));
}

static json_t *
v1_model(const struct cfg_model *m)
{
	return jx_pack("{s:s,s:s,s:I,s:s}", "id", m->name, "object", "model", "created",
	    (json_int_t)time(NULL), "owned_by", "library");
}

void
local_v1_models(const char *url, struct local_answer *out)
{
	json_t *data = json_array();

	for (int i = 0; i < sched->n_models; i++)
		json_array_append_new(data, v1_model(sched->models[i].cfg));
	api_answer_json(out, 200, jx_pack("{s:s,s:o}", "object", "list", "data", data));
}

void
local_v1_model(const char *url, struct local_answer *out)
{
	const char *name = url + strlen("/v1/models/");
	const struct cfg_model *m = config_find_model(sched->cfg, name);

	if (m == NULL) {
		char *msg = xasprintf("model \"%s\" not found", name);
		api_answer_json(out, 404, dialect_openai.error_body(404, msg));
		free(msg);
		return;
	}
	api_answer_json(out, 200, v1_model(m));
}

void
local_healthz(const char *url, struct local_answer *out)
{
	api_answer_json(out, 200, jx_pack("{s:s}", "status", "ok"));
}

void
local_readyz(const char *url, struct local_answer *out)
{
	int up = 0;

	for (int i = 0; i < sched->n_hosts; i++)
		up += sched->hosts[i].up;
	if (daemon_status.draining) {
		api_answer_json(out, 503, jx_pack("{s:s}", "status", "draining"));
		return;
	}
	if (up == 0) {
		api_answer_json(out, 503, jx_pack("{s:s,s:i}", "status", "no host up", "hosts_up", 0));
		out->retry_after = 1;
		return;
	}
	api_answer_json(out, 200, jx_pack("{s:s,s:i}", "status", "ready", "hosts_up", up));
}
