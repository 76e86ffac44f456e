/*
 * Unit tests of tokscan: the same counts whatever the chunk boundaries
 * (NDJSON and SSE), the OpenAI usage chunk and [DONE], non-stream bodies
 * ended by tokscan_finish, over-long lines skipped with bounded memory,
 * error lines, CRLF line endings and blank lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "dialect.h"
#include "tokscan.h"
#include "xmalloc.h"

/* What a scan ends with; compared between chunkings. */
/* The NDJSON tests and the SSE tests share this file: a line goes to the
 * OpenAI dialect when it is an SSE data line, else to Ollama's. */
static size_t
both_line(struct tokscan *ts, const char *s, size_t n)
{
	if (n >= 5 && memcmp(s, "data:", 5) == 0)
		return dialect_openai.scan_line(ts, s, n);
	return dialect_ollama.scan_line(ts, s, n);
}

static tokscan_line_fn line_fn = both_line;

struct outcome {
	uint64_t token_lines;
	size_t returned;        /* sum of the feed/finish return values */
	bool done, error, have_counts;
	int64_t eval_count, prompt_eval_count;
};

/* Feed s cut at the n_cuts offsets in cuts (ascending), then finish. */
static struct outcome
scan_cut(const char *s, size_t len, const size_t *cuts, int n_cuts)
{
	struct tokscan ts;
	struct outcome o;
	size_t at = 0;

	memset(&o, 0, sizeof(o));
	tokscan_init(&ts, line_fn);
	for (int i = 0; i <= n_cuts; i++) {
		size_t end = i < n_cuts ? cuts[i] : len;
		o.returned += tokscan_feed(&ts, s + at, end - at);
		at = end;
	}
	o.returned += tokscan_finish(&ts);
	o.token_lines = ts.token_lines;
	o.done = ts.done;
	o.error = ts.error;
	o.have_counts = ts.have_counts;
	o.eval_count = ts.eval_count;
	o.prompt_eval_count = ts.prompt_eval_count;
	tokscan_free(&ts);
	return o;
}

static struct outcome
scan_whole(const char *s)
{
	return scan_cut(s, strlen(s), NULL, 0);
}

static void
assert_same(const struct outcome *a, const struct outcome *b)
{
	assert_int_equal(a->token_lines, b->token_lines);
	assert_int_equal(a->returned, b->returned);
	assert_int_equal(a->done, b->done);
	assert_int_equal(a->error, b->error);
	assert_int_equal(a->have_counts, b->have_counts);
	assert_int_equal(a->eval_count, b->eval_count);
	assert_int_equal(a->prompt_eval_count, b->prompt_eval_count);
}

/* Every single cut, every pair of cuts, and byte at a time. */
static void
assert_boundary_invariant(const char *s, const struct outcome *want)
{
	size_t len = strlen(s);
	size_t cuts[2];
	struct outcome got;

	for (size_t i = 0; i <= len; i++) {
		cuts[0] = i;
		got = scan_cut(s, len, cuts, 1);
		assert_same(&got, want);
		for (size_t j = i; j <= len; j++) {
			cuts[1] = j;
			got = scan_cut(s, len, cuts, 2);
			assert_same(&got, want);
		}
	}

	struct tokscan ts;
	size_t returned = 0;
	tokscan_init(&ts, line_fn);
	for (size_t i = 0; i < len; i++)
		returned += tokscan_feed(&ts, s + i, 1);
	returned += tokscan_finish(&ts);
	assert_int_equal(returned, want->returned);
	assert_int_equal(ts.token_lines, want->token_lines);
	assert_int_equal(ts.eval_count, want->eval_count);
	assert_int_equal(ts.prompt_eval_count, want->prompt_eval_count);
	assert_int_equal(ts.done, want->done);
	tokscan_free(&ts);
}

static const char *ndjson =
    "{\"model\":\"qwen3:4b\",\"created_at\":\"2025-01-01T00:00:00Z\",\"response\":\"Hel\",\"done\":false}\n"
    "{\"model\":\"qwen3:4b\",\"created_at\":\"2025-01-01T00:00:00Z\",\"response\":\"lo\",\"done\":false}\n"
    "{\"model\":\"qwen3:4b\",\"created_at\":\"2025-01-01T00:00:00Z\",\"response\":\" world\",\"done\":false}\n"
    "{\"model\":\"qwen3:4b\",\"created_at\":\"2025-01-01T00:00:00Z\",\"response\":\"\",\"done\":true,"
    "\"done_reason\":\"stop\",\"total_duration\":123456,\"prompt_eval_count\":26,\"eval_count\":3,"
    "\"eval_duration\":1000}\n";

static void
test_ndjson_counts(void **state)
{
	struct outcome o = scan_whole(ndjson);

	assert_int_equal(o.token_lines, 3);
	assert_int_equal(o.returned, 3);
	assert_true(o.done);
	assert_false(o.error);
	assert_true(o.have_counts);
	assert_int_equal(o.eval_count, 3);
	assert_int_equal(o.prompt_eval_count, 26);
}

static void
test_ndjson_every_boundary(void **state)
{
	struct outcome want = scan_whole(ndjson);

	assert_boundary_invariant(ndjson, &want);
}

/* The feed return value counts the lines completed by that call only. */
static void
test_feed_returns_new_lines(void **state)
{
	struct tokscan ts;

	tokscan_init(&ts, line_fn);
	assert_int_equal(tokscan_feed(&ts, "{\"response\":\"a\"}\n{\"resp", 23), 1);
	assert_int_equal(tokscan_feed(&ts, "onse\":\"b\"}", 10), 0);
	assert_int_equal(tokscan_feed(&ts, "\n{\"response\":\"c\"}\n", 19), 2);
	assert_int_equal(ts.token_lines, 3);
	assert_int_equal(tokscan_finish(&ts), 0);
	assert_false(ts.done);
	assert_false(ts.have_counts);
	tokscan_free(&ts);
}

static const char *sse =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\" there\"},\"finish_reason\":null}]}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\"}]}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[],"
    "\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2,\"total_tokens\":13}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static void
test_sse_usage_and_done(void **state)
{
	struct outcome o = scan_whole(sse);

	assert_int_equal(o.token_lines, 3); /* three content chunks */
	assert_true(o.done);
	assert_false(o.error);
	assert_true(o.have_counts);
	assert_int_equal(o.eval_count, 2);
	assert_int_equal(o.prompt_eval_count, 11);
}

static void
test_sse_every_boundary(void **state)
{
	struct outcome want = scan_whole(sse);

	assert_boundary_invariant(sse, &want);
}

/* [DONE] alone ends the stream; comments and event: lines are no tokens. */
static void
test_sse_done_without_usage(void **state)
{
	const char *s = ": keep-alive\n"
	                "event: message\n"
	                "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n"
	                "data:[DONE]\n\n";
	struct outcome o = scan_whole(s);

	assert_int_equal(o.token_lines, 1);
	assert_true(o.done);
	assert_false(o.have_counts);
	assert_int_equal(o.eval_count, 0);
}

static void
test_sse_not_done_before_done_marker(void **state)
{
	struct tokscan ts;
	const char *s = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n";

	tokscan_init(&ts, line_fn);
	tokscan_feed(&ts, s, strlen(s));
	assert_false(ts.done);
	tokscan_feed(&ts, "data: [DONE]\n", 13);
	assert_true(ts.done);
	tokscan_free(&ts);
}

/* A non-stream body has no trailing newline: counts only come at finish. */
static void
test_nonstream_native_finish(void **state)
{
	const char *body = "{\"model\":\"qwen3:4b\",\"response\":\"Hello world\",\"done\":true,"
	                   "\"prompt_eval_count\":7,\"eval_count\":42}";
	struct tokscan ts;

	tokscan_init(&ts, line_fn);
	assert_int_equal(tokscan_feed(&ts, body, strlen(body)), 0);
	assert_false(ts.have_counts);
	assert_false(ts.done);
	assert_int_equal(tokscan_finish(&ts), 0);
	assert_true(ts.have_counts);
	assert_true(ts.done);
	assert_int_equal(ts.eval_count, 42);
	assert_int_equal(ts.prompt_eval_count, 7);
	/* A second finish has nothing left to process. */
	assert_int_equal(tokscan_finish(&ts), 0);
	assert_int_equal(ts.eval_count, 42);
	tokscan_free(&ts);
}

static void
test_nonstream_openai_finish(void **state)
{
	const char *body = "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
	                   "\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},\"finish_reason\":\"stop\"}],"
	                   "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":9,\"total_tokens\":14}}";
	struct outcome want;

	line_fn = dialect_openai.scan_line; /* a /v1 body without "data:" */
	want = scan_whole(body);

	assert_true(want.have_counts);
	assert_true(want.done);
	assert_int_equal(want.eval_count, 9);
	assert_int_equal(want.prompt_eval_count, 5);
	assert_int_equal(want.token_lines, 0);
	assert_boundary_invariant(body, &want);
	line_fn = both_line;
}

/* Cached prompt tokens and prompt-eval time where the backend reports
 * them: OpenAI's usage.prompt_tokens_details.cached_tokens, llama-server's
 * timings (cache_n, prompt_ms), Ollama's prompt_eval_duration (ns). */
static void
test_cached_tokens_and_prompt_time(void **state)
{
	const char *openai = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],"
	                     "\"usage\":{\"prompt_tokens\":900,\"completion_tokens\":4,"
	                     "\"prompt_tokens_details\":{\"cached_tokens\":800}},"
	                     "\"timings\":{\"cache_n\":799,\"prompt_n\":100,\"prompt_ms\":61.5}}\n";
	const char *llama = "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],"
	                    "\"timings\":{\"cache_n\":640,\"prompt_n\":12,\"prompt_ms\":8.25}}\n"
	                    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":652,\"completion_tokens\":3}}\n";
	const char *ollama = "{\"done\":true,\"prompt_eval_count\":30,\"prompt_eval_duration\":45000000,\"eval_count\":2}\n";
	struct tokscan ts;

	tokscan_init(&ts, dialect_openai.scan_line);
	assert_int_equal(ts.cached_tokens, -1);
	assert_int_equal(ts.prompt_eval_us, -1);
	tokscan_feed(&ts, openai, strlen(openai));
	assert_int_equal(ts.prompt_eval_count, 900);
	assert_int_equal(ts.cached_tokens, 800); /* usage wins over timings */
	assert_int_equal(ts.prompt_eval_us, 61500);
	tokscan_free(&ts);

	tokscan_init(&ts, dialect_openai.scan_line);
	tokscan_feed(&ts, llama, strlen(llama));
	assert_int_equal(ts.prompt_eval_count, 652);
	assert_int_equal(ts.cached_tokens, 640);
	assert_int_equal(ts.prompt_eval_us, 8250);
	tokscan_free(&ts);

	tokscan_init(&ts, dialect_ollama.scan_line);
	tokscan_feed(&ts, ollama, strlen(ollama));
	assert_int_equal(ts.prompt_eval_count, 30);
	assert_int_equal(ts.cached_tokens, -1); /* Ollama does not say */
	assert_int_equal(ts.prompt_eval_us, 45000);
	tokscan_free(&ts);
}

/* A body without counts still counts as one content line at finish. */
static void
test_finish_counts_last_content_line(void **state)
{
	struct tokscan ts;

	tokscan_init(&ts, line_fn);
	tokscan_feed(&ts, "{\"embeddings\":[[0.1,0.2]]}", 26);
	assert_int_equal(ts.token_lines, 0);
	assert_int_equal(tokscan_finish(&ts), 1);
	assert_int_equal(ts.token_lines, 1);
	assert_false(ts.have_counts);
	tokscan_free(&ts);
}

/* Feed one line of len bytes (plus "\n" if nl) in chunks of chunk bytes. */
static void
feed_long_line(struct tokscan *ts, size_t len, size_t chunk, bool nl)
{
	char *buf = xmalloc(chunk);
	size_t left = len;
	bool first = true;

	while (left > 0) {
		size_t n = left < chunk ? left : chunk;
		memset(buf, 'a', n);
		if (first) {
			/* Looks like a counts line, so a bug would try to parse it. */
			memcpy(buf, "{\"eval_count\":", n < 14 ? n : 14);
			first = false;
		}
		tokscan_feed(ts, buf, n);
		left -= n;
	}
	if (nl)
		tokscan_feed(ts, "\n", 1);
	free(buf);
}

static void
test_long_line_skipped_bounded(void **state)
{
	const char *after = "{\"response\":\"x\"}\n{\"done\":true,\"eval_count\":5,\"prompt_eval_count\":3}\n";
	struct tokscan ts;

	tokscan_init(&ts, line_fn);
	tokscan_feed(&ts, "{\"response\":\"a\"}\n", 18);
	feed_long_line(&ts, 3 * (size_t)TOKSCAN_MAX_LINE + 17, 4096, true);
	assert_true(ts.cap <= TOKSCAN_MAX_LINE);
	assert_false(ts.overflow); /* reset at the newline */
	assert_int_equal(ts.len, 0);
	assert_int_equal(ts.token_lines, 1);
	tokscan_feed(&ts, after, strlen(after));
	assert_int_equal(ts.token_lines, 2);
	assert_true(ts.have_counts);
	assert_int_equal(ts.eval_count, 5);
	assert_int_equal(ts.prompt_eval_count, 3);
	tokscan_free(&ts);
}

/* An over-long unterminated last line is dropped at finish too. */
static void
test_long_line_at_finish(void **state)
{
	struct tokscan ts;

	tokscan_init(&ts, line_fn);
	feed_long_line(&ts, (size_t)TOKSCAN_MAX_LINE + 1, 65536, false);
	assert_true(ts.overflow);
	assert_true(ts.cap <= TOKSCAN_MAX_LINE);
	assert_int_equal(tokscan_finish(&ts), 0);
	assert_int_equal(ts.token_lines, 0);
	assert_false(ts.overflow);
	tokscan_feed(&ts, "{\"response\":\"x\"}", 16);
	assert_int_equal(tokscan_finish(&ts), 1);
	tokscan_free(&ts);
}

/* A line of exactly TOKSCAN_MAX_LINE is kept; one byte more is skipped,
 * whether it arrives split or in a single chunk. */
static void
test_long_line_limit_independent_of_chunking(void **state)
{
	size_t sizes[] = {TOKSCAN_MAX_LINE, TOKSCAN_MAX_LINE + 1};
	size_t chunks[] = {1000, 65536, TOKSCAN_MAX_LINE + 2};

	for (size_t s = 0; s < 2; s++) {
		char *line = xmalloc(sizes[s] + 1);
		/* A content line: {"response":"aaaa...a"} padded to size. */
		memset(line, 'a', sizes[s]);
		memcpy(line, "{\"response\":\"", 13);
		memcpy(line + sizes[s] - 2, "\"}", 2);
		line[sizes[s]] = '\n';
		for (size_t c = 0; c < 3; c++) {
			struct tokscan ts;
			tokscan_init(&ts, line_fn);
			for (size_t at = 0; at < sizes[s] + 1; at += chunks[c]) {
				size_t n = sizes[s] + 1 - at < chunks[c] ? sizes[s] + 1 - at : chunks[c];
				tokscan_feed(&ts, line + at, n);
			}
			tokscan_finish(&ts);
			assert_int_equal(ts.token_lines, s == 0 ? 1 : 0);
			assert_true(ts.cap <= TOKSCAN_MAX_LINE);
			tokscan_free(&ts);
		}
		free(line);
	}
}

static void
test_error_line(void **state)
{
	struct outcome o = scan_whole("{\"error\":\"model 'nope' not found\"}\n");

	assert_true(o.error);
	assert_int_equal(o.token_lines, 0);
	assert_false(o.done);

	/* Mid-stream error after some tokens. */
	o = scan_whole("{\"response\":\"a\",\"done\":false}\n{\"error\":\"an error was encountered while running the model\"}\n");
	assert_true(o.error);
	assert_int_equal(o.token_lines, 1);

	/* OpenAI style, inside an SSE data line, and as a non-stream body. */
	o = scan_whole("data: {\"error\":{\"message\":\"boom\",\"type\":\"api_error\"}}\n\n");
	assert_true(o.error);
	assert_int_equal(o.token_lines, 0);
	o = scan_whole("{\"error\":{\"message\":\"boom\"}}");
	assert_true(o.error);

	/* "error" inside a response string is text, not an error object. */
	o = scan_whole("{\"response\":\"no error here\"}\n");
	assert_false(o.error);
	assert_int_equal(o.token_lines, 1);
}

static char *
lf_to_crlf(const char *s)
{
	size_t n = 0;
	char *out, *p;

	for (const char *q = s; *q; q++)
		n += *q == '\n' ? 2 : 1;
	p = out = xmalloc(n + 1);
	for (const char *q = s; *q; q++) {
		if (*q == '\n')
			*p++ = '\r';
		*p++ = *q;
	}
	*p = '\0';
	return out;
}

static void
test_crlf(void **state)
{
	char *nd = lf_to_crlf(ndjson);
	char *ss = lf_to_crlf(sse);
	struct outcome want_nd = scan_whole(ndjson), want_ss = scan_whole(sse);
	struct outcome got_nd = scan_whole(nd), got_ss = scan_whole(ss);

	assert_same(&got_nd, &want_nd);
	assert_same(&got_ss, &want_ss);
	assert_true(got_ss.done); /* "data: [DONE]\r" is still recognised */
	assert_boundary_invariant(ss, &want_ss);
	free(nd);
	free(ss);
}

static void
test_empty_lines_ignored(void **state)
{
	struct outcome o = scan_whole("\n\n\r\n\n");

	assert_int_equal(o.token_lines, 0);
	assert_false(o.done);
	assert_false(o.have_counts);

	o = scan_whole("\n{\"response\":\"a\"}\n\n\r\n{\"response\":\"b\"}\n\n");
	assert_int_equal(o.token_lines, 2);

	/* finish with nothing pending, or only a lone CR, adds nothing. */
	o = scan_whole("");
	assert_int_equal(o.token_lines, 0);
	o = scan_whole("{\"response\":\"a\"}\n\r");
	assert_int_equal(o.token_lines, 1);
}

/* Non-JSON text lines are not tokens (stray text, proxies' banners). */
static void
test_stray_text_ignored(void **state)
{
	struct outcome o = scan_whole("hello\nretry: 1000\nid: 5\n{\"response\":\"a\"}\n");

	assert_int_equal(o.token_lines, 1);
}

static void
test_free_twice_and_reuse(void **state)
{
	struct tokscan ts;

	tokscan_init(&ts, line_fn);
	tokscan_feed(&ts, "{\"response\":", 12);
	assert_non_null(ts.line);
	tokscan_free(&ts);
	assert_null(ts.line);
	tokscan_free(&ts);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ndjson_counts),
		cmocka_unit_test(test_ndjson_every_boundary),
		cmocka_unit_test(test_feed_returns_new_lines),
		cmocka_unit_test(test_sse_usage_and_done),
		cmocka_unit_test(test_cached_tokens_and_prompt_time),
		cmocka_unit_test(test_sse_every_boundary),
		cmocka_unit_test(test_sse_done_without_usage),
		cmocka_unit_test(test_sse_not_done_before_done_marker),
		cmocka_unit_test(test_nonstream_native_finish),
		cmocka_unit_test(test_nonstream_openai_finish),
		cmocka_unit_test(test_finish_counts_last_content_line),
		cmocka_unit_test(test_long_line_skipped_bounded),
		cmocka_unit_test(test_long_line_at_finish),
		cmocka_unit_test(test_long_line_limit_independent_of_chunking),
		cmocka_unit_test(test_error_line),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_empty_lines_ignored),
		cmocka_unit_test(test_stray_text_ignored),
		cmocka_unit_test(test_free_twice_and_reuse),
	};

	log_init("test_tokscan", LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
