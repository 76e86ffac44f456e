/*
 * local: harmonicd's own answers, the handlers of the route table's local
 * routes (route.c).  Each fills out; the caller owns out->body.
 */
#ifndef HARMONIC_LOCAL_H
#define HARMONIC_LOCAL_H

#include "endpoint.h"

void local_root(const char *url, struct local_answer *out);
void local_version(const char *url, struct local_answer *out);
void local_tags(const char *url, struct local_answer *out);
void local_ps(const char *url, struct local_answer *out);
void local_v1_models(const char *url, struct local_answer *out);
void local_v1_model(const char *url, struct local_answer *out);
void local_healthz(const char *url, struct local_answer *out);
void local_readyz(const char *url, struct local_answer *out);

#endif
