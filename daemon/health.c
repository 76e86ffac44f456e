/* health: host probes, down/up marking, model warm-up. */
#include "health.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "jsonx.h"
#include "ev.h"
#include "log.h"
#include "sched.h"
#include "upstream.h"
#include "xmalloc.h"

#define HEALTH_FAILS_DOWN 2 /* probes in a row that must fail before a host is down */

struct host_state {
	bool probing;
	bool probed;            /* answered or failed at least once */
	bool warmed;            /* warm-up sent since it was last seen up */
};

static struct ev_timer tick;
static struct host_state *states;
static int n_states;

static void probe_host(struct rt_host *h);

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
				api_pin_options(o, m->cfg);
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
	struct host_state *st;

	if (sched == NULL || h->index >= n_states || status < 0)
		return;
	st = &states[h->index];
	st->probing = false;
	st->probed = true;
	if (status == 200) {
		h->fails = 0;
		sched_host_set_up(h, true);
		if (!st->warmed) {
			st->warmed = true;
			warm_models(h);
		}
		upstream_probe(h, "/api/ps", NULL, 2.0, on_ps, NULL);
	} else if (++h->fails >= HEALTH_FAILS_DOWN) {
		/* One late answer is a busy host (or a loaded machine), not a
		 * dead one: a host that refuses connections is marked down at
		 * once by the request path (health_suspect). */
		st->warmed = false;
		if (h->up)
			log_warnx("host %s: %d probes in a row failed (%s)", h->cfg->name, h->fails,
			    status ? "bad status" : "no answer");
		sched_host_set_up(h, false);
	}
}

static void
probe_host(struct rt_host *h)
{
	struct host_state *st = &states[h->index];
	double t = sched->cfg->health_interval;

	if (st->probing)
		return;
	st->probing = true;
	if (upstream_probe(h, "/api/version", NULL, t < 2.0 ? (t > 0.5 ? t : 0.5) : 2.0, on_version, NULL) < 0)
		st->probing = false;
}

static void
on_tick(void *arg)
{
	for (int i = 0; i < sched->n_hosts; i++)
		probe_host(&sched->hosts[i]);
	ev_timer_start(&tick, (uint64_t)(sched->cfg->health_interval * 1e6));
}

void
health_init(void)
{
	n_states = sched->n_hosts;
	states = xcalloc((size_t)n_states, sizeof(*states));
	ev_timer_init(&tick, on_tick, NULL);
	on_tick(NULL);
}

void
health_shutdown(void)
{
	ev_timer_stop(&tick);
	free(states);
	states = NULL;
	n_states = 0;
}

void
health_suspect(struct rt_host *h)
{
	if (states == NULL)
		return;
	states[h->index].warmed = false;
	sched_host_set_up(h, false);
	probe_host(h);
}

bool
health_first_round_done(void)
{
	for (int i = 0; i < n_states; i++)
		if (!states[i].probed)
			return false;
	return true;
}
