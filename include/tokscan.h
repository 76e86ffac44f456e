/*
 * tokscan: splits a backend response into lines as bytes arrive and hands
 * each complete line to the client dialect's line function (dialect.h),
 * which takes the token counts from it: streams are NDJSON (Ollama /api) or
 * SSE (OpenAI, Anthropic, Responses); a non-stream answer is one JSON body.
 * Only lines that can carry counts are parsed with jansson; every other
 * content line just counts as one streamed token, which feeds live rates.
 * Pure logic: no I/O, no globals.
 */
#ifndef HARMONIC_TOKSCAN_H
#define HARMONIC_TOKSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define TOKSCAN_MAX_LINE (1u << 20) /* longer lines are skipped, not buffered */

struct tokscan;
/* One complete line (no newline, no trailing CR); returns 1 for a token. */
typedef size_t (*tokscan_line_fn)(struct tokscan *ts, const char *s, size_t n);

struct tokscan {
	tokscan_line_fn line_fn;
	char *line;             /* the current partial line; owned */
	size_t len, cap;
	bool overflow;          /* current line exceeded TOKSCAN_MAX_LINE */
	uint64_t token_lines;   /* content lines seen (streamed tokens) */
	bool done;              /* a final chunk ("done":true / finish) was seen */
	bool error;             /* an {"error":...} line was seen */
	bool have_counts;
	int64_t eval_count;     /* generated tokens reported by the backend */
	int64_t prompt_eval_count;
	int64_t cached_tokens;  /* prompt tokens served from the backend's cache; -1: not reported */
	int64_t prompt_eval_us; /* the backend's prompt-eval time; -1: not reported */
	int event;              /* SSE: the dialect's code for the last "event:" line */
};

void tokscan_init(struct tokscan *ts, tokscan_line_fn fn);
/* Feed n bytes; returns how many new token lines they completed. */
size_t tokscan_feed(struct tokscan *ts, const char *buf, size_t n);
/* End of body: process a last line without a newline (non-stream bodies). */
size_t tokscan_finish(struct tokscan *ts);
void tokscan_free(struct tokscan *ts);

/* ---- for the line functions ---- */
/* The JSON object in s (n bytes), or NULL; caller decrefs. */
json_t *tokscan_json(const char *s, size_t n);
/* The backend's own counts (they replace any earlier ones). */
void tokscan_set_counts(struct tokscan *ts, int64_t eval_count, int64_t prompt_eval_count);
/* Integer member key of o, or -1 when absent. */
int64_t tokscan_int(const json_t *o, const char *key);
/* s (n bytes) without a leading "data:" and its spaces, if it has one:
 * returns true and moves *s, *n. */
bool tokscan_sse_data(const char **s, size_t *n);
/* s (n bytes) ends with tail. */
bool tokscan_ends_with(const char *s, size_t n, const char *tail);

#endif
