/* tokscan: line assembly and token counting for relayed bodies. */
#include "tokscan.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void
tokscan_init(struct tokscan *ts, tokscan_line_fn fn)
{
	memset(ts, 0, sizeof(*ts));
	ts->line_fn = fn;
	ts->cached_tokens = ts->prompt_eval_us = -1;
}

void
tokscan_free(struct tokscan *ts)
{
	free(ts->line);
	ts->line = NULL;
	ts->len = ts->cap = 0;
}

json_t *
tokscan_json(const char *s, size_t n)
{
	json_t *o = json_loadb(s, n, JSON_DISABLE_EOF_CHECK, NULL);

	if (!json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

void
tokscan_set_counts(struct tokscan *ts, int64_t eval_count, int64_t prompt_eval_count)
{
	ts->have_counts = true;
	ts->eval_count = eval_count > 0 ? eval_count : 0;
	ts->prompt_eval_count = prompt_eval_count > 0 ? prompt_eval_count : 0;
}

int64_t
tokscan_int(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

bool
tokscan_sse_data(const char **s, size_t *n)
{
	if (*n < 5 || memcmp(*s, "data:", 5) != 0)
		return false;
	*s += 5;
	*n -= 5;
	while (*n > 0 && **s == ' ') {
		(*s)++;
		(*n)--;
	}
	return true;
}

bool
tokscan_ends_with(const char *s, size_t n, const char *tail)
{
	size_t t = strlen(tail);

	return n >= t && memcmp(s + n - t, tail, t) == 0;
}

/* One complete line: strip the CR of CRLF, skip empty lines (SSE event
 * separators), hand the rest to the dialect. */
static size_t
scan_line(struct tokscan *ts, const char *s, size_t n)
{
	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n == 0)
		return 0;
	return ts->line_fn(ts, s, n);
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
