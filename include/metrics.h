/*
 * metrics: GET /metrics in the Prometheus text exposition format
 * (harmonic_ prefix), rendered from the scheduler's counters.
 */
#ifndef HARMONIC_METRICS_H
#define HARMONIC_METRICS_H

struct local_answer;

void metrics_answer(const char *url, struct local_answer *out);

#endif
