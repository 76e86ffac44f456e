/*
 * sim_engine: slots, FIFO waiting, model load/expiry, faults, statistics
 * and token timing for harmonic-sim.  See sim_engine.h for the timing model.
 *
 * Invariants, per model:
 *  - n_active = requests in m->active (phases LOADING..HUNG) <= num_parallel;
 *  - n_decoding = active requests in DECODE; rate = aggregate(n)/n for it;
 *  - waiting is non-empty only while n_active > 0: its head waits for a
 *    slot, or for every slot to empty before it reloads the model at its
 *    context (dispatch);
 *  - ctx is the context of the load in progress or of the resident model;
 *  - v is exact at t_v: call model_clock(t) before changing n_decoding;
 *  - model_advance() processes rate-changing events in time order, so a
 *    late timer wake-up never distorts the simulated timeline, only the
 *    moment bytes leave.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sim_engine.h"
#include "xmalloc.h"

#define TOKEN_EPS 1e-6          /* tolerance on the virtual clock, in tokens */

TAILQ_HEAD(sim_req_list, sim_req);

struct sim_model {
	const struct sim_profile_model *p;
	struct sim_req_list waiting;    /* FIFO of QUEUED requests */
	struct sim_req_list active;     /* requests holding a slot */
	int n_waiting, n_active, n_decoding;
	int64_t t_v;                    /* simulated ns at which v is exact */
	double v;                       /* tokens per decoding request so far */
	double rate;                    /* tok/s of each decoding request now */
	bool loaded, loading;
	int ctx;                        /* context it is loaded (or loading) with */
	int64_t load_end;               /* simulated ns */
	int64_t expires_at;             /* simulated ns; INT64_MAX = never */
	int64_t keep_alive_ns;          /* the latest request's keep_alive */
	struct sim_cache cache;         /* its slots' prompt caches */
	/* statistics */
	int max_in_flight;
	uint64_t served, tokens, disconnects, rejected, loads, failed;
	uint64_t context_reloads;       /* loads forced by a request's other num_ctx */
	int max_waiting;                /* most requests waiting at once (max_deferred) */
	uint64_t prompt_evaluated;      /* prompt tokens evaluated, over requests */
	uint64_t prompt_cached;         /* prompt tokens found in a slot's cache instead */
};

struct fault {
	TAILQ_ENTRY(fault) entry;
	enum sim_fault_kind kind;
	int64_t count;                  /* requests still to hit */
	int status;
	char *message;
	int64_t after;                  /* tokens, close/error */
	int64_t delay_ns;               /* slow, simulated */
	struct sim_model *model;        /* NULL = any model */
};

static struct {
	const struct sim_profile *profile;
	struct sim_model *models;
	size_t n_models;
	double speed;
	uint64_t seed;
	int64_t start_mono;             /* CLOCK_MONOTONIC ns at init */
	int n_waiting;                  /* whole host, bounded by max_queue */
	sim_engine_wake_fn wake;
	struct sim_output out;       /* the wire format (sim_wire_output) */
	TAILQ_HEAD(, fault) faults;
} E;

static const char *const fault_names[SIM_FAULT_COUNT] = {
	"none", "fail", "busy", "hang", "slow", "close", "error",
};

const char *
sim_engine_phase_name(enum sim_phase phase)
{
	static const char *const names[SIM_PHASE_COUNT] = {
		"new", "queued", "loading", "prompt", "decode", "hung", "done",
	};
	return phase < SIM_PHASE_COUNT ? names[phase] : "?";
}

static int64_t
mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
sim_engine_now(void)
{
	return (int64_t)((double)(mono_ns() - E.start_mono) * E.speed);
}

int64_t
sim_engine_wall_of(int64_t t)
{
	if (t == INT64_MAX)
		return INT64_MAX;
	return E.start_mono + (int64_t)ceil((double)t / E.speed);
}

double
sim_engine_speed(void)
{
	return E.speed;
}

uint64_t
sim_engine_seed(void)
{
	return E.seed;
}

const struct sim_profile *
sim_engine_profile(void)
{
	return E.profile;
}

struct sim_model *
sim_engine_model(const struct sim_profile_model *pm)
{
	return &E.models[pm - E.profile->models];
}

const struct sim_profile_model *
sim_engine_model_profile(const struct sim_model *m)
{
	return m->p;
}

void
sim_engine_init(const struct sim_profile *p, double speed, uint64_t seed, sim_engine_wake_fn wake,
    const struct sim_output *out)
{
	E.out = *out;
	E.profile = p;
	E.speed = speed;
	E.seed = seed;
	E.wake = wake;
	E.start_mono = mono_ns();
	E.n_models = p->n_models;
	E.models = xcalloc(p->n_models, sizeof(*E.models));
	for (size_t i = 0; i < p->n_models; i++) {
		struct sim_model *m = &E.models[i];
		m->p = &p->models[i];
		TAILQ_INIT(&m->waiting);
		TAILQ_INIT(&m->active);
		m->keep_alive_ns = m->p->keep_alive_ns;
		m->expires_at = INT64_MAX;
		/* Ollama's runner and llama-server choose slots differently (sim_cache.h). */
		sim_cache_init(&m->cache, m->p->num_parallel, p->api == SIM_PROFILE_API_OLLAMA);
	}
	TAILQ_INIT(&E.faults);
}

void
sim_engine_shutdown(void)
{
	/* Requests belong to their connections, which sim_http closed first. */
	sim_engine_fault_reset();
	for (size_t i = 0; i < E.n_models; i++)
		sim_cache_shutdown(&E.models[i].cache);
	free(E.models);
	E.models = NULL;
}

/* ---- the virtual decode clock ---- */

static void
model_clock(struct sim_model *m, int64_t t)
{
	if (t <= m->t_v)
		return;
	m->v += m->rate * (double)(t - m->t_v) / 1e9;
	m->t_v = t;
}

static void
model_set_rate(struct sim_model *m)
{
	m->rate = m->n_decoding > 0 ? sim_profile_aggregate(m->p, m->n_decoding) / m->n_decoding : 0;
}

/* Simulated time at which the model's v reaches target (rate constant). */
static int64_t
time_of_v(const struct sim_model *m, double target)
{
	double need = target - m->v;
	if (need <= TOKEN_EPS)
		return m->t_v;
	if (m->rate <= 0)
		return INT64_MAX;
	double dt = ceil(need / m->rate * 1e9);
	return dt > 9e18 ? INT64_MAX : m->t_v + (int64_t)dt;
}

/* Tokens a decoding request will produce before its fault fires, or its target. */
static int64_t
stop_point(const struct sim_req *req)
{
	if ((req->fault == SIM_FAULT_CLOSE || req->fault == SIM_FAULT_ERROR) &&
	    req->fault_after < req->target_tokens)
		return req->fault_after;
	return req->target_tokens;
}

/* ---- slots and phases ---- */

static bool
resident(struct sim_model *m, int64_t t)
{
	if (m->loaded && m->n_active == 0 && t >= m->expires_at)
		m->loaded = false;
	return m->loaded;
}

bool
sim_engine_loaded(struct sim_model *m, bool loading, int64_t *expires_at, int *ctx)
{
	int64_t now = sim_engine_now();
	bool r = resident(m, now) || (loading && m->loading);
	if (expires_at)
		*expires_at = m->n_active > 0 || m->loading
		    ? (m->keep_alive_ns < 0 ? INT64_MAX : now + m->keep_alive_ns) : m->expires_at;
	if (ctx)
		*ctx = m->ctx;
	return r;
}

/* Whether req can have a slot of the model as it is: the model is not
 * resident (its load will use req's context), or it is resident or
 * loading with req's context.  Ollama compares the runner's options:
 * another num_ctx needs another runner.  A hung request (fault) never
 * runs, so it takes a slot whatever the model's context. */
static bool
fits_context(struct sim_model *m, const struct sim_req *req, int64_t t)
{
	return req->fault == SIM_FAULT_HANG || !(resident(m, t) || m->loading) || m->ctx == req->num_ctx;
}

/* No slot is taken and req needs another context: drop the model, so that
 * req's slot loads it again (load_time, as a cold load). */
static void
drop_for_context(struct sim_model *m, const struct sim_req *req)
{
	log_info("%s: reloading with context %d (was %d)", m->p->name, req->num_ctx, m->ctx);
	m->loaded = false;
	m->loading = false;
	m->context_reloads++;
}

static void start_decode(struct sim_model *m, struct sim_req *req, int64_t t);
static void release(struct sim_model *m, struct sim_req *req, int64_t t);

/* ---- the prompt cache (sim_cache.h) ----
 * A slot is picked when granted; its sequence is cut to the reused prefix
 * when evaluation starts, becomes the prompt once evaluated, and grows by
 * the answer when the request leaves the slot.  A load starts empty.
 * Load requests (no prompt) and hung ones touch no sequence. */

static bool
touches_cache(const struct sim_req *req)
{
	return !req->load_only && req->fault != SIM_FAULT_HANG;
}

/* Pick req's slot; called with the model's load state already settled. */
static void
cache_take_slot(struct sim_model *m, struct sim_req *req)
{
	req->slot = sim_cache_acquire(&m->cache, touches_cache(req) ? &req->prompt_seq : NULL,
	    req->prompt_tokens, &req->cached_tokens);
	if (req->slot < 0)      /* grant_slot runs only below num_parallel */
		fatalx("%s: no free cache slot with %d of %d active", m->p->name, m->n_active, m->p->num_parallel);
	req->had_slot = true;
	if (touches_cache(req))
		log_info("request %" PRIu64 " (%s): slot %d, prompt %" PRId64 " tokens, %" PRId64 " cached, %"
		    PRId64 " evaluated", req->id, m->p->name, req->slot, req->prompt_tokens, req->cached_tokens,
		    req->prompt_tokens - req->cached_tokens);
}

/* The request leaves its slot: the answer so far joins the sequence, as
 * the next turn of the conversation will repeat it. */
static void
cache_leave_slot(struct sim_model *m, struct sim_req *req)
{
	if (req->phase == SIM_PHASE_DECODE && touches_cache(req) && req->emitted > 0 &&
	    (req->tool_call == NULL || req->emitted >= req->target_tokens)) {
		char *text = NULL;
		size_t len = 0, cap = 0;
		struct sim_tokens answer = { 0 };
		/* The text the client got: the same deterministic words again. */
		for (int64_t i = 0; req->tool_call == NULL && i < req->emitted; i++) {
			const char *w = E.out.word(req->text_seed ^ E.seed, i);
			size_t n = strlen(w);
			text = xgrow(text, &cap, len + n + 1, 256);
			memcpy(text + len, w, n + 1);
			len += n;
		}
		sim_cache_answer(&answer, req->tool_call, text);
		sim_cache_append(&m->cache, req->slot, &answer, (size_t)m->ctx);
		sim_tokens_free(&answer);
		free(text);
	}
	sim_cache_release(&m->cache, req->slot);
}

static void
start_prompt(struct sim_model *m, struct sim_req *req, int64_t t)
{
	req->phase = SIM_PHASE_PROMPT;
	req->t_prompt = t;
	if (touches_cache(req))
		sim_cache_truncate(&m->cache, req->slot, (size_t)req->cached_tokens);
	/* Only the part after the cached prefix is evaluated. */
	double secs = (double)(req->prompt_tokens - req->cached_tokens) / m->p->prompt_rate;
	req->t_decode = t + (int64_t)(secs * 1e9) + req->fault_delay_ns;
}

static void
grant_slot(struct sim_model *m, struct sim_req *req, int64_t t)
{
	TAILQ_INSERT_TAIL(&m->active, req, entry);
	m->n_active++;
	if (m->n_active > m->max_in_flight)
		m->max_in_flight = m->n_active;
	req->t_slot = t;
	if (req->fault != SIM_FAULT_HANG && !m->loaded && !m->loading) {
		m->loading = true;
		m->ctx = req->num_ctx;
		m->load_end = t + m->p->load_ns;
		m->loads++;
		sim_cache_clear(&m->cache);     /* a new runner has an empty KV cache */
		log_debug("%s: loading with context %d (%.1f s simulated)", m->p->name, m->ctx,
		    (double)m->p->load_ns / 1e9);
	}
	cache_take_slot(m, req);
	if (req->fault == SIM_FAULT_HANG) {
		req->phase = SIM_PHASE_HUNG;
		return;
	}
	if (m->loading)
		req->phase = SIM_PHASE_LOADING;
	else
		start_prompt(m, req, t);
}

static void
finish(struct sim_model *m, struct sim_req *req, int64_t t)
{
	req->t_done = t;
	release(m, req, t);
	m->served++;
	if (req->load_only)
		E.out.load_reply(req, "load");
	else
		E.out.finish(req, req->explicit_predict ? "length" : "stop");
	E.wake(req);
}

/* The request's fault fires now, after fault_after tokens. */
static void
fire_fault(struct sim_model *m, struct sim_req *req, int64_t t)
{
	req->t_done = t;
	release(m, req, t);
	m->failed++;
	if (req->fault == SIM_FAULT_CLOSE) {
		req->abort_conn = true;
		req->finished = true;
	} else {
		E.out.error_inline(req, req->fault_status, req->fault_message);
	}
	E.wake(req);
}

static void
start_decode(struct sim_model *m, struct sim_req *req, int64_t t)
{
	model_clock(m, t);
	req->phase = SIM_PHASE_DECODE;
	req->t_decode = t;
	req->v0 = m->v;
	if (touches_cache(req))
		sim_cache_store(&m->cache, req->slot, &req->prompt_seq, (size_t)m->ctx);
	m->prompt_evaluated += (uint64_t)(req->prompt_tokens - req->cached_tokens);
	m->prompt_cached += (uint64_t)req->cached_tokens;
	m->n_decoding++;
	model_set_rate(m);
	if (stop_point(req) < req->target_tokens && req->fault_after == 0)
		fire_fault(m, req, t);
	else if (req->target_tokens == 0)
		finish(m, req, t);
}

/*
 * Hand free slots to the waiting requests in order.  The first one that
 * needs another context waits until every slot is free (Ollama lets the
 * requests in flight finish, then reloads), and everyone behind it waits
 * too, even those that fit: the queue is FIFO.
 */
static void
dispatch(struct sim_model *m, int64_t t)
{
	struct sim_req *next;
	while (m->n_active < m->p->num_parallel && (next = TAILQ_FIRST(&m->waiting)) != NULL) {
		if (!fits_context(m, next, t)) {
			if (m->n_active > 0)
				break;
			drop_for_context(m, next);
		}
		TAILQ_REMOVE(&m->waiting, next, entry);
		m->n_waiting--;
		E.n_waiting--;
		grant_slot(m, next, t);
	}
}

/* Leave the slot table at time t and hand the slot to the next in line. */
static void
release(struct sim_model *m, struct sim_req *req, int64_t t)
{
	if (req->phase == SIM_PHASE_DECODE) {
		model_clock(m, t);
		m->n_decoding--;
		model_set_rate(m);
	}
	cache_leave_slot(m, req);
	TAILQ_REMOVE(&m->active, req, entry);
	m->n_active--;
	req->phase = SIM_PHASE_DONE;
	if (m->n_active == 0 && m->loaded) {
		m->expires_at = m->keep_alive_ns < 0 ? INT64_MAX : t + m->keep_alive_ns;
		if (m->keep_alive_ns == 0)
			m->loaded = false;
	}
	dispatch(m, t);
}

static void
emit_upto(struct sim_model *m, struct sim_req *req, int64_t upto)
{
	if (upto <= req->emitted)
		return;
	while (req->emitted < upto) {
		const char *w = E.out.word(req->text_seed ^ E.seed, req->emitted);
		req->emitted++;
		m->tokens++;
		E.out.token(req, w);
	}
	E.wake(req);
}

/* Earliest simulated time at which the model's state changes. */
static int64_t
next_change(struct sim_model *m)
{
	int64_t t = m->loading ? m->load_end : INT64_MAX;
	struct sim_req *req;
	TAILQ_FOREACH(req, &m->active, entry) {
		int64_t e = INT64_MAX;
		if (req->phase == SIM_PHASE_PROMPT)
			e = req->t_decode;
		else if (req->phase == SIM_PHASE_DECODE)
			e = time_of_v(m, req->v0 + (double)stop_point(req));
		if (e < t)
			t = e;
	}
	return t;
}

/* Apply every change due at t (v is already at t). */
static void
apply_changes(struct sim_model *m, int64_t t)
{
	struct sim_req *req, *tmp;

	if (m->loading && m->load_end <= t) {
		m->loading = false;
		m->loaded = true;
		if (m->n_active == 0)
			m->expires_at = m->keep_alive_ns < 0 ? INT64_MAX : m->load_end + m->keep_alive_ns;
		TAILQ_FOREACH(req, &m->active, entry)
			if (req->phase == SIM_PHASE_LOADING)
				start_prompt(m, req, m->load_end);
	}
	TAILQ_FOREACH_SAFE(req, &m->active, entry, tmp) {
		if (req->phase == SIM_PHASE_PROMPT && req->t_decode <= t) {
			start_decode(m, req, req->t_decode);
		} else if (req->phase == SIM_PHASE_DECODE) {
			int64_t stop = stop_point(req);
			if (m->v - req->v0 + TOKEN_EPS >= (double)stop) {
				emit_upto(m, req, stop);
				if (stop < req->target_tokens)
					fire_fault(m, req, t);
				else
					finish(m, req, t);
			}
		}
	}
}

static int64_t
model_advance(struct sim_model *m, int64_t now)
{
	struct sim_req *req, *tmp;

	for (;;) {
		int64_t t = next_change(m);
		if (t > now)
			break;
		model_clock(m, t);
		apply_changes(m, t);
	}
	model_clock(m, now);
	int64_t next = next_change(m);
	TAILQ_FOREACH_SAFE(req, &m->active, entry, tmp) {
		if (req->phase != SIM_PHASE_DECODE)
			continue;
		int64_t due = (int64_t)floor(m->v - req->v0 + TOKEN_EPS);
		if (due > stop_point(req))
			due = stop_point(req);
		emit_upto(m, req, due);
		int64_t t = time_of_v(m, req->v0 + (double)(req->emitted + 1));
		if (t < next)
			next = t;
	}
	return next;
}

int64_t
sim_engine_advance(void)
{
	int64_t now = sim_engine_now(), next = INT64_MAX;
	for (size_t i = 0; i < E.n_models; i++) {
		int64_t t = model_advance(&E.models[i], now);
		if (t < next)
			next = t;
	}
	return next;
}

int
sim_engine_submit(struct sim_req *req)
{
	struct sim_model *m = req->model;
	int64_t now = sim_engine_now();

	model_advance(m, now);
	if (!req->keep_alive_set)
		req->keep_alive_ns = m->p->keep_alive_ns;
	/* Nobody waits, so a request of another context waits only for the
	 * requests in flight. */
	if (m->n_active < m->p->num_parallel && TAILQ_EMPTY(&m->waiting) &&
	    (m->n_active == 0 || fits_context(m, req, now))) {
		m->keep_alive_ns = req->keep_alive_ns;
		resident(m, now);
		if (!fits_context(m, req, now))
			drop_for_context(m, req);
		grant_slot(m, req, now);
		model_advance(m, now);  /* zero-length phases finish at once */
		return 0;
	}
	if (E.n_waiting >= E.profile->max_queue) {
		m->rejected++;
		return -1;
	}
	m->keep_alive_ns = req->keep_alive_ns;
	req->phase = SIM_PHASE_QUEUED;
	TAILQ_INSERT_TAIL(&m->waiting, req, entry);
	m->n_waiting++;
	E.n_waiting++;
	if (m->n_waiting > m->max_waiting)
		m->max_waiting = m->n_waiting;
	return 0;
}

void
sim_engine_cancel(struct sim_req *req, bool counts_as_disconnect)
{
	struct sim_model *m = req->model;
	if (req->phase == SIM_PHASE_NEW || req->phase == SIM_PHASE_DONE)
		return;
	int64_t now = sim_engine_now();
	model_advance(m, now);
	if (req->phase == SIM_PHASE_DONE)
		return;
	if (req->phase == SIM_PHASE_QUEUED) {
		TAILQ_REMOVE(&m->waiting, req, entry);
		m->n_waiting--;
		E.n_waiting--;
		req->phase = SIM_PHASE_DONE;
		dispatch(m, now);       /* it may have held the others back (a reload) */
	} else {
		release(m, req, now);
	}
	if (counts_as_disconnect)
		m->disconnects++;
	log_debug("request %" PRIu64 " (%s) cancelled", req->id, m->p->name);
}

void
sim_engine_unload(struct sim_model *m)
{
	int64_t now = sim_engine_now();
	m->keep_alive_ns = 0;
	if (m->n_active == 0 && !m->loading)
		m->loaded = false;
	else
		m->expires_at = now;
}

/* ---- faults ---- */

void
sim_engine_take_fault(struct sim_req *req)
{
	struct fault *f;
	TAILQ_FOREACH(f, &E.faults, entry) {
		if (f->model != NULL && f->model != req->model)
			continue;
		req->fault = f->kind;
		req->fault_status = f->status;
		req->fault_after = f->after;
		req->fault_delay_ns = f->delay_ns;
		free(req->fault_message);
		req->fault_message = xstrdup(f->message);
		if (--f->count == 0) {
			TAILQ_REMOVE(&E.faults, f, entry);
			free(f->message);
			free(f);
		}
		log_debug("request %" PRIu64 ": fault %s", req->id, fault_names[req->fault]);
		return;
	}
}

static json_int_t
int_member(json_t *spec, const char *key, json_int_t def, json_int_t min, json_int_t max, bool *bad)
{
	json_t *v = json_object_get(spec, key);
	if (v == NULL || json_is_null(v))
		return def;
	if (!json_is_number(v) || json_number_value(v) < (double)min || json_number_value(v) > (double)max) {
		*bad = true;
		return def;
	}
	return (json_int_t)json_number_value(v);
}

const char *
sim_engine_fault_add(json_t *spec)
{
	bool bad = false;
	const char *mode = json_string_value(json_object_get(spec, "mode"));
	struct fault f = { 0 };

	if (!json_is_object(spec) || mode == NULL)
		return "fault: \"mode\" (fail, busy, hang, slow, close, error) is required";
	for (int k = SIM_FAULT_FAIL; k < SIM_FAULT_COUNT; k++)
		if (strcmp(mode, fault_names[k]) == 0)
			f.kind = (enum sim_fault_kind)k;
	if (f.kind == SIM_FAULT_NONE)
		return "fault: unknown mode (fail, busy, hang, slow, close, error)";
	f.count = int_member(spec, "count", 1, 1, 1000000, &bad);
	f.status = (int)int_member(spec, "status", f.kind == SIM_FAULT_BUSY ? 503 : 500, 100, 599, &bad);
	f.after = int_member(spec, "after_tokens", f.kind == SIM_FAULT_CLOSE || f.kind == SIM_FAULT_ERROR ? 1 : 0,
	    0, 100000000, &bad);
	f.delay_ns = int_member(spec, "delay_ms", f.kind == SIM_FAULT_SLOW ? 1000 : 0, 0, 86400000, &bad) * 1000000;
	if (bad)
		return "fault: count, status, after_tokens and delay_ms must be numbers in range";
	json_t *model = json_object_get(spec, "model");
	if (model != NULL && !json_is_null(model)) {
		const struct sim_profile_model *pm = sim_profile_find(E.profile, json_string_value(model));
		if (pm == NULL)
			return "fault: unknown model";
		f.model = sim_engine_model(pm);
	}
	const char *msg = json_string_value(json_object_get(spec, "message"));
	if (msg == NULL)
		msg = f.kind == SIM_FAULT_BUSY ? SIM_BUSY_MESSAGE : "simulated failure";
	struct fault *nf = xmalloc(sizeof(*nf));
	*nf = f;
	nf->message = xstrdup(msg);
	TAILQ_INSERT_TAIL(&E.faults, nf, entry);
	log_info("fault armed: %s x%" PRId64 "%s%s", mode, f.count, f.model ? " on " : "",
	    f.model ? f.model->p->name : "");
	return NULL;
}

void
sim_engine_fault_reset(void)
{
	struct fault *f;
	while ((f = TAILQ_FIRST(&E.faults)) != NULL) {
		TAILQ_REMOVE(&E.faults, f, entry);
		free(f->message);
		free(f);
	}
}

/* ---- statistics ---- */

int64_t
sim_request_cached_tokens(const struct sim_req *req)
{
	return req->had_slot ? req->cached_tokens : 0;
}

void
sim_engine_stats_reset(void)
{
	for (size_t i = 0; i < E.n_models; i++) {
		struct sim_model *m = &E.models[i];
		m->max_in_flight = m->n_active;
		m->served = m->tokens = m->disconnects = m->rejected = m->loads = m->failed = 0;
		m->context_reloads = 0;
		m->max_waiting = m->n_waiting;
		m->prompt_evaluated = m->prompt_cached = 0;
	}
}

json_t *
sim_engine_stats(void)
{
	json_t *models = json_object(), *faults = json_array();
	json_int_t tot[9] = { 0 }, reloads = 0, evaluated = 0, cached = 0;
	static const char *const keys[9] = { "in_flight", "max_in_flight", "queued", "decoding", "served",
		"tokens", "disconnects", "rejected", "failed" };

	sim_engine_advance();
	for (size_t i = 0; i < E.n_models; i++) {
		struct sim_model *m = &E.models[i];
		json_int_t vals[9] = { m->n_active, m->max_in_flight, m->n_waiting, m->n_decoding,
			(json_int_t)m->served, (json_int_t)m->tokens, (json_int_t)m->disconnects,
			(json_int_t)m->rejected, (json_int_t)m->failed };
		json_t *o = json_object();
		for (int k = 0; k < 9; k++) {
			json_object_set_new(o, keys[k], json_integer(vals[k]));
			tot[k] += vals[k];
		}
		json_object_set_new(o, "loads", json_integer((json_int_t)m->loads));
		json_object_set_new(o, "context_reloads", json_integer((json_int_t)m->context_reloads));
		reloads += (json_int_t)m->context_reloads;
		json_object_set_new(o, "loaded", json_boolean(sim_engine_loaded(m, false, NULL, NULL)));
		/* The context it is loaded (or being loaded) with; null when not resident. */
		int ctx;
		json_object_set_new(o, "context_length",
		    sim_engine_loaded(m, true, NULL, &ctx) ? json_integer(ctx) : json_null());
		json_object_set_new(o, "aggregate_tps", json_real(m->rate * m->n_decoding));
		/* llama-server's words for the same gauges (slots busy, deferred). */
		json_object_set_new(o, "busy_now", json_integer(m->n_active));
		json_object_set_new(o, "deferred_now", json_integer(m->n_waiting));
		json_object_set_new(o, "max_deferred", json_integer(m->max_waiting));
		json_object_set_new(o, "prompt_tokens_evaluated", json_integer((json_int_t)m->prompt_evaluated));
		json_object_set_new(o, "prompt_tokens_cached", json_integer((json_int_t)m->prompt_cached));
		evaluated += (json_int_t)m->prompt_evaluated;
		cached += (json_int_t)m->prompt_cached;
		json_object_set_new(models, m->p->name, o);
	}
	json_t *totals = json_object();
	for (int k = 0; k < 9; k++)
		json_object_set_new(totals, keys[k], json_integer(tot[k]));
	json_object_set_new(totals, "context_reloads", json_integer(reloads));
	json_object_set_new(totals, "prompt_tokens_evaluated", json_integer(evaluated));
	json_object_set_new(totals, "prompt_tokens_cached", json_integer(cached));
	/* max_in_flight has no meaningful sum; report the largest. */
	json_int_t mx = 0;
	for (size_t i = 0; i < E.n_models; i++)
		if (E.models[i].max_in_flight > mx)
			mx = E.models[i].max_in_flight;
	json_object_set_new(totals, "max_in_flight", json_integer(mx));

	struct fault *f;
	TAILQ_FOREACH(f, &E.faults, entry)
		json_array_append_new(faults, json_pack("{s:s, s:I, s:s?}", "mode", fault_names[f->kind],
		    "count", (json_int_t)f->count, "model", f->model ? f->model->p->name : NULL));
	return json_pack("{s:s, s:f, s:I, s:i, s:o, s:o, s:o}", "host", E.profile->host, "speed", E.speed,
	    "sim_time_ms", (json_int_t)(sim_engine_now() / 1000000), "context_length", E.profile->context_length,
	    "models", models, "totals", totals, "faults", faults);
}

/* ---- llama-server mode ---- */

void
sim_engine_preload_all(void)
{
	int64_t now = sim_engine_now();
	for (size_t i = 0; i < E.n_models; i++) {
		struct sim_model *m = &E.models[i];
		m->keep_alive_ns = -1;
		m->expires_at = INT64_MAX;
		m->loading = true;
		m->ctx = sim_profile_default_ctx(E.profile, m->p);
		m->load_end = now + m->p->load_ns;
		m->loads++;
	}
}

bool
sim_engine_loading_any(void)
{
	sim_engine_advance();
	for (size_t i = 0; i < E.n_models; i++)
		if (E.models[i].loading)
			return true;
	return false;
}

int
sim_engine_busy(const struct sim_model *m)
{
	return m->n_active;
}

int
sim_engine_deferred(const struct sim_model *m)
{
	return m->n_waiting;
}

size_t
sim_engine_slot_holders(const struct sim_model *m, const struct sim_req **out, size_t max)
{
	size_t n = 0;
	const struct sim_req *req;
	TAILQ_FOREACH(req, &m->active, entry)
		if (n < max)
			out[n++] = req;
	return n;
}

