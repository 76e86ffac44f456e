/*
 * sim_http: harmonic-sim's HTTP front on libmicrohttpd in external epoll
 * mode.  It routes Ollama, OpenAI-compatible, agent (via sim_agent) and
 * /_sim control requests, parses and validates them, decides tool calls,
 * hands inference to sim_engine, and streams what sim_wire and sim_agent
 * produced.  Connections wait suspended (never a bare 0 from
 * the content reader); a per-connection EPOLLRDHUP watch in the main loop's
 * epoll set notices a client leaving even while its connection is
 * suspended, so its slot is freed at once.
 */
#ifndef HARMONIC_SIM_HTTP_H
#define HARMONIC_SIM_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_engine.h"

/* Listen on "HOST:PORT" ("[::1]:11434" for IPv6).  Watches are registered
 * in loop_epfd.  Returns MHD's own epoll fd for the loop to wait on, or -1. */
int sim_http_start(const char *listen, int loop_epfd);
/* Let MHD do whatever is ready; never blocks. */
void sim_http_run(void);
/* Milliseconds MHD wants to be called back in, -1 for no limit. */
int sim_http_timeout_ms(void);
/* A watched connection reported hang-up (epoll events); data is the
 * pointer registered with the watch.  Must run before sim_http_run() in a
 * loop iteration: requests are freed only inside MHD's callbacks. */
void sim_http_watch_event(void *data, uint32_t events);
/* Engine callback: resume the connection if it waits for output. */
void sim_http_wake(struct sim_req *req);
/* True (once) when connections were resumed since the last call: in
 * external mode MHD only acts on a resume in its next MHD_run, and its
 * epoll fd does not necessarily signal it, so the loop must run MHD again. */
bool sim_http_take_resumed(void);
/* Begin shutdown: cancel and resume every request.  Returns how many
 * connections are still suspended (call sim_http_run until 0). */
int sim_http_drain(void);
/* Stop MHD (no connection may be suspended) and free what remains. */
void sim_http_stop(void);

#endif
