/*
 * statsview: /stats JSON (SPEC section 6) from sched's aggregates.  The
 * cost is a walk over tiers, hosts and placements, i.e. the size of the
 * configuration; requests are never visited, so polling at 10 Hz under
 * full load costs the relay nothing measurable.
 */
#include "statsview.h"

#include "affinity.h"
#include "agents.h"
#include "api.h"
#include "backend.h"
#include "config.h"
#include "jsonx.h"
#include "ev.h"
#include "request.h"
#include "sched.h"
#include "status.h"
#include "upstream.h"

#include <stdlib.h>
#include <string.h>

static uint64_t start_us;

static json_t *
rates(const struct stats_rate *r, uint64_t now)
{
	return jx_pack("{s:f,s:f,s:f}", "1s", stats_rate_get(r, now, 1), "10s", stats_rate_get(r, now, 10), "60s",
	    stats_rate_get(r, now, 60));
}

static json_t *
tier_json(const struct rt_tier *t, uint64_t now)
{
	return jx_pack("{s:s,s:i,s:i,s:i,s:I,s:o,s:{s:f,s:f,s:f}}", "name", t->cfg->name, "weight",
	    t->cfg->weight, "queued", t->queued, "in_flight", t->in_flight, "completed", (json_int_t)t->completed,
	    "tokens_per_s", rates(&t->rate, now), "queue_wait_ms", "p50",
	    stats_hist_quantile(&t->queue_wait, 0.50), "p95", stats_hist_quantile(&t->queue_wait, 0.95), "p99",
	    stats_hist_quantile(&t->queue_wait, 0.99));
}

/* The backend's own view of its load, set only where it reports one
 * (SPEC 10), as {"slots","busy","waiting"} (the fields it reports), summed
 * over the models placed on h. */
static void
add_load(json_t *o, const char *key, int v)
{
	json_t *have = json_object_get(o, key);

	if (v >= 0)
		json_object_set_new(o, key, json_integer(v + (have ? json_integer_value(have) : 0)));
}

/* Add b's reported gauges to o (a host sums its models'). */
static void
add_loads(json_t *o, const struct backend_load *b)
{
	add_load(o, "slots", b->slots);
	add_load(o, "busy", b->busy);
	add_load(o, "waiting", b->waiting);
}

static json_t *
host_backend_json(const struct rt_host *h)
{
	json_t *o = NULL;

	for (int i = 0; i < sched->n_models; i++)
		for (int k = 0; k < sched->models[i].n_placements; k++) {
			const struct rt_placement *p = &sched->models[i].placements[k];
			if (p->host != h || p->backend.read_us == 0)
				continue;
			if (o == NULL)
				o = json_object();
			add_loads(o, &p->backend);
		}
	return o;
}

static json_t *
host_json(const struct rt_host *h, uint64_t now)
{
	json_t *loaded = json_array(), *o, *b;
	double tps10 = stats_rate_get(&h->rate, now, 10);
	char *advice = backend_of(h)->advice(h);

	for (int i = 0; i < h->n_loaded; i++)
		json_array_append_new(loaded, jx_str(h->loaded[i]));
	o = jx_pack("{s:s,s:s,s:b,s:o,s:i,s:i,s:I,s:I,s:o,s:f,s:{s:f,s:f}}", "name", h->cfg->name, "url",
	    h->cfg->url, "up", h->up, "loaded", loaded, "in_flight", h->in_flight, "max_parallel", h->slots,
	    "completed", (json_int_t)h->completed, "eval_tokens", (json_int_t)h->eval_tokens, "tokens_per_s",
	    rates(&h->rate, now), "tokens_per_watt", h->cfg->watts > 0 ? tps10 / h->cfg->watts : 0.0, "memory_gb",
	    "budget", h->cfg->memory_gb - h->cfg->reserve_gb, "planned", h->cfg->planned_gb);
	json_object_set_new(o, "type", json_string(config_host_type_name(h->cfg->type)));
	if ((b = host_backend_json(h)) != NULL)
		json_object_set_new(o, "backend", b);
	/* What to change on the host when option-less requests load its models
	 * at another context than the pinned one (backend_ollama.c). */
	json_object_set_new(o, "context_advice", advice ? jx_str(advice) : json_null());
	free(advice);
	return o;
}

/* parallel = "auto": the controller's state (SPEC 7, docs/adaptive-slots.md). */
static json_t *
auto_json(const struct autoslot *a)
{
	return jx_pack("{s:i,s:i,s:i,s:s,s:i,s:i,s:f,s:i,s:f,s:b,s:I,s:I,s:I}", "limit", a->limit, "max", a->max,
	    "ceiling", autoslot_ceiling(a), "phase", autoslot_phase_name(a->phase), "step", a->step, "best_limit",
	    a->have_best ? a->best_limit : 0, "best_rate", a->have_best ? a->best_rate : 0.0, "last_limit",
	    a->last_limit, "last_rate", a->last_rate, "starved", a->starved, "changes", (json_int_t)a->changes,
	    "measurements", (json_int_t)a->measurements, "backoffs", (json_int_t)a->backoffs);
}

static json_t *
placement_json(const struct rt_placement *p, uint64_t now)
{
	json_t *o = jx_pack("{s:s,s:i,s:s,s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:o,s:{s:f,s:f,s:f}}", "host",
	    p->host->cfg->name, "parallel", p->slots, "mode", p->cfg->parallel_auto ? "auto" : "fixed", "limit",
	    sched_placement_limit(p), "in_flight", p->in_flight, "max_in_flight", p->max_in_flight, "completed",
	    (json_int_t)p->completed, "failed", (json_int_t)p->outcome[STATS_FAILED], "eval_tokens",
	    (json_int_t)p->eval_tokens, "prompt_tokens", (json_int_t)p->prompt_tokens, "tokens_per_s",
	    rates(&p->rate, now), "ttft_ms", "p50", stats_hist_quantile(&p->ttft, 0.50), "p95",
	    stats_hist_quantile(&p->ttft, 0.95), "p99", stats_hist_quantile(&p->ttft, 0.99));

	/* Affinity routing and the backends' prompt cache (docs/routing.md). */
	json_object_set_new(o, "affinity", jx_pack("{s:I,s:I}", "hits", (json_int_t)p->affinity_hits, "spills",
	    (json_int_t)p->affinity_spills));
	json_object_set_new(o, "prompt_cached_tokens", json_integer((json_int_t)p->prompt_cached_tokens));
	json_object_set_new(o, "prompt_eval_ms", json_integer((json_int_t)p->prompt_eval_ms));
	if (p->cfg->parallel_auto)
		json_object_set_new(o, "auto", auto_json(&p->autoslot));
	if (p->backend.read_us != 0) {
		json_t *b = json_object();
		add_loads(b, &p->backend);
		json_object_set_new(b, "outside", json_integer(p->outside));
		json_object_set_new(o, "backend", b);
	}
	if (p->unlisted)
		json_object_set_new(o, "served", json_false());
	/* The loaded context against the pin (health.h). */
	json_object_set_new(o, "context", jx_pack("{s:o,s:o,s:I,s:I}", "pinned",
	    p->model->cfg->num_ctx > 0 ? json_integer(p->model->cfg->num_ctx) : json_null(), "loaded",
	    p->ctx_loaded > 0 ? json_integer(p->ctx_loaded) : json_null(), "reloads_seen", (json_int_t)p->ctx_reloads,
	    "mismatches", (json_int_t)p->ctx_mismatches));
	return o;
}

static json_t *
agent_json(const struct agent *a, uint64_t now)
{
	return jx_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:i,s:i}", "name", a->name, "requests",
	    (json_int_t)a->requests, "completed", (json_int_t)a->outcome[STATS_COMPLETED], "failed",
	    (json_int_t)a->outcome[STATS_FAILED], "rejected", (json_int_t)a->outcome[STATS_REJECTED], "cancelled",
	    (json_int_t)a->outcome[STATS_CANCELLED], "prompt_tokens", (json_int_t)a->prompt_tokens, "eval_tokens",
	    (json_int_t)a->eval_tokens, "tokens_per_s", rates(&a->rate, now), "in_flight", a->in_flight, "queued",
	    a->queued);
}

/* Every named agent in order of first arrival, then "other" once it has
 * counted something: the sums equal the totals. */
static json_t *
agents_json(uint64_t now)
{
	json_t *a = json_array();

	for (int i = 0; i < agents_count(); i++)
		json_array_append_new(a, agent_json(agents_at(i), now));
	if (agents_other()->requests > 0)
		json_array_append_new(a, agent_json(agents_other(), now));
	return a;
}

/* Reloads done and refused; a refused one keeps the old config running. */
static json_t *
reload_json(void)
{
	const struct reload_status *r = &daemon_status.reload;
	json_t *o = jx_pack("{s:I,s:I}", "reloads", (json_int_t)r->reloads, "failures", (json_int_t)r->failures);

	json_object_set_new(o, "last_ok_s", r->last_ok_s < 0 ? json_null() : jx_real(r->last_ok_s));
	json_object_set_new(o, "last_failure_s", r->last_failure_s < 0 ? json_null() : jx_real(r->last_failure_s));
	json_object_set_new(o, "last_error", r->failures ? jx_str(r->last_error) : json_null());
	return o;
}

/* The affinity record: routing default, wait, size against its cap. */
static json_t *
affinity_json(void)
{
	struct affinity_usage u;

	sched_affinity_usage(&u);
	return jx_pack("{s:s,s:f,s:I,s:I,s:I,s:I,s:I,s:f}", "routing", config_routing_name(sched->cfg->routing), "wait_s",
	    sched->cfg->affinity_wait, "entries", (json_int_t)u.entries, "max_entries", (json_int_t)u.max_entries, "bytes",
	    (json_int_t)u.bytes, "cap_bytes", (json_int_t)u.cap_bytes, "evictions", (json_int_t)u.evictions, "oldest_s",
	    u.oldest_s);
}

json_t *
statsview_json(void)
{
	uint64_t now = ev_update_now();
	const struct stats_totals *t = &sched->totals;
	json_t *tiers = json_array(), *hosts = json_array(), *models = json_array(), *o;
	int in_flight = 0, slots = 0, queued = 0, up = 0;

	if (start_us == 0)
		start_us = now;
	for (int i = 0; i < sched->n_tiers; i++) {
		json_array_append_new(tiers, tier_json(&sched->tiers[i], now));
		queued += sched->tiers[i].queued;
	}
	for (int i = 0; i < sched->n_hosts; i++) {
		json_array_append_new(hosts, host_json(&sched->hosts[i], now));
		in_flight += sched->hosts[i].in_flight;
		slots += sched->hosts[i].slots;
		up += sched->hosts[i].up;
	}
	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		json_t *pl = json_array();
		for (int k = 0; k < m->n_placements; k++)
			json_array_append_new(pl, placement_json(&m->placements[k], now));
		json_array_append_new(models, jx_pack("{s:s,s:s,s:s,s:i,s:o}", "name", m->cfg->name, "tier",
		    m->tier->cfg->name, "routing", config_routing_name(m->cfg->routing), "queued", m->queued,
		    "placements", pl));
	}
	o = jx_pack("{s:s,s:f,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:I,s:i,s:o,s:o,s:o}", "version",
	    HARMONIC_VERSION, "uptime_s", (double)(now - start_us) / 1e6, "tokens_per_s", rates(&sched->rate, now),
	    "totals", "requests", (json_int_t)t->requests, "completed", (json_int_t)t->outcome[STATS_COMPLETED],
	    "failed", (json_int_t)t->outcome[STATS_FAILED], "rejected", (json_int_t)t->outcome[STATS_REJECTED],
	    "cancelled", (json_int_t)t->outcome[STATS_CANCELLED], "prompt_tokens", (json_int_t)t->prompt_tokens,
	    "eval_tokens", (json_int_t)t->eval_tokens, "live_requests", (json_int_t)request_live_count(),
	    "backend_transfers", upstream_active(), "tiers", tiers, "hosts", hosts, "models", models);
	/* Aggregates over hosts, for dashboards that want one number. */
	json_object_set_new(o, "in_flight", json_integer(in_flight));
	json_object_set_new(o, "slots", json_integer(slots));
	json_object_set_new(o, "queued", json_integer(queued));
	json_object_set_new(o, "hosts_up", json_integer(up));
	json_object_set_new(o, "agents", agents_json(now));
	json_object_set_new(o, "reload", reload_json());
	json_object_set_new(o, "affinity", affinity_json());
	json_object_set_new(o, "draining", json_boolean(daemon_status.draining));
	json_object_set_new(o, "connections", jx_pack("{s:i,s:I,s:I}", "open", (int)daemon_status.conns.open, "slow_cut",
	    (json_int_t)daemon_status.conns.slow_cut, "refused", (json_int_t)daemon_status.conns.refused));
	return o;
}

void
statsview_start(void)
{
	start_us = ev_update_now();
}

void
statsview_answer(const char *url, struct local_answer *out)
{
	api_answer_json(out, 200, statsview_json());
}
