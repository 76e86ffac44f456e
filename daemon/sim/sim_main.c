/*
 * harmonic-sim: an Ollama-compatible simulated host calibrated on measured
 * throughput curves.  One thread runs one epoll loop: MHD (external epoll
 * mode), a timerfd armed for the next due token or phase change, a
 * signalfd for SIGINT/SIGTERM, and one EPOLLRDHUP watch per waiting
 * connection.  No locks: every module runs on this thread.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "log.h"
#include "sim_agent.h"
#include "sim_engine.h"
#include "sim_http.h"
#include "sim_llama.h"
#include "sim_profile.h"
#include "sim_wire.h"

#define EX_USAGE 64
#define EX_CONFIG 78

/* Tags for the loop's fixed fds; any other epoll pointer is a request. */
static char tag_signal, tag_timer, tag_mhd;

static void
usage(FILE *f)
{
	fprintf(f, "usage: harmonic-sim --listen HOST:PORT --profile FILE [--speed N] [--seed N]\n"
	    "                    [--context-length N] [--api ollama|llamacpp] [--np N]\n"
	    "                    [--log-level error|warn|info|debug] [-V] [-h]\n");
}

static int
epoll_add(int epfd, int fd, void *ptr)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = ptr };
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Arm the timer for simulated time t (INT64_MAX disarms). */
static void
arm_timer(int tfd, int64_t t)
{
	struct itimerspec its = { 0 };
	if (t != INT64_MAX) {
		int64_t wall = sim_engine_wall_of(t);
		if (wall <= 0)
			wall = 1;
		its.it_value.tv_sec = wall / 1000000000;
		its.it_value.tv_nsec = wall % 1000000000;
	}
	if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		fatal("timerfd_settime");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "profile", required_argument, NULL, 'p' },
		{ "speed", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "context-length", required_argument, NULL, 'C' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "api", required_argument, NULL, 'A' },
		{ "np", required_argument, NULL, 'N' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = "127.0.0.1:11434", *profile_path = NULL;
	double speed = 1;
	unsigned long long seed = 0;
	long context_length = 0, np = 0;
	const char *api_name = NULL;
	enum sim_profile_api api = SIM_PROFILE_API_OLLAMA;
	int level = LOG_LEVEL_INFO, c;
	char *end;

	log_init("harmonic-sim", LOG_LEVEL_INFO);
	while ((c = getopt_long(argc, argv, "l:p:s:S:C:L:A:N:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 'p':
			profile_path = optarg;
			break;
		case 's':
			speed = strtod(optarg, &end);
			if (*end != '\0' || !(speed >= 0.01 && speed <= 10000)) {
				log_errx("--speed: a number from 0.01 to 10000 expected");
				return EX_USAGE;
			}
			break;
		case 'S':
			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (*end != '\0' || errno != 0) {
				log_errx("--seed: an unsigned integer expected");
				return EX_USAGE;
			}
			break;
		case 'C':
			errno = 0;
			context_length = strtol(optarg, &end, 10);
			if (*end != '\0' || errno != 0 || context_length < 1 || context_length > SIM_PROFILE_MAX_CTX) {
				log_errx("--context-length: an integer from 1 to %d expected", SIM_PROFILE_MAX_CTX);
				return EX_USAGE;
			}
			break;
		case 'A':
			api_name = optarg;
			if (sim_profile_parse_api(optarg, &api) < 0) {
				log_errx("--api: ollama or llamacpp");
				return EX_USAGE;
			}
			break;
		case 'N':
			errno = 0;
			np = strtol(optarg, &end, 10);
			if (*end != '\0' || errno != 0 || np < 1 || np > 4096) {
				log_errx("--np: an integer from 1 to 4096 expected");
				return EX_USAGE;
			}
			break;
		case 'L':
			if ((level = log_level_parse(optarg)) < 0) {
				log_errx("--log-level: error, warn, info or debug");
				return EX_USAGE;
			}
			break;
		case 'V':
			printf("harmonic-sim %s\n", HARMONIC_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc || profile_path == NULL) {
		usage(stderr);
		return EX_USAGE;
	}
	log_set_level((enum log_level)level);

	struct sim_profile *profile = sim_profile_load(profile_path);
	if (profile == NULL)
		return EX_CONFIG;
	/* OLLAMA_CONTEXT_LENGTH of the simulated host: wins over the profile. */
	if (context_length > 0)
		profile->context_length = (int)context_length;
	/* The flag wins over the profile's host.api. */
	if (api_name != NULL)
		profile->api = api;
	bool llama = profile->api == SIM_PROFILE_API_LLAMACPP;
	/* llama-server's -np: slots per model; its queue has no limit. */
	for (size_t i = 0; np > 0 && i < profile->n_models; i++)
		profile->models[i].num_parallel = (int)np;
	if (llama)
		profile->max_queue = 1000000;

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || tfd < 0 || epfd < 0)
		fatal("cannot create the event loop");

	sim_engine_init(profile, speed, seed, sim_http_wake, llama ? &sim_llama_output : &sim_agent_output);
	if (llama) {
		sim_engine_preload_all();
		sim_llama_init();
	}
	int mhd_fd = sim_http_start(listen, epfd);
	if (mhd_fd < 0) {
		sim_llama_shutdown();
		sim_engine_shutdown();
		sim_profile_free(profile);
		return 1;
	}
	if (epoll_add(epfd, sfd, &tag_signal) < 0 || epoll_add(epfd, tfd, &tag_timer) < 0 ||
	    epoll_add(epfd, mhd_fd, &tag_mhd) < 0)
		fatal("epoll_ctl");
	log_info("listening on %s: profile %s (%s, %zu models), speed %g, context length %d, %s API", listen,
	    profile_path, profile->host, profile->n_models, speed, profile->context_length,
	    llama ? "llama-server" : "Ollama");

	bool stop = false;
	while (!stop) {
		struct epoll_event evs[64];
		int n = epoll_wait(epfd, evs, 64, sim_http_timeout_ms());
		if (n < 0 && errno != EINTR)
			fatal("epoll_wait");
		/* Hang-ups first: requests are only freed inside sim_http_run(),
		 * so every request pointer in this batch is still valid here. */
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &tag_signal) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					log_info("signal %u: shutting down", si.ssi_signo);
					stop = true;
				}
			} else if (p == &tag_timer) {
				uint64_t expirations;
				if (read(tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
					log_warn("timerfd read");
			} else if (p != &tag_mhd) {
				sim_http_watch_event(p, evs[i].events);
			}
		}
		sim_http_run();
		int64_t next = sim_engine_advance();
		for (int i = 0; i < 8 && sim_http_take_resumed(); i++) {
			sim_http_run();
			next = sim_engine_advance();
		}
		arm_timer(tfd, next);
	}

	/* Resume every parked connection before stopping MHD, which aborts
	 * the process if any connection is still suspended. */
	for (int tries = 0; tries < 100; tries++) {
		int resumed = sim_http_drain();
		sim_http_run();
		if (resumed == 0)
			break;
	}
	sim_http_stop();
	sim_llama_shutdown();
	sim_engine_shutdown();
	sim_profile_free(profile);
	close(epfd);
	close(tfd);
	close(sfd);
	log_info("stopped");
	return 0;
}
