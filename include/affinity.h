/*
 * affinity: which placement last served which prompt prefix (SPEC 5,
 * docs/routing.md).  Pure logic: no I/O, no clock of its own.
 *
 * Keys.  A request's prompt is a chain of cumulative 64-bit hashes, one per
 * prefix a backend could have cached: for chat-shaped bodies (Ollama
 * /api/chat, OpenAI /v1/chat/completions, Anthropic /v1/messages,
 * Responses /v1/responses) h0 = hash(model key, tools, system prompt and
 * instructions, leading system/developer messages), then h_i = hash(h_{i-1},
 * message i); for prompt-shaped bodies (/api/generate, /v1/completions)
 * h0 = hash(model key, system) and then one key per AFFINITY_CHUNK bytes of
 * the prompt (the last, partial chunk included).  A chain longer than
 * AFFINITY_KEYS_MAX keeps its first AFFINITY_KEYS_HEAD keys and its last
 * ones: a conversation's next turn extends the previous turn's whole
 * message list, so the previous turn's longest key stays among the new
 * turn's keys as long as a turn adds fewer than
 * AFFINITY_KEYS_MAX - AFFINITY_KEYS_HEAD messages.  An X-Harmonic-Session
 * adds a session key that takes precedence over the chain.
 *
 * Record.  A hash table with chaining and an LRU list over a pool of
 * entries that grows up to a fixed number of entries; then the least
 * recently used entry is reused.  Lookup and record cost O(keys) whatever
 * the traffic; memory never exceeds affinity_cap_bytes().
 */
#ifndef HARMONIC_AFFINITY_H
#define HARMONIC_AFFINITY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define AFFINITY_KEYS_MAX 64
#define AFFINITY_KEYS_HEAD 16          /* the first keys kept of a longer chain */
#define AFFINITY_CHUNK 1024            /* bytes of a prompt per key */
#define AFFINITY_MAX_ENTRIES (1u << 20) /* the daemon's record: 1M prefixes, 36 MiB at most */
#define AFFINITY_DEPTH_SESSION 1000000  /* the depth lookup reports for a session match */

struct affinity_keys {
	uint64_t session;                   /* 0: no X-Harmonic-Session */
	int n;                              /* keys kept, shortest prefix first */
	int skipped;                        /* middle keys dropped (chain longer than the max) */
	uint64_t key[AFFINITY_KEYS_MAX];
};

/* The depth (1 = h0) of out->key[i] in the whole chain. */
int affinity_key_depth(const struct affinity_keys *k, int i);

/*
 * Derive the keys of a parsed request body o (not modified) for model_key (the model's
 * lookup key, so the same prompt on two models never shares a key) into
 * out.  session is the X-Harmonic-Session value or NULL.  Any JSON object
 * gives at least h0.
 */
void affinity_keys_derive(json_t *o, const char *model_key, const char *session,
    struct affinity_keys *out);
/* Set (or with NULL clear) the session key of k. */
void affinity_keys_set_session(struct affinity_keys *k, const char *model_key, const char *session);

/* ---- the record ---- */

struct affinity;

struct affinity_usage {
	uint64_t entries;       /* prefixes recorded now */
	uint64_t max_entries;
	uint64_t bytes;         /* allocated now */
	uint64_t cap_bytes;     /* the most it may ever allocate */
	uint64_t evictions;     /* entries reused for a newer prefix */
	double oldest_s;        /* age of the least recently used entry at now_us; 0 when empty */
};

/* A record of at most max_entries prefixes (>= AFFINITY_KEYS_MAX).  Caller frees. */
struct affinity *affinity_new(uint32_t max_entries);
void affinity_free(struct affinity *a);
/*
 * The placement of k's longest known prefix (its session key first), 0 when
 * none is known; *depth is the matched key's depth in the chain (1: only
 * h0, the prefix many conversations share; AFFINITY_DEPTH_SESSION for the
 * session key; 0 when none).
 */
uint32_t affinity_lookup(const struct affinity *a, const struct affinity_keys *k, int *depth);
/* Every key of k (and its session key) now belongs to placement (> 0), used at now_us. */
void affinity_record(struct affinity *a, const struct affinity_keys *k, uint32_t placement, uint64_t now_us);
void affinity_usage(const struct affinity *a, uint64_t now_us, struct affinity_usage *out);
/* Memory the record may reach with max_entries, for documentation and /stats. */
uint64_t affinity_cap_bytes(uint32_t max_entries);

#endif
