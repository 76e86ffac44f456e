/*
 * budget: the memory plan of a validated config, printed as the tables of
 * `harmonicd --check` and `harmonicctl check` (SPEC section 3).
 */
#ifndef HARMONIC_BUDGET_H
#define HARMONIC_BUDGET_H

#include <stdio.h>

struct config;

/* Memory planned for tier t over all hosts, in GB. */
double budget_tier_gb(const struct config *cfg, int t);
/* Memory planned over all hosts, in GB. */
double budget_total_gb(const struct config *cfg);
/* Print per host one row per placement, the host total against its budget,
 * then per-tier totals and the grand total. */
void budget_print(const struct config *cfg, FILE *out);
/* Load FILE, print diagnostics and the budget; the shared body of
 * `harmonicd --check` and `harmonicctl check`.  Returns an exit status:
 * 0, or CONFIG_EXIT_ERROR. */
int budget_check_file(const char *file, FILE *out, FILE *err);

#endif
