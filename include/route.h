/*
 * route: the static route table of SPEC section 4 and its lookup.  The
 * table names the handlers of every local answer, so it belongs to the
 * HTTP front; the types are in endpoint.h.
 */
#ifndef HARMONIC_ROUTE_H
#define HARMONIC_ROUTE_H

#include <stdbool.h>

#include "endpoint.h"

/* The route for url, or NULL (404). */
const struct route *route_find(const char *url);
bool route_allows(const struct route *r, const char *method);

#endif
