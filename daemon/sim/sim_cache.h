/*
 * sim_cache: harmonic-sim's model of the backends' KV prompt cache (SPEC 9,
 * reference/llamacpp-server.md section 4).  Pure: token sequences, the
 * prompt tokenizer the sim uses, and a table of slots that remember the
 * last sequence each processed; no clock, no I/O.  sim_engine owns one
 * table per model and drives it.
 *
 * The token rule (docs/sim.md, "Prompt cache").  The sim's prompt count is
 * bytes/4 per text plus a fixed template overhead, so a token here is a
 * 4-byte chunk of a text (the last one shorter), hashed to 64 bits, and
 * the template overhead is made of marker tokens (hashed names in a domain
 * of their own).  The sequence length is therefore exactly the
 * prompt_eval_count the sim reports, and equal texts at equal places give
 * equal tokens.  Layouts, in order:
 *  - chat (/api/chat, /v1/chat/completions, the agent APIs): <bos> <tools>
 *    each tool's JSON </tools>, then per message <start> ROLE <nl>, its
 *    content parts, its content, its earlier tool calls (name, then the
 *    arguments' JSON) and <end>, then the generation prompt <start>
 *    assistant <nl>: 6 + 4 per message markers;
 *  - /api/generate: <bos> <start> system SYSTEM <end> <start> user, the
 *    prompt, <end> <start> assistant: 10 markers, SYSTEM being one token
 *    hashed from the whole system text;
 *  - /v1/completions: the prompt alone.
 * An answer extends its slot's sequence with what a client sends back in
 * the next turn: the answer text's chunks, or a tool call's name and
 * arguments' JSON.  So the next turn of a conversation, which repeats the
 * history, finds everything up to the end of the last answer cached.
 */
#ifndef HARMONIC_SIM_CACHE_H
#define HARMONIC_SIM_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A token sequence.  Zero-initialised is empty; the holder frees it
 * (sim_tokens_free). */
struct sim_tokens {
	uint64_t *tok;
	size_t len, cap;
};

void sim_tokens_free(struct sim_tokens *t);
void sim_tokens_push(struct sim_tokens *t, uint64_t tok);
/* Append a text's tokens: ceil(strlen/4) chunks; NULL or "" adds none. */
void sim_tokens_text(struct sim_tokens *t, const char *text);
/* Append one template marker token named name ("<bos>", "user", ...). */
void sim_tokens_marker(struct sim_tokens *t, const char *name);
/* Length of the common prefix of a and b. */
size_t sim_tokens_common(const struct sim_tokens *a, const struct sim_tokens *b);

/* The prompts, laid out as in the header comment.  Append to out. */
void sim_cache_chat_prompt(struct sim_tokens *out, json_t *messages, json_t *tools);
void sim_cache_generate_prompt(struct sim_tokens *out, const char *system, const char *prompt, bool templated);
/* An answer as the next turn repeats it: a tool call {name, arguments}
 * when call is not NULL, else the text. */
void sim_cache_answer(struct sim_tokens *out, const json_t *call, const char *text);

/* One slot of a model: the sequence it last processed. */
struct sim_cache_slot {
	struct sim_tokens seq;
	bool busy;
	uint64_t last_used;     /* table clock at its last acquire; 0 = never */
};

/* A model's slots.  sim_cache_init/sim_cache_shutdown pair; the table owns
 * the slots and their sequences. */
struct sim_cache {
	struct sim_cache_slot *slots;
	int n;
	uint64_t clock;
	bool fork_prefix;       /* Ollama's multi-slot rule (sim_cache_acquire) */
};

/* fork_prefix: choose slots as Ollama's runner does with several slots
 * (false: as llama-server does). */
void sim_cache_init(struct sim_cache *c, int n_slots, bool fork_prefix);
void sim_cache_shutdown(struct sim_cache *c);
/* Forget every slot's sequence (a model load: the KV cache is new). */
void sim_cache_clear(struct sim_cache *c);

/*
 * Take a free slot for prompt (NULL = no cacheable prompt): the one whose
 * sequence shares the longest prefix with prompt, ties to the least
 * recently used (llama-server).  With fork_prefix (Ollama's runner with
 * more than one slot, findBestCacheSlot): that slot only when its whole
 * sequence is a prefix of prompt (a conversation's next turn); otherwise
 * the least recently used free slot (never used ones first), into which
 * the longest common prefix is copied, so a prompt that shares only a
 * system prompt with a conversation does not overwrite that conversation.
 * *cached gets the tokens that need no evaluation: that
 * prefix, but at least one token of a non-empty prompt_len is evaluated,
 * as llama-server and Ollama's runner do; prompt_len is the prompt's
 * reported length (it bounds *cached).  Returns the slot index, or -1 when
 * every slot is busy.  O(slots * common prefix).
 */
int sim_cache_acquire(struct sim_cache *c, const struct sim_tokens *prompt, int64_t prompt_len, int64_t *cached);
/* The slot starts evaluating: its sequence keeps only the first keep tokens. */
void sim_cache_truncate(struct sim_cache *c, int slot, size_t keep);
/* The slot holds prompt now (after its evaluation), at most cap tokens. */
void sim_cache_store(struct sim_cache *c, int slot, const struct sim_tokens *prompt, size_t cap);
/* Append generated tokens to the slot's sequence, at most cap in all. */
void sim_cache_append(struct sim_cache *c, int slot, const struct sim_tokens *more, size_t cap);
void sim_cache_release(struct sim_cache *c, int slot);

#endif
