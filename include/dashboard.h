/*
 * dashboard: GET /dashboard, one self-contained HTML page (no outside
 * URLs, no build step) that polls /stats.
 */
#ifndef HARMONIC_DASHBOARD_H
#define HARMONIC_DASHBOARD_H

struct local_answer;

void dashboard_answer(const char *url, struct local_answer *out);

#endif
