/*
 * affinity: prompt-prefix keys and the bounded record of which placement
 * served them.  See affinity.h and docs/routing.md.
 */
#include "affinity.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

/* ---- hashing ---- */

#define K1 0x9fb21c651e98df25ull
#define K2 0xc2b2ae3d27d4eb4full

/* Tags keep different kinds of input apart ("a" the string vs "a" a key). */
enum {
	T_MODEL = 1, T_TOOLS, T_SYSTEM, T_MSG, T_CHUNK, T_PROMPT, T_SESSION,
	T_OBJ, T_ARR, T_END, T_KEY, T_STR, T_INT, T_REAL, T_TRUE, T_FALSE, T_NULL,
};

static uint64_t
finalize(uint64_t x)
{
	x ^= x >> 31;
	x *= K1;
	x ^= x >> 29;
	x *= K2;
	x ^= x >> 32;
	return x;
}

/* 8 bytes a step; good enough to tell prompts apart, not a defence against
 * a client that crafts collisions (it could only pick its own replica). */
static uint64_t
hash_bytes(const char *s, size_t n, uint64_t seed)
{
	uint64_t h = seed * K2 ^ (uint64_t)n * K1, w;

	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		h ^= w * K1;
		h = ((h << 27) | (h >> 37)) * K2 + 0x52dce729u;
	}
	w = 0;
	memcpy(&w, s, n);
	h ^= w * K2;
	return finalize(h);
}

/* Chain v onto h. */
static uint64_t
step(uint64_t h, uint64_t v)
{
	return finalize(h * K1 + v + 0x2545f4914f6cdd1dull);
}

/* The value's structure and content in jansson's (insertion) order: a
 * client resending its history resends the same bytes. */
static uint64_t
value_hash(uint64_t h, json_t *v)
{
	const char *key;
	json_t *m;
	size_t i;
	double d;
	uint64_t bits;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		h = step(h, T_OBJ);
		json_object_foreach(v, key, m) {
			h = step(h, hash_bytes(key, strlen(key), T_KEY));
			h = value_hash(h, m);
		}
		return step(h, T_END);
	case JSON_ARRAY:
		h = step(h, T_ARR);
		json_array_foreach(v, i, m)
			h = value_hash(h, m);
		return step(h, T_END);
	case JSON_STRING:
		return step(h, hash_bytes(json_string_value(v), json_string_length(v), T_STR));
	case JSON_INTEGER:
		return step(step(h, T_INT), (uint64_t)json_integer_value(v));
	case JSON_REAL:
		d = json_real_value(v);
		memcpy(&bits, &d, sizeof(bits));
		return step(step(h, T_REAL), bits);
	case JSON_TRUE:
		return step(h, T_TRUE);
	case JSON_FALSE:
		return step(h, T_FALSE);
	default:
		return step(h, T_NULL);
	}
}

/* ---- keys ---- */

#define TAIL (AFFINITY_KEYS_MAX - AFFINITY_KEYS_HEAD)

/* Append the chain's next key; past the max, the tail is a ring of the
 * last TAIL keys (put in order by finish). */
static void
push(struct affinity_keys *k, int *total, uint64_t h)
{
	if (h == 0)
		h = 1; /* 0 marks an empty slot of the record */
	if (*total < AFFINITY_KEYS_MAX)
		k->key[*total] = h;
	else
		k->key[AFFINITY_KEYS_HEAD + (*total - AFFINITY_KEYS_HEAD) % TAIL] = h;
	(*total)++;
}

static void
finish(struct affinity_keys *k, int total)
{
	uint64_t tail[TAIL];
	int start;

	if (total <= AFFINITY_KEYS_MAX) {
		k->n = total;
		return;
	}
	/* The oldest kept tail key, chain index total - TAIL, sits here: */
	start = (total - TAIL - AFFINITY_KEYS_HEAD) % TAIL;
	for (int j = 0; j < TAIL; j++)
		tail[j] = k->key[AFFINITY_KEYS_HEAD + (start + j) % TAIL];
	memcpy(&k->key[AFFINITY_KEYS_HEAD], tail, sizeof(tail));
	k->n = AFFINITY_KEYS_MAX;
	k->skipped = total - AFFINITY_KEYS_MAX;
}

int
affinity_key_depth(const struct affinity_keys *k, int i)
{
	return i < AFFINITY_KEYS_HEAD ? i + 1 : i + 1 + k->skipped;
}

/* System and developer messages at the head of a conversation belong to
 * the shared prefix h0, like Anthropic's `system` and Responses'
 * `instructions`. */
static bool
is_system_message(const json_t *m)
{
	const char *role = json_string_value(json_object_get(m, "role"));

	return role != NULL && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0);
}

void
affinity_keys_set_session(struct affinity_keys *k, const char *model_key, const char *session)
{
	uint64_t h;

	if (session == NULL || *session == '\0') {
		k->session = 0;
		return;
	}
	h = step(hash_bytes(model_key, strlen(model_key), T_SESSION), hash_bytes(session, strlen(session), T_SESSION));
	k->session = h != 0 ? h : 1;
}

void
affinity_keys_derive(json_t *o, const char *model_key, const char *session, struct affinity_keys *out)
{
	uint64_t h = hash_bytes(model_key, strlen(model_key), T_MODEL);
	json_t *v, *msgs;
	int total = 0;

	memset(out, 0, sizeof(*out));
	if ((v = json_object_get(o, "tools")) != NULL)
		h = value_hash(step(h, T_TOOLS), v);
	if ((v = json_object_get(o, "system")) != NULL)          /* Anthropic; /api/generate */
		h = value_hash(step(h, T_SYSTEM), v);
	if ((v = json_object_get(o, "instructions")) != NULL)    /* Responses */
		h = value_hash(step(h, T_SYSTEM), v);
	msgs = json_object_get(o, "messages");
	if (!json_is_array(msgs))
		msgs = json_object_get(o, "input");                   /* Responses */
	if (json_is_array(msgs)) {
		size_t i = 0, n = json_array_size(msgs);
		for (; i < n && is_system_message(json_array_get(msgs, i)); i++)
			h = value_hash(step(h, T_SYSTEM), json_array_get(msgs, i));
		push(out, &total, h);
		for (; i < n; i++) {
			h = value_hash(step(h, T_MSG), json_array_get(msgs, i));
			push(out, &total, h);
		}
	} else {
		v = json_is_string(msgs) ? msgs : json_object_get(o, "prompt");
		push(out, &total, h);
		if (json_is_string(v)) {
			const char *s = json_string_value(v);
			size_t len = json_string_length(v);
			for (size_t off = 0; off < len; off += AFFINITY_CHUNK) {
				size_t n = len - off < AFFINITY_CHUNK ? len - off : AFFINITY_CHUNK;
				h = step(h, hash_bytes(s + off, n, T_CHUNK));
				push(out, &total, h);
			}
		} else if (v != NULL) {
			push(out, &total, value_hash(step(h, T_PROMPT), v)); /* token arrays, lists: one key */
		}
	}
	finish(out, total);
	affinity_keys_set_session(out, model_key, session);
}

/* ---- the record ---- */

#define NIL 0u
#define FIRST_ALLOC 1024u

struct entry {
	uint64_t key;
	uint32_t placement;
	uint32_t used_s;        /* last record, seconds of the caller's clock */
	uint32_t chain;         /* next in its bucket */
	uint32_t prev, next;    /* LRU: prev is more recent */
};

struct affinity {
	struct entry *e;        /* pool; e[0] is NIL; owned */
	uint32_t n_alloc;       /* entries allocated, NIL included */
	uint32_t n_used;        /* entries handed out, NIL included */
	uint32_t max_entries;
	uint32_t *bucket;       /* heads of the chains; owned */
	uint32_t mask;          /* buckets - 1 */
	uint32_t head, tail;    /* most and least recently used */
	uint64_t evictions;
};

static uint32_t
buckets_for(uint32_t max_entries)
{
	uint32_t b = 1;

	while (b < max_entries)
		b <<= 1;
	return b;
}

uint64_t
affinity_cap_bytes(uint32_t max_entries)
{
	return sizeof(struct affinity) + ((uint64_t)max_entries + 1) * sizeof(struct entry) +
	    (uint64_t)buckets_for(max_entries) * sizeof(uint32_t);
}

struct affinity *
affinity_new(uint32_t max_entries)
{
	struct affinity *a = xcalloc(1, sizeof(*a));

	assert(max_entries >= 2 * AFFINITY_KEYS_MAX);
	a->max_entries = max_entries;
	/* Buckets for the cap at once (4 bytes each, untouched pages cost
	 * nothing): no rehash ever, so no request pays for one. */
	a->mask = buckets_for(max_entries) - 1;
	a->bucket = xcalloc((size_t)a->mask + 1, sizeof(uint32_t));
	a->n_alloc = FIRST_ALLOC < max_entries + 1 ? FIRST_ALLOC : max_entries + 1;
	a->e = xcalloc(a->n_alloc, sizeof(struct entry));
	a->n_used = 1;
	return a;
}

void
affinity_free(struct affinity *a)
{
	if (a == NULL)
		return;
	free(a->e);
	free(a->bucket);
	free(a);
}

static uint32_t
find(const struct affinity *a, uint64_t key)
{
	uint32_t i = a->bucket[key & a->mask];

	while (i != NIL && a->e[i].key != key)
		i = a->e[i].chain;
	return i;
}

static void
lru_unlink(struct affinity *a, uint32_t i)
{
	struct entry *x = &a->e[i];

	if (x->prev != NIL)
		a->e[x->prev].next = x->next;
	else
		a->head = x->next;
	if (x->next != NIL)
		a->e[x->next].prev = x->prev;
	else
		a->tail = x->prev;
	x->prev = x->next = NIL;
}

static void
lru_push(struct affinity *a, uint32_t i)
{
	a->e[i].prev = NIL;
	a->e[i].next = a->head;
	if (a->head != NIL)
		a->e[a->head].prev = i;
	a->head = i;
	if (a->tail == NIL)
		a->tail = i;
}

static void
bucket_unlink(struct affinity *a, uint32_t i)
{
	uint32_t *p = &a->bucket[a->e[i].key & a->mask];

	while (*p != i)
		p = &a->e[*p].chain;
	*p = a->e[i].chain;
}

/* A free entry: a new one while under the cap, else the least recently
 * used one, taken out of its chain. */
static uint32_t
take_entry(struct affinity *a)
{
	uint32_t i;

	if (a->n_used <= a->max_entries) {
		if (a->n_used == a->n_alloc) {
			uint32_t n = a->n_alloc * 2 < a->max_entries + 1 ? a->n_alloc * 2 : a->max_entries + 1;
			a->e = xreallocarray(a->e, n, sizeof(struct entry));
			memset(&a->e[a->n_alloc], 0, (size_t)(n - a->n_alloc) * sizeof(struct entry));
			a->n_alloc = n;
		}
		return a->n_used++;
	}
	i = a->tail;
	lru_unlink(a, i);
	bucket_unlink(a, i);
	a->evictions++;
	return i;
}

static void
record_key(struct affinity *a, uint64_t key, uint32_t placement, uint32_t now_s)
{
	uint32_t i = find(a, key);

	if (i == NIL) {
		uint32_t *b;
		i = take_entry(a);
		b = &a->bucket[key & a->mask]; /* after take_entry: it may unlink from this chain */
		a->e[i].key = key;
		a->e[i].chain = *b;
		*b = i;
	} else {
		lru_unlink(a, i);
	}
	a->e[i].placement = placement;
	a->e[i].used_s = now_s;
	lru_push(a, i);
}

uint32_t
affinity_lookup(const struct affinity *a, const struct affinity_keys *k, int *depth)
{
	uint32_t i;

	*depth = 0;
	if (k->session != 0 && (i = find(a, k->session)) != NIL) {
		*depth = AFFINITY_DEPTH_SESSION;
		return a->e[i].placement;
	}
	for (int j = k->n - 1; j >= 0; j--) {
		if ((i = find(a, k->key[j])) != NIL) {
			*depth = affinity_key_depth(k, j);
			return a->e[i].placement;
		}
	}
	return 0;
}

void
affinity_record(struct affinity *a, const struct affinity_keys *k, uint32_t placement, uint64_t now_us)
{
	uint32_t now_s = (uint32_t)(now_us / 1000000u);

	assert(placement != 0);
	/* Shortest first: the longest prefix ends up the most recent. */
	for (int j = 0; j < k->n; j++)
		record_key(a, k->key[j], placement, now_s);
	if (k->session != 0)
		record_key(a, k->session, placement, now_s);
}

void
affinity_usage(const struct affinity *a, uint64_t now_us, struct affinity_usage *out)
{
	uint32_t now_s = (uint32_t)(now_us / 1000000u);

	out->entries = a->n_used - 1;
	out->max_entries = a->max_entries;
	out->bytes = sizeof(*a) + (uint64_t)a->n_alloc * sizeof(struct entry) + ((uint64_t)a->mask + 1) * sizeof(uint32_t);
	out->cap_bytes = affinity_cap_bytes(a->max_entries);
	out->evictions = a->evictions;
	out->oldest_s = a->tail != NIL && now_s >= a->e[a->tail].used_s ? (double)(now_s - a->e[a->tail].used_s) : 0;
}
