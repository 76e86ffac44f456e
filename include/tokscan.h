/*
 * tokscan: splits a backend response into lines as bytes arrive and takes
 * the token counts from it.  Streams are NDJSON (Ollama /api) or SSE
 * (OpenAI /v1); a non-stream answer is one JSON body.  Only lines that can
 * carry counts ("eval_count", "usage") are parsed with jansson; every other
 * content line just counts as one streamed token, which feeds live rates.
 * Pure logic: no I/O, no globals.
 */
#ifndef HARMONIC_TOKSCAN_H
#define HARMONIC_TOKSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKSCAN_MAX_LINE (1u << 20) /* longer lines are skipped, not buffered */

struct tokscan {
	char *line;             /* the current partial line; owned */
	size_t len, cap;
	bool overflow;          /* current line exceeded TOKSCAN_MAX_LINE */
	uint64_t token_lines;   /* content lines seen (streamed tokens) */
	bool done;              /* a final chunk ("done":true / finish) was seen */
	bool error;             /* an {"error":...} line was seen */
	bool have_counts;
	int64_t eval_count;     /* generated tokens reported by the backend */
	int64_t prompt_eval_count;
};

void tokscan_init(struct tokscan *ts);
/* Feed n bytes; returns how many new token lines they completed. */
size_t tokscan_feed(struct tokscan *ts, const char *buf, size_t n);
/* End of body: process a last line without a newline (non-stream bodies). */
size_t tokscan_finish(struct tokscan *ts);
void tokscan_free(struct tokscan *ts);

#endif
