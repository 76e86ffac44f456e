/*
 * admin: POST /admin/reload and POST /admin/drain.  The actions belong to
 * the lifecycle (server), which hands them over at start; these handlers
 * only turn them into answers.
 */
#ifndef HARMONIC_ADMIN_H
#define HARMONIC_ADMIN_H

#include "endpoint.h"

struct admin_actions {
	int (*reload)(void);            /* 0, or -1 with status.reload.last_error set */
	void (*drain)(const char *why);
};

void admin_init(const struct admin_actions *actions);
void admin_reload(const char *url, struct local_answer *out);
void admin_drain(const char *url, struct local_answer *out);

#endif
