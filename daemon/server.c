/*
 * server: wires the modules together and owns the process lifecycle.
 * Init in dependency order, shutdown in reverse; signals arrive through a
 * signalfd in the event loop, so no handler ever runs asynchronously.
 */
#include "server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config.h"
#include "ev.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "request.h"
#include "sched.h"
#include "statsview.h"
#include "upstream.h"

static struct ev_io sig_io;

static void
on_signal(int fd, uint32_t events, void *arg)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_info("signal %d: shutting down", (int)si.ssi_signo);
			ev_break();
			break;
		case SIGHUP:
			log_info("SIGHUP: reload is not supported yet; keeping the running configuration");
			break;
		default:
			break;
		}
	}
}

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
}

int
server_run(const char *file, bool debug)
{
	struct config_diags diags = {0};
	struct config *cfg = config_load(file, &diags);
	sigset_t mask;
	int sfd, rc = 0;

	for (int i = 0; i < diags.n; i++)
		(diags.v[i].severity == DIAG_ERROR ? log_errx : log_warnx)("%s", diags.v[i].text);
	config_diags_free(&diags);
	if (cfg == NULL) {
		log_errx("%s: configuration is not valid; not starting", file);
		return CONFIG_EXIT_ERROR;
	}
	if (!debug)
		log_set_level((enum log_level)cfg->log_level);
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
	sig_io.fd = sfd;
	sig_io.cb = on_signal;
	ev_io_add(&sig_io, EPOLLIN);
	if (upstream_init(cfg->max_connections) < 0) {
		log_errx("curl initialisation failed");
		rc = 1;
		goto out_ev;
	}
	sched_init(cfg);
	if (http_init(cfg) < 0) {
		rc = 1;
		goto out_sched;
	}
	health_init();
	statsview_start();
	log_info("harmonicd %s serving %d models on %d hosts", HARMONIC_VERSION, cfg->n_models, cfg->n_hosts);
	if (ev_run() < 0)
		rc = 1;
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
