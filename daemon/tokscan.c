/* tokscan: line assembly and token counting for relayed bodies. */
#include "tokscan.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void
tokscan_init(struct tokscan *ts)
{
	memset(ts, 0, sizeof(*ts));
}

void
tokscan_free(struct tokscan *ts)
{
	free(ts->line);
	ts->line = NULL;
	ts->len = ts->cap = 0;
}

static int64_t
int_member(const json_t *o, const char *key, bool *found)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		return 0;
	*found = true;
	return json_integer_value(v);
}

/* Parse a line that may carry counts; returns false if it was not JSON. */
static bool
parse_counts(struct tokscan *ts, const char *s, size_t n)
{
	json_t *o = json_loadb(s, n, JSON_DISABLE_EOF_CHECK, NULL);
	const json_t *usage;
	bool found = false;

	if (!json_is_object(o)) {
		json_decref(o);
		return false;
	}
	if (json_object_get(o, "error") != NULL)
		ts->error = true;
	if (json_is_true(json_object_get(o, "done")))
		ts->done = true;
	int64_t ev = int_member(o, "eval_count", &found);
	int64_t pe = int_member(o, "prompt_eval_count", &found);
	if ((usage = json_object_get(o, "usage")) != NULL && json_is_object(usage)) {
		ev = int_member(usage, "completion_tokens", &found);
		pe = int_member(usage, "prompt_tokens", &found);
		ts->done = true;
	}
	if (found) {
		ts->have_counts = true;
		ts->eval_count = ev;
		ts->prompt_eval_count = pe;
	}
	json_decref(o);
	return true;
}

static bool
ends_with(const char *s, size_t n, const char *tail)
{
	size_t t = strlen(tail);

	return n >= t && memcmp(s + n - t, tail, t) == 0;
}

/* One complete line (without its newline).  Returns 1 if it is a token. */
static size_t
scan_line(struct tokscan *ts, const char *s, size_t n)
{
	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n == 0)
		return 0;
	if (n >= 5 && memcmp(s, "data:", 5) == 0) {
		s += 5;
		n -= 5;
		while (n > 0 && *s == ' ') {
			s++;
			n--;
		}
		if (n >= 6 && memcmp(s, "[DONE]", 6) == 0) {
			ts->done = true;
			return 0;
		}
	} else if (*s != '{') {
		return 0; /* SSE comments, "event:" lines, stray text */
	}
	/* Fast path: an ordinary token chunk ends with its "not done" marker
	 * (Ollama NDJSON, or an OpenAI delta), and carries no counts. */
	if (ends_with(s, n, "\"done\":false}") || ends_with(s, n, "\"finish_reason\":null}]}"))
		return 1;
	if (memmem(s, n, "\"eval_count\"", 12) || memmem(s, n, "\"usage\"", 7) ||
	    memmem(s, n, "\"prompt_eval_count\"", 19) || memmem(s, n, "\"error\"", 7)) {
		parse_counts(ts, s, n);
		return 0;
	}
	if (memmem(s, n, "\"done\":true", 11))
		ts->done = true;
	return 1;
}

static void
append(struct tokscan *ts, const char *buf, size_t n)
{
	if (ts->overflow)
		return;
	if (ts->len + n > TOKSCAN_MAX_LINE) {
		ts->overflow = true;
		ts->len = 0;
		return;
	}
	ts->line = xgrow(ts->line, &ts->cap, ts->len + n, 256);
	memcpy(ts->line + ts->len, buf, n);
	ts->len += n;
}

size_t
tokscan_feed(struct tokscan *ts, const char *buf, size_t n)
{
	size_t tokens = 0;

	while (n > 0) {
		const char *nl = memchr(buf, '\n', n);
		size_t take = nl ? (size_t)(nl - buf) : n;

		if (nl == NULL) {
			append(ts, buf, take);
			break;
		}
		if (ts->len == 0 && !ts->overflow) {
			/* Common case: no copy.  The length limit still applies, so
			 * the result does not depend on how the bytes were chunked. */
			if (take <= TOKSCAN_MAX_LINE)
				tokens += scan_line(ts, buf, take);
		} else {
			append(ts, buf, take);
			if (!ts->overflow)
				tokens += scan_line(ts, ts->line, ts->len);
			ts->len = 0;
			ts->overflow = false;
		}
		buf += take + 1;
		n -= take + 1;
	}
	ts->token_lines += tokens;
	return tokens;
}

size_t
tokscan_finish(struct tokscan *ts)
{
	size_t tokens = 0;

	if (ts->len > 0 && !ts->overflow)
		tokens = scan_line(ts, ts->line, ts->len);
	ts->len = 0;
	ts->overflow = false;
	ts->token_lines += tokens;
	return tokens;
}
