/*
 * autotune: drives the autoslot controller of every parallel = "auto"
 * placement from one loop timer.  Each tick diffs the placement's counters
 * (streamed tokens, completions, failures, 503 back-offs) into a sample,
 * applies the controller's new limit to the placement's slots, dispatches
 * when the limit rose, and logs every change with its reason.
 */
#ifndef HARMONIC_AUTOTUNE_H
#define HARMONIC_AUTOTUNE_H

#define AUTOTUNE_TICK_US 250000u /* sample period (real time) */

/* Start the timer (after sched_init); it follows reloads by itself. */
void autotune_init(void);
void autotune_shutdown(void);

#endif
