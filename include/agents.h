/*
 * agents: per-agent counters for /stats, /metrics, the dashboard and
 * harmonicctl.  An agent is who a request says it is (docs/observability.md,
 * "Agents"): its X-Harmonic-Agent header, else the name of the API key it
 * used, else "anonymous".
 *
 * The table is process-wide (a reload keeps it) and bounded: the first
 * AGENTS_MAX distinct names get an entry of their own for the life of the
 * process; every later name is counted under the one entry "other", so the
 * number of Prometheus series stays bounded whatever clients send.  Entries
 * are never evicted: a counter never goes back, and the per-agent sums
 * (other included) equal the totals of /stats at every instant.
 *
 * Who feeds it: the HTTP front names the agent when a request arrives
 * (agents_arrive, the same moment totals.requests counts it), the request's
 * single close path counts the outcome, the relay the tokens, and sched the
 * queued and in-flight gauges at the places where an item enters or leaves
 * a queue or a slot.
 */
#ifndef HARMONIC_AGENTS_H
#define HARMONIC_AGENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "stats.h"

#define AGENTS_MAX 64         /* named entries; the rest count as "other" */
#define AGENTS_NAME_MAX 128   /* bytes; longer names are cut (on a UTF-8 boundary) */
#define AGENTS_ANONYMOUS "anonymous"
#define AGENTS_OTHER "other"

struct agent {
	char name[AGENTS_NAME_MAX + 1]; /* valid UTF-8 */
	uint64_t requests;              /* arrived (as totals.requests) */
	uint64_t outcome[STATS_OUTCOME_COUNT];
	uint64_t prompt_tokens;         /* completed requests' prompt_eval_count */
	uint64_t eval_tokens;           /* completed requests' eval_count */
	uint64_t streamed_tokens;       /* relayed as they stream, failed ones too */
	int queued;                     /* requests in a tier queue now */
	int in_flight;                  /* requests holding a slot now */
	int live;                       /* request objects attributed here now */
	struct stats_rate rate;         /* streamed tokens per second */
};

/* Empty the table (start, and between unit tests). */
void agents_init(void);

/*
 * A request of agent `name` arrived: its entry (found, created while there
 * is room, else "other"; a name equal to "other" is the overflow entry
 * itself) counts it and one live request.  name is valid UTF-8; it is cut
 * at AGENTS_NAME_MAX bytes.  Never NULL.  The caller hands the entry back
 * with agents_leave when the request object goes away.
 */
struct agent *agents_arrive(const char *name);
/* The request attributed to a (NULL: none) is gone. */
void agents_leave(struct agent *a);
/* Its outcome, once per request (the close path); a may be NULL. */
void agents_outcome(struct agent *a, enum stats_outcome o);
/* n generated tokens relayed now (live rate); a may be NULL. */
void agents_streamed(struct agent *a, uint64_t now_us, uint64_t n);
/* A completed request's final counts; a may be NULL. */
void agents_final(struct agent *a, uint64_t prompt_tokens, uint64_t eval_tokens);

/* Named entries in order of first arrival: agents_at(0 .. agents_count()-1). */
int agents_count(void);
const struct agent *agents_at(int i);
/* The overflow entry (never NULL; counts nothing until the table is full
 * or a client calls itself "other"). */
const struct agent *agents_other(void);

#endif
