/*
 * Unit tests of affinity: the key chain of each body shape (a turn's keys
 * contain the previous turn's longest key; system prompts, tools and models
 * tell prefixes apart; the session key wins), the bounded chain of long
 * conversations, the record's longest-prefix lookup, its memory cap under
 * 100k distinct conversations with LRU eviction, and a cost per request
 * that does not grow with the record's size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "affinity.h"
#include "xmalloc.h"

#define MODEL "m:latest"

static json_t *
load(const char *text)
{
	json_error_t err;
	json_t *o = json_loads(text, 0, &err);

	if (o == NULL)
		fail_msg("bad test JSON: %s", err.text);
	return o;
}

static void
derive(const char *text, const char *session, struct affinity_keys *k)
{
	json_t *o = load(text);

	affinity_keys_derive(o, MODEL, session, k);
	json_decref(o);
}

static bool
has_key(const struct affinity_keys *k, uint64_t key)
{
	for (int i = 0; i < k->n; i++)
		if (k->key[i] == key)
			return true;
	return false;
}

/* A chat body: system prompt, then turns user/assistant, n messages after the system one. */
static char *
chat_body(const char *system, int conversation, int n)
{
	json_t *o = json_object(), *msgs = json_array();
	char *s;

	json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", system));
	for (int i = 0; i < n; i++) {
		char text[96];
		snprintf(text, sizeof(text), "conversation %d message %d", conversation, i);
		json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", i % 2 ? "assistant" : "user", "content", text));
	}
	json_object_set_new(o, "model", json_string("m"));
	json_object_set_new(o, "messages", msgs);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static void
test_chat_chain(void **state)
{
	struct affinity_keys t1, t2, other;
	char *b1 = chat_body("You are a coder.", 1, 1), *b2 = chat_body("You are a coder.", 1, 3);
	char *b3 = chat_body("You are a reviewer.", 1, 1);

	derive(b1, NULL, &t1);
	derive(b2, NULL, &t2);
	derive(b3, NULL, &other);
	/* h0 (model + system) and one key per message after it. */
	assert_int_equal(t1.n, 2);
	assert_int_equal(t2.n, 4);
	assert_int_equal(t1.skipped, 0);
	/* Turn 2 extends turn 1: every key of turn 1 is a prefix key of turn 2. */
	assert_true(t1.key[0] == t2.key[0] && t1.key[1] == t2.key[1]);
	assert_true(t2.key[2] != t2.key[1] && t2.key[3] != t2.key[2]);
	/* Another system prompt: nothing shared. */
	assert_false(has_key(&other, t1.key[0]));
	assert_false(has_key(&other, t1.key[1]));
	assert_int_equal(t1.session, 0);
	assert_int_equal(affinity_key_depth(&t2, 0), 1);
	assert_int_equal(affinity_key_depth(&t2, 3), 4);
	free(b1);
	free(b2);
	free(b3);
}

/* Tools and the model are part of the shared prefix; the same messages in
 * Ollama's and OpenAI's chat give the same keys (same rendered prompt). */
static void
test_prefix_parts(void **state)
{
	struct affinity_keys a, b, c;
	json_t *o = load("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");

	derive("{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL, &a);
	derive("{\"model\":\"x\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
	    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"ls\"}}]}", NULL, &b);
	assert_true(a.key[0] != b.key[0]);
	affinity_keys_derive(o, "other:latest", NULL, &c);
	assert_true(a.key[0] != c.key[0] && a.key[1] != c.key[1]);
	json_decref(o);
	derive("{\"model\":\"x\",\"options\":{\"num_ctx\":8},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
	    NULL, &c);
	assert_true(a.key[0] == c.key[0] && a.key[1] == c.key[1]);
	/* Anthropic's system member and a leading system message both go to h0. */
	derive("{\"system\":\"be brief\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL, &b);
	assert_int_equal(b.n, 2);
	assert_true(b.key[0] != a.key[0]);
	/* Responses: instructions + input items. */
	derive("{\"instructions\":\"be brief\",\"input\":[{\"role\":\"user\",\"content\":\"hi\"},"
	    "{\"role\":\"assistant\",\"content\":\"yo\"}]}", NULL, &b);
	assert_int_equal(b.n, 3);
}

/* Prompt bodies: one key per started KiB of the prompt, after h0. */
static void
test_prompt_chunks(void **state)
{
	char *p1 = xmalloc(5 * AFFINITY_CHUNK + 512 + 64), *p2 = xmalloc(8 * AFFINITY_CHUNK + 64);
	struct affinity_keys k1, k2, e;
	json_t *o;

	memset(p1, 'a', 5 * AFFINITY_CHUNK + 512);
	memset(p2, 'a', 8 * AFFINITY_CHUNK);
	o = json_pack("{s:s,s:s%}", "model", "m", "prompt", p1, (size_t)(5 * AFFINITY_CHUNK + 512));
	affinity_keys_derive(o, MODEL, NULL, &k1);
	json_decref(o);
	o = json_pack("{s:s,s:s%}", "model", "m", "prompt", p2, (size_t)(8 * AFFINITY_CHUNK));
	affinity_keys_derive(o, MODEL, NULL, &k2);
	json_decref(o);
	assert_int_equal(k1.n, 1 + 6);
	assert_int_equal(k2.n, 1 + 8);
	for (int i = 0; i <= 5; i++)
		assert_true(k1.key[i] == k2.key[i]); /* h0 and five whole chunks in common */
	assert_true(k1.key[6] != k2.key[6]);         /* a partial chunk is its own prefix */
	derive("{\"model\":\"m\",\"prompt\":\"\"}", NULL, &e);
	assert_int_equal(e.n, 1);
	assert_true(e.key[0] == k1.key[0]);
	derive("{\"model\":\"m\",\"system\":\"s\",\"prompt\":\"\"}", NULL, &e);
	assert_true(e.key[0] != k1.key[0]);
	free(p1);
	free(p2);
}

/* A long conversation keeps its first and last keys; the previous turn's
 * longest key is among the next turn's keys, at its depth. */
static void
test_bounded_chain(void **state)
{
	struct affinity_keys prev, next;
	char *b1 = chat_body("sys", 7, 199), *b2 = chat_body("sys", 7, 201);
	struct affinity *a = affinity_new(1024);
	int depth;

	derive(b1, NULL, &prev);
	derive(b2, NULL, &next);
	assert_int_equal(prev.n, AFFINITY_KEYS_MAX);
	assert_int_equal(prev.skipped, 200 - AFFINITY_KEYS_MAX);
	assert_int_equal(affinity_key_depth(&prev, AFFINITY_KEYS_MAX - 1), 200);
	assert_true(prev.key[0] == next.key[0]);
	assert_true(has_key(&next, prev.key[prev.n - 1]));
	affinity_record(a, &prev, 5, 0);
	assert_int_equal(affinity_lookup(a, &next, &depth), 5);
	assert_int_equal(depth, 200);
	affinity_free(a);
	free(b1);
	free(b2);
}

static void
test_lookup_longest(void **state)
{
	struct affinity *a = affinity_new(4096);
	struct affinity_keys shared, c1t1, c1t2, c2t1, fresh;
	char *b;
	int depth;

	derive("{\"messages\":[{\"role\":\"system\",\"content\":\"S\"}]}", NULL, &shared);
	b = chat_body("S", 1, 1);
	derive(b, NULL, &c1t1);
	free(b);
	b = chat_body("S", 1, 3);
	derive(b, NULL, &c1t2);
	free(b);
	b = chat_body("S", 2, 1);
	derive(b, NULL, &c2t1);
	free(b);
	b = chat_body("T", 3, 1);
	derive(b, NULL, &fresh);
	free(b);

	assert_int_equal(affinity_lookup(a, &c1t1, &depth), 0);
	assert_int_equal(depth, 0);
	affinity_record(a, &c1t1, 1, 0); /* conversation 1 on placement 1 */
	affinity_record(a, &c2t1, 2, 0); /* conversation 2 on placement 2: h0 now says 2 */
	assert_int_equal(affinity_lookup(a, &c1t2, &depth), 1);
	assert_int_equal(depth, 2);      /* its first user message */
	assert_int_equal(affinity_lookup(a, &shared, &depth), 2);
	assert_int_equal(depth, 1);      /* only the shared prefix */
	assert_int_equal(affinity_lookup(a, &fresh, &depth), 0);
	/* A session names the conversation, whatever the content says. */
	affinity_keys_set_session(&fresh, MODEL, "agent-7");
	affinity_record(a, &fresh, 3, 0);
	affinity_keys_set_session(&c1t2, MODEL, "agent-7");
	assert_int_equal(affinity_lookup(a, &c1t2, &depth), 3);
	assert_int_equal(depth, AFFINITY_DEPTH_SESSION);
	affinity_keys_set_session(&c1t2, MODEL, "agent-8"); /* unknown session: the content decides */
	assert_int_equal(affinity_lookup(a, &c1t2, &depth), 1);
	affinity_keys_set_session(&c1t2, "other:latest", "agent-7"); /* sessions are per model */
	assert_true(c1t2.session != fresh.session);
	affinity_free(a);
}

/* 100k distinct conversations of 6 turns through a record capped at 50k
 * entries: it never holds more, its memory stays under the cap, the
 * recent conversations are still known and the old ones forgotten. */
static void
test_memory_cap(void **state)
{
	enum { CONVERSATIONS = 100000, CAP = 50000 };
	struct affinity *a = affinity_new(CAP);
	struct affinity_usage u;
	struct affinity_keys k;
	int depth;

	for (int c = 0; c < CONVERSATIONS; c++) {
		for (int turn = 1; turn <= 6; turn++) {
			char *b = chat_body("shared system prompt", c, 2 * turn - 1);
			derive(b, NULL, &k);
			free(b);
			affinity_record(a, &k, 1 + (uint32_t)(c % 3), (uint64_t)c * 1000);
		}
		if (c % 9973 == 0) {
			affinity_usage(a, (uint64_t)c * 1000, &u);
			assert_true(u.entries <= CAP);
			assert_true(u.bytes <= u.cap_bytes);
		}
	}
	affinity_usage(a, (uint64_t)CONVERSATIONS * 1000, &u);
	print_message("# 100k conversations: %llu entries, %llu bytes of %llu cap, %llu evictions\n",
	    (unsigned long long)u.entries, (unsigned long long)u.bytes, (unsigned long long)u.cap_bytes,
	    (unsigned long long)u.evictions);
	assert_int_equal(u.entries, CAP);
	assert_int_equal(u.max_entries, CAP);
	assert_true(u.bytes <= u.cap_bytes);
	assert_true(u.cap_bytes == affinity_cap_bytes(CAP));
	assert_true(u.cap_bytes < (uint64_t)CAP * 48);
	assert_true(u.evictions > 0);
	/* The last conversation's next turn finds its whole history. */
	{
		char *b = chat_body("shared system prompt", CONVERSATIONS - 1, 13);
		derive(b, NULL, &k);
		free(b);
		assert_int_equal(affinity_lookup(a, &k, &depth), 1 + (CONVERSATIONS - 1) % 3);
		assert_int_equal(depth, 12);
	}
	/* The first one is gone, down to the shared system prompt, which every
	 * conversation refreshed. */
	{
		char *b = chat_body("shared system prompt", 0, 13);
		derive(b, NULL, &k);
		free(b);
		affinity_lookup(a, &k, &depth);
		assert_int_equal(depth, 1);
	}
	affinity_free(a);

	/* The daemon's own cap, documented in docs/routing.md. */
	print_message("# daemon record: %u entries, cap %.1f MiB\n", AFFINITY_MAX_ENTRIES,
	    (double)affinity_cap_bytes(AFFINITY_MAX_ENTRIES) / (1 << 20));
	assert_true(affinity_cap_bytes(AFFINITY_MAX_ENTRIES) <= 40ull << 20);
}

static double
seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Time ROUNDS lookups and records of 13-key conversations in a. */
static double
time_ops(struct affinity *a, int base)
{
	enum { ROUNDS = 20000 };
	struct affinity_keys k;
	double t0 = seconds();
	int depth;

	for (int r = 0; r < ROUNDS; r++) {
		memset(&k, 0, sizeof(k));
		k.n = 13;
		for (int i = 0; i < k.n; i++)
			k.key[i] = (uint64_t)(base + r) * 1000003u + (uint64_t)i * 7919u + 1;
		(void)affinity_lookup(a, &k, &depth);
		affinity_record(a, &k, 1, 0);
	}
	return seconds() - t0;
}

/* The same work with an almost empty record and with one at its cap of a
 * million entries (evicting on every insert).  Verdict with 25x headroom
 * plus 20 ms, the printed ratio is the measurement. */
static void
test_cost_flat(void **state)
{
	struct affinity *small = affinity_new(1u << 20), *full = affinity_new(1u << 20);
	struct affinity_usage u;
	double ts, tf;

	(void)time_ops(full, 0);
	for (int i = 0; i < 5; i++)
		(void)time_ops(full, 20000 * (i + 1)); /* 6 x 20000 x 13 keys > 1M: at the cap */
	affinity_usage(full, 0, &u);
	assert_int_equal(u.entries, 1u << 20);
	ts = time_ops(small, 0);
	tf = time_ops(full, 5000000);
	print_message("# 20000 lookups+records of 13 keys: %.2f ms empty record, %.2f ms full (%.1fx)\n", ts * 1e3,
	    tf * 1e3, tf / ts);
	assert_true(tf < 25 * ts + 0.020);
	affinity_free(small);
	affinity_free(full);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chat_chain),
		cmocka_unit_test(test_prefix_parts),
		cmocka_unit_test(test_prompt_chunks),
		cmocka_unit_test(test_bounded_chain),
		cmocka_unit_test(test_lookup_longest),
		cmocka_unit_test(test_memory_cap),
		cmocka_unit_test(test_cost_flat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
