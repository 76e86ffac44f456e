/*
 * sim_cache: token sequences, the sim's prompt tokenizer and the per-model
 * slot table of the prompt cache.  See sim_cache.h for the token rule.
 */
#include <stdlib.h>
#include <string.h>

#include "sim_cache.h"
#include "sim_hash.h"
#include "xmalloc.h"

#define CHUNK 4                 /* bytes per text token: the sim counts bytes/4 */


/* FNV-1a over n bytes, from h. */
static uint64_t
fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}

#define FNV_TEXT   0xcbf29ce484222325ULL
#define FNV_MARKER 0x84222325cbf29ce4ULL      /* another start: markers never equal text chunks */

void
sim_tokens_free(struct sim_tokens *t)
{
	free(t->tok);
	memset(t, 0, sizeof(*t));
}

static void
reserve(struct sim_tokens *t, size_t need)
{
	if (need <= t->cap)
		return;
	size_t cap = t->cap ? t->cap : 64;
	while (cap < need)
		cap *= 2;
	t->tok = xreallocarray(t->tok, cap, sizeof(*t->tok));
	t->cap = cap;
}

void
sim_tokens_push(struct sim_tokens *t, uint64_t tok)
{
	reserve(t, t->len + 1);
	t->tok[t->len++] = tok;
}

void
sim_tokens_text(struct sim_tokens *t, const char *text)
{
	size_t n = text ? strlen(text) : 0;
	reserve(t, t->len + (n + CHUNK - 1) / CHUNK);
	for (size_t i = 0; i < n; i += CHUNK)
		t->tok[t->len++] = sim_mix64(fnv(FNV_TEXT, text + i, n - i < CHUNK ? n - i : CHUNK));
}

void
sim_tokens_marker(struct sim_tokens *t, const char *name)
{
	sim_tokens_push(t, sim_mix64(fnv(FNV_MARKER, name ? name : "", name ? strlen(name) : 0)));
}

size_t
sim_tokens_common(const struct sim_tokens *a, const struct sim_tokens *b)
{
	size_t n = a->len < b->len ? a->len : b->len, i = 0;
	while (i < n && a->tok[i] == b->tok[i])
		i++;
	return i;
}

/* ---- prompts ---- */

/* The JSON text the sim counts for a value: compact, as sim_wire_dump. */
static void
json_tokens(struct sim_tokens *t, const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
	sim_tokens_text(t, s ? s : "null");
	free(s);
}

/* A tool call's name and arguments (an object natively, a JSON string on /v1). */
static void
call_tokens(struct sim_tokens *t, const json_t *name, const json_t *args)
{
	sim_tokens_text(t, json_string_value(name));
	if (json_is_string(args))
		sim_tokens_text(t, json_string_value(args));
	else if (args != NULL)
		json_tokens(t, args);
}

/* Mirrors sim_http's parse_messages count: any change there changes this. */
void
sim_cache_chat_prompt(struct sim_tokens *out, json_t *messages, json_t *tools)
{
	size_t i, k;
	json_t *msg, *t, *part, *tc;

	sim_tokens_marker(out, "<bos>");
	sim_tokens_marker(out, "<tools>");
	json_array_foreach(tools, i, t) {
		json_t *fn = json_object_get(t, "function");
		json_tokens(out, fn ? fn : t);
	}
	sim_tokens_marker(out, "</tools>");
	json_array_foreach(messages, i, msg) {
		json_t *content = json_object_get(msg, "content");
		sim_tokens_marker(out, "<start>");
		sim_tokens_marker(out, json_string_value(json_object_get(msg, "role")));
		sim_tokens_marker(out, "<nl>");
		json_array_foreach(content, k, part)
			sim_tokens_text(out, json_string_value(json_object_get(part, "text")));
		sim_tokens_text(out, json_string_value(content));
		json_array_foreach(json_object_get(msg, "tool_calls"), k, tc) {
			json_t *fn = json_object_get(tc, "function");
			call_tokens(out, json_object_get(fn, "name"), json_object_get(fn, "arguments"));
		}
		sim_tokens_marker(out, "<end>");
	}
	sim_tokens_marker(out, "<start>");
	sim_tokens_marker(out, "assistant");
	sim_tokens_marker(out, "<nl>");
}

void
sim_cache_generate_prompt(struct sim_tokens *out, const char *system, const char *prompt, bool templated)
{
	if (templated) {
		static const char *const head[] = { "<bos>", "<start>", "system" };
		for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
			sim_tokens_marker(out, head[i]);
		/* The system text is not counted by the sim; one token stands for it. */
		sim_tokens_push(out, sim_mix64(fnv(FNV_MARKER ^ 1, system ? system : "", system ? strlen(system) : 0)));
		sim_tokens_marker(out, "<end>");
		sim_tokens_marker(out, "<start>");
		sim_tokens_marker(out, "user");
	}
	sim_tokens_text(out, prompt);
	if (templated) {
		sim_tokens_marker(out, "<end>");
		sim_tokens_marker(out, "<start>");
		sim_tokens_marker(out, "assistant");
	}
}

void
sim_cache_answer(struct sim_tokens *out, const json_t *call, const char *text)
{
	if (call != NULL)
		call_tokens(out, json_object_get(call, "name"), json_object_get(call, "arguments"));
	else
		sim_tokens_text(out, text);
}

/* ---- the slot table ---- */

void
sim_cache_init(struct sim_cache *c, int n_slots, bool fork_prefix)
{
	c->fork_prefix = fork_prefix;
	c->n = n_slots > 0 ? n_slots : 1;
	c->slots = xcalloc((size_t)c->n, sizeof(*c->slots));
	c->clock = 0;
}

void
sim_cache_shutdown(struct sim_cache *c)
{
	for (int i = 0; i < c->n; i++)
		sim_tokens_free(&c->slots[i].seq);
	free(c->slots);
	memset(c, 0, sizeof(*c));
}

void
sim_cache_clear(struct sim_cache *c)
{
	for (int i = 0; i < c->n; i++)
		c->slots[i].seq.len = 0;
}

/* Ollama's rule (fork_prefix): see sim_cache.h.  The longest prefix may
 * sit in a busy slot (Ollama copies it all the same); -1 when no slot is free. */
static int
acquire_forking(struct sim_cache *c, const struct sim_tokens *prompt, size_t *common_out)
{
	int longest = -1, oldest = -1;
	size_t best_common = 0;

	for (int i = 0; i < c->n; i++) {
		const struct sim_cache_slot *s = &c->slots[i];
		size_t common = prompt ? sim_tokens_common(&s->seq, prompt) : 0;
		if (longest < 0 || common > best_common) {
			longest = i;
			best_common = common;
		}
		if (!s->busy && (oldest < 0 || s->last_used < c->slots[oldest].last_used))
			oldest = i;
	}
	*common_out = best_common;
	if (longest >= 0 && !c->slots[longest].busy && best_common == c->slots[longest].seq.len)
		return longest;         /* the slot's whole sequence continues here */
	if (oldest < 0)
		return -1;
	if (best_common > 0 && longest != oldest) {
		/* Fork: the oldest slot gets a copy of the shared prefix. */
		struct sim_tokens *dst = &c->slots[oldest].seq;
		reserve(dst, best_common);
		memcpy(dst->tok, c->slots[longest].seq.tok, best_common * sizeof(*dst->tok));
		dst->len = best_common;
	}
	return oldest;
}

/* llama-server's rule: the free slot with the longest common prefix. */
static int
acquire_longest(struct sim_cache *c, const struct sim_tokens *prompt, size_t *common_out)
{
	int best = -1;
	size_t best_common = 0;

	for (int i = 0; i < c->n; i++) {
		const struct sim_cache_slot *s = &c->slots[i];
		if (s->busy)
			continue;
		size_t common = prompt ? sim_tokens_common(&s->seq, prompt) : 0;
		if (best < 0 || common > best_common ||
		    (common == best_common && s->last_used < c->slots[best].last_used)) {
			best = i;
			best_common = common;
		}
	}
	*common_out = best_common;
	return best;
}

int
sim_cache_acquire(struct sim_cache *c, const struct sim_tokens *prompt, int64_t prompt_len, int64_t *cached)
{
	size_t common = 0;
	int best = c->fork_prefix ? acquire_forking(c, prompt, &common) : acquire_longest(c, prompt, &common);

	*cached = 0;
	if (best < 0)
		return -1;
	if (prompt_len > 0)
		*cached = (int64_t)common < prompt_len ? (int64_t)common : prompt_len - 1;
	c->slots[best].busy = true;
	c->slots[best].last_used = ++c->clock;
	return best;
}

void
sim_cache_truncate(struct sim_cache *c, int slot, size_t keep)
{
	struct sim_tokens *seq = &c->slots[slot].seq;
	if (keep < seq->len)
		seq->len = keep;
}

void
sim_cache_store(struct sim_cache *c, int slot, const struct sim_tokens *prompt, size_t cap)
{
	struct sim_tokens *seq = &c->slots[slot].seq;
	size_t n = prompt->len < cap ? prompt->len : cap;
	reserve(seq, n);
	if (n > 0)
		memcpy(seq->tok, prompt->tok, n * sizeof(*seq->tok));
	seq->len = n;
}

void
sim_cache_append(struct sim_cache *c, int slot, const struct sim_tokens *more, size_t cap)
{
	struct sim_tokens *seq = &c->slots[slot].seq;
	size_t room = cap > seq->len ? cap - seq->len : 0;
	size_t n = more->len < room ? more->len : room;
	reserve(seq, seq->len + n);
	if (n > 0)
		memcpy(seq->tok + seq->len, more->tok, n * sizeof(*seq->tok));
	seq->len += n;
}

void
sim_cache_release(struct sim_cache *c, int slot)
{
	c->slots[slot].busy = false;
	c->slots[slot].last_used = ++c->clock;
}
