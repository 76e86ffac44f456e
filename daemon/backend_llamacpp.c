/*
 * backend_llamacpp: llama.cpp's llama-server (reference/llamacpp-server.md).
 * Up: GET /health answers 200; its 503 while the model loads is "not
 * ready" (down at once: no traffic until it is up).  Each round then reads,
 * per model placed here (with ?model=, which a single-model server ignores
 * and a router-mode one needs): /slots (slots, busy ones) and /metrics
 * (requests_deferred: its own queue), the backend's view of its load; once
 * per up-episode /props (total_slots against num_parallel, n_ctx); and
 * /v1/models for "loaded".  No warm-up: the server loads its model when it
 * starts.  Requests: /v1 routes as they are, Ollama-native ones translated.
 */
#include "backend.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sched.h"
#include "upstream.h"
#include "xmalloc.h"

/* A probe about one placement.  Reload cancels every probe (status -1)
 * before the runtime the pointer belongs to goes away. */
struct placement_probe {
	struct rt_placement *p;
	int ours;               /* our requests in flight there when it was sent */
};

static struct placement_probe *
placement_probe_new(struct rt_placement *p)
{
	struct placement_probe *pp = xcalloc(1, sizeof(*pp));

	pp->p = p;
	pp->ours = p->in_flight;
	return pp;
}

static void
on_slots(struct rt_host *h, const char *path, long status, const char *body, size_t len, void *arg)
{
	struct placement_probe *pp = arg;
	json_t *o, *slot;
	size_t i;

	if (status == 200 && sched != NULL && (o = json_loadb(body, len, 0, NULL)) != NULL) {
		if (json_is_array(o)) {
			struct rt_placement *p = pp->p;
			struct backend_load b = p->backend;
			int ours = p->in_flight > pp->ours ? p->in_flight : pp->ours;
			b.slots = (int)json_array_size(o);
			b.busy = 0;
			json_array_foreach(o, i, slot)
				if (json_is_true(json_object_get(slot, "is_processing")))
					b.busy++;
			sched_placement_backend_load(p, &b, ours);
		}
		json_decref(o);
	}
	free(pp);
}

static void
on_metrics(struct rt_host *h, const char *path, long status, const char *body, size_t len, void *arg)
{
	struct placement_probe *pp = arg;
	double v;

	/* 501 without --metrics: the queue is then not reported. */
	if (status == 200 && sched != NULL && backend_metric(body, len, "llamacpp:requests_deferred", NULL, &v))
		pp->p->backend.waiting = (int)v;
	free(pp);
}

static void
on_props(struct rt_host *h, const char *path, long status, const char *body, size_t len, void *arg)
{
	struct placement_probe *pp = arg;
	json_t *o, *n, *ctx;

	if (status == 200 && sched != NULL && (o = json_loadb(body, len, 0, NULL)) != NULL) {
		struct rt_placement *p = pp->p;
		n = json_object_get(o, "total_slots");
		ctx = json_object_get(json_object_get(o, "default_generation_settings"), "n_ctx");
		if (json_is_integer(ctx) && json_integer_value(ctx) > 0 && json_integer_value(ctx) < (1 << 30))
			p->ctx_loaded = (int)json_integer_value(ctx);
		if (json_is_integer(n) && json_integer_value(n) > 0 && json_integer_value(n) < 65536) {
			int slots = (int)json_integer_value(n);
			p->backend.slots = slots;
			if (h->cfg->num_parallel_set && slots != h->cfg->num_parallel)
				log_warnx("host %s: llama-server has %d slots for %s (/props total_slots) but num_parallel is "
				    "%d: set num_parallel = %d for host \"%s\" in the configuration, or start llama-server "
				    "with -np %d", h->cfg->name, slots, p->model->cfg->ollama, h->cfg->num_parallel, slots,
				    h->cfg->name, h->cfg->num_parallel);
			if (p->slots > slots)
				log_warnx("host %s: placement of %s has %d slots but llama-server has %d: harmonicd sends "
				    "it at most %d at a time (start llama-server with -np %d to use them all)", h->cfg->name,
				    p->model->cfg->name, p->slots, slots, slots, p->slots);
		}
		json_decref(o);
	}
	free(pp);
}

static void
on_models(struct rt_host *h, const char *path, long status, const char *body, size_t len, void *arg)
{
	if (status == 200 && sched != NULL)
		backend_read_model_list(h, body, len, false); /* it serves what it was started with, under any name */
}

/* The per-placement reads of one round. */
static void
read_load(struct rt_host *h, bool props)
{
	for (int i = 0; i < sched->n_models; i++)
		for (int k = 0; k < sched->models[i].n_placements; k++) {
			struct rt_placement *p = &sched->models[i].placements[k];
			char *path;
			struct placement_probe *pp;
			if (p->host != h)
				continue;
			if (props) {
				path = backend_path_for_model("/props", p->model->cfg->ollama);
				if (upstream_probe(h, path, NULL, 2.0, on_props, pp = placement_probe_new(p)) < 0)
					free(pp);
				free(path);
			}
			path = backend_path_for_model("/slots", p->model->cfg->ollama);
			if (upstream_probe(h, path, NULL, 2.0, on_slots, pp = placement_probe_new(p)) < 0)
				free(pp);
			free(path);
			path = backend_path_for_model("/metrics", p->model->cfg->ollama);
			if (upstream_probe(h, path, NULL, 2.0, on_metrics, pp = placement_probe_new(p)) < 0)
				free(pp);
			free(path);
		}
	upstream_probe(h, "/v1/models", NULL, 2.0, on_models, NULL);
}

static void
on_health(struct rt_host *h, const char *path, long status, const char *body, size_t len, void *arg)
{
	bool was_up;

	if (sched == NULL)
		return;
	was_up = h->up && h->fails == 0;
	backend_report(h, status, true, true);
	if (status == 200 && h->up)
		read_load(h, !was_up || h->n_loaded == 0);
}

static int
probe(struct rt_host *h, double timeout_s)
{
	return upstream_probe(h, "/health", NULL, timeout_s, on_health, NULL);
}

static int
prepare(const struct rt_placement *p, const struct route *r, const char *native_body, size_t len,
    const char *client_model, bool stream, struct backend_call *out, char **err)
{
	return backend_prepare_openai_compatible(p, r, native_body, len, client_model, stream, true, out, err);
}

const struct backend backend_llamacpp = {
	.name = "llamacpp",
	.probe = probe,
	.came_up = backend_nothing_to_warm,
	.advice = backend_no_advice,
	.prepare = prepare,
};
