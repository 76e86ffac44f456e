/*
 * statsview: renders the scheduler's live counters as the /stats JSON of
 * SPEC section 6.  Reads aggregates only; never walks requests.
 */
#ifndef HARMONIC_STATSVIEW_H
#define HARMONIC_STATSVIEW_H

#include <jansson.h>

struct local_answer;

/* Mark the start of uptime. */
void statsview_start(void);
/* The whole /stats document; caller owns it (json_decref). */
json_t *statsview_json(void);
/* GET /stats as a local answer. */
void statsview_answer(const char *url, struct local_answer *out);

#endif
