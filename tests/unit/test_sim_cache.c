/*
 * Unit tests of harmonic-sim's prompt cache model (daemon/sim/sim_cache.c):
 * the token rule (deterministic, bytes/4 chunks plus the template markers
 * the sim counts), a conversation's next turn extending the previous
 * turn's sequence, longest-prefix slot choice, least-recently-used ties,
 * nothing cached, at least one token evaluated, busy slots, the cap at the
 * context length and clearing on a load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sim_cache.h"

static void
tokens_of(struct sim_tokens *t, const char *text)
{
	memset(t, 0, sizeof(*t));
	sim_tokens_text(t, text);
}

static void
test_text_tokens_deterministic(void **state)
{
	struct sim_tokens a, b, c;
	(void)state;

	tokens_of(&a, "the quick brown fox jumps");
	tokens_of(&b, "the quick brown fox jumps");
	tokens_of(&c, "the quick brown cat jumps");
	assert_int_equal(a.len, 7);     /* 25 bytes: ceil(25/4), the sim's prompt count */
	assert_int_equal(b.len, a.len);
	assert_memory_equal(a.tok, b.tok, a.len * sizeof(*a.tok));
	assert_int_equal(sim_tokens_common(&a, &c), 4);  /* "brown " differs in chunk 5 */
	sim_tokens_free(&c);
	tokens_of(&c, "");
	assert_int_equal(c.len, 0);
	sim_tokens_text(&c, NULL);
	assert_int_equal(c.len, 0);
	/* A marker is never a text chunk of the same bytes. */
	sim_tokens_marker(&c, "user");
	struct sim_tokens d;
	tokens_of(&d, "user");
	assert_int_equal(c.len, 1);
	assert_int_equal(d.len, 1);
	assert_true(c.tok[0] != d.tok[0]);
	sim_tokens_free(&a);
	sim_tokens_free(&b);
	sim_tokens_free(&c);
	sim_tokens_free(&d);
}

/* The chat layout has exactly the tokens sim_http counts: bytes/4 of every
 * text, tool JSON and earlier call, 4 per message and 6 for the template. */
static void
test_chat_prompt_count(void **state)
{
	(void)state;
	json_t *msgs = json_loads("[{\"role\":\"system\",\"content\":\"be brief\"},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look at this\"}]},"
	    "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"ls\","
	    "\"arguments\":{\"path\":\"/tmp\"}}}]},"
	    "{\"role\":\"tool\",\"content\":\"a b c\"}]", 0, NULL);
	json_t *tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"ls\"}}]", 0, NULL);
	struct sim_tokens a = { 0 }, b = { 0 };
	assert_non_null(msgs);
	assert_non_null(tools);

	sim_cache_chat_prompt(&a, msgs, tools);
	/* "be brief" 2, "look at this" 3, "ls" 1 + {"path":"/tmp"} 4, "a b c" 2,
	 * tool {"name":"ls"} 4; 4 messages * 4 + 6 markers. */
	assert_int_equal(a.len, 2 + 3 + 1 + 4 + 2 + 4 + 4 * 4 + 6);
	sim_cache_chat_prompt(&b, msgs, tools);
	assert_int_equal(sim_tokens_common(&a, &b), a.len);
	assert_int_equal(b.len, a.len);
	json_decref(msgs);
	json_decref(tools);
	sim_tokens_free(&a);
	sim_tokens_free(&b);
}

/* Turn 1's prompt plus its answer is a prefix of turn 2's prompt, which
 * repeats the history: text answers and tool calls alike. */
static void
test_next_turn_extends_sequence(void **state)
{
	(void)state;
	json_t *msgs = json_loads("[{\"role\":\"system\",\"content\":\"you are a careful assistant\"},"
	    "{\"role\":\"user\",\"content\":\"hello there\"}]", 0, NULL);
	struct sim_tokens turn1 = { 0 }, answer = { 0 }, turn2 = { 0 };
	const char *reply = "the model answers with a calm voice.";

	sim_cache_chat_prompt(&turn1, msgs, NULL);
	sim_cache_answer(&answer, NULL, reply);
	size_t prompt1 = turn1.len;
	for (size_t i = 0; i < answer.len; i++)
		sim_tokens_push(&turn1, answer.tok[i]);
	json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "assistant", "content", reply));
	json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", "and then?"));
	sim_cache_chat_prompt(&turn2, msgs, NULL);
	assert_true(turn1.len > prompt1);
	assert_int_equal(sim_tokens_common(&turn1, &turn2), turn1.len);

	/* A tool call answered natively (arguments an object) is repeated on
	 * /v1 as a JSON string: the same tokens. */
	json_t *call = json_pack("{s:s, s:{s:s}}", "name", "Bash", "arguments", "command", "echo hi");
	struct sim_tokens c1 = { 0 }, c2 = { 0 };
	sim_cache_answer(&c1, call, NULL);
	json_t *v1 = json_pack("[{s:s, s:s, s:[{s:{s:s, s:s}}]}]", "role", "assistant", "content", "", "tool_calls",
	    "function", "name", "Bash", "arguments", "{\"command\":\"echo hi\"}");
	sim_cache_chat_prompt(&c2, v1, NULL);
	/* c2: <bos> <tools> </tools> <start> assistant <nl>, then the call. */
	assert_true(c2.len >= 6 + c1.len);
	assert_memory_equal(c2.tok + 6, c1.tok, c1.len * sizeof(*c1.tok));

	json_decref(call);
	json_decref(v1);
	json_decref(msgs);
	sim_tokens_free(&c1);
	sim_tokens_free(&c2);
	sim_tokens_free(&turn1);
	sim_tokens_free(&turn2);
	sim_tokens_free(&answer);
}

static void
test_generate_prompt(void **state)
{
	struct sim_tokens a = { 0 }, b = { 0 }, c = { 0 }, raw = { 0 };
	(void)state;

	sim_cache_generate_prompt(&a, "be brief", "why is the sky blue?", true);
	sim_cache_generate_prompt(&b, "be brief", "why is the sky blue? and the sea?", true);
	sim_cache_generate_prompt(&c, "be verbose", "why is the sky blue?", true);
	sim_cache_generate_prompt(&raw, NULL, "why is the sky blue?", false);
	assert_int_equal(a.len, 5 + 10);        /* 20 bytes, 10 template tokens as counted */
	assert_int_equal(raw.len, 5);
	assert_int_equal(sim_tokens_common(&a, &b), 7 + 5);     /* head, then the shared prompt */
	assert_int_equal(sim_tokens_common(&a, &c), 3);         /* the system token differs */
	sim_tokens_free(&a);
	sim_tokens_free(&b);
	sim_tokens_free(&c);
	sim_tokens_free(&raw);
}

/* A prompt of n tokens whose first `shared` are those of base. */
static void
prompt_like(struct sim_tokens *t, const struct sim_tokens *base, size_t shared, size_t n, uint64_t salt)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < n; i++)
		sim_tokens_push(t, i < shared ? base->tok[i] : 0x1000000 + salt * 100000 + i);
}

static void
test_longest_prefix_choice(void **state)
{
	struct sim_cache c;
	struct sim_tokens base, p[3], q;
	int64_t cached;
	(void)state;

	sim_cache_init(&c, 3, false);
	prompt_like(&base, NULL, 0, 100, 9);
	/* Slot i holds a sequence sharing 10, 60, 30 tokens with base. */
	size_t shares[3] = { 10, 60, 30 };
	for (int i = 0; i < 3; i++) {
		prompt_like(&p[i], &base, shares[i], 80, (uint64_t)i);
		assert_int_equal(sim_cache_acquire(&c, NULL, 0, &cached), i);    /* empty table: in order */
		assert_int_equal(cached, 0);
		sim_cache_store(&c, i, &p[i], 1000);
	}
	for (int i = 0; i < 3; i++)
		sim_cache_release(&c, i);

	prompt_like(&q, &base, 100, 100, 0);
	assert_int_equal(sim_cache_acquire(&c, &q, (int64_t)q.len, &cached), 1);
	assert_int_equal(cached, 60);
	/* Slot 1 busy now: the next best is slot 2. */
	assert_int_equal(sim_cache_acquire(&c, &q, (int64_t)q.len, &cached), 2);
	assert_int_equal(cached, 30);
	assert_int_equal(sim_cache_acquire(&c, &q, (int64_t)q.len, &cached), 0);
	assert_int_equal(cached, 10);
	/* Every slot busy. */
	assert_int_equal(sim_cache_acquire(&c, &q, (int64_t)q.len, &cached), -1);
	assert_int_equal(cached, 0);

	/* Evaluation starts: the slot keeps only the reused prefix, then
	 * holds the new prompt, then grows by the answer. */
	sim_cache_truncate(&c, 1, 60);
	assert_int_equal(c.slots[1].seq.len, 60);
	sim_cache_store(&c, 1, &q, 1000);
	struct sim_tokens more = { 0 };
	sim_tokens_text(&more, "an answer of some length");
	sim_cache_append(&c, 1, &more, 1000);
	assert_int_equal(c.slots[1].seq.len, 100 + more.len);

	sim_tokens_free(&more);
	for (int i = 0; i < 3; i++)
		sim_tokens_free(&p[i]);
	sim_tokens_free(&base);
	sim_tokens_free(&q);
	sim_cache_shutdown(&c);
}

/* Equal prefixes (here: none) go to the slot used least recently;
 * releasing a slot counts as using it. */
static void
test_lru_tie_break(void **state)
{
	struct sim_cache c;
	struct sim_tokens q;
	int64_t cached;
	(void)state;

	sim_cache_init(&c, 3, false);
	prompt_like(&q, NULL, 0, 50, 1);
	assert_int_equal(sim_cache_acquire(&c, &q, 50, &cached), 0);
	assert_int_equal(sim_cache_acquire(&c, &q, 50, &cached), 1);
	assert_int_equal(sim_cache_acquire(&c, &q, 50, &cached), 2);
	sim_cache_release(&c, 2);
	sim_cache_release(&c, 0);
	sim_cache_release(&c, 1);
	/* Nothing stored: every slot matches 0 tokens; 2 was left first. */
	assert_int_equal(sim_cache_acquire(&c, &q, 50, &cached), 2);
	assert_int_equal(cached, 0);
	assert_int_equal(sim_cache_acquire(&c, &q, 50, &cached), 0);
	sim_cache_release(&c, 0);
	sim_cache_release(&c, 2);
	assert_int_equal(sim_cache_acquire(&c, &q, 50, &cached), 1);
	sim_tokens_free(&q);
	sim_cache_shutdown(&c);
}

/* Nothing matches: the whole prompt is evaluated.  Everything matches: the
 * last token is evaluated again.  An empty prompt reuses nothing. */
static void
test_nothing_and_everything(void **state)
{
	struct sim_cache c;
	struct sim_tokens a, b;
	int64_t cached;
	(void)state;

	sim_cache_init(&c, 2, false);
	prompt_like(&a, NULL, 0, 40, 1);
	prompt_like(&b, NULL, 0, 40, 2);
	int s = sim_cache_acquire(&c, &a, 40, &cached);
	sim_cache_store(&c, s, &a, 1000);
	sim_cache_release(&c, s);
	s = sim_cache_acquire(&c, &b, 40, &cached);
	assert_int_equal(cached, 0);
	assert_int_equal(s, 1);         /* no match anywhere: least recently used */
	sim_cache_release(&c, s);
	s = sim_cache_acquire(&c, &a, 40, &cached);
	assert_int_equal(s, 0);
	assert_int_equal(cached, 39);   /* at least one token evaluated */
	sim_cache_release(&c, s);
	s = sim_cache_acquire(&c, &a, 0, &cached);
	assert_int_equal(cached, 0);
	sim_cache_release(&c, s);
	/* A reported length shorter than the sequence bounds the reuse. */
	s = sim_cache_acquire(&c, &a, 20, &cached);
	assert_int_equal(cached, 19);
	sim_cache_release(&c, s);

	/* A load clears every slot. */
	sim_cache_clear(&c);
	s = sim_cache_acquire(&c, &a, 40, &cached);
	assert_int_equal(cached, 0);
	sim_cache_release(&c, s);
	sim_tokens_free(&a);
	sim_tokens_free(&b);
	sim_cache_shutdown(&c);
}

/* A slot holds at most the context length: the rest is evaluated again. */
static void
test_cap_at_context(void **state)
{
	struct sim_cache c;
	struct sim_tokens a, more;
	int64_t cached;
	(void)state;

	sim_cache_init(&c, 1, false);
	prompt_like(&a, NULL, 0, 300, 3);
	prompt_like(&more, NULL, 0, 50, 4);
	int s = sim_cache_acquire(&c, &a, 300, &cached);
	sim_cache_store(&c, s, &a, 256);
	assert_int_equal(c.slots[s].seq.len, 256);
	sim_cache_append(&c, s, &more, 256);
	assert_int_equal(c.slots[s].seq.len, 256);
	sim_cache_release(&c, s);
	s = sim_cache_acquire(&c, &a, 300, &cached);
	assert_int_equal(cached, 256);
	sim_cache_truncate(&c, s, 100);
	sim_cache_store(&c, s, &a, 280);
	sim_cache_append(&c, s, &more, 290);
	assert_int_equal(c.slots[s].seq.len, 290);
	sim_cache_release(&c, s);
	sim_tokens_free(&a);
	sim_tokens_free(&more);
	sim_cache_shutdown(&c);
}

/* Ollama's rule (fork_prefix): a prompt sharing only a system prompt with
 * a conversation's slot does not take that slot while an older one is
 * free; the shared prefix is copied into the older slot.  The
 * conversation's next turn finds its own slot whole. */
static void
test_fork_prefix_keeps_conversations(void **state)
{
	struct sim_cache c;
	struct sim_tokens sys, conv_a, conv_b, next_a;
	int64_t cached;
	(void)state;

	sim_cache_init(&c, 3, true);
	prompt_like(&sys, NULL, 0, 50, 7);                 /* the shared system prompt */
	prompt_like(&conv_a, &sys, 50, 80, 1);              /* conversation A, turn 1 */
	prompt_like(&conv_b, &sys, 50, 80, 2);              /* conversation B, turn 1 */
	prompt_like(&next_a, &conv_a, 80, 120, 3);          /* A, turn 2: extends turn 1 */

	int sa = sim_cache_acquire(&c, &conv_a, 80, &cached);
	assert_int_equal(sa, 0);
	assert_int_equal(cached, 0);
	sim_cache_store(&c, sa, &conv_a, 1000);
	sim_cache_release(&c, sa);

	/* B shares 50 tokens with A's slot: it forks them into a never-used slot. */
	int sb = sim_cache_acquire(&c, &conv_b, 80, &cached);
	assert_int_equal(sb, 1);
	assert_int_equal(cached, 50);
	assert_int_equal(c.slots[1].seq.len, 50);
	assert_int_equal(c.slots[0].seq.len, 80);           /* A's slot untouched */
	sim_cache_store(&c, sb, &conv_b, 1000);
	sim_cache_release(&c, sb);

	/* A's next turn: its slot holds a prefix of it, whole. */
	assert_int_equal(sim_cache_acquire(&c, &next_a, 120, &cached), 0);
	assert_int_equal(cached, 80);
	/* A repeat of B's turn while slot 0 is busy: slot 1 whole. */
	assert_int_equal(sim_cache_acquire(&c, &conv_b, 80, &cached), 1);
	assert_int_equal(cached, 79);
	/* Another prompt on A's prefix: slot 0 is busy, so it forks into slot 2. */
	assert_int_equal(sim_cache_acquire(&c, &next_a, 120, &cached), 2);
	assert_int_equal(cached, 80);
	assert_int_equal(sim_cache_acquire(&c, &next_a, 120, &cached), -1);

	/* Every slot used once: no whole match takes the least recently used
	 * one, even if another slot shares more. */
	sim_cache_release(&c, 1);
	sim_cache_release(&c, 0);
	sim_cache_release(&c, 2);
	assert_int_equal(sim_cache_acquire(&c, &conv_b, 0, &cached), 1);
	sim_cache_release(&c, 1);
	struct sim_tokens other;
	prompt_like(&other, &conv_a, 60, 90, 4);            /* shares 60 with slots 0 and 2 */
	assert_int_equal(sim_cache_acquire(&c, &other, 90, &cached), 0);   /* least recently used */
	assert_int_equal(cached, 60);

	sim_tokens_free(&other);
	sim_tokens_free(&sys);
	sim_tokens_free(&conv_a);
	sim_tokens_free(&conv_b);
	sim_tokens_free(&next_a);
	sim_cache_shutdown(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_tokens_deterministic),
		cmocka_unit_test(test_chat_prompt_count),
		cmocka_unit_test(test_next_turn_extends_sequence),
		cmocka_unit_test(test_generate_prompt),
		cmocka_unit_test(test_longest_prefix_choice),
		cmocka_unit_test(test_lru_tie_break),
		cmocka_unit_test(test_nothing_and_everything),
		cmocka_unit_test(test_cap_at_context),
		cmocka_unit_test(test_fork_prefix_keeps_conversations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
