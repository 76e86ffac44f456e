/*
 * http: the client-facing HTTP server.  libmicrohttpd in external epoll
 * mode inside our loop, one MHD daemon per listening socket, suspend/resume
 * for requests that wait, a content reader that relays the request's
 * buffer, and an EPOLLRDHUP watch per waiting request because MHD cannot
 * see a client leave while its connection is suspended.
 */
#ifndef HARMONIC_HTTP_H
#define HARMONIC_HTTP_H

#include <stdbool.h>

struct config;

/* Listen on cfg's addresses, or on the sockets systemd passed. */
int http_init(struct config *cfg);
/* Stop accepting new connections (drain); existing ones continue. */
void http_quiesce(void);
/* max_connections as the HTTP server was started with (a reload cannot
 * raise MHD's own limit, set from it). */
unsigned http_connection_cap(void);
/* Connections open now. */
unsigned http_connections(void);
void http_shutdown(void);
/* Serve an already connected stream socket on the first listener as if it
 * had been accepted (the HTTP front fuzzer; MHD owns fd afterwards). */
int http_adopt_fd(int fd);
/* The config new requests start with (reload swaps it). */
void http_set_config(struct config *cfg);

#endif
