/*
 * sched: runtime hosts/tiers/models/placements, tier queues, dispatch.
 * Single-threaded: called only from the event loop.
 */
#include "sched.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "agents.h"
#include "config.h"
#include "ev.h"
#include "log.h"
#include "xmalloc.h"

#define STRIDE (1u << 20)
/* Back-off after a backend 503 (docs/reliability.md, "Retries"): the first
 * lasts BUSY_BASE_US, each further 503 without a success in between doubles
 * it up to BUSY_MAX_US; the wait is jittered over [d/2, d] so that replicas
 * and requests do not come back in lock step. */
#define BUSY_BASE_US 250000u
#define BUSY_MAX_US (8u * 1000000u)
#define BUSY_LOG_EVERY_US (60u * 1000000u) /* a long episode: one line a minute */

/* Affinity routing (docs/routing.md): a conversation-specific match keeps
 * its replica while that one is at most AFF_BALANCE of its slots (relative)
 * fuller than the least loaded other; a new conversation goes to the replica
 * that has started the fewest, among those within AFF_BALANCE of the least
 * loaded; a request waiting for a full affine replica lets up to AFF_SCAN
 * further agents' heads of its model go first. */
#define AFF_BALANCE 0.5
#define AFF_SCAN 8

struct sched *sched;
static struct ev_timer busy_timer; /* re-dispatch when a busy back-off ends */
static struct ev_timer aff_timer;  /* re-dispatch when an affinity wait runs out */
static uint64_t aff_due_us;        /* the earliest wait deadline seen by this dispatch; 0: none */
/* The record outlives reloads: placements keep their aff_id by model key
 * and host name, so what it says stays true for those that remain. */
static struct affinity *aff_table;
static uint32_t next_aff_id = 1;
static bool draining;
static struct sched_hooks hooks;
/* Every item bound to a model, queued or not: a reload re-points them all. */
static TAILQ_HEAD(, sched_item) bound = TAILQ_HEAD_INITIALIZER(bound);
static int n_bound;

static void
dispatch_cb(void *arg)
{
	sched_dispatch();
}

static struct sched *
build(struct config *cfg)
{
	struct sched *s = xcalloc(1, sizeof(*s));

	s->cfg = config_ref(cfg);
	s->n_hosts = cfg->n_hosts;
	s->hosts = xcalloc((size_t)s->n_hosts, sizeof(*s->hosts));
	for (int i = 0; i < s->n_hosts; i++) {
		struct rt_host *h = &s->hosts[i];
		h->cfg = &cfg->hosts[i];
		h->index = i;
		h->up = true; /* optimistic until the first probe says otherwise */
		h->slots = config_host_slots(cfg, i);
		h->tier_in_flight = xcalloc((size_t)cfg->n_tiers, sizeof(int));
		h->tier_placed = xcalloc((size_t)cfg->n_tiers, sizeof(bool));
	}
	s->n_tiers = cfg->n_tiers;
	s->tiers = xcalloc((size_t)s->n_tiers, sizeof(*s->tiers));
	for (int i = 0; i < s->n_tiers; i++) {
		s->tiers[i].cfg = &cfg->tiers[i];
		s->tiers[i].index = i;
		s->tiers[i].models = xcalloc((size_t)cfg->n_models, sizeof(struct rt_model *));
	}
	s->n_models = cfg->n_models;
	s->models = xcalloc((size_t)s->n_models, sizeof(*s->models));
	for (int i = 0; i < s->n_models; i++) {
		struct rt_model *m = &s->models[i];
		m->cfg = &cfg->models[i];
		m->tier = &s->tiers[m->cfg->tier];
		m->tier->models[m->tier->n_models++] = m;
		TAILQ_INIT(&m->agents);
		m->n_placements = m->cfg->n_placements;
		m->placements = xcalloc((size_t)m->n_placements, sizeof(*m->placements));
		for (int k = 0; k < m->n_placements; k++) {
			struct rt_placement *p = &m->placements[k];
			p->cfg = &m->cfg->placements[k];
			p->model = m;
			p->host = &s->hosts[p->cfg->host];
			p->aff_id = next_aff_id++; /* carry_over puts back a surviving placement's */
			p->slots = p->cfg->parallel;
			p->backend = (struct backend_load){-1, -1, -1, 0};
			p->outside_lower = -1;
			if (p->cfg->parallel_auto)
				p->slots = autoslot_init(&p->autoslot, NULL, p->cfg->max_parallel_slots);
			p->host->tier_placed[m->cfg->tier] = true;
		}
	}
	return s;
}

void
sched_init(struct config *cfg, const struct sched_hooks *h)
{
	hooks = *h;
	ev_timer_init(&busy_timer, dispatch_cb, NULL);
	ev_timer_init(&aff_timer, dispatch_cb, NULL);
	if (aff_table == NULL)
		aff_table = affinity_new(AFFINITY_MAX_ENTRIES);
	draining = false;
	sched = build(cfg);
}

static void
free_sched(struct sched *s)
{
	for (int i = 0; i < s->n_models; i++) {
		assert(TAILQ_EMPTY(&s->models[i].agents));
		free(s->models[i].placements);
	}
	free(s->models);
	for (int i = 0; i < s->n_tiers; i++)
		free(s->tiers[i].models);
	free(s->tiers);
	for (int i = 0; i < s->n_hosts; i++) {
		free(s->hosts[i].tier_in_flight);
		free(s->hosts[i].tier_placed);
		for (int k = 0; k < s->hosts[i].n_loaded; k++)
			free(s->hosts[i].loaded[k]);
		free(s->hosts[i].loaded);
	}
	free(s->hosts);
	config_unref(s->cfg);
	free(s);
}

void
sched_shutdown(void)
{
	if (sched == NULL)
		return;
	ev_timer_stop(&busy_timer);
	ev_timer_stop(&aff_timer);
	affinity_free(aff_table);
	aff_table = NULL;
	free_sched(sched);
	sched = NULL;
}

/* ---- reload ---- */

static struct rt_host *
host_named(struct sched *s, const char *name)
{
	for (int i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i].cfg->name, name) == 0)
			return &s->hosts[i];
	return NULL;
}

static struct rt_tier *
tier_named(struct sched *s, const char *name)
{
	for (int i = 0; i < s->n_tiers; i++)
		if (strcmp(s->tiers[i].cfg->name, name) == 0)
			return &s->tiers[i];
	return NULL;
}

static struct rt_model *
model_keyed(struct sched *s, const char *key)
{
	for (int i = 0; i < s->n_models; i++)
		if (strcmp(s->models[i].cfg->key, key) == 0)
			return &s->models[i];
	return NULL;
}

static struct rt_placement *
placement_on(struct rt_model *m, const char *host)
{
	for (int k = 0; m != NULL && k < m->n_placements; k++)
		if (strcmp(m->placements[k].host->cfg->name, host) == 0)
			return &m->placements[k];
	return NULL;
}

/* Carry counters and health from the old runtime to the new one, entity by
 * entity (matched by name).  Whole-struct copies keep every statistic,
 * then the fields that belong to the new configuration are put back.
 * In-flight counts are not copied: they are recounted from the requests. */
static void
carry_over(struct sched *n, struct sched *o)
{
	n->totals = o->totals;
	n->rate = o->rate;
	n->vtime = o->vtime;
	for (int i = 0; i < n->n_hosts; i++) {
		struct rt_host *nh = &n->hosts[i], *oh = host_named(o, nh->cfg->name), keep = *nh;
		if (oh == NULL)
			continue;
		*nh = *oh;
		nh->cfg = keep.cfg;
		nh->index = keep.index;
		nh->slots = keep.slots;
		nh->tier_in_flight = keep.tier_in_flight;
		nh->tier_placed = keep.tier_placed;
		nh->in_flight = 0;
		oh->loaded = NULL; /* moved */
		oh->n_loaded = 0;
	}
	for (int i = 0; i < n->n_tiers; i++) {
		struct rt_tier *nt = &n->tiers[i], *ot = tier_named(o, nt->cfg->name), keep = *nt;
		if (ot == NULL)
			continue;
		*nt = *ot;
		nt->cfg = keep.cfg;
		nt->index = keep.index;
		nt->models = keep.models;
		nt->n_models = keep.n_models;
		nt->queued = 0;
		nt->in_flight = 0;
	}
	for (int i = 0; i < n->n_models; i++) {
		struct rt_model *nm = &n->models[i], *om = model_keyed(o, nm->cfg->key);
		if (om == NULL)
			continue;
		memcpy(nm->outcome, om->outcome, sizeof(nm->outcome));
		for (int k = 0; k < nm->n_placements; k++) {
			struct rt_placement *np = &nm->placements[k], keep = *np;
			struct rt_placement *op = placement_on(om, np->host->cfg->name);
			if (op == NULL)
				continue;
			*np = *op;
			np->cfg = keep.cfg;
			np->model = keep.model;
			np->host = keep.host;
			np->slots = keep.slots;
			np->in_flight = 0;
			/* An auto placement that stays auto keeps what its controller
			 * learnt (clamped to the new maximum); any other starts afresh. */
			if (np->cfg->parallel_auto && op->cfg->parallel_auto)
				np->slots = autoslot_set_max(&np->autoslot, np->cfg->max_parallel_slots);
			else
				np->autoslot = keep.autoslot;
		}
	}
}

struct moved {
	struct sched *old, *new;
	struct sched_item **requeue;
	int n_requeue;
};

/* Point one bound item at the new runtime; queued ones are taken out of
 * the old queues and remembered for re-queueing in arrival order. */
static void
move_item(struct sched_item *it, struct moved *mv)
{
	struct rt_model *nm;
	struct rt_placement *np = NULL;

	if (it->model == NULL)
		return; /* its model went in an earlier reload */
	if (it->aq != NULL) {
		sched_dequeue(it);
		mv->requeue[mv->n_requeue++] = it;
	}
	nm = model_keyed(mv->new, it->model->cfg->key);
	if (it->placement != NULL)
		np = placement_on(nm, it->placement->host->cfg->name);
	if (it->excluded != NULL)
		it->excluded = placement_on(nm, it->excluded->host->cfg->name);
	if (it->holds_slot) {
		if (np != NULL) {
			np->in_flight++;
			np->host->in_flight++;
			np->host->tier_in_flight[nm->tier->index]++;
			nm->tier->in_flight++;
		} else {
			/* Its placement is gone: it finishes outside the new budget. */
			it->holds_slot = false;
			if (it->who != NULL)
				it->who->in_flight--;
		}
	}
	it->model = nm;
	it->placement = np;
}

int
sched_reload(struct config *cfg, void (*requeue)(struct sched_item *it))
{
	struct moved mv = {sched, build(cfg), NULL, 0};
	struct sched_item *it, *next;

	mv.requeue = xcalloc((size_t)n_bound + 1, sizeof(*mv.requeue));
	carry_over(mv.new, mv.old);
	TAILQ_FOREACH_SAFE(it, &bound, bound_link, next) /* sched is still the old one here */
		move_item(it, &mv);
	sched = mv.new;
	/* The request layer re-resolves each against the new configuration
	 * (its model may be gone) and queues it again, in arrival order. */
	for (int i = 0; i < mv.n_requeue; i++)
		requeue(mv.requeue[i]);
	free(mv.requeue);
	free_sched(mv.old);
	sched_dispatch();
	return 0;
}

void
sched_bind(struct sched_item *it, struct rt_model *m)
{
	assert(it->aq == NULL && !it->holds_slot);
	if (!it->is_bound) {
		TAILQ_INSERT_TAIL(&bound, it, bound_link);
		it->is_bound = true;
		n_bound++;
	}
	it->model = m;
}

void
sched_unbind(struct sched_item *it)
{
	assert(it->aq == NULL && !it->holds_slot);
	if (it->is_bound) {
		TAILQ_REMOVE(&bound, it, bound_link);
		it->is_bound = false;
		n_bound--;
	}
}

struct rt_model *
sched_find_model(const char *name)
{
	const struct cfg_model *cm = config_find_model(sched->cfg, name);

	return cm ? &sched->models[cm - sched->cfg->models] : NULL;
}

bool
sched_model_available(const struct rt_model *m)
{
	for (int k = 0; k < m->n_placements; k++)
		if (m->placements[k].host->up)
			return true;
	return false;
}

int
sched_placement_limit(const struct rt_placement *p)
{
	int limit = p->slots;

	if (p->unlisted)
		return 0;
	if (p->backend.slots > 0 && p->backend.slots < limit)
		limit = p->backend.slots; /* never past the server's own slots: it would queue */
	limit -= p->outside;
	if (p->busy_until_us > ev_now_us() && p->busy_cap < limit)
		limit = p->busy_cap; /* may be 0: a pause */
	return limit > 0 ? limit : 0;
}

void
sched_placement_backend_load(struct rt_placement *p, const struct backend_load *b, int ours)
{
	int seen, before = p->outside;

	p->backend = *b;
	p->backend.read_us = ev_now_us();
	seen = b->busy >= 0 && b->busy > ours ? b->busy - ours : 0;
	if (seen >= p->outside) {
		p->outside = seen;
		p->outside_lower = -1;
	} else {
		if (p->outside_lower < 0) {
			p->outside_lower = seen;
			p->outside_lower_n = 0;
			p->outside_lower_quiet = true;
			p->outside_lower_us = p->backend.read_us;
		}
		if (seen > p->outside_lower)
			p->outside_lower = seen;
		p->outside_lower_n++;
		p->outside_lower_quiet = p->outside_lower_quiet && ours == 0;
		if (p->outside_lower_n >= 2 && (p->outside_lower_quiet ||
		    p->backend.read_us - p->outside_lower_us >= SCHED_OUTSIDE_SETTLE_US)) {
			p->outside = p->outside_lower;
			p->outside_lower = -1;
		}
	}
	if (p->outside != before) {
		log_info("host %s: %d slot%s of %s in use by others (the backend reports %d busy, %d ours): "
		    "harmonicd uses at most %d", p->host->cfg->name, p->outside, p->outside == 1 ? "" : "s",
		    p->model->cfg->name, b->busy, ours, sched_placement_limit(p));
		if (p->outside < before)
			sched_dispatch();
	}
}

/* Slots of host h that tier t may still take: its budget, minus what is in
 * flight, minus the unused reserves of higher tiers placed on h. */
static int
host_free_for_tier(const struct rt_host *h, int t)
{
	int free_slots = h->slots - h->in_flight;

	for (int j = 0; j < t; j++) {
		int reserve = sched->tiers[j].cfg->reserve;
		if (h->tier_placed[j] && reserve > h->tier_in_flight[j])
			free_slots -= reserve - h->tier_in_flight[j];
	}
	return free_slots;
}

/* p may take a request of tier t now: its host is up, below the placement's
 * limit and with room for t after the higher tiers' reserves. */
static bool
can_take(const struct rt_placement *p, int t)
{
	int limit = sched_placement_limit(p);

	return p->host->up && limit > 0 && p->in_flight < limit && host_free_for_tier(p->host, t) >= 1;
}

/* In flight relative to the limit now (1: full or paused). */
static double
load_of(const struct rt_placement *p)
{
	int limit = sched_placement_limit(p);

	return limit > 0 ? (double)p->in_flight / limit : 1.0;
}

/* The replica of m with the most free slots relative to its limit, among
 * hosts that are up and have room for m's tier; NULL if none. */
static struct rt_placement *
pick_placement(struct rt_model *m, const struct rt_placement *excluded)
{
	struct rt_placement *best = NULL;
	double best_free = 0;

	for (int k = 0; k < m->n_placements; k++) {
		struct rt_placement *p = &m->placements[k];
		double rel;

		if (p == excluded || !can_take(p, m->tier->index))
			continue;
		rel = 1.0 - load_of(p);
		if (best == NULL || rel > best_free) {
			best = p;
			best_free = rel;
		}
	}
	return best;
}

/* ---- affinity (docs/routing.md) ---- */

/* Among m's placements that can take a request now and are loaded at most
 * max_load, the one that has started the fewest conversations (then the
 * least loaded); NULL if none. */
static struct rt_placement *
fewest_conversations(struct rt_model *m, const struct rt_placement *excluded, double max_load)
{
	struct rt_placement *best = NULL;

	for (int k = 0; k < m->n_placements; k++) {
		struct rt_placement *p = &m->placements[k];
		if (p == excluded || !can_take(p, m->tier->index) || load_of(p) > max_load)
			continue;
		if (best == NULL || p->conversations < best->conversations ||
		    (p->conversations == best->conversations && load_of(p) < load_of(best)))
			best = p;
	}
	return best;
}

/* Where the dispatcher would send an item, and why. */
struct choice {
	struct rt_placement *p;         /* NULL: not now */
	struct rt_placement *affine;    /* its conversation's replica, if the record names one */
	enum { CHOSEN_PLAIN, CHOSEN_HIT, CHOSEN_SPILL } how;
	bool waits;                     /* p is NULL because it waits for affine */
	bool fresh;                     /* a new conversation (no history of its own in the record) */
};

static bool
uses_affinity(const struct sched_item *it)
{
	return it->aff != NULL && aff_table != NULL && it->model->n_placements > 1 &&
	    it->model->cfg->routing == ROUTING_AFFINITY;
}

static struct rt_placement *
placement_with_id(struct rt_model *m, uint32_t id)
{
	for (int k = 0; id != 0 && k < m->n_placements; k++)
		if (m->placements[k].aff_id == id)
			return &m->placements[k];
	return NULL;
}

/* Whether it may wait for a, which is full while another replica has room:
 * a should free a slot within affinity_wait (its service time over what it
 * carries), no other replica of the model sits idle, and its own wait
 * budget (affinity_wait from its first wait) is not spent.  Notes the
 * deadline for the timer. */
static bool
may_wait(struct sched_item *it, const struct rt_placement *a)
{
	struct rt_model *m = it->model;
	double wait = sched->cfg->affinity_wait;
	uint64_t now = ev_now_us();

	if (wait <= 0 || a->service_s <= 0 || a->in_flight <= 0 || a->busy_until_us > now)
		return false; /* no estimate, or a backend that said busy */
	if (a->service_s / a->in_flight > wait)
		return false;
	for (int k = 0; k < m->n_placements; k++) {
		const struct rt_placement *o = &m->placements[k];
		if (o != a && o != it->excluded && o->in_flight == 0 && can_take(o, m->tier->index))
			return false; /* never keep a replica idle for it */
	}
	if (it->aff_wait_until_us == 0)
		it->aff_wait_until_us = now + (uint64_t)(wait * 1e6);
	if (now >= it->aff_wait_until_us)
		return false;
	if (aff_due_us == 0 || it->aff_wait_until_us < aff_due_us)
		aff_due_us = it->aff_wait_until_us;
	return true;
}

/*
 * The placement for it now.  least_loaded (or no keys): the most free
 * slots.  affinity: the replica of its conversation (a match deeper than
 * the shared prefix) while that one has a free slot and is not much
 * fuller than the others (bounded load); when it is full, wait for it if
 * it frees a slot soon enough (may_wait), else spill.  A new conversation
 * (no match, or only the prefix many share) goes where the fewest started.
 */
static void
choose(struct sched_item *it, struct choice *ch)
{
	struct rt_model *m = it->model;
	struct rt_placement *a;

	memset(ch, 0, sizeof(*ch));
	ch->p = pick_placement(m, it->excluded);
	if (!uses_affinity(it))
		return;
	if (!it->aff_looked) {
		it->aff_pid = affinity_lookup(aff_table, it->aff, &it->aff_depth);
		it->aff_looked = true;
	}
	a = placement_with_id(m, it->aff_pid);
	if (a == NULL || it->aff_depth <= 1) {
		/* A new conversation: its history will live where it starts, so
		 * spread conversations evenly (a replica holding more of them
		 * than it has slots evicts their caches), within bounded load. */
		if (ch->p != NULL)
			ch->p = fewest_conversations(m, it->excluded, load_of(ch->p) + AFF_BALANCE);
		ch->fresh = true;
		return;
	}
	if (a == it->excluded || !a->host->up)
		return; /* its replica is down or failed it */
	ch->affine = a;
	if (can_take(a, m->tier->index)) {
		if (ch->p == NULL || ch->p == a || load_of(a) <= load_of(ch->p) + AFF_BALANCE) {
			ch->p = a;
			ch->how = CHOSEN_HIT;
		} else {
			ch->how = CHOSEN_SPILL;
		}
		return;
	}
	if (ch->p == NULL)
		return; /* no room anywhere: it waits in the queue */
	if (may_wait(it, a)) {
		ch->p = NULL;
		ch->waits = true;
		return;
	}
	ch->how = CHOSEN_SPILL;
}

void
sched_affinity_reset(struct sched_item *it)
{
	it->aff_looked = false;
	it->aff_pid = 0;
	it->aff_depth = 0;
	it->aff_wait_until_us = 0;
}

void
sched_affinity_usage(struct affinity_usage *out)
{
	memset(out, 0, sizeof(*out));
	if (aff_table != NULL)
		affinity_usage(aff_table, ev_now_us(), out);
}

void
sched_placement_done(struct rt_placement *p, uint64_t dispatch_us)
{
	uint64_t now = ev_now_us();
	double s;

	if (dispatch_us == 0 || now < dispatch_us)
		return;
	s = (double)(now - dispatch_us) / 1e6;
	p->service_s = p->service_s > 0 ? 0.8 * p->service_s + 0.2 * s : s;
}

bool
sched_claim(struct rt_placement *p)
{
	struct rt_host *h = p->host;
	int t = p->model->tier->index;

	if (!can_take(p, t))
		return false;
	p->in_flight++;
	h->in_flight++;
	h->tier_in_flight[t]++;
	return true;
}

void
sched_unclaim(struct rt_placement *p)
{
	p->in_flight--;
	p->host->in_flight--;
	p->host->tier_in_flight[p->model->tier->index]--;
	ev_defer(dispatch_cb, NULL);
}

static struct agent_queue *
find_agent_queue(struct rt_model *m, const char *agent)
{
	struct agent_queue *aq;

	TAILQ_FOREACH(aq, &m->agents, ring)
		if (strcmp(aq->agent, agent) == 0)
			return aq;
	return NULL;
}

int
sched_enqueue(struct sched_item *it, bool at_head)
{
	struct rt_model *m = it->model;
	struct rt_tier *t = m->tier;
	struct agent_queue *aq;

	if (draining)
		return SCHED_DRAINING;
	if (!at_head && t->queued >= t->cfg->queue_depth)
		return SCHED_FULL;
	if (t->queued == 0 && t->pass < sched->vtime)
		t->pass = sched->vtime; /* an idle tier earns no credit */
	aq = find_agent_queue(m, it->agent);
	if (aq == NULL) {
		aq = xcalloc(1, sizeof(*aq));
		aq->agent = xstrdup(it->agent);
		TAILQ_INIT(&aq->requests);
		if (at_head)
			TAILQ_INSERT_HEAD(&m->agents, aq, ring);
		else
			TAILQ_INSERT_TAIL(&m->agents, aq, ring);
	}
	if (at_head)
		TAILQ_INSERT_HEAD(&aq->requests, it, qlink);
	else
		TAILQ_INSERT_TAIL(&aq->requests, it, qlink);
	it->aq = aq;
	if (it->t_enqueue_us == 0)
		it->t_enqueue_us = ev_now_us(); /* the first time: waits add up across re-queues */
	m->queued++;
	t->queued++;
	if (it->who != NULL)
		it->who->queued++;
	return 0;
}

void
sched_dequeue(struct sched_item *it)
{
	struct agent_queue *aq = it->aq;
	struct rt_model *m = it->model;

	assert(aq != NULL);
	TAILQ_REMOVE(&aq->requests, it, qlink);
	it->aq = NULL;
	m->queued--;
	m->tier->queued--;
	if (it->who != NULL)
		it->who->queued--;
	if (TAILQ_EMPTY(&aq->requests)) {
		TAILQ_REMOVE(&m->agents, aq, ring);
		free(aq->agent);
		free(aq);
	}
}

/* Model m's next dispatchable request: its round-robin head, or, while
 * that one waits for its affine replica, one of the next AFF_SCAN agents'
 * heads that can go now. */
static struct sched_item *
model_candidate(struct rt_model *m, struct choice *ch)
{
	struct agent_queue *aq;
	int tried = 0;

	TAILQ_FOREACH(aq, &m->agents, ring) {
		struct sched_item *head = TAILQ_FIRST(&aq->requests);
		choose(head, ch);
		if (ch->p != NULL)
			return head;
		if (!ch->waits || ++tried > AFF_SCAN)
			return NULL; /* no room for the model at all */
	}
	return NULL;
}

/* Tier t's next dispatchable request and where it would go: for each model
 * with waiters, its candidate; the oldest one wins, so one model without
 * slots never blocks another. */
static struct sched_item *
tier_candidate(struct rt_tier *t, struct choice *where)
{
	struct sched_item *best = NULL;

	for (int i = 0; i < t->n_models; i++) {
		struct rt_model *m = t->models[i];
		struct agent_queue *aq = TAILQ_FIRST(&m->agents);
		struct sched_item *it;
		struct choice ch;

		if (aq == NULL)
			continue;
		if (best != NULL && TAILQ_FIRST(&aq->requests)->t_enqueue_us >= best->t_enqueue_us)
			continue;
		if ((it = model_candidate(m, &ch)) == NULL)
			continue;
		best = it;
		*where = ch;
	}
	return best;
}

static void
take_slot(struct sched_item *it, struct rt_placement *p)
{
	struct rt_host *h = p->host;
	struct rt_tier *t = it->model->tier;
	struct agent_queue *aq = it->aq;
	struct rt_model *m = it->model;

	/* Rotate the agent ring so the next agent goes first next time. */
	if (TAILQ_NEXT(aq, ring) != NULL && TAILQ_FIRST(&aq->requests) == it &&
	    TAILQ_NEXT(it, qlink) != NULL) {
		TAILQ_REMOVE(&m->agents, aq, ring);
		TAILQ_INSERT_TAIL(&m->agents, aq, ring);
	}
	sched_dequeue(it);
	it->placement = p;
	it->holds_slot = true;
	if (it->who != NULL)
		it->who->in_flight++;
	p->in_flight++;
	if (p->in_flight > p->max_in_flight)
		p->max_in_flight = p->in_flight;
	h->in_flight++;
	h->tier_in_flight[t->index]++;
	t->in_flight++;
	assert(p->in_flight <= p->slots && h->in_flight <= h->slots);
	it->t_dispatch_us = ev_now_us();
}

/* Count the choice and record the request's prefixes for where it went. */
static void
note_affinity(struct sched_item *it, const struct choice *ch)
{
	if (ch->fresh)
		ch->p->conversations++;
	if (ch->how == CHOSEN_HIT)
		ch->p->affinity_hits++;
	else if (ch->how == CHOSEN_SPILL && ch->affine != NULL)
		ch->affine->affinity_spills++;
	if (uses_affinity(it)) {
		affinity_record(aff_table, it->aff, ch->p->aff_id, ev_now_us());
		it->aff_pid = ch->p->aff_id;
	}
}

void
sched_note_queue_wait(const struct sched_item *it)
{
	uint64_t end = it->t_dispatch_us >= it->t_enqueue_us ? it->t_dispatch_us : ev_now_us();

	if (it->model != NULL && it->t_enqueue_us != 0)
		stats_hist_add(&it->model->tier->queue_wait, (double)(end - it->t_enqueue_us) / 1000.0);
}

void
sched_dispatch(void)
{
	if (sched == NULL)
		return;
	if (sched->dispatching) {
		sched->again = true; /* a dispatch caused a close that freed a slot */
		return;
	}
	sched->dispatching = true;
	aff_due_us = 0;
	do {
		sched->again = false;
		for (;;) {
			struct rt_tier *best = NULL;
			struct sched_item *it = NULL;
			struct choice where = {0};

			for (int i = 0; i < sched->n_tiers; i++) {
				struct rt_tier *t = &sched->tiers[i];
				struct choice ch;
				struct sched_item *r;
				if (t->queued == 0 || (best != NULL && t->pass >= best->pass))
					continue;
				if ((r = tier_candidate(t, &ch)) == NULL)
					continue;
				best = t;
				it = r;
				where = ch;
			}
			if (best == NULL)
				break;
			sched->vtime = best->pass;
			best->pass += STRIDE / (uint64_t)best->cfg->weight;
			take_slot(it, where.p);
			note_affinity(it, &where);
			hooks.start(it); /* may release the slot again: see sched->again */
		}
	} while (sched->again);
	sched->dispatching = false;
	/* A request waits for its affine replica: look again when its budget
	 * runs out (a freed slot dispatches earlier anyway). */
	if (aff_due_us != 0) {
		uint64_t now = ev_now_us(), in = aff_due_us > now ? aff_due_us - now : 0;
		if (!ev_timer_armed(&aff_timer) || aff_timer.due_us > aff_due_us + 1000)
			ev_timer_start(&aff_timer, in + 1000);
	}
}

void
sched_release(struct sched_item *it)
{
	struct rt_placement *p = it->placement;

	assert(it->holds_slot && p != NULL);
	it->holds_slot = false;
	if (it->who != NULL)
		it->who->in_flight--;
	p->in_flight--;
	p->host->in_flight--;
	p->host->tier_in_flight[it->model->tier->index]--;
	it->model->tier->in_flight--;
	/* Defer: the caller may be in the middle of the request's own close. */
	ev_defer(dispatch_cb, NULL);
}

/* xorshift64*: jitter only, no need for quality or a seed per run. */
static uint64_t
jitter_next(void)
{
	static uint64_t x = 0x9E3779B97F4A7C15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	return x * 2685821657736338717ull;
}

uint64_t
sched_backoff_us(int streak, uint64_t r)
{
	uint64_t d = BUSY_BASE_US;

	for (int i = 1; i < streak && d < BUSY_MAX_US; i++)
		d *= 2;
	if (d > BUSY_MAX_US)
		d = BUSY_MAX_US;
	return d / 2 + r % (d / 2 + 1);
}

void
sched_placement_busy(struct rt_placement *p)
{
	uint64_t now = ev_now_us(), wait;
	/* What it carried when it said busy, less the request that got the
	 * 503 (still counted here): with parallel = 1 that is 0, a pause. */
	int cap = p->in_flight > 0 ? p->in_flight - 1 : 0;

	if (p->busy_until_us <= now || cap < p->busy_cap)
		p->busy_cap = cap;
	p->busy_streak++;
	wait = sched_backoff_us(p->busy_streak, jitter_next());
	p->busy_until_us = now + wait;
	if (p->busy_answers++ == 0) {
		p->busy_since_us = p->busy_logged_us = now;
		log_warnx("host %s busy (503) for model %s: limiting to %d slots, backing off %.2f s and doubling "
		          "while it stays busy", p->host->cfg->name, p->model->cfg->name, p->busy_cap, (double)wait / 1e6);
	} else if (now - p->busy_logged_us >= BUSY_LOG_EVERY_US) {
		p->busy_logged_us = now;
		log_warnx("host %s still busy for model %s: %llu busy answers in %.0f s", p->host->cfg->name,
		    p->model->cfg->name, (unsigned long long)p->busy_answers, (double)(now - p->busy_since_us) / 1e6);
	}
	if (!ev_timer_armed(&busy_timer) || busy_timer.due_us > p->busy_until_us)
		ev_timer_start(&busy_timer, wait + 1000);
}

void
sched_placement_ok(struct rt_placement *p)
{
	if (p->busy_answers > 0)
		log_info("host %s accepts requests for model %s again, after %llu busy answers in %.1f s",
		    p->host->cfg->name, p->model->cfg->name, (unsigned long long)p->busy_answers,
		    (double)(ev_now_us() - p->busy_since_us) / 1e6);
	p->busy_answers = 0;
	p->busy_streak = 0;
}

void
sched_drain(void)
{
	draining = true;
}

bool
sched_draining(void)
{
	return draining;
}

int
sched_retry_after(const struct rt_tier *t)
{
	double secs;

	if (t->service_rate <= 0)
		return 1 + (int)(t->queued > 0 ? 5 : 0);
	secs = ceil((double)(t->queued + 1) / t->service_rate);
	if (secs < 1)
		secs = 1;
	if (secs > 600)
		secs = 600;
	return (int)secs;
}

void
sched_host_set_up(struct rt_host *h, bool up)
{
	if (h->up == up)
		return;
	h->up = up;
	if (up) {
		log_info("host %s is up", h->cfg->name);
		sched_dispatch();
		return;
	}
	log_warnx("host %s is down", h->cfg->name);
	/* Requests whose every host is down get 503 now rather than at their
	 * queue timeout. */
	for (int i = 0; i < sched->n_models; i++) {
		struct rt_model *m = &sched->models[i];
		struct agent_queue *aq, *naq;
		if (m->queued == 0 || sched_model_available(m))
			continue;
		TAILQ_FOREACH_SAFE(aq, &m->agents, ring, naq) {
			struct sched_item *r, *nr;
			TAILQ_FOREACH_SAFE(r, &aq->requests, qlink, nr) {
				sched_dequeue(r);
				hooks.unservable(r);
			}
		}
	}
}
