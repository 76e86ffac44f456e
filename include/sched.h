/*
 * sched: the runtime view of the configuration (hosts, tiers, models,
 * placements with their live slot counts), the per-tier queues, and the
 * dispatcher that hands free slots to waiting requests.
 *
 * Rules (SPEC section 5): a placement never exceeds its slots, a host never
 * its max_parallel; each tier has a bounded queue, FIFO per model with
 * round-robin between agents; contended slots go to tiers by stride
 * scheduling on `weight`; a tier's `reserve` keeps slots of every host it is
 * placed on out of reach of lower tiers; replicas are chosen by the most
 * free slots relative to their size among hosts that are up, or, with
 * routing = "affinity", by the record of which replica served the
 * request's longest prompt prefix (affinity.h, docs/routing.md) within
 * bounded load.
 *
 * Cost: one dispatch decision looks at each tier's models' queue heads and
 * their placements, never at queue length.
 */
#ifndef HARMONIC_SCHED_H
#define HARMONIC_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "autoslot.h"
#include "compat_queue.h"
#include "stats.h"

struct affinity_keys;
struct affinity_usage;
struct agent;
struct config;

struct rt_host {
	const struct cfg_host *cfg;
	int index;
	bool up;
	int fails;              /* consecutive failed probes */
	int in_flight;
	int slots;              /* max_parallel (budget over all models) */
	int *tier_in_flight;    /* [n_tiers] */
	bool *tier_placed;      /* [n_tiers]: tier has a placement here */
	char **loaded;          /* model tags from /api/ps; owned */
	int n_loaded;
	struct stats_rate rate;
	uint64_t eval_tokens;
	uint64_t completed;
};

/* What a backend reports of its load; -1 where it reports nothing. */
struct backend_load {
	int slots;                  /* slots it has (llama-server /props total_slots) */
	int busy;                   /* slots busy now */
	int waiting;                /* requests waiting in its own queue */
	uint64_t read_us;           /* when (monotonic); 0: never */
};

struct rt_placement {
	const struct cfg_placement *cfg;
	struct rt_model *model;
	struct rt_host *host;
	int slots;              /* current limit (fixed, or the auto controller's) */
	int in_flight;
	int max_in_flight;      /* most seen; for tests and stats */
	uint64_t busy_until_us; /* after a backend 503: limit to busy_cap */
	int busy_cap;           /* may be 0: no new request until busy_until_us */
	int busy_streak;        /* 503s since the last success: the back-off doubles */
	uint64_t busy_answers;  /* 503s in this episode (one log line per episode) */
	uint64_t busy_since_us, busy_logged_us;
	uint64_t completed;
	uint64_t eval_tokens;
	uint64_t prompt_tokens;
	uint64_t prompt_cached_tokens; /* of prompt_tokens, served from the backend's cache (where reported) */
	uint64_t prompt_eval_ms;    /* the backends' prompt-eval time, summed (where reported) */
	uint64_t streamed_tokens;   /* relayed as they stream, failed ones too */
	/* Affinity (docs/routing.md): its id in the record, kept across reloads
	 * while the placement (model key + host name) exists. */
	uint32_t aff_id;
	uint64_t affinity_hits;     /* placed here because the record named it */
	uint64_t affinity_spills;   /* the record named it, the request went elsewhere */
	uint64_t conversations;     /* new conversations placed here (affinity spreads them evenly) */
	double service_s;           /* EWMA of dispatch-to-completion time; 0 = no estimate */
	uint64_t outcome[STATS_OUTCOME_COUNT]; /* closed after a dispatch here */
	struct stats_rate rate;
	struct stats_hist ttft;
	struct autoslot autoslot; /* parallel = "auto": its controller (autotune feeds it) */
	/* The context the host has the model loaded with (health, /api/ps), against num_ctx. */
	int ctx_loaded;             /* context_length of the newest /api/ps; 0: not resident or not reported */
	uint64_t ctx_reloads;       /* context changes seen between two probes: reloads of the model */
	uint64_t ctx_mismatches;    /* probes that saw it loaded at another context than the pinned one */
	uint64_t ctx_mismatch_us;   /* when a probe last saw that (monotonic); 0: never */
	uint64_t ctx_warned_us;     /* when it was last warned about */
	/* The backend's own view of this model's load (llama-server /slots and
	 * /metrics, vLLM /metrics; SPEC 10), as of the last probe. */
	struct backend_load backend;
	int outside;                /* busy slots that are not ours (someone uses the server directly): not ours to fill */
	int outside_lower;          /* the highest of the lower readings since they began; -1: none */
	int outside_lower_n;        /* how many lower readings in a row */
	bool outside_lower_quiet;   /* all of them taken with none of ours in flight there */
	uint64_t outside_lower_us;  /* when the first of them came */
	bool unlisted;              /* the server does not list the model (openai hosts): no traffic */
};

/*
 * What the scheduler knows of one request: embedded in the request (the
 * layer above), which owns it.  sched links, counts and decides on items
 * and never sees the request around them.
 */
struct sched_item {
	struct rt_model *model;         /* set by sched_bind */
	struct rt_placement *placement; /* while it holds a slot, and after */
	struct rt_placement *excluded;  /* failed before the first byte there: not again */
	const char *agent;              /* queue key: the agent's identity; owned by the owner */
	struct agent *who;              /* its agents entry, or NULL: queued and in_flight kept here */
	bool holds_slot;
	struct agent_queue *aq;         /* non-NULL while queued */
	TAILQ_ENTRY(sched_item) qlink;
	TAILQ_ENTRY(sched_item) bound_link;
	bool is_bound;
	uint64_t t_enqueue_us;          /* first enqueue: waits add up across re-queues */
	uint64_t t_dispatch_us;         /* last dispatch */
	/* Affinity: the request's prompt-prefix keys, or NULL (no affinity
	 * routing for it); owned by the owner, which frees them and calls
	 * sched_affinity_reset when it replaces them. */
	struct affinity_keys *aff;
	uint32_t aff_pid;               /* the record's placement for it (0: none); sched's */
	int aff_depth;                  /* depth of that match (affinity.h) */
	bool aff_looked;                /* the record was consulted */
	uint64_t aff_wait_until_us;     /* waiting for its affine placement until then; 0: never waited */
};

/*
 * Decisions the scheduler hands to the layer above, which acts on them
 * (starts transfers, answers clients).  Both may call back into sched.
 */
struct sched_hooks {
	/* The dispatcher gave it a slot (it->placement): start its work.  A
	 * failure to start releases the slot (sched_release) at once. */
	void (*start)(struct sched_item *it);
	/* It was queued, but every host of its model went down: it has been
	 * taken out of the queue; answer it. */
	void (*unservable)(struct sched_item *it);
};

struct agent_queue {
	char *agent;                        /* X-Harmonic-Agent, "" if none; owned */
	TAILQ_HEAD(, sched_item) requests;  /* FIFO */
	TAILQ_ENTRY(agent_queue) ring;      /* round-robin among non-empty agents */
};

struct rt_model {
	const struct cfg_model *cfg;
	struct rt_tier *tier;
	struct rt_placement *placements;
	int n_placements;
	int queued;
	uint64_t outcome[STATS_OUTCOME_COUNT]; /* closed before any dispatch */
	TAILQ_HEAD(, agent_queue) agents;   /* non-empty agent queues, RR order */
};

struct rt_tier {
	const struct cfg_tier *cfg;
	int index;
	uint64_t pass;          /* stride scheduling virtual time */
	int queued;
	int in_flight;
	uint64_t completed;
	struct rt_model **models;
	int n_models;
	struct stats_rate rate;
	struct stats_hist queue_wait;
	double service_rate;    /* EWMA of completions per second */
	uint64_t last_done_us;
};

struct sched {
	struct config *cfg;     /* holds a reference */
	struct rt_host *hosts;
	int n_hosts;
	struct rt_tier *tiers;
	int n_tiers;
	struct rt_model *models;
	int n_models;
	struct stats_totals totals;
	struct stats_rate rate;
	uint64_t vtime;         /* stride virtual time of the last dispatch */
	bool dispatching, again;
};

/* The current scheduler state; NULL before sched_init. */
extern struct sched *sched;

/* Build the runtime view of cfg (takes a reference); hooks are copied. */
void sched_init(struct config *cfg, const struct sched_hooks *hooks);
void sched_shutdown(void);

/*
 * Swap in the runtime for cfg (takes a reference), carrying counters and
 * host health over by name.  Requests in flight keep running and keep
 * their slot under the new budget when their placement still exists;
 * queued requests leave the old queues and are handed, oldest first, to
 * requeue(), which must queue or answer each.  Returns 0.
 */
int sched_reload(struct config *cfg, void (*requeue)(struct sched_item *it));

/* Attach it to model m (a reload re-points it; the model may then become
 * NULL when it is gone).  Unbind before the owner frees it. */
void sched_bind(struct sched_item *it, struct rt_model *m);
void sched_unbind(struct sched_item *it);
struct rt_model *sched_find_model(const char *name);
/* Any placement of m on a host that is up. */
bool sched_model_available(const struct rt_model *m);

/*
 * Queue req on its model's tier.  Returns 0, SCHED_FULL when the tier queue
 * is full or SCHED_DRAINING (the caller replies 503).  at_head puts it
 * first (a retry), past the queue_depth bound.
 */
enum { SCHED_FULL = -1, SCHED_DRAINING = -2 };
int sched_enqueue(struct sched_item *it, bool at_head);
/* Add req's total queue wait (first enqueue to last dispatch, or to now) to
 * its tier's histogram; once per request, when its outcome is known. */
void sched_note_queue_wait(const struct sched_item *it);
/* From now on sched_enqueue refuses everything (SCHED_DRAINING). */
void sched_drain(void);
bool sched_draining(void);
/* Remove a queued request (timeout, disconnect). */
void sched_dequeue(struct sched_item *it);
/* Give free slots to waiting requests; safe to call from anywhere. */
void sched_dispatch(void);
/* Return the slot req holds; exactly once per dispatch. */
void sched_release(struct sched_item *it);
/* Backend said 503 busy (call before releasing the request's slot): limit p
 * to what it carried less one, for an exponential, jittered back-off. */
void sched_placement_busy(struct rt_placement *p);
/* p accepted a request (2xx): its busy episode, if any, is over. */
void sched_placement_ok(struct rt_placement *p);
/* The back-off after the streak-th consecutive 503, from random bits r:
 * 0.25 s doubling to 8 s, drawn from [d/2, d]. */
uint64_t sched_backoff_us(int streak, uint64_t r);
/* Seconds a client should wait before retrying on tier t. */
int sched_retry_after(const struct rt_tier *t);
/* Host state changes (health); re-dispatches and fails requests whose every
 * host is down. */
void sched_host_set_up(struct rt_host *h, bool up);
/* Take one of p's slots outside the queues (model warm-up), if one is free
 * under every limit; returns false otherwise.  sched_unclaim returns it. */
bool sched_claim(struct rt_placement *p);
void sched_unclaim(struct rt_placement *p);
/* Effective slot limit of p now: its slots, at most the backend's own,
 * less the slots someone else is using there, less a busy back-off. */
int sched_placement_limit(const struct rt_placement *p);
/* A probe read the backend's load view b of p while ours of our requests
 * were in flight there (the most we had between sending the probe and its
 * answer).  Busy slots beyond ours are someone else's: the estimate rises
 * at once.  It falls only when two lower readings in a row were taken with
 * none of ours in flight there, or when lower readings have lasted
 * SCHED_OUTSIDE_SETTLE_US: the backend registers a request later than we
 * count it, so a reading during our own traffic can look lower than the
 * truth. */
#define SCHED_OUTSIDE_SETTLE_US (10u * 1000000u)
void sched_placement_backend_load(struct rt_placement *p, const struct backend_load *b, int ours);
/* p completed a request dispatched at dispatch_us: feeds its service-time
 * estimate (affinity's "will a slot free within affinity_wait"). */
void sched_placement_done(struct rt_placement *p, uint64_t dispatch_us);
/* it's keys changed (bound again): consult the record afresh. */
void sched_affinity_reset(struct sched_item *it);
/* The record's size and cap now (for /stats, /metrics). */
void sched_affinity_usage(struct affinity_usage *out);

#endif
