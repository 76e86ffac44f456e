/*
 * server: wires the modules together and owns the process lifecycle.
 * Init in dependency order, shutdown in reverse; signals arrive through a
 * signalfd in the event loop, so no handler ever runs asynchronously.
 *
 * States: starting (listening, probing hosts) -> ready (READY=1) ->
 * draining (STOPPING=1, no new work, streams finishing) -> stopped.
 * A reload (SIGHUP, POST /admin/reload) is an instant swap inside "ready".
 */
#include "server.h"

#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "admin.h"
#include "api.h"
#include "autotune.h"
#include "config.h"
#include "jsonx.h"
#include "ev.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "relay.h"
#include "request.h"
#include "sched.h"
#include "statsview.h"
#include "status.h"
#include "upstream.h"
#include "xmalloc.h"

#define TICK_US 50000u /* readiness and drain checks */

static struct {
	const char *file;
	bool debug;
	bool ready;
	uint64_t start_us;
	uint64_t drain_deadline_us;
	struct ev_io sig_io;
	struct ev_timer tick;
} srv;

/* Config diagnostics go to the log with their severity. */
static void
log_diags(const struct config_diags *d)
{
	for (int i = 0; i < d->n; i++)
		(d->v[i].severity == DIAG_ERROR ? log_errx : log_warnx)("%s", d->v[i].text);
}

static double
uptime_s(void)
{
	return (double)(ev_update_now() - srv.start_us) / 1e6;
}

static bool
same_listen(const struct config *a, const struct config *b)
{
	if (a->n_listen != b->n_listen)
		return false;
	for (int i = 0; i < a->n_listen; i++)
		if (strcmp(a->listen[i], b->listen[i]) != 0)
			return false;
	return true;
}

/* Settings a reload cannot apply (or applies only to what comes after it)
 * are named, so an operator is not left guessing. */
static void
warn_unreloadable(const struct config *old, const struct config *cfg)
{
	if (!same_listen(old, cfg))
		log_warnx("reload: listen changed; still listening on the old addresses until a restart");
	if ((unsigned)cfg->max_connections > http_connection_cap())
		log_warnx("reload: max_connections = %d is above the %u the HTTP server was started with; "
		          "the higher limit applies after a restart", cfg->max_connections, http_connection_cap());
	if (old->idle_timeout != cfg->idle_timeout)
		log_info("reload: idle_timeout = %.0f s applies to connections opened from now on", cfg->idle_timeout);
}

int
server_reload(void)
{
	struct config_diags diags = {0};
	struct config *cfg;

	log_info("reloading %s", srv.file);
	notify_reloading();
	cfg = config_load(srv.file, &diags);
	log_diags(&diags);
	if (cfg == NULL) {
		daemon_status.reload.failures++;
		daemon_status.reload.last_failure_s = uptime_s();
		snprintf(daemon_status.reload.last_error, sizeof(daemon_status.reload.last_error), "%s",
		    diags.n > 0 ? diags.v[0].text : "invalid configuration");
		log_errx("reload rejected (%d error%s); still serving the previous configuration", diags.errors,
		    diags.errors == 1 ? "" : "s");
		config_diags_free(&diags);
		notify_ready();
		return -1;
	}
	config_diags_free(&diags);
	warn_unreloadable(sched->cfg, cfg);
	/* Probes point at the old runtime: cancel them before it goes. */
	upstream_cancel_probes();
	health_shutdown();
	sched_reload(cfg, request_requeue_after_reload);
	http_set_config(cfg);
	if (!srv.debug)
		log_set_level((enum log_level)cfg->log_level);
	health_init();
	config_unref(cfg); /* sched and http hold their own references */
	daemon_status.reload.reloads++;
	daemon_status.reload.last_ok_s = uptime_s();
	log_info("configuration reloaded: %d models on %d hosts", sched->n_models, sched->n_hosts);
	notify_ready();
	return 0;
}

static void
reject_queued(struct request *req, void *arg)
{
	if (req->si.aq == NULL)
		return;
	request_close(req, STATS_REJECTED, "draining");
	request_reply_busy(req, "harmonicd is shutting down", 1);
}

void
server_drain(const char *why)
{
	if (daemon_status.draining)
		return;
	daemon_status.draining = true;
	log_info("%s: draining (up to %.0f s for %llu requests)", why, sched->cfg->shutdown_grace,
	    (unsigned long long)request_live_count());
	notify_stopping();
	http_quiesce();
	sched_drain(); /* nothing enters a queue any more, retries included */
	request_foreach(reject_queued, NULL);
	srv.drain_deadline_us = ev_update_now() + (uint64_t)(sched->cfg->shutdown_grace * 1e6);
}

static void
on_tick(void *arg)
{
	if (!srv.ready && !daemon_status.draining && health_first_round_done()) {
		srv.ready = true;
		log_info("ready");
		notify_ready();
	}
	if (daemon_status.draining) {
		if (request_live_count() == 0) {
			log_info("drained");
			ev_break();
			return;
		}
		if (ev_now_us() >= srv.drain_deadline_us) {
			log_warnx("shutdown_grace passed with %llu requests open; closing them",
			    (unsigned long long)request_live_count());
			ev_break();
			return;
		}
	}
	ev_timer_start(&srv.tick, TICK_US);
}

static void
on_signal(int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (daemon_status.draining) {
				log_info("second signal: stopping now");
				ev_break();
			} else {
				server_drain(si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			}
			break;
		case SIGHUP:
			if (!daemon_status.draining)
				server_reload();
			break;
		default:
			break;
		}
	}
}

static const struct admin_actions admin_actions = {server_reload, server_drain};

/* Many idle clients each hold an fd: raise the soft limit to the hard one. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			log_info("open file limit raised to %llu", (unsigned long long)rl.rlim_cur);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("open file limit: %llu", (unsigned long long)rl.rlim_cur);
}

int
server_run(const char *file, bool debug)
{
	struct config_diags diags = {0};
	struct config *cfg = config_load(file, &diags);
	sigset_t mask;
	int sfd, rc = 0;

	log_diags(&diags);
	config_diags_free(&diags);
	if (cfg == NULL) {
		log_errx("%s: configuration is not valid; not starting", file);
		return CONFIG_EXIT_ERROR;
	}
	srv.file = file;
	srv.debug = debug;
	daemon_status.reload.last_ok_s = daemon_status.reload.last_failure_s = -1;
	if (!debug)
		log_set_level((enum log_level)cfg->log_level);
	/* Per-request buffers are allocated and freed thousands of times a
	 * second; keep freed memory in the heap instead of returning it to the
	 * kernel and faulting it back in on the next request. */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	raise_fd_limit();
	if (ev_init() < 0 || (sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		log_warn("event loop");
		config_unref(cfg);
		return 1;
	}
	srv.start_us = ev_now_us();
	srv.sig_io.fd = sfd;
	srv.sig_io.cb = on_signal;
	ev_io_add(&srv.sig_io, EPOLLIN);
	if (upstream_init(cfg->max_connections) < 0) {
		log_errx("curl initialisation failed");
		rc = 1;
		goto out_ev;
	}
	sched_init(cfg, &relay_sched_hooks);
	admin_init(&admin_actions);
	if (http_init(cfg) < 0) {
		rc = 1;
		goto out_sched;
	}
	notify_init();
	health_init();
	autotune_init();
	statsview_start();
	ev_timer_init(&srv.tick, on_tick, NULL);
	ev_timer_start(&srv.tick, 0);
	log_info("harmonicd %s serving %d models on %d hosts", HARMONIC_VERSION, cfg->n_models, cfg->n_hosts);
	if (ev_run() < 0)
		rc = 1;
	if (!daemon_status.draining)
		notify_stopping();
	ev_timer_stop(&srv.tick);
	autotune_shutdown();
	notify_shutdown();
	/* Probes still out own their callbacks' arguments (a placement's load
	 * reading, a warm-up's claimed slot): let them see "cancelled" while
	 * the runtime they point into still exists, as a reload does. */
	upstream_cancel_probes();
	health_shutdown();
out_sched:
	http_shutdown();
	ev_flush();
	sched_shutdown();
	upstream_shutdown();
	ev_flush();
out_ev:
	close(sfd);
	ev_shutdown();
	config_unref(cfg);
	log_info("stopped");
	return rc;
}
