/*
 * compat_queue: glibc's <sys/queue.h> plus the _SAFE iterators it lacks.
 * Every list in harmonicd is a TAILQ from here.
 */
#ifndef HARMONIC_COMPAT_QUEUE_H
#define HARMONIC_COMPAT_QUEUE_H

#include <sys/queue.h>

#ifndef TAILQ_FOREACH_SAFE
/* Iterate while allowing the current element to be removed. */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                    \
	for ((var) = TAILQ_FIRST(head);                               \
	     (var) && ((tvar) = TAILQ_NEXT(var, field), 1);           \
	     (var) = (tvar))
#endif

#endif
