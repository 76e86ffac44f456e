/*
 * request: lifecycle, references, local answers, the relay buffer and the
 * single close path.  See request.h for who holds which reference.
 */
#include "request.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "agents.h"
#include "api.h"
#include "config.h"
#include "dialect.h"
#include "jsonx.h"
#include "log.h"
#include "sched.h"
#include "upstream.h"
#include "xmalloc.h"

static uint64_t next_id = 1;
static uint64_t live;
static TAILQ_HEAD(, request) all_requests = TAILQ_HEAD_INITIALIZER(all_requests);

static const char *const state_names[REQUEST_STATE_COUNT] = {
	"reading", "queued", "waiting", "relaying", "draining", "replying", "closed"};

const char *
request_state_name(enum request_state s)
{
	return s < REQUEST_STATE_COUNT ? state_names[s] : "?";
}

uint64_t
request_live_count(void)
{
	return live;
}

struct request *
request_new(struct MHD_Connection *conn, const struct route *route, struct config *cfg)
{
	struct request *req = xcalloc(1, sizeof(*req));

	req->refs = 1;
	req->id = next_id++;
	req->state = REQUEST_READING;
	req->route = route;
	req->cfg = config_ref(cfg);
	req->conn = conn;
	req->t_arrive_us = ev_now_us();
	req->watch.fd = -1;
	tokscan_init(&req->scan, route->dialect->scan_line);
	ev_timer_init(&req->timer, NULL, req);
	ev_timer_init(&req->watch_timer, NULL, req);
	TAILQ_INSERT_TAIL(&all_requests, req, all);
	live++;
	return req;
}

struct request *
request_ref(struct request *req)
{
	req->refs++;
	return req;
}

static void
request_free(void *arg)
{
	struct request *req = arg;

	assert(req->up.easy == NULL && req->si.aq == NULL && !req->si.holds_slot);
	TAILQ_REMOVE(&all_requests, req, all);
	sched_unbind(&req->si);
	ev_timer_stop(&req->timer);
	ev_timer_stop(&req->watch_timer);
	config_unref(req->cfg);
	agents_leave(req->si.who);
	free(req->agent);
	free(req->session);
	free(req->si.aff);
	free(req->body);
	free(req->up_body);
	free(req->client_model);
	backend_call_clear(&req->call);
	free(req->echo_from);
	free(req->echo_to);
	free(req->tail);
	free(req->errbody);
	free(req->buf);
	free(req->reply_body);
	tokscan_free(&req->scan);
	free(req);
	live--;
}

void
request_unref(struct request *req)
{
	assert(req->refs > 0);
	if (--req->refs > 0)
		return;
	/* Callbacks of this iteration may still hold the pointer. */
	ev_defer(request_free, req);
}

/* Legal transitions; anything may go to CLOSED or REPLYING (errors). */
static bool
transition_ok(enum request_state from, enum request_state to)
{
	if (to == REQUEST_CLOSED)
		return true;
	switch (from) {
	case REQUEST_READING: return to == REQUEST_QUEUED || to == REQUEST_WAITING || to == REQUEST_REPLYING;
	case REQUEST_QUEUED: return to == REQUEST_WAITING || to == REQUEST_REPLYING;
	case REQUEST_WAITING: return to == REQUEST_RELAYING || to == REQUEST_QUEUED || to == REQUEST_REPLYING ||
	    to == REQUEST_DRAINING;
	case REQUEST_RELAYING: return to == REQUEST_DRAINING;
	case REQUEST_DRAINING: return false;
	case REQUEST_REPLYING: return false;
	default: return false;
	}
}

void
request_set_state(struct request *req, enum request_state s)
{
	if (req->state == s)
		return;
	if (!transition_ok(req->state, s))
		fatalx("request %llu: illegal transition %s -> %s", (unsigned long long)req->id,
		    request_state_name(req->state), request_state_name(s));
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_debug("request %llu: %s -> %s", (unsigned long long)req->id, request_state_name(req->state),
		    request_state_name(s));
	req->state = s;
}

static void (*waker)(struct request *req);

void
request_set_waker(void (*wake)(struct request *req))
{
	waker = wake;
}

void
request_wake(struct request *req)
{
	if (req->suspended && req->conn != NULL) {
		req->suspended = false;
		if (waker != NULL)
			waker(req);
	}
}

void
request_reply(struct request *req, int status, const char *ctype, const char *body, size_t len)
{
	free(req->reply_body);
	req->reply_body = xmalloc(len + 1);
	memcpy(req->reply_body, body, len);
	req->reply_body[len] = '\0';
	req->reply_len = len;
	req->reply_status = status;
	req->reply_ctype = ctype;
	request_set_state(req, REQUEST_REPLYING);
	request_wake(req);
}

void
request_reply_error(struct request *req, int status, const char *msg)
{
	size_t len;
	char *s = api_error_text(req->route, status, msg, &len);

	request_reply(req, status, "application/json; charset=utf-8", s, len);
	free(s);
}

void
request_reply_busy(struct request *req, const char *msg, int retry_after)
{
	req->retry_after = retry_after > 0 ? retry_after : 1;
	request_reply_error(req, 503, msg);
}

void
request_buf_append(struct request *req, const char *data, size_t len)
{
	if (req->buf_off > 0 && req->buf_off == req->buf_len)
		req->buf_off = req->buf_len = 0;
	if (req->buf_len + len > req->buf_cap) {
		/* Compact first; grow only if still short (bounded by the
		 * high-water mark plus one backend chunk). */
		if (req->buf_off > 0) {
			memmove(req->buf, req->buf + req->buf_off, req->buf_len - req->buf_off);
			req->buf_len -= req->buf_off;
			req->buf_off = 0;
		}
		req->buf = xgrow(req->buf, &req->buf_cap, req->buf_len + len, 4096);
	}
	memcpy(req->buf + req->buf_len, data, len);
	req->buf_len += len;
	if (len > 0)
		req->buf_last = data[len - 1];
}

size_t
request_buf_pending(const struct request *req)
{
	return req->buf_len - req->buf_off;
}

static void
account(struct request *req, enum stats_outcome outcome)
{
	struct rt_tier *t = req->si.model ? req->si.model->tier : NULL;

	req->accounted = true;
	if (sched == NULL)
		return;
	sched->totals.outcome[outcome]++;
	agents_outcome(req->si.who, outcome); /* the per-agent sums stay equal to the totals */
	if (req->unqueued)
		return; /* /api/show: no slot, no queue; only the totals count it */
	sched_note_queue_wait(&req->si);
	if (req->si.placement != NULL)
		req->si.placement->outcome[outcome]++;
	else if (req->si.model != NULL)
		req->si.model->outcome[outcome]++;
	if (outcome != STATS_COMPLETED)
		return;
	if (t != NULL) {
		uint64_t now = ev_now_us();
		t->completed++;
		/* EWMA of the tier's service rate, for Retry-After. */
		if (t->last_done_us != 0 && now > t->last_done_us) {
			double inst = 1e6 / (double)(now - t->last_done_us);
			t->service_rate = t->service_rate == 0 ? inst : 0.9 * t->service_rate + 0.1 * inst;
		}
		t->last_done_us = now;
	}
	if (req->si.placement != NULL) {
		sched_placement_done(req->si.placement, req->si.t_dispatch_us);
		req->si.placement->completed++;
		req->si.placement->host->completed++;
	}
}

void
request_close(struct request *req, enum stats_outcome outcome, const char *reason)
{
	if (!req->accounted) {
		account(req, outcome);
		if (outcome != STATS_COMPLETED)
			log_debug("request %llu: %s (%s)", (unsigned long long)req->id,
			    stats_outcome_name(outcome), reason);
	}
	if (req->si.aq != NULL)
		sched_dequeue(&req->si);
	ev_timer_stop(&req->timer);
	if (req->up.easy != NULL)
		upstream_abort(&req->up);
	if (req->si.holds_slot)
		sched_release(&req->si);
}

void
request_client_gone(struct request *req, const char *how)
{
	if (req->client_gone)
		return;
	req->client_gone = true;
	log_debug("request %llu: client gone (%s) while %s", (unsigned long long)req->id, how,
	    request_state_name(req->state));
	request_close(req, STATS_CANCELLED, how);
	if (req->state != REQUEST_CLOSED)
		request_set_state(req, REQUEST_CLOSED);
	request_wake(req);
}

void
request_close_all(const char *why)
{
	struct request *req, *next;

	TAILQ_FOREACH_SAFE(req, &all_requests, all, next)
		request_client_gone(req, why);
}

void
request_foreach(void (*fn)(struct request *req, void *arg), void *arg)
{
	struct request *req, *next;

	TAILQ_FOREACH_SAFE(req, &all_requests, all, next)
		fn(req, arg);
}

static void
on_queue_timeout(void *arg)
{
	struct request *req = arg;

	request_close(req, STATS_REJECTED, "queue timeout");
	request_reply_busy(req, "harmonicd: queue_timeout passed while waiting for a free slot",
	    sched_retry_after(req->si.model->tier));
}

bool
request_enqueue(struct request *req, bool at_head)
{
	uint64_t limit = (uint64_t)(req->cfg->queue_timeout * 1e6), now = ev_now_us();
	uint64_t waited = req->si.t_enqueue_us != 0 && now > req->si.t_enqueue_us ? now - req->si.t_enqueue_us : 0;
	int rc;

	if (waited >= limit) {
		on_queue_timeout(req);
		return false;
	}
	rc = sched_enqueue(&req->si, at_head);
	if (rc == SCHED_DRAINING) {
		request_close(req, STATS_REJECTED, "draining");
		request_reply_busy(req, "harmonicd is shutting down", 1);
		return false;
	}
	if (rc != 0) {
		request_close(req, STATS_REJECTED, "tier queue full");
		request_reply_busy(req, "server busy, please try again.  maximum pending requests exceeded",
		    sched_retry_after(req->si.model->tier));
		return false;
	}
	request_set_state(req, REQUEST_QUEUED);
	/* queue_timeout counts from the first enqueue, across every retry. */
	req->timer.cb = on_queue_timeout;
	ev_timer_start(&req->timer, limit - waited);
	return true;
}

/* Parse req's body against its configuration and the runtime (the same
 * pair: see request_bind); set its model, stream flag, upstream body and
 * the model-name echo.  On rejection the error answer is prepared. */
static bool
parse_body(struct request *req)
{
	struct api_parsed p;

	if (api_parse_body(req->route, req->body, req->body_len, req->cfg, &p) == API_REJECTED) {
		request_close(req, STATS_REJECTED, "bad request");
		request_reply_error(req, p.status, p.error);
		api_parsed_free(&p);
		return false;
	}
	sched_bind(&req->si, sched_find_model(p.model));
	if (req->si.model == NULL) {
		/* Parsed against a config that is not the runtime's: request_bind
		 * prevents it; never dereference the gap. */
		char *msg = api_unknown_model_message(req->route, p.model);
		request_close(req, STATS_REJECTED, "model not in the runtime");
		request_reply_error(req, 404, msg);
		free(msg);
		api_parsed_free(&p);
		return false;
	}
	req->stream = p.stream;
	req->client_model = xstrdup(p.model);
	if (req->route->kind == ROUTE_FORWARD && strcmp(req->si.model->cfg->ollama, p.model) != 0) {
		/* The backend will say its tag; the client must read its name. */
		json_t *from = jx_str(req->si.model->cfg->ollama), *to = jx_str(p.model);
		char *f = json_dumps(from, JSON_ENCODE_ANY), *t = json_dumps(to, JSON_ENCODE_ANY);
		if (f == NULL || t == NULL)
			fatalx("out of memory (json string)");
		req->echo_from = xasprintf("\"model\":%s", f);
		req->echo_to = xasprintf("\"model\":%s", t);
		free(f);
		free(t);
		json_decref(from);
		json_decref(to);
	}
	req->up_body = p.up_body;
	req->up_body_len = p.up_body_len;
	p.up_body = NULL;
	/* Affinity keys (owned by the request through its sched_item). */
	free(req->si.aff);
	req->si.aff = p.aff;
	p.aff = NULL;
	if (req->si.aff != NULL)
		affinity_keys_set_session(req->si.aff, req->si.model->cfg->key, req->session);
	sched_affinity_reset(&req->si);
	api_parsed_free(&p);
	return true;
}

bool
request_bind(struct request *req)
{
	if (req->cfg != sched->cfg) {
		config_unref(req->cfg);
		req->cfg = config_ref(sched->cfg);
	}
	free(req->up_body);
	free(req->client_model);
	free(req->echo_from);
	free(req->echo_to);
	req->up_body = req->client_model = req->echo_from = req->echo_to = NULL;
	req->up_body_len = 0;
	return parse_body(req);
}

void
request_requeue_after_reload(struct sched_item *it)
{
	struct request *req = request_of(it);

	if (request_bind(req)) /* else answered: the model is gone (404) */
		request_enqueue(req, req->retries > 0);
}
