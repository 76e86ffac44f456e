/*
 * relay: what a backend transfer means for its request.  upstream reports
 * bytes and endings; this module decides: a 2xx commits the answer to the
 * client and streams it through the request's bounded buffer (with the
 * model name echoed as the client sent it, tokens counted as they pass);
 * anything else before the first byte is kept (bounded) and judged at the
 * end, so a 503 goes back to the queue with a back-off and another failure
 * is retried once on another placement; a failure after the first byte
 * ends the stream with an error line.  See docs/reliability.md, "Retries".
 */
#include "relay.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "api.h"
#include "backend.h"
#include "config.h"
#include "dialect.h"
#include "ev.h"
#include "health.h"
#include "log.h"
#include "request.h"
#include "sched.h"
#include "upstream.h"
#include "xlate.h"
#include "xmalloc.h"

#define ERRBODY_MAX (64u * 1024u)

static struct request *
request_of_xfer(struct upstream_xfer *x)
{
	return (struct request *)(void *)((char *)x - offsetof(struct request, up));
}

static void
count_tokens(struct request *req, uint64_t n)
{
	uint64_t now = ev_now_us();
	struct rt_placement *p = req->si.placement;

	if (n == 0 || p == NULL)
		return;
	stats_rate_add(&sched->rate, now, n);
	stats_rate_add(&req->si.model->tier->rate, now, n);
	stats_rate_add(&p->host->rate, now, n);
	stats_rate_add(&p->rate, now, n);
	p->streamed_tokens += n;
	agents_streamed(req->si.who, now, n);
}

/* First body byte of a 2xx: the response is now the client's. */
static void
commit(struct request *req)
{
	req->t_first_byte_us = ev_now_us();
	/* /api/show is neither queued nor dispatched: no TTFT, no busy news. */
	if (req->si.placement != NULL && !req->unqueued) {
		stats_hist_add(&req->si.placement->ttft, (double)(req->t_first_byte_us - req->si.t_dispatch_us) / 1000.0);
		sched_placement_ok(req->si.placement);
	}
	request_set_state(req, REQUEST_RELAYING);
	request_wake(req);
}

/* Append one line (with its newline, if any) to the relay buffer with the
 * backend's model tag replaced by the client's name (first occurrence:
 * Ollama writes it once per object). */
static void
append_renamed(struct request *req, const char *line, size_t n)
{
	size_t fl = strlen(req->echo_from);
	const char *at = memmem(line, n, req->echo_from, fl);

	if (at == NULL) {
		request_buf_append(req, line, n);
		return;
	}
	request_buf_append(req, line, (size_t)(at - line));
	request_buf_append(req, req->echo_to, strlen(req->echo_to));
	request_buf_append(req, at + fl, n - (size_t)(at - line) - fl);
}

/* Relay with renaming: only whole lines leave; a partial one waits in
 * req->tail for its newline (or the end of the body). */
static void
relay_renamed(struct request *req, const char *data, size_t len)
{
	const char *nl;

	while ((nl = memchr(data, '\n', len)) != NULL) {
		size_t take = (size_t)(nl - data) + 1;
		if (req->tail_len > 0) {
			req->tail = xreallocarray(req->tail, req->tail_len + take, 1);
			memcpy(req->tail + req->tail_len, data, take);
			append_renamed(req, req->tail, req->tail_len + take);
			req->tail_len = 0;
		} else {
			append_renamed(req, data, take);
		}
		data += take;
		len -= take;
	}
	if (len > 0) {
		req->tail = xreallocarray(req->tail, req->tail_len + len, 1);
		memcpy(req->tail + req->tail_len, data, len);
		req->tail_len += len;
	}
}

static void
flush_tail(struct request *req)
{
	if (req->tail_len > 0)
		append_renamed(req, req->tail, req->tail_len);
	req->tail_len = 0;
}

static void
run_wake(void *arg)
{
	struct request *req = arg;

	req->wake_scheduled = false;
	request_wake(req);
	request_unref(req);
}

static void wake_soon(struct request *req);

/* Relay what the translator has produced (committing the answer at its
 * first byte), counting tokens on the client's framing. */
static void
take_translated(struct request *req)
{
	size_t n;
	const char *out = xlate_take(req->call.answer, &n);

	if (n == 0)
		return;
	if (req->state == REQUEST_WAITING)
		commit(req);
	request_buf_append(req, out, n);
	count_tokens(req, tokscan_feed(&req->scan, out, n));
	wake_soon(req);
}

/* Wake the client once per loop iteration, not once per chunk: chunks
 * that arrived together leave in one write. */
static void
wake_soon(struct request *req)
{
	if (!req->wake_scheduled) {
		req->wake_scheduled = true;
		ev_defer(run_wake, request_ref(req));
	}
}

static size_t
on_data(struct upstream_xfer *x, const char *data, size_t len)
{
	struct request *req = request_of_xfer(x);

	if (req->client_gone)
		return 0; /* backstop: abort the transfer */
	if (x->status < 200 || x->status >= 300) {
		/* Judged at the end of the transfer; keep a bounded copy. */
		size_t room = ERRBODY_MAX - req->errbody_len;
		if (len < room)
			room = len;
		if (room > 0) {
			req->errbody = xreallocarray(req->errbody, req->errbody_len + room + 1, 1);
			memcpy(req->errbody + req->errbody_len, data, room);
			req->errbody_len += room;
			req->errbody[req->errbody_len] = '\0';
		}
		return len;
	}
	/* A partial line held for renaming counts against the limit too. */
	if (request_buf_pending(req) > 0 && request_buf_pending(req) + req->tail_len + len > RELAY_HIGH_WATER) {
		return UPSTREAM_PAUSE;
	}
	if (req->call.answer != NULL) {
		/* Another API: what reaches the client is the translation.  The
		 * answer is the client's only once there is something to say, so
		 * a failure before that is still retried or answered 502. */
		xlate_feed(req->call.answer, data, len, (int64_t)ev_now_us() * 1000, ev_wall_ns());
		take_translated(req);
		return len;
	}
	if (req->state == REQUEST_WAITING)
		commit(req);
	if (req->echo_from != NULL) {
		relay_renamed(req, data, len);
		/* A line longer than the limit leaves as it is, in pieces, so the
		 * held-back part stays bounded. */
		if (req->tail_len > RELAY_HIGH_WATER)
			flush_tail(req);
	} else
		request_buf_append(req, data, len);
	count_tokens(req, tokscan_feed(&req->scan, data, len));
	wake_soon(req);
	return len;
}

static void
run_unpause(void *arg)
{
	struct request *req = arg;

	req->unpause_scheduled = false;
	upstream_resume(&req->up);
	request_unref(req);
}

void
relay_unpause(struct request *req)
{
	/* Deferred: we are inside MHD's reader, and the unpause re-enters
	 * on_data, which may wake this same connection. */
	if (!req->up.paused || req->unpause_scheduled)
		return;
	req->unpause_scheduled = true;
	ev_defer(run_unpause, request_ref(req));
}

/* The backend's {"error":"..."} message, or a fallback. */
static char *
backend_message(const struct request *req, const char *fallback)
{
	json_t *o = req->errbody ? json_loadb(req->errbody, req->errbody_len, 0, NULL) : NULL;
	const json_t *e = json_object_get(o, "error");
	char *msg;

	if (json_is_object(e))
		e = json_object_get(e, "message");
	msg = xstrdup(json_is_string(e) ? json_string_value(e) : fallback);
	json_decref(o);
	return msg;
}

/* Failure before the first byte: retry once elsewhere, else 502. */
static void
fail_before_first_byte(struct request *req, const char *why)
{
	struct rt_placement *p = req->si.placement;
	char *msg;

	if (req->si.holds_slot)
		sched_release(&req->si);
	if (p == NULL || req->unqueued) {
		/* No retry: /api/show, or a placement removed by a reload. */
		msg = xasprintf("backend failed before the first byte: %s", why);
		request_close(req, STATS_FAILED, why);
		request_reply_error(req, 502, msg);
		free(msg);
		return;
	}
	if (req->retries == 0 && req->si.model->n_placements > 1) {
		for (int k = 0; k < req->si.model->n_placements; k++) {
			struct rt_placement *o = &req->si.model->placements[k];
			if (o != p && o->host->up) {
				req->retries++;
				req->si.excluded = p;
				log_info("request %llu: %s on %s; retrying on another placement",
				    (unsigned long long)req->id, why, p->host->cfg->name);
				if (request_enqueue(req, true))
					sched_dispatch();
				return;
			}
		}
	}
	msg = xasprintf("backend %s failed before the first byte: %s", p->host->cfg->name, why);
	log_warnx("request %llu: %s", (unsigned long long)req->id, msg);
	request_close(req, STATS_FAILED, why);
	request_reply_error(req, 502, msg);
	free(msg);
}

/* The answer failed after its first byte: end it the way the client's
 * dialect ends a failed stream (append, unless the backend already wrote
 * its own error), count it failed, and let the client read the rest. */
static void
finish_failed(struct request *req, const char *why, bool append)
{
	if (req->echo_from != NULL)
		flush_tail(req);
	if (append) {
		size_t len;
		char *end = req->stream ? req->route->dialect->stream_failure(why, &len)
		                        : dialect_ollama.stream_failure(why, &len);
		/* Make sure the ending starts on a line of its own, also when
		 * the partial line before it has already reached the client. */
		if (req->buf_last != '\0' && req->buf_last != '\n')
			request_buf_append(req, "\n", 1);
		request_buf_append(req, end, len);
		free(end);
	}
	req->up_done = true;
	request_close(req, STATS_FAILED, why);
	request_set_state(req, REQUEST_DRAINING);
	request_wake(req);
}

static void
finish_ok(struct request *req)
{
	struct rt_placement *p = req->si.placement;
	int64_t ev, pe;

	if (req->call.answer != NULL) {
		const char *why;
		bool complete = xlate_finish(req->call.answer, (int64_t)ev_now_us() * 1000, ev_wall_ns(), &why);
		bool started = xlate_started(req->call.answer);
		take_translated(req);
		if (!complete) {
			if (!started) {
				char *msg = xstrdup(why);
				fail_before_first_byte(req, msg);
				free(msg);
			} else {
				finish_failed(req, why, false); /* its error line is the translation's last */
			}
			return;
		}
	}
	if (req->state == REQUEST_WAITING)
		commit(req); /* a 2xx with an empty body */
	if (req->echo_from != NULL)
		flush_tail(req);
	tokscan_finish(&req->scan);
	/* A 2xx is not a success when the backend wrote an error into it
	 * (Ollama's runner died mid-answer), or when a dialect's stream ended
	 * without its terminal event (Ollama's /v1/messages and /v1/responses
	 * just stop): both count as failed, and the client must see it. */
	if (req->scan.error) {
		finish_failed(req, "the backend reported an error in its answer", false);
		return;
	}
	if (req->stream && req->route->dialect->needs_terminal && !req->scan.done) {
		finish_failed(req, "the backend ended the stream before it was complete", true);
		return;
	}
	ev = req->scan.have_counts ? req->scan.eval_count : (int64_t)req->scan.token_lines;
	pe = req->scan.have_counts ? req->scan.prompt_eval_count : 0;
	if (ev > (int64_t)req->scan.token_lines)
		count_tokens(req, (uint64_t)(ev - (int64_t)req->scan.token_lines));
	sched->totals.eval_tokens += (uint64_t)ev;
	sched->totals.prompt_tokens += (uint64_t)pe;
	agents_final(req->si.who, (uint64_t)pe, (uint64_t)ev);
	if (p != NULL) {
		p->eval_tokens += (uint64_t)ev;
		p->prompt_tokens += (uint64_t)pe;
		if (req->scan.cached_tokens > 0)
			p->prompt_cached_tokens += (uint64_t)req->scan.cached_tokens;
		if (req->scan.prompt_eval_us > 0)
			p->prompt_eval_ms += (uint64_t)(req->scan.prompt_eval_us / 1000);
		p->host->eval_tokens += (uint64_t)ev;
	}
	req->up_done = true;
	request_close(req, STATS_COMPLETED, "done");
	request_set_state(req, REQUEST_DRAINING);
	request_wake(req);
}


static void
on_done(struct upstream_xfer *x, CURLcode rc)
{
	struct request *req = request_of_xfer(x);
	long status = x->status;

	if (rc != CURLE_OK) {
		const char *why = upstream_strerror(rc);
		if (rc == CURLE_COULDNT_CONNECT && req->si.placement != NULL)
			health_suspect(req->si.placement->host);
		if (req->state == REQUEST_WAITING)
			fail_before_first_byte(req, why);
		else
			finish_failed(req, rc == CURLE_OPERATION_TIMEDOUT ?
			    "backend timed out (request_timeout)" : "backend connection failed mid-stream", true);
		return;
	}
	if (status >= 200 && status < 300) {
		finish_ok(req);
		return;
	}
	if (status == 503 && req->si.holds_slot && !req->unqueued) {
		/* Capacity signal: shrink the placement and back off (sched), and
		 * put the request back at the head of its queue, a bounded number
		 * of times and within its queue_timeout. */
		sched_placement_busy(req->si.placement);
		sched_release(&req->si);
		if (++req->busy_retries > RELAY_BUSY_RETRIES) {
			request_close(req, STATS_REJECTED, "backend busy");
			request_reply_busy(req, "server busy, please try again.  every host serving this model is busy",
			    sched_retry_after(req->si.model->tier));
			return;
		}
		request_enqueue(req, true); /* the back-off timer re-dispatches */
		return;
	}
	if (status >= 500 || status == 0) {
		char *msg = backend_message(req, "backend error");
		char *why = xasprintf("HTTP %ld: %s", status, msg);
		fail_before_first_byte(req, why);
		free(why);
		free(msg);
		return;
	}
	/* 4xx: the backend judged the request; pass its answer through, in
	 * the client's API where it speaks another. */
	request_close(req, STATS_FAILED, "backend rejected the request");
	if (req->call.answer != NULL) {
		char *msg = xlate_error_message(req->errbody ? req->errbody : "", req->errbody_len, status);
		request_reply_error(req, (int)status, msg);
		free(msg);
		return;
	}
	request_reply(req, (int)status,
	    strstr(x->ctype, "json") ? "application/json; charset=utf-8" : "text/plain; charset=utf-8",
	    req->errbody ? req->errbody : "", req->errbody_len);
}

int
relay_start(struct request *req)
{
	const struct rt_placement *p = req->si.placement;
	const struct rt_host *h = p->host;
	struct backend_call *c = &req->call;
	char *err = NULL;

	free(req->errbody);
	req->errbody = NULL;
	req->errbody_len = 0;
	/* Each start asks the placement's kind afresh: a retry may land on a
	 * host of another kind. */
	backend_call_clear(c);
	tokscan_free(&req->scan);
	tokscan_init(&req->scan, req->route->dialect->scan_line);
	if (backend_of(h)->prepare(p, req->route, req->up_body, req->up_body_len, req->client_model, req->stream, c,
	    &err) < 0) {
		request_close(req, STATS_REJECTED, "bad request for this backend");
		request_reply_error(req, 400, err);
		free(err);
		return 0;
	}
	if (c->local != NULL) {
		request_close(req, STATS_COMPLETED, "answered here");
		request_reply(req, 200, "application/json; charset=utf-8", c->local, c->local_len);
		return 0;
	}
	req->up.on_data = on_data;
	req->up.on_done = on_done;
	return upstream_start(&req->up, h->cfg->url, c->path, c->body ? c->body : req->up_body,
	    c->body ? c->body_len : req->up_body_len, req->cfg->request_timeout);
}

/* ---- the scheduler's decisions, acted on ---- */

static void
on_dispatch(struct sched_item *it)
{
	struct request *req = request_of(it);

	ev_timer_stop(&req->timer);
	request_set_state(req, REQUEST_WAITING);
	if (relay_start(req) < 0) {
		request_close(req, STATS_FAILED, "cannot start backend transfer");
		request_reply_error(req, 502, "harmonicd: cannot start the backend request");
	}
}

static void
on_unservable(struct sched_item *it)
{
	struct request *req = request_of(it);

	request_close(req, STATS_REJECTED, "every host down");
	request_reply_busy(req, "every host serving this model is down", (int)ceil(req->cfg->health_interval));
}

const struct sched_hooks relay_sched_hooks = {on_dispatch, on_unservable};
