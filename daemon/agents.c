/*
 * agents: the bounded, process-wide table of per-agent counters.  See
 * agents.h for what an agent is and who feeds which counter.
 *
 * A lookup is a linear scan of at most AGENTS_MAX names, once per arriving
 * request: cheaper than hashing at this size, and the entries never move,
 * so a request keeps a plain pointer to its entry for its whole life.
 */
#include "agents.h"

#include <assert.h>
#include <string.h>

static struct agent table[AGENTS_MAX];
static int n_agents;
static struct agent other = {.name = AGENTS_OTHER};

void
agents_init(void)
{
	memset(table, 0, sizeof(table));
	memset(&other, 0, sizeof(other));
	n_agents = 0;
	strcpy(other.name, AGENTS_OTHER);
}

/* name cut at AGENTS_NAME_MAX bytes without splitting a UTF-8 sequence;
 * returns its length. */
static size_t
cut(const char *name)
{
	size_t n = strnlen(name, AGENTS_NAME_MAX + 1);

	if (n <= AGENTS_NAME_MAX)
		return n;
	n = AGENTS_NAME_MAX;
	while (n > 0 && ((unsigned char)name[n] & 0xC0u) == 0x80u)
		n--;
	return n;
}

static struct agent *
lookup(const char *name)
{
	size_t n = cut(name);

	if (n == strlen(AGENTS_OTHER) && memcmp(name, AGENTS_OTHER, n) == 0)
		return &other;
	for (int i = 0; i < n_agents; i++)
		if (strncmp(table[i].name, name, n) == 0 && table[i].name[n] == '\0')
			return &table[i];
	if (n_agents == AGENTS_MAX)
		return &other;
	memcpy(table[n_agents].name, name, n);
	table[n_agents].name[n] = '\0';
	return &table[n_agents++];
}

struct agent *
agents_arrive(const char *name)
{
	struct agent *a = lookup(name);

	a->requests++;
	a->live++;
	return a;
}

void
agents_leave(struct agent *a)
{
	if (a == NULL)
		return;
	assert(a->live > 0);
	a->live--;
}

void
agents_outcome(struct agent *a, enum stats_outcome o)
{
	if (a != NULL && o < STATS_OUTCOME_COUNT)
		a->outcome[o]++;
}

void
agents_streamed(struct agent *a, uint64_t now_us, uint64_t n)
{
	if (a == NULL || n == 0)
		return;
	a->streamed_tokens += n;
	stats_rate_add(&a->rate, now_us, n);
}

void
agents_final(struct agent *a, uint64_t prompt_tokens, uint64_t eval_tokens)
{
	if (a == NULL)
		return;
	a->prompt_tokens += prompt_tokens;
	a->eval_tokens += eval_tokens;
}

int
agents_count(void)
{
	return n_agents;
}

const struct agent *
agents_at(int i)
{
	return i >= 0 && i < n_agents ? &table[i] : NULL;
}

const struct agent *
agents_other(void)
{
	return &other;
}
