/*
 * libFuzzer target for tokscan, the NDJSON/SSE line scanner that counts
 * tokens.  The first two bytes choose a split point and a chunk size; the
 * rest is a backend body.  It is fed three ways (whole, split in two at the
 * chosen point, and in small chunks) and every result must be identical:
 * how the network chunks a stream must never change the counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "tokscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every dialect's line function, picked by the first two bytes. */
static const struct dialect *const dialects[] = {
	&dialect_ollama, &dialect_ollama_embed, &dialect_openai, &dialect_openai_embed, &dialect_responses,
	&dialect_anthropic,
};
#define N_DIALECTS (sizeof(dialects) / sizeof(dialects[0]))

struct result {
	size_t fed, finished;
	uint64_t token_lines;
	bool done, error, have_counts;
	int64_t eval_count, prompt_eval_count;
};

static void
collect(struct tokscan *ts, size_t fed, struct result *out)
{
	memset(out, 0, sizeof(*out));
	out->fed = fed;
	out->finished = tokscan_finish(ts);
	out->token_lines = ts->token_lines;
	out->done = ts->done;
	out->error = ts->error;
	out->have_counts = ts->have_counts;
	out->eval_count = ts->eval_count;
	out->prompt_eval_count = ts->prompt_eval_count;
	if (ts->len != 0 || ts->overflow || out->token_lines != out->fed + out->finished)
		abort();
	tokscan_free(ts);
}

/* Feed a heap copy of each piece, so ASan sees an over-read of the piece. */
static size_t
feed(struct tokscan *ts, const uint8_t *p, size_t n)
{
	char *copy = malloc(n ? n : 1);
	size_t t;

	memcpy(copy, p, n);
	t = tokscan_feed(ts, copy, n);
	free(copy);
	return t;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tokscan_line_fn fn;
	struct tokscan ts;
	struct result whole, two, chunks;
	size_t split, chunk, fed, off;

	if (size < 2)
		return 0;
	split = data[0];
	chunk = (size_t)(data[1] % 16) + 1;
	fn = dialects[(data[1] / 16) % N_DIALECTS]->scan_line;
	data += 2;
	size -= 2;
	split = size ? (split * size) / 255 : 0;

	tokscan_init(&ts, fn);
	collect(&ts, feed(&ts, data, size), &whole);

	tokscan_init(&ts, fn);
	fed = feed(&ts, data, split);
	fed += feed(&ts, data + split, size - split);
	collect(&ts, fed, &two);

	tokscan_init(&ts, fn);
	fed = 0;
	for (off = 0; off < size; off += chunk)
		fed += feed(&ts, data + off, size - off < chunk ? size - off : chunk);
	collect(&ts, fed, &chunks);

	if (memcmp(&whole, &two, sizeof(whole)) != 0 || memcmp(&whole, &chunks, sizeof(whole)) != 0)
		abort();
	return 0;
}
