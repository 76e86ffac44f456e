/*
 * metrics: GET /metrics in the Prometheus text exposition format 0.0.4.
 * Every series is read from the scheduler's aggregates (per tier, model,
 * placement and host); like /stats it never walks requests, so its cost
 * grows with the configuration, not with the load.
 *
 * Families are written whole (HELP, TYPE, then every series) because the
 * format wants one contiguous block per family.  Units follow Prometheus
 * conventions: seconds and bytes, counters end in _total.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "agents.h"
#include "api.h"
#include "config.h"
#include "jsonx.h"
#include "log.h"
#include "sched.h"
#include "xmalloc.h"

/* A growable output buffer; it only ever appends. */
struct out {
	char *buf;
	size_t len, cap;
};

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = o->cap - o->len;
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			fatalx("metrics: vsnprintf failed");
		if ((size_t)n < room)
			break;
		o->cap = o->cap * 2 + (size_t)n + 1;
		o->buf = xreallocarray(o->buf, o->cap, 1);
	}
	o->len += (size_t)n;
}

/* A label value with \, " and newline escaped, as the format requires. */
static void
out_label(struct out *o, const char *name, const char *value, bool first)
{
	out_printf(o, "%s%s=\"", first ? "" : ",", name);
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '"')
			out_printf(o, "\\%c", *p);
		else if (*p == '\n')
			out_printf(o, "\\n");
		else
			out_printf(o, "%c", *p);
	}
	out_printf(o, "\"");
}

static void
family(struct out *o, const char *name, const char *type, const char *help)
{
	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The {tier,model,host} labels of a placement, without braces. */
static void
placement_labels(struct out *o, const struct rt_placement *p)
{
	out_label(o, "tier", p->model->tier->cfg->name, true);
	out_label(o, "model", p->model->cfg->name, false);
	out_label(o, "host", p->host->cfg->name, false);
}

/*
 * One histogram series from a stats_hist (values in ms).  The exported
 * buckets are every other internal bound (powers of two from 0.5 ms), so
 * the cumulative counts are exact; the last internal bucket also holds
 * everything above its bound, so it only feeds +Inf.
 */
static void
histogram(struct out *o, const char *name, const struct stats_hist *h, void (*labels)(struct out *, const void *),
    const void *arg)
{
	uint64_t cum = 0;

	for (int i = 0; i < STATS_HIST_BUCKETS - 1; i++) {
		cum += h->bucket[i];
		if (i % 2 != 0)
			continue;
		out_printf(o, "%s_bucket{", name);
		labels(o, arg);
		out_printf(o, ",le=\"%.6g\"} %llu\n", stats_hist_bound(i) / 1000.0, (unsigned long long)cum);
	}
	out_printf(o, "%s_bucket{", name);
	labels(o, arg);
	out_printf(o, ",le=\"+Inf\"} %llu\n%s_sum{", (unsigned long long)h->count, name);
	labels(o, arg);
	out_printf(o, "} %.9g\n%s_count{", h->sum_ms / 1000.0, name);
	labels(o, arg);
	out_printf(o, "} %llu\n", (unsigned long long)h->count);
}

static void
tier_labels_cb(struct out *o, const void *arg)
{
	const struct rt_tier *t = arg;

	out_label(o, "tier", t->cfg->name, true);
}

static void
placement_labels_cb(struct out *o, const void *arg)
{
	placement_labels(o, arg);
}

static void
requests(struct out *o)
{
	uint64_t seen[STATS_OUTCOME_COUNT] = {0};

	family(o, "harmonic_requests_received_total", "counter", "Requests accepted for routing (all endpoints that reach a host).");
	out_printf(o, "harmonic_requests_received_total %llu\n", (unsigned long long)sched->totals.requests);
	family(o, "harmonic_requests_total", "counter",
	    "Finished requests by outcome; host is the last host tried, absent if never dispatched; "
	    "tier and model are absent if the request named no known model.");
	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		for (int k = 0; k < m->n_placements; k++) {
			const struct rt_placement *p = &m->placements[k];
			for (int oc = 0; oc < STATS_OUTCOME_COUNT; oc++) {
				out_printf(o, "harmonic_requests_total{");
				placement_labels(o, p);
				out_printf(o, ",outcome=\"%s\"} %llu\n", stats_outcome_name(oc),
				    (unsigned long long)p->outcome[oc]);
				seen[oc] += p->outcome[oc];
			}
		}
		for (int oc = 0; oc < STATS_OUTCOME_COUNT; oc++) {
			out_printf(o, "harmonic_requests_total{");
			out_label(o, "tier", m->tier->cfg->name, true);
			out_label(o, "model", m->cfg->name, false);
			out_printf(o, ",outcome=\"%s\"} %llu\n", stats_outcome_name(oc), (unsigned long long)m->outcome[oc]);
			seen[oc] += m->outcome[oc];
		}
	}
	/* Whatever no model claims: bad bodies, unknown models, 413s. */
	for (int oc = 0; oc < STATS_OUTCOME_COUNT; oc++) {
		uint64_t all = sched->totals.outcome[oc];
		out_printf(o, "harmonic_requests_total{outcome=\"%s\"} %llu\n", stats_outcome_name(oc),
		    (unsigned long long)(all > seen[oc] ? all - seen[oc] : 0));
	}
}

static void
tokens(struct out *o)
{
	family(o, "harmonic_tokens_total", "counter",
	    "Tokens from the backends' final counts of completed requests, by kind (prompt = prompt_eval_count, eval = eval_count).");
	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		for (int k = 0; k < m->n_placements; k++) {
			const struct rt_placement *p = &m->placements[k];
			out_printf(o, "harmonic_tokens_total{");
			placement_labels(o, p);
			out_printf(o, ",kind=\"prompt\"} %llu\nharmonic_tokens_total{", (unsigned long long)p->prompt_tokens);
			placement_labels(o, p);
			out_printf(o, ",kind=\"eval\"} %llu\n", (unsigned long long)p->eval_tokens);
		}
	}
	family(o, "harmonic_streamed_tokens_total", "counter",
	    "Generated tokens as they are relayed (includes requests that later fail); rate() of it is the live tokens/s.");
	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		for (int k = 0; k < m->n_placements; k++) {
			out_printf(o, "harmonic_streamed_tokens_total{");
			placement_labels(o, &m->placements[k]);
			out_printf(o, "} %llu\n", (unsigned long long)m->placements[k].streamed_tokens);
		}
	}
}

/* Affinity routing (docs/routing.md): choices, the backends' prompt cache
 * where they report it, and the record's size. */
static void
affinity_series(struct out *o)
{
	struct affinity_usage u;

	family(o, "harmonic_affinity_total", "counter",
	    "Replica choices of affinity routing: hit = placed on the replica holding its conversation's prefix, "
	    "spill = that replica was named but the request went elsewhere (counted on the named one).");
	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		for (int k = 0; k < m->n_placements; k++) {
			const struct rt_placement *p = &m->placements[k];
			out_printf(o, "harmonic_affinity_total{");
			placement_labels(o, p);
			out_printf(o, ",result=\"hit\"} %llu\nharmonic_affinity_total{", (unsigned long long)p->affinity_hits);
			placement_labels(o, p);
			out_printf(o, ",result=\"spill\"} %llu\n", (unsigned long long)p->affinity_spills);
		}
	}
	family(o, "harmonic_prompt_cached_tokens_total", "counter",
	    "Prompt tokens the backend served from its cache (llama-server, OpenAI-compatible usage; Ollama does not report it).");
	for (int i = 0; i < sched->n_models; i++)
		for (int k = 0; k < sched->models[i].n_placements; k++) {
			out_printf(o, "harmonic_prompt_cached_tokens_total{");
			placement_labels(o, &sched->models[i].placements[k]);
			out_printf(o, "} %llu\n", (unsigned long long)sched->models[i].placements[k].prompt_cached_tokens);
		}
	family(o, "harmonic_prompt_eval_seconds_total", "counter",
	    "The backends' prompt-eval time of completed requests (Ollama's prompt_eval_duration, llama-server's timings.prompt_ms).");
	for (int i = 0; i < sched->n_models; i++)
		for (int k = 0; k < sched->models[i].n_placements; k++) {
			out_printf(o, "harmonic_prompt_eval_seconds_total{");
			placement_labels(o, &sched->models[i].placements[k]);
			out_printf(o, "} %.3f\n", (double)sched->models[i].placements[k].prompt_eval_ms / 1000.0);
		}
	sched_affinity_usage(&u);
	family(o, "harmonic_affinity_entries", "gauge", "Prompt prefixes in the affinity record.");
	out_printf(o, "harmonic_affinity_entries %llu\n", (unsigned long long)u.entries);
	family(o, "harmonic_affinity_bytes", "gauge", "Memory the affinity record holds now.");
	out_printf(o, "harmonic_affinity_bytes %llu\n", (unsigned long long)u.bytes);
	family(o, "harmonic_affinity_cap_bytes", "gauge", "The most memory the affinity record may hold.");
	out_printf(o, "harmonic_affinity_cap_bytes %llu\n", (unsigned long long)u.cap_bytes);
}

/* Per-placement integer gauges: in flight, slots, effective limit. */
static void
placement_gauges(struct out *o)
{
	static const struct {
		const char *name, *help;
	} g[] = {
		{"harmonic_in_flight", "Requests holding a slot of this placement now."},
		{"harmonic_slots", "Configured (or auto-tuned) parallel slots of this placement."},
		{"harmonic_slot_limit", "Effective slot limit now (lower than slots during busy back-off)."},
	};

	for (size_t j = 0; j < sizeof(g) / sizeof(g[0]); j++) {
		family(o, g[j].name, "gauge", g[j].help);
		for (int i = 0; i < sched->n_models; i++) {
			const struct rt_model *m = &sched->models[i];
			for (int k = 0; k < m->n_placements; k++) {
				const struct rt_placement *p = &m->placements[k];
				int v = j == 0 ? p->in_flight : j == 1 ? p->slots : sched_placement_limit(p);
				out_printf(o, "%s{", g[j].name);
				placement_labels(o, p);
				out_printf(o, "} %d\n", v);
			}
		}
	}
}

/* The backend's own load view (SPEC 10; llama-server /slots and /metrics,
 * vLLM /metrics) per placement, where a probe has read one: one family per
 * gauge, a series only where the backend reports that gauge. */
static int
load_slots(const struct rt_placement *p)
{
	return p->backend.slots;
}

static int
load_busy(const struct rt_placement *p)
{
	return p->backend.busy;
}

static int
load_waiting(const struct rt_placement *p)
{
	return p->backend.waiting;
}

static int
load_outside(const struct rt_placement *p)
{
	return p->outside;
}

static void
backend_series(struct out *o)
{
	static const struct {
		const char *name, *help;
		int (*get)(const struct rt_placement *);
	} gauges[] = {
		{"harmonic_backend_slots", "Slots the backend reports for the model (llama-server /slots).", load_slots},
		{"harmonic_backend_busy", "Requests the backend reports running for the model, ours and others'.", load_busy},
		{"harmonic_backend_waiting", "Requests waiting in the backend's own queue for the model.", load_waiting},
		{"harmonic_backend_outside", "Busy slots that are not harmonicd's: its limit there is lowered by this.",
		    load_outside},
	};

	for (size_t g = 0; g < sizeof(gauges) / sizeof(gauges[0]); g++) {
		family(o, gauges[g].name, "gauge", gauges[g].help);
		for (int i = 0; i < sched->n_models; i++)
			for (int k = 0; k < sched->models[i].n_placements; k++) {
				const struct rt_placement *p = &sched->models[i].placements[k];
				if (p->backend.read_us == 0 || gauges[g].get(p) < 0)
					continue;
				out_printf(o, "%s{", gauges[g].name);
				placement_labels(o, p);
				out_printf(o, "} %d\n", gauges[g].get(p));
			}
	}
}

/* The context each placed model is loaded with against the pinned num_ctx
 * (health.h): the loaded length where resident, reloads seen, mismatches. */
static void
context_series(struct out *o)
{
	family(o, "harmonic_context_length", "gauge",
	    "Context the host has the model loaded with (/api/ps context_length); absent when not resident.");
	for (int i = 0; i < sched->n_models; i++)
		for (int k = 0; k < sched->models[i].n_placements; k++) {
			const struct rt_placement *p = &sched->models[i].placements[k];
			if (p->ctx_loaded <= 0)
				continue;
			out_printf(o, "harmonic_context_length{");
			placement_labels(o, p);
			out_printf(o, "} %d\n", p->ctx_loaded);
		}
	family(o, "harmonic_context_reloads_total", "counter",
	    "Changes of the loaded context between two health probes: reloads of the model on the host.");
	for (int i = 0; i < sched->n_models; i++)
		for (int k = 0; k < sched->models[i].n_placements; k++) {
			out_printf(o, "harmonic_context_reloads_total{");
			placement_labels(o, &sched->models[i].placements[k]);
			out_printf(o, "} %llu\n", (unsigned long long)sched->models[i].placements[k].ctx_reloads);
		}
	family(o, "harmonic_context_mismatches_total", "counter",
	    "Health probes that saw the model loaded at another context than its pinned num_ctx.");
	for (int i = 0; i < sched->n_models; i++)
		for (int k = 0; k < sched->models[i].n_placements; k++) {
			out_printf(o, "harmonic_context_mismatches_total{");
			placement_labels(o, &sched->models[i].placements[k]);
			out_printf(o, "} %llu\n", (unsigned long long)sched->models[i].placements[k].ctx_mismatches);
		}
}

/* parallel = "auto" placements: the controller's limit, best and newest
 * measured rates, and its changes (docs/adaptive-slots.md). */
static void
auto_gauges(struct out *o)
{
	static const struct {
		const char *name, *type, *help;
	} g[] = {
		{"harmonic_auto_limit", "gauge", "Slot limit the adaptive controller (parallel = \"auto\") has set."},
		{"harmonic_auto_best_limit", "gauge", "Level with the highest measured rate in the controller's current search."},
		{"harmonic_auto_best_rate", "gauge", "Aggregate decode tokens/s measured at harmonic_auto_best_limit."},
		{"harmonic_auto_last_rate", "gauge", "Aggregate decode tokens/s of the controller's newest measurement."},
		{"harmonic_auto_changes_total", "counter", "Limit changes made by the adaptive controller."},
		{"harmonic_auto_backoffs_total", "counter", "Back-offs after backend 503s or error bursts."},
	};

	for (size_t j = 0; j < sizeof(g) / sizeof(g[0]); j++) {
		family(o, g[j].name, g[j].type, g[j].help);
		for (int i = 0; i < sched->n_models; i++) {
			const struct rt_model *m = &sched->models[i];
			for (int k = 0; k < m->n_placements; k++) {
				const struct autoslot *a = &m->placements[k].autoslot;
				double v = j == 0 ? a->limit : j == 1 ? (a->have_best ? a->best_limit : 0) :
				    j == 2 ? (a->have_best ? a->best_rate : 0) : j == 3 ? a->last_rate :
				    j == 4 ? (double)a->changes : (double)a->backoffs;
				if (!m->placements[k].cfg->parallel_auto)
					continue;
				out_printf(o, "%s{", g[j].name);
				placement_labels(o, &m->placements[k]);
				out_printf(o, "} %.6g\n", v);
			}
		}
	}
	family(o, "harmonic_auto_phase", "gauge", "1 for the adaptive controller's current phase.");
	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		for (int k = 0; k < m->n_placements; k++) {
			if (!m->placements[k].cfg->parallel_auto)
				continue;
			out_printf(o, "harmonic_auto_phase{");
			placement_labels(o, &m->placements[k]);
			out_printf(o, ",phase=\"%s\"} 1\n", autoslot_phase_name(m->placements[k].autoslot.phase));
		}
	}
}

static void
host_gauges(struct out *o)
{
	family(o, "harmonic_host_up", "gauge", "1 if the host answers its health probe.");
	for (int i = 0; i < sched->n_hosts; i++) {
		out_printf(o, "harmonic_host_up{");
		out_label(o, "host", sched->hosts[i].cfg->name, true);
		out_printf(o, "} %d\n", sched->hosts[i].up ? 1 : 0);
	}
	family(o, "harmonic_host_in_flight", "gauge", "Requests holding a slot on the host now.");
	for (int i = 0; i < sched->n_hosts; i++) {
		out_printf(o, "harmonic_host_in_flight{");
		out_label(o, "host", sched->hosts[i].cfg->name, true);
		out_printf(o, "} %d\n", sched->hosts[i].in_flight);
	}
	family(o, "harmonic_host_slots", "gauge", "The host's max_parallel: slots over all its models.");
	for (int i = 0; i < sched->n_hosts; i++) {
		out_printf(o, "harmonic_host_slots{");
		out_label(o, "host", sched->hosts[i].cfg->name, true);
		out_printf(o, "} %d\n", sched->hosts[i].slots);
	}
	family(o, "harmonic_host_memory_budget_bytes", "gauge", "memory_gb - reserve_gb of the host.");
	for (int i = 0; i < sched->n_hosts; i++) {
		const struct cfg_host *c = sched->hosts[i].cfg;
		out_printf(o, "harmonic_host_memory_budget_bytes{");
		out_label(o, "host", c->name, true);
		out_printf(o, "} %.0f\n", (c->memory_gb - c->reserve_gb) * 1e9);
	}
	family(o, "harmonic_host_memory_planned_bytes", "gauge", "Memory the configured placements need on the host.");
	for (int i = 0; i < sched->n_hosts; i++) {
		const struct cfg_host *c = sched->hosts[i].cfg;
		out_printf(o, "harmonic_host_memory_planned_bytes{");
		out_label(o, "host", c->name, true);
		out_printf(o, "} %.0f\n", c->planned_gb * 1e9);
	}
	family(o, "harmonic_host_power_watts", "gauge", "Configured power draw (hosts with watts set); tokens per watt = rate(harmonic_streamed_tokens_total) / this.");
	for (int i = 0; i < sched->n_hosts; i++) {
		const struct cfg_host *c = sched->hosts[i].cfg;
		if (c->watts <= 0)
			continue;
		out_printf(o, "harmonic_host_power_watts{");
		out_label(o, "host", c->name, true);
		out_printf(o, "} %g\n", c->watts);
	}
	family(o, "harmonic_host_model_loaded", "gauge", "1 for each model tag the host's /api/ps lists as resident.");
	for (int i = 0; i < sched->n_hosts; i++) {
		const struct rt_host *h = &sched->hosts[i];
		for (int k = 0; k < h->n_loaded; k++) {
			out_printf(o, "harmonic_host_model_loaded{");
			out_label(o, "host", h->cfg->name, true);
			out_label(o, "model", h->loaded[k], false);
			out_printf(o, "} 1\n");
		}
	}
}

static void
queue_gauges(struct out *o)
{
	family(o, "harmonic_queue_depth", "gauge", "Requests waiting in the tier queue for a slot, per model.");
	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		out_printf(o, "harmonic_queue_depth{");
		out_label(o, "tier", m->tier->cfg->name, true);
		out_label(o, "model", m->cfg->name, false);
		out_printf(o, "} %d\n", m->queued);
	}
	family(o, "harmonic_tier_weight", "gauge", "The tier's configured weight.");
	for (int i = 0; i < sched->n_tiers; i++) {
		out_printf(o, "harmonic_tier_weight{");
		out_label(o, "tier", sched->tiers[i].cfg->name, true);
		out_printf(o, "} %d\n", sched->tiers[i].cfg->weight);
	}
}

/* Named agents, then "other" once it has counted something (as /stats):
 * at most AGENTS_MAX + 1 label values, whatever clients send. */
static const struct agent *
agent_at(int i)
{
	if (i < agents_count())
		return agents_at(i);
	return i == agents_count() && agents_other()->requests > 0 ? agents_other() : NULL;
}

static void
agent_series(struct out *o)
{
	const struct agent *a;

	family(o, "harmonic_agent_requests_received_total", "counter",
	    "Requests that arrived, by agent (X-Harmonic-Agent, else the API key's name, else anonymous).");
	for (int i = 0; (a = agent_at(i)) != NULL; i++) {
		out_printf(o, "harmonic_agent_requests_received_total{");
		out_label(o, "agent", a->name, true);
		out_printf(o, "} %llu\n", (unsigned long long)a->requests);
	}
	family(o, "harmonic_agent_requests_total", "counter", "Finished requests by agent and outcome.");
	for (int i = 0; (a = agent_at(i)) != NULL; i++)
		for (int oc = 0; oc < STATS_OUTCOME_COUNT; oc++) {
			out_printf(o, "harmonic_agent_requests_total{");
			out_label(o, "agent", a->name, true);
			out_printf(o, ",outcome=\"%s\"} %llu\n", stats_outcome_name(oc), (unsigned long long)a->outcome[oc]);
		}
	family(o, "harmonic_agent_tokens_total", "counter",
	    "Tokens from the backends' final counts of completed requests, by agent and kind.");
	for (int i = 0; (a = agent_at(i)) != NULL; i++) {
		out_printf(o, "harmonic_agent_tokens_total{");
		out_label(o, "agent", a->name, true);
		out_printf(o, ",kind=\"prompt\"} %llu\nharmonic_agent_tokens_total{", (unsigned long long)a->prompt_tokens);
		out_label(o, "agent", a->name, true);
		out_printf(o, ",kind=\"eval\"} %llu\n", (unsigned long long)a->eval_tokens);
	}
	family(o, "harmonic_agent_streamed_tokens_total", "counter",
	    "Generated tokens as they are relayed, by agent; rate() of it is the agent's live tokens/s.");
	for (int i = 0; (a = agent_at(i)) != NULL; i++) {
		out_printf(o, "harmonic_agent_streamed_tokens_total{");
		out_label(o, "agent", a->name, true);
		out_printf(o, "} %llu\n", (unsigned long long)a->streamed_tokens);
	}
	family(o, "harmonic_agent_in_flight", "gauge", "Requests of the agent holding a slot now.");
	for (int i = 0; (a = agent_at(i)) != NULL; i++) {
		out_printf(o, "harmonic_agent_in_flight{");
		out_label(o, "agent", a->name, true);
		out_printf(o, "} %d\n", a->in_flight);
	}
	family(o, "harmonic_agent_queued", "gauge", "Requests of the agent waiting in a tier queue now.");
	for (int i = 0; (a = agent_at(i)) != NULL; i++) {
		out_printf(o, "harmonic_agent_queued{");
		out_label(o, "agent", a->name, true);
		out_printf(o, "} %d\n", a->queued);
	}
}

/* The whole exposition; caller owns the result (free). */
static char *
render(size_t *len)
{
	struct out o = {xmalloc(16384), 0, 16384};

	family(&o, "harmonic_build_info", "gauge", "Always 1; the version is a label.");
	out_printf(&o, "harmonic_build_info{version=\"%s\"} 1\n", HARMONIC_VERSION);
	requests(&o);
	tokens(&o);
	affinity_series(&o);
	placement_gauges(&o);
	auto_gauges(&o);
	context_series(&o);
	backend_series(&o);
	host_gauges(&o);
	queue_gauges(&o);
	agent_series(&o);
	family(&o, "harmonic_queue_wait_seconds", "histogram", "Time from enqueue to dispatch of requests that got a slot.");
	for (int i = 0; i < sched->n_tiers; i++)
		histogram(&o, "harmonic_queue_wait_seconds", &sched->tiers[i].queue_wait, tier_labels_cb, &sched->tiers[i]);
	family(&o, "harmonic_time_to_first_token_seconds", "histogram",
	    "Time from dispatch to the backend's first response byte.");
	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		for (int k = 0; k < m->n_placements; k++)
			histogram(&o, "harmonic_time_to_first_token_seconds", &m->placements[k].ttft, placement_labels_cb,
			    &m->placements[k]);
	}
	*len = o.len;
	return o.buf;
}

void
metrics_answer(const char *url, struct local_answer *out)
{
	out->status = 200;
	out->ctype = "text/plain; version=0.0.4; charset=utf-8";
	out->body = render(&out->len);
}
