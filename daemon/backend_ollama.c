/*
 * backend_ollama: an Ollama host.  Up: GET /api/version answers 200.
 * Loaded: the models of GET /api/ps, with the context each is loaded at
 * against the pinned num_ctx: requests in the option-less dialects
 * (/v1/chat/completions, /v1/messages, /v1/responses) load a model at the
 * host's default context, so where that differs from the pin, Ollama
 * reloads the model at every switch between them and /api traffic.  Such
 * a mismatch and context changes between probes (reloads) are counted per
 * placement, warned about naming the host and the setting to change, and
 * shown in /stats (docs/operations.md, "Context length").  Warm-up: each
 * placed model's empty-prompt load with the pinned options.  Requests go
 * as they are: Ollama speaks every client dialect harmonicd serves.
 */
#include "backend.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "endpoint.h"
#include "ev.h"
#include "jsonx.h"
#include "log.h"
#include "sched.h"
#include "upstream.h"
#include "xmalloc.h"

#define CONTEXT_RECENT_US (600u * 1000000u)  /* advice stands this long after a mismatch */
#define CONTEXT_WARN_US (3600ull * 1000000u) /* one warning per placement and hour */

/* The model's tag as a lookup key (lowercase, ":latest" implied), so that
 * "qwen3" in the config matches "qwen3:latest" in /api/ps. */
static bool
same_tag(const char *a, const char *b)
{
	char *ka = config_model_key(a), *kb = config_model_key(b);
	bool same = strcmp(ka, kb) == 0;

	free(ka);
	free(kb);
	return same;
}

/* The pinned num_ctx of every placement on h, if they are all the same;
 * 0 if they differ or none is pinned. */
static int
uniform_pin(const struct rt_host *h)
{
	int pin = 0;

	for (int i = 0; i < sched->n_models; i++)
		for (int k = 0; k < sched->models[i].n_placements; k++) {
			const struct rt_placement *p = &sched->models[i].placements[k];
			int n = p->model->cfg->num_ctx;
			if (p->host != h || n <= 0)
				continue;
			if (pin != 0 && n != pin)
				return 0;
			pin = n;
		}
	return pin;
}

static char *
context_advice(const struct rt_host *h)
{
	uint64_t now = ev_now_us();
	const struct rt_placement *bad = NULL;
	int pin;

	for (int i = 0; i < sched->n_models && bad == NULL; i++)
		for (int k = 0; k < sched->models[i].n_placements; k++) {
			const struct rt_placement *p = &sched->models[i].placements[k];
			if (p->host == h && p->ctx_mismatch_us != 0 && now - p->ctx_mismatch_us < CONTEXT_RECENT_US) {
				bad = p;
				break;
			}
		}
	if (bad == NULL)
		return NULL;
	if ((pin = uniform_pin(h)) > 0)
		return xasprintf("set OLLAMA_CONTEXT_LENGTH=%d on host \"%s\" (%s) and restart its Ollama; a model whose "
		    "Modelfile sets num_ctx keeps that instead, so make it %d there too", pin, h->cfg->name, h->cfg->url, pin);
	return xasprintf("the models on host \"%s\" (%s) pin different num_ctx, so OLLAMA_CONTEXT_LENGTH cannot match "
	    "them all: create a variant of %s with PARAMETER num_ctx %d in its Modelfile (ollama create) and name it "
	    "in the model's \"ollama\" setting; likewise for each model reported", h->cfg->name, h->cfg->url,
	    bad->model->cfg->ollama, bad->model->cfg->num_ctx);
}

/*
 * What /api/ps says of p's model: loaded with context ctx (0: not resident
 * or not reported).  A change between two probes that both saw it resident
 * is a reload; a context other than the pinned one means requests without
 * options (the OpenAI and Anthropic dialects, which cannot carry num_ctx)
 * loaded it at the host's default, and every switch between them and the
 * pinned /api traffic reloads it.
 */
static void
note_context(struct rt_placement *p, int ctx)
{
	uint64_t now = ev_now_us();
	int pin = p->model->cfg->num_ctx;
	char *advice;

	if (ctx > 0 && p->ctx_loaded > 0 && ctx != p->ctx_loaded)
		p->ctx_reloads++;
	p->ctx_loaded = ctx;
	/* Some Ollama versions report the runner's whole KV size, num_ctx
	 * times OLLAMA_NUM_PARALLEL: that is the pinned context too. */
	if (ctx <= 0 || pin <= 0 || ctx == pin || (int64_t)ctx == (int64_t)pin * p->host->cfg->num_parallel)
		return;
	p->ctx_mismatches++;
	p->ctx_mismatch_us = now;
	if (p->ctx_warned_us != 0 && now - p->ctx_warned_us < CONTEXT_WARN_US)
		return;
	p->ctx_warned_us = now;
	advice = context_advice(p->host);
	log_warnx("host %s: model %s is loaded with a %d-token context but num_ctx pins %d: requests on "
	          "/v1/chat/completions, /v1/completions, /v1/messages and /v1/responses carry no options, so Ollama "
	          "loads the model at the host's default context and reloads it, for seconds, whenever traffic "
	          "switches between them and /api/* (%llu reloads seen so far); %s", p->host->cfg->name,
	    p->model->cfg->ollama, ctx, pin, (unsigned long long)p->ctx_reloads,
	    advice ? advice : "set the host's default context to the pinned one");
	free(advice);
}

static void
on_ps(struct rt_host *h, const char *path, long status, const char *body, size_t len, void *arg)
{
	json_t *o, *models;
	size_t i;
	json_t *m;

	if (status != 200 || sched == NULL)
		return;
	o = json_loadb(body, len, 0, NULL);
	models = json_object_get(o, "models");
	for (int k = 0; k < h->n_loaded; k++)
		free(h->loaded[k]);
	free(h->loaded);
	h->loaded = NULL;
	h->n_loaded = 0;
	if (json_is_array(models)) {
		h->loaded = xcalloc(json_array_size(models) + 1, sizeof(char *));
		json_array_foreach(models, i, m) {
			const char *name = json_string_value(json_object_get(m, "name"));
			if (name != NULL)
				h->loaded[h->n_loaded++] = xstrdup(name);
		}
	}
	/* The loaded context of every model placed here (Ollama >= 0.10
	 * reports context_length; older ones do not, and nothing is judged). */
	for (int mi = 0; mi < sched->n_models; mi++)
		for (int k = 0; k < sched->models[mi].n_placements; k++) {
			struct rt_placement *p = &sched->models[mi].placements[k];
			int ctx = 0;
			if (p->host != h)
				continue;
			json_array_foreach(models, i, m) {
				const char *name = json_string_value(json_object_get(m, "name"));
				json_t *c = json_object_get(m, "context_length");
				if (name != NULL && same_tag(name, p->model->cfg->ollama)) {
					ctx = json_is_integer(c) && json_integer_value(c) > 0 && json_integer_value(c) <= INT32_MAX ?
					    (int)json_integer_value(c) : 0;
					break;
				}
			}
			note_context(p, ctx);
		}
	json_decref(o);
}

static void
on_warm(struct rt_host *h, const char *path, long status, const char *body, size_t len, void *arg)
{
	if (sched != NULL)
		sched_unclaim(arg);
	if (status != 200 && status >= 0)
		log_warnx("host %s: warm-up failed (HTTP %ld): %.*s", h->cfg->name, status, (int)(len > 200 ? 200 : len),
		    body);
}

/* Ollama's empty-prompt load, with the pinned keep_alive and num_ctx so
 * the load matches what requests will ask for (no reload later).  A load
 * holds one of the placement's slots like any request, so the host never
 * sees more than the budget; if none is free, traffic is loading it. */
static void
warm_models(struct rt_host *h)
{
	for (int i = 0; i < sched->n_models; i++) {
		struct rt_model *m = &sched->models[i];
		for (int k = 0; k < m->n_placements; k++) {
			json_t *o;
			char *s;
			struct rt_placement *p = &m->placements[k];
			if (p->host != h || !sched_claim(p))
				continue;
			o = jx_pack("{s:o}", "model", jx_str(m->cfg->ollama));
			if (o != NULL)
				dialect_pin_options(o, m->cfg);
			s = jx_dump(o, NULL);
			if (s == NULL || upstream_probe(h, "/api/generate", s, sched->cfg->request_timeout, on_warm, p) < 0)
				sched_unclaim(p);
			free(s);
			json_decref(o);
		}
	}
}

static void
on_version(struct rt_host *h, const char *path, long status, const char *body, size_t len, void *arg)
{
	if (sched == NULL)
		return;
	backend_report(h, status, true, false);
	if (status == 200 && h->up)
		upstream_probe(h, "/api/ps", NULL, 2.0, on_ps, NULL);
}

static int
probe(struct rt_host *h, double timeout_s)
{
	return upstream_probe(h, "/api/version", NULL, timeout_s, on_version, NULL);
}

static int
prepare(const struct rt_placement *p, const struct route *r, const char *native_body, size_t len,
    const char *client_model, bool stream, struct backend_call *out, char **err)
{
	memset(out, 0, sizeof(*out));
	out->path = route_upstream_path(r);
	return 0;
}

const struct backend backend_ollama = {
	.name = "ollama",
	.probe = probe,
	.came_up = warm_models,
	.advice = context_advice,
	.prepare = prepare,
};
