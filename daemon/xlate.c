/*
 * xlate: Ollama-native requests for OpenAI-compatible backends, and the
 * answers back (SPEC 10; llamacpp-server.md 7.1/7.2).  Pure: the caller
 * does the I/O and passes the clocks in.
 *
 * Request mapping (Ollama -> backend)                      L = llamacpp, G = generic (vLLM)
 * ------------------------------------------------------------------------------------------
 * /api/chat                     -> POST /v1/chat/completions
 * /api/generate                 -> /v1/chat/completions, messages [system?, user(prompt+images)];
 *   raw:true or a suffix        -> /v1/completions {prompt, suffix?} (no template, no images: 400)
 * /api/embed {input,dimensions} -> /v1/embeddings {input, dimensions?, encoding_format:"float"}
 * /api/embeddings {prompt}      -> /v1/embeddings {input: prompt, encoding_format:"float"}
 * model                         -> model (harmonicd has already set the backend's name)
 * messages[].role/content       -> same (role lower-cased)
 * messages[].images (base64)    -> content parts [{text}, {image_url:{url:"data:<mime>;base64,.."}}]
 *                                  (mime from the magic bytes: png, jpeg, gif, webp; else png)
 * assistant thinking            -> reasoning_content (L); dropped (G)
 * assistant tool_calls          -> [{id (given, else call_N), type:"function",
 *                                    function:{name, arguments:"<JSON text>"}}]
 * tool message (tool_name)      -> role tool, name, tool_call_id (given, else the oldest unanswered
 *                                  call of that name from the last assistant turn)
 * tools                         -> tools (Ollama's shape is OpenAI's)
 * format "json" / {schema}      -> response_format {type:json_object} /
 *                                  {type:json_schema, json_schema:{name:"schema", schema}}
 * think true/false              -> chat_template_kwargs.enable_thinking (L); dropped (G: the key
 *                                  is not part of the OpenAI API; vLLM would take it, a strict
 *                                  server would refuse it)
 * think "low|medium|high|max"   -> reasoning_effort (max -> high), + enable_thinking true (L)
 * stream (default true)         -> stream; when true also stream_options {include_usage:true}
 * options.num_predict           -> max_tokens (negative: omitted, i.e. unlimited)
 * options.temperature, top_p, top_k, min_p, presence_penalty, frequency_penalty -> same names
 * options.seed                  -> seed (negative = random: omitted)
 * options.stop (array|string)   -> stop (array)
 * options.repeat_penalty        -> repeat_penalty (L) / repetition_penalty (G)
 * options.typical_p, repeat_last_n, mirostat, mirostat_tau, mirostat_eta -> same (L); dropped (G)
 * Dropped silently: keep_alive, options.num_ctx (fixed at the server's start: SPEC 10), num_keep,
 *   num_batch, num_gpu, main_gpu, use_mmap, num_thread and every other option; truncate, shift,
 *   logprobs, top_logprobs, template, context (not supported on these hosts), embed truncate.
 *
 * Answer mapping (backend -> Ollama)
 * ------------------------------------------------------------------------------------------
 * delta.content / choices[].text -> one NDJSON line per delta: message.content (chat) / response
 * delta.reasoning_content|reasoning -> message.thinking / thinking
 * delta.tool_calls pieces       -> assembled by index, sent as ONE line with message.tool_calls
 *                                  [{id?, function:{index, name, arguments:{object}}}] when the
 *                                  finish_reason arrives (or at the end)
 * finish_reason                 -> done_reason: stop, tool_calls, function_call -> "stop";
 *                                  length -> "length"; others as they come; none -> absent
 * usage.prompt_tokens           -> prompt_eval_count (else timings.prompt_n + cache_n; 0: absent)
 * usage.completion_tokens       -> eval_count (else timings.predicted_n, else the delta count)
 * timings.prompt_ms * 1e6       -> prompt_eval_duration (else measured: start to first delta;
 *                                  absent when no delta time is known, e.g. non-stream backends)
 * timings.predicted_ms * 1e6    -> eval_duration (else measured: first delta to the end, or the
 *                                  whole time when no delta time is known)
 * (measured)                    -> total_duration; load_duration is 0 (the model stays loaded)
 * The final line is sent once both finish_reason and usage have come, or at [DONE] / the end.
 * Non-stream clients get one object (no trailing newline) with everything joined.
 * /v1/embeddings data[] (by index) -> {model, embeddings, total_duration, load_duration:0,
 *                                  prompt_eval_count} / {embedding} (numbers kept as parsed)
 * data: {"error":...} event, a cut stream, bad JSON -> the answer fails: one {"error":"..."} line
 *                                  if output had started, else no output (the caller answers).
 */
#include "xlate.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonx.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"

#define XLATE_MAX_LINE (16u << 20)  /* one SSE line */
#define XLATE_MAX_BODY (256u << 20) /* a whole JSON answer */
#define XLATE_MAX_TOOLS 256         /* tool calls in one answer */
#define XLATE_MAX_ERROR 1000        /* bytes of a plain-text error body kept */

/* ---- small helpers ---- */

struct sbuf {
	char *p; /* NUL-terminated when not NULL; owned */
	size_t len, cap;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	b->p = xgrow(b->p, &b->cap, b->len + n + 1, 64);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static const char *
sb_str(const struct sbuf *b)
{
	return b->p != NULL ? b->p : "";
}

static json_t *
obj(void)
{
	json_t *o = json_object();

	if (o == NULL)
		fatalx("out of memory (json object)");
	return o;
}

static json_t *
arr(void)
{
	json_t *o = json_array();

	if (o == NULL)
		fatalx("out of memory (json array)");
	return o;
}

/* Member k of o as a string, or NULL. */
static const char *
str_of(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void
put(json_t *o, const char *k, json_t *v)
{
	if (v == NULL || json_object_set_new(o, k, v) != 0)
		fatalx("out of memory (json member %s)", k);
}

static void
put_copy(json_t *o, const char *k, const json_t *v)
{
	put(o, k, json_deep_copy(v));
}

/* ---- routes ---- */

static const char *const route_paths[XLATE_ROUTE_COUNT] = {
	[XLATE_CHAT] = "/api/chat",
	[XLATE_GENERATE] = "/api/generate",
	[XLATE_EMBED] = "/api/embed",
	[XLATE_EMBEDDINGS] = "/api/embeddings",
};

int
xlate_route_of(const char *path)
{
	size_t n;

	if (path == NULL)
		return -1;
	n = strcspn(path, "?");
	for (int r = 0; r < XLATE_ROUTE_COUNT; r++)
		if (strlen(route_paths[r]) == n && memcmp(route_paths[r], path, n) == 0)
			return r;
	return -1;
}

const char *
xlate_route_name(enum xlate_route r)
{
	return (int)r >= 0 && (int)r < XLATE_ROUTE_COUNT ? route_paths[r] + 5 : "?";
}

/* ---- requests ---- */

/* Builds the backend body; on a client error sets err (first one wins). */
struct req {
	const struct xlate_target *t;
	char *err;
	/* Tool calls of the last assistant turn, for the tool messages that
	 * follow: id and name point into the body being built. */
	struct pending_call {
		const char *id, *name;
		bool answered;
	} calls[XLATE_MAX_TOOLS];
	int n_calls;
	int next_id; /* call_N for calls without an id */
};

static void
reject(struct req *q, char *msg)
{
	if (q->err == NULL)
		q->err = msg;
	else
		free(msg);
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Standard base64 (line breaks allowed, as Go's decoder allows them) into
 * a data URL.  NULL when s is not base64 (Ollama's 400 too).  The mime
 * type is sniffed from the first decoded bytes; llama-server decodes by
 * content anyway.  Caller frees.
 */
static char *
image_data_url(const char *s)
{
	size_t n = strlen(s), len = 0, pad = 0;
	char *clean = xmalloc(n + 1);
	unsigned char head[12];
	size_t nhead = 0;
	unsigned acc = 0;
	int bits = 0;
	const char *mime = "image/png";
	char *url;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
		} else if (pad > 0 || b64_value(c) < 0) {
			free(clean);
			return NULL;
		} else if (nhead < sizeof(head)) {
			acc = (acc << 6) | (unsigned)b64_value(c);
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				head[nhead++] = (unsigned char)(acc >> bits);
			}
		}
		clean[len++] = (char)c;
	}
	clean[len] = '\0';
	if (len == 0 || len % 4 != 0 || pad > 2) {
		free(clean);
		return NULL;
	}
	if (nhead >= 4 && memcmp(head, "\x89PNG", 4) == 0)
		mime = "image/png";
	else if (nhead >= 3 && memcmp(head, "\xff\xd8\xff", 3) == 0)
		mime = "image/jpeg";
	else if (nhead >= 4 && memcmp(head, "GIF8", 4) == 0)
		mime = "image/gif";
	else if (nhead >= 12 && memcmp(head, "RIFF", 4) == 0 && memcmp(head + 8, "WEBP", 4) == 0)
		mime = "image/webp";
	url = xasprintf("data:%s;base64,%s", mime, clean);
	free(clean);
	return url;
}

/* content, or content parts when there are images. */
static json_t *
content_with_images(struct req *q, const char *content, const json_t *images)
{
	json_t *parts;
	size_t i;
	const json_t *img;

	if (images == NULL || json_is_null(images) || (json_is_array(images) && json_array_size(images) == 0))
		return jx_str(content);
	if (!json_is_array(images)) {
		reject(q, xstrdup("images must be an array of base64 strings"));
		return jx_str(content);
	}
	parts = arr();
	if (*content != '\0')
		json_array_append_new(parts, jx_pack("{s:s, s:o}", "type", "text", "text", jx_str(content)));
	json_array_foreach(images, i, img) {
		char *url = json_is_string(img) ? image_data_url(json_string_value(img)) : NULL;
		if (url == NULL) {
			reject(q, xasprintf("invalid image %zu: not a base64 string", i));
			break;
		}
		json_array_append_new(parts,
		    jx_pack("{s:s, s:{s:o}}", "type", "image_url", "image_url", "url", jx_str(url)));
		free(url);
	}
	return parts;
}

/* An Ollama tool call -> OpenAI's; records it for the tool messages. */
static json_t *
tool_call_out(struct req *q, const json_t *tc)
{
	const json_t *fn = json_object_get(tc, "function");
	const json_t *args = json_object_get(fn, "arguments");
	const char *name = str_of(fn, "name");
	const char *id = str_of(tc, "id");
	json_t *out;
	char *text, *made = NULL;

	if (name == NULL) {
		reject(q, xstrdup("tool call without a function name"));
		return NULL;
	}
	if (args != NULL && !json_is_null(args) && !json_is_object(args)) {
		reject(q, xasprintf("tool call %s: arguments must be an object", name));
		return NULL;
	}
	text = args != NULL && json_is_object(args) ? jx_dump(args, NULL) : xstrdup("{}");
	if (text == NULL) {
		reject(q, xasprintf("tool call %s: arguments cannot be encoded", name));
		return NULL;
	}
	if (id == NULL || *id == '\0')
		id = made = xasprintf("call_%d", q->next_id++);
	out = jx_pack("{s:o, s:s, s:{s:o, s:o}}", "id", jx_str(id), "type", "function", "function", "name",
	    jx_str(name), "arguments", jx_str(text));
	free(text);
	free(made);
	if (out != NULL && q->n_calls < XLATE_MAX_TOOLS) {
		const json_t *f = json_object_get(out, "function");
		q->calls[q->n_calls++] = (struct pending_call){
			.id = str_of(out, "id"), .name = str_of(f, "name"), .answered = false};
	}
	return out;
}

/* The id of the call a tool message answers: the oldest unanswered call
 * of that name (any name when the message has none), or NULL. */
static const char *
answered_call(struct req *q, const char *tool_name)
{
	for (int i = 0; i < q->n_calls; i++) {
		struct pending_call *c = &q->calls[i];
		if (c->answered || (tool_name != NULL && strcmp(c->name, tool_name) != 0))
			continue;
		c->answered = true;
		return c->id;
	}
	return NULL;
}

static json_t *
message_out(struct req *q, const json_t *m)
{
	const char *role = str_of(m, "role");
	const json_t *content = json_object_get(m, "content");
	const json_t *calls = json_object_get(m, "tool_calls");
	json_t *out;
	const char *text;
	char *lrole;

	if (!json_is_object(m) || role == NULL) {
		reject(q, xstrdup("each message needs a role"));
		return NULL;
	}
	if (content != NULL && !json_is_null(content) && !json_is_string(content)) {
		reject(q, xstrdup("message content must be a string"));
		return NULL;
	}
	lrole = xstrdup(role);
	for (char *c = lrole; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	out = obj();
	put(out, "role", jx_str(lrole));
	text = json_string_value(content); /* absent or null: "" */
	put(out, "content", content_with_images(q, text != NULL ? text : "", json_object_get(m, "images")));
	if (strcmp(lrole, "assistant") == 0) {
		const char *thinking = str_of(m, "thinking");
		if (q->t->llamacpp && thinking != NULL && *thinking != '\0')
			put(out, "reasoning_content", jx_str(thinking));
		if (json_is_array(calls) && json_array_size(calls) > 0) {
			json_t *list = arr();
			size_t i;
			const json_t *tc;
			q->n_calls = 0; /* a new turn: earlier calls were answered or abandoned */
			json_array_foreach(calls, i, tc) {
				json_t *c = tool_call_out(q, tc);
				if (c == NULL)
					break;
				json_array_append_new(list, c);
			}
			put(out, "tool_calls", list);
		}
	} else if (strcmp(lrole, "tool") == 0) {
		const char *name = str_of(m, "tool_name");
		const char *id = str_of(m, "tool_call_id");
		if (name != NULL)
			put(out, "name", jx_str(name));
		if (id == NULL)
			id = answered_call(q, name);
		if (id != NULL)
			put(out, "tool_call_id", jx_str(id));
	}
	free(lrole);
	return out;
}

struct opt_map {
	const char *ollama, *llamacpp, *generic; /* NULL: not sent to that target */
	bool integer;                            /* Ollama truncates these to integers */
};

/* Options with a per-request equivalent; every other option is dropped. */
static const struct opt_map opt_maps[] = {
	{"temperature", "temperature", "temperature", false},
	{"top_p", "top_p", "top_p", false},
	{"top_k", "top_k", "top_k", true},
	{"min_p", "min_p", "min_p", false},
	{"presence_penalty", "presence_penalty", "presence_penalty", false},
	{"frequency_penalty", "frequency_penalty", "frequency_penalty", false},
	{"repeat_penalty", "repeat_penalty", "repetition_penalty", false},
	{"typical_p", "typical_p", NULL, false},
	{"repeat_last_n", "repeat_last_n", NULL, true},
	{"mirostat", "mirostat", NULL, true},
	{"mirostat_tau", "mirostat_tau", NULL, false},
	{"mirostat_eta", "mirostat_eta", NULL, false},
};

static void
map_options(struct req *q, const json_t *opts, json_t *out)
{
	const json_t *v;

	if (opts == NULL || json_is_null(opts))
		return;
	if (!json_is_object(opts)) {
		reject(q, xstrdup("options must be an object"));
		return;
	}
	for (size_t i = 0; i < sizeof(opt_maps) / sizeof(opt_maps[0]); i++) {
		const struct opt_map *m = &opt_maps[i];
		const char *to = q->t->llamacpp ? m->llamacpp : m->generic;
		if ((v = json_object_get(opts, m->ollama)) == NULL || json_is_null(v))
			continue;
		if (!json_is_number(v)) {
			reject(q, xasprintf("option \"%s\" must be a number", m->ollama));
			return;
		}
		if (to != NULL)
			put(out, to, m->integer ? json_integer((json_int_t)json_number_value(v)) : json_deep_copy(v));
	}
	if ((v = json_object_get(opts, "num_predict")) != NULL && !json_is_null(v)) {
		if (!json_is_number(v))
			reject(q, xstrdup("option \"num_predict\" must be a number"));
		else if (json_number_value(v) >= 0) /* -1 unlimited, -2 fill the context */
			put(out, "max_tokens", json_integer((json_int_t)json_number_value(v)));
	}
	if ((v = json_object_get(opts, "seed")) != NULL && !json_is_null(v)) {
		if (!json_is_number(v))
			reject(q, xstrdup("option \"seed\" must be a number"));
		else if (json_number_value(v) >= 0) /* negative: a random seed, the default */
			put(out, "seed", json_integer((json_int_t)json_number_value(v)));
	}
	if ((v = json_object_get(opts, "stop")) != NULL && !json_is_null(v)) {
		if (json_is_string(v)) {
			json_t *a = arr();
			json_array_append_new(a, json_deep_copy(v));
			put(out, "stop", a);
		} else if (json_is_array(v)) {
			size_t i;
			const json_t *s;
			json_array_foreach(v, i, s) {
				if (!json_is_string(s)) {
					reject(q, xstrdup("option \"stop\" must be an array of strings"));
					return;
				}
			}
			if (json_array_size(v) > 0)
				put_copy(out, "stop", v);
		} else {
			reject(q, xstrdup("option \"stop\" must be an array of strings"));
		}
	}
}

static void
map_format(struct req *q, const json_t *f, json_t *out)
{
	if (f == NULL || json_is_null(f) || (json_is_string(f) && *json_string_value(f) == '\0'))
		return;
	if (json_is_string(f) && strcmp(json_string_value(f), "json") == 0)
		put(out, "response_format", jx_pack("{s:s}", "type", "json_object"));
	else if (json_is_object(f))
		put(out, "response_format",
		    jx_pack("{s:s, s:{s:s, s:o}}", "type", "json_schema", "json_schema", "name", "schema", "schema", json_deep_copy(f)));
	else
		reject(q, xstrdup("invalid format: expected \"json\" or a JSON schema object"));
}

/* think only means something to a chat template. */
static void
map_think(struct req *q, const json_t *think, json_t *out)
{
	const char *level;

	if (think == NULL || json_is_null(think))
		return;
	if (json_is_boolean(think)) {
		if (q->t->llamacpp)
			put(out, "chat_template_kwargs", jx_pack("{s:b}", "enable_thinking", json_is_true(think)));
		return;
	}
	level = json_string_value(think);
	if (level == NULL ||
	    (strcmp(level, "low") != 0 && strcmp(level, "medium") != 0 && strcmp(level, "high") != 0 &&
	        strcmp(level, "max") != 0)) {
		reject(q, xstrdup("invalid think value: must be a boolean or \"low\", \"medium\", \"high\""));
		return;
	}
	put(out, "reasoning_effort", jx_str(strcmp(level, "max") == 0 ? "high" : level));
	if (q->t->llamacpp)
		put(out, "chat_template_kwargs", jx_pack("{s:b}", "enable_thinking", 1));
}

/* stream, options and format: common to chat and generate. */
static void
map_common(struct req *q, const json_t *native, json_t *out)
{
	const json_t *s = json_object_get(native, "stream");
	bool stream = s == NULL || json_is_null(s) || json_is_true(s);

	put(out, "stream", json_boolean(stream));
	if (stream)
		put(out, "stream_options", jx_pack("{s:b}", "include_usage", 1));
	map_options(q, json_object_get(native, "options"), out);
	map_format(q, json_object_get(native, "format"), out);
}

static json_t *
chat_request(struct req *q, const json_t *native)
{
	const json_t *msgs = json_object_get(native, "messages");
	const json_t *tools = json_object_get(native, "tools");
	json_t *out = obj(), *list = arr();
	size_t i;
	const json_t *m;

	if (json_is_string(json_object_get(native, "model")))
		put_copy(out, "model", json_object_get(native, "model"));
	if (msgs != NULL && !json_is_null(msgs) && !json_is_array(msgs))
		reject(q, xstrdup("messages must be an array"));
	json_array_foreach(msgs, i, m) {
		json_t *o = message_out(q, m);
		if (o == NULL)
			break;
		json_array_append_new(list, o);
	}
	put(out, "messages", list);
	if (json_is_array(tools) && json_array_size(tools) > 0)
		put_copy(out, "tools", tools);
	map_common(q, native, out);
	map_think(q, json_object_get(native, "think"), out);
	return out;
}

static json_t *
generate_request(struct req *q, const json_t *native, const char **path)
{
	const char *prompt = str_of(native, "prompt");
	const char *system = str_of(native, "system");
	const char *suffix = str_of(native, "suffix");
	const json_t *images = json_object_get(native, "images");
	bool raw = json_is_true(json_object_get(native, "raw"));
	json_t *out = obj();

	if (json_is_string(json_object_get(native, "model")))
		put_copy(out, "model", json_object_get(native, "model"));
	if (raw || (suffix != NULL && *suffix != '\0')) {
		/* No template: a text completion.  Fill-in-the-middle goes here
		 * too, a chat template has no place for a suffix. */
		*path = "/v1/completions";
		if (json_is_array(images) && json_array_size(images) > 0)
			reject(q, xstrdup("images are not supported with raw or suffix on this backend"));
		put(out, "prompt", jx_str(prompt));
		if (suffix != NULL && *suffix != '\0')
			put(out, "suffix", jx_str(suffix));
		map_common(q, native, out);
		return out;
	}
	*path = "/v1/chat/completions";
	json_t *list = arr();
	if (system != NULL && *system != '\0')
		json_array_append_new(list, jx_pack("{s:s, s:o}", "role", "system", "content", jx_str(system)));
	json_array_append_new(list, jx_pack("{s:s, s:o}", "role", "user", "content",
	    content_with_images(q, prompt != NULL ? prompt : "", images)));
	put(out, "messages", list);
	map_common(q, native, out);
	map_think(q, json_object_get(native, "think"), out);
	return out;
}

static json_t *
embed_request(struct req *q, enum xlate_route r, const json_t *native)
{
	json_t *out = obj();
	const json_t *in = json_object_get(native, r == XLATE_EMBED ? "input" : "prompt");
	const json_t *dims = json_object_get(native, "dimensions");

	if (json_is_string(json_object_get(native, "model")))
		put_copy(out, "model", json_object_get(native, "model"));
	if (r == XLATE_EMBEDDINGS) {
		put(out, "input", jx_str(json_string_value(in)));
	} else if (json_is_string(in)) {
		put_copy(out, "input", in);
	} else if (json_is_array(in)) {
		size_t i;
		const json_t *s;
		json_array_foreach(in, i, s) {
			if (!json_is_string(s)) {
				reject(q, xstrdup("invalid input type"));
				break;
			}
		}
		put_copy(out, "input", in);
	} else {
		reject(q, xstrdup("invalid input type"));
	}
	if (r == XLATE_EMBED && json_is_integer(dims) && json_integer_value(dims) > 0)
		put_copy(out, "dimensions", dims);
	put(out, "encoding_format", jx_str("float"));
	return out;
}

json_t *
xlate_request(enum xlate_route r, const json_t *native, const struct xlate_target *t, const char **path,
    char **err)
{
	struct req *q = xcalloc(1, sizeof(*q));
	json_t *out = NULL;

	*err = NULL;
	q->t = t;
	if (!json_is_object(native)) {
		reject(q, xstrdup("the request body must be a JSON object"));
		goto done;
	}
	switch (r) {
	case XLATE_CHAT:
		*path = "/v1/chat/completions";
		out = chat_request(q, native);
		break;
	case XLATE_GENERATE:
		out = generate_request(q, native, path);
		break;
	case XLATE_EMBED:
	case XLATE_EMBEDDINGS:
		*path = "/v1/embeddings";
		out = embed_request(q, r, native);
		break;
	default:
		reject(q, xstrdup("no translation for this route"));
	}
done:
	if (q->err != NULL) {
		json_decref(out);
		out = NULL;
		*err = q->err;
	}
	free(q);
	return out;
}

/* ---- local answers ---- */

/* RFC 3339 UTC with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano,
 * as Ollama writes created_at). */
static void
format_time(char *buf, size_t size, int64_t unix_ns)
{
	int64_t sec = unix_ns / 1000000000, ns = unix_ns % 1000000000;
	time_t t;
	struct tm tm;
	size_t n;

	if (ns < 0) {
		ns += 1000000000;
		sec--;
	}
	t = (time_t)sec;
	gmtime_r(&t, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ns != 0 && n + 11 < size) {
		n += (size_t)snprintf(buf + n, size - n, ".%09d", (int)ns);
		while (buf[n - 1] == '0')
			n--;
	}
	if (n + 2 <= size) {
		buf[n++] = 'Z';
		buf[n] = '\0';
	}
}

static json_t *
time_str(int64_t unix_ns)
{
	char buf[64];

	format_time(buf, sizeof(buf), unix_ns);
	return jx_str(buf);
}

/* keep_alive 0 (number, "0", "0s", "0m", ...) unloads. */
static bool
keep_alive_zero(const json_t *k)
{
	const char *s = json_string_value(k);

	if (json_is_number(k))
		return json_number_value(k) == 0;
	if (s == NULL || *s != '0')
		return false;
	for (; *s; s++)
		if (*s != '0' && *s != '.' && strchr("nuµmsh", *s) == NULL)
			return false;
	return true;
}

json_t *
xlate_local_answer(enum xlate_route r, const json_t *native, const char *client_model, int64_t now_unix_ns)
{
	const char *reason = keep_alive_zero(json_object_get(native, "keep_alive")) ? "unload" : "load";
	const json_t *v;
	json_t *out;

	switch (r) {
	case XLATE_CHAT:
		v = json_object_get(native, "messages");
		if (json_is_array(v) && json_array_size(v) > 0)
			return NULL;
		if (v != NULL && !json_is_null(v) && !json_is_array(v))
			return NULL; /* xlate_request rejects it */
		out = obj();
		put(out, "model", jx_str(client_model));
		put(out, "created_at", time_str(now_unix_ns));
		put(out, "message", jx_pack("{s:s, s:s}", "role", "assistant", "content", ""));
		put(out, "done", json_true());
		put(out, "done_reason", jx_str(reason));
		return out;
	case XLATE_GENERATE:
		v = json_object_get(native, "prompt");
		if (json_is_string(v) && *json_string_value(v) != '\0')
			return NULL;
		out = obj();
		put(out, "model", jx_str(client_model));
		put(out, "created_at", time_str(now_unix_ns));
		put(out, "response", jx_str(""));
		put(out, "done", json_true());
		put(out, "done_reason", jx_str(reason));
		return out;
	case XLATE_EMBED:
		v = json_object_get(native, "input");
		if (!(v == NULL || json_is_null(v) || (json_is_string(v) && *json_string_value(v) == '\0') ||
		        (json_is_array(v) && json_array_size(v) == 0)))
			return NULL;
		return jx_pack("{s:o, s:[]}", "model", jx_str(client_model), "embeddings");
	case XLATE_EMBEDDINGS:
		v = json_object_get(native, "prompt");
		if (json_is_string(v) && *json_string_value(v) != '\0')
			return NULL;
		return jx_pack("{s:[]}", "embedding");
	default:
		return NULL;
	}
}

/* ---- answers ---- */

struct tool_acc {
	bool used;
	char *id, *name; /* owned; NULL until sent */
	struct sbuf args;
};

enum body_mode { MODE_UNKNOWN, MODE_SSE, MODE_JSON };

struct xlate_answer {
	enum xlate_route route;
	char *model; /* the client's name; owned */
	bool stream; /* the client's stream (chat, generate) */
	enum body_mode mode;
	int64_t t_start, t_first; /* monotonic ns; t_first: first generated delta */
	bool have_first;

	struct sbuf in;                  /* SSE: the partial line; JSON: the whole body */
	struct sbuf content, thinking;   /* joined, for non-stream clients */
	struct tool_acc tools[XLATE_MAX_TOOLS];
	int n_tools;                     /* highest index + 1 */
	bool tools_sent;
	uint64_t n_deltas;               /* deltas that carried output */

	char *finish_reason; /* owned */
	bool have_finish, have_usage, have_done, have_choice;
	int64_t prompt_tokens, completion_tokens;          /* -1: not reported */
	double prompt_ms, predicted_ms;                    /* < 0: not reported */
	int64_t prompt_n, cache_n, predicted_n;            /* -1: not reported */

	bool final_sent, failed;
	const char *why;  /* static, or why_owned */
	char *why_owned;

	struct sbuf out;  /* Ollama output */
	size_t taken;     /* out bytes handed to the caller */
	bool started;     /* any output produced */
};

struct xlate_answer *
xlate_answer_new(enum xlate_route r, const char *client_model, bool stream, int64_t t_start_ns)
{
	struct xlate_answer *a = xcalloc(1, sizeof(*a));

	a->route = r;
	a->model = xstrdup(client_model != NULL ? client_model : "");
	a->stream = stream && (r == XLATE_CHAT || r == XLATE_GENERATE);
	a->t_start = t_start_ns;
	a->prompt_tokens = a->completion_tokens = -1;
	a->prompt_ms = a->predicted_ms = -1;
	a->prompt_n = a->cache_n = a->predicted_n = -1;
	return a;
}

void
xlate_answer_free(struct xlate_answer *a)
{
	if (a == NULL)
		return;
	for (int i = 0; i < a->n_tools; i++) {
		free(a->tools[i].id);
		free(a->tools[i].name);
		free(a->tools[i].args.p);
	}
	free(a->model);
	free(a->in.p);
	free(a->content.p);
	free(a->thinking.p);
	free(a->finish_reason);
	free(a->why_owned);
	free(a->out.p);
	free(a);
}

const char *
xlate_take(struct xlate_answer *a, size_t *len)
{
	const char *p = a->out.p != NULL ? a->out.p + a->taken : "";

	*len = a->out.len - a->taken;
	a->taken = a->out.len;
	return p;
}

bool
xlate_started(const struct xlate_answer *a)
{
	return a->started;
}

/* Output taken by the caller can go: called where pointers handed out
 * become invalid (the next feed or finish). */
static void
compact(struct xlate_answer *a)
{
	if (a->taken == a->out.len) {
		a->out.len = a->taken = 0;
	} else if (a->taken > 0) {
		memmove(a->out.p, a->out.p + a->taken, a->out.len - a->taken);
		a->out.len -= a->taken;
		a->taken = 0;
	}
}

/* Append o (consumed) as output: an NDJSON line, or the single object. */
static void
emit(struct xlate_answer *a, json_t *o, bool newline)
{
	size_t n;
	char *s = jx_dump(o, &n);

	json_decref(o);
	if (s == NULL)
		return; /* logged; cannot happen with jx_str strings */
	sb_add(&a->out, s, n);
	if (newline)
		sb_add(&a->out, "\n", 1);
	a->started = true;
	free(s);
}

/* The answer failed: one error line if the client's stream has started. */
static void
fail(struct xlate_answer *a, const char *why, char *owned)
{
	if (a->failed || a->final_sent) {
		free(owned);
		return;
	}
	a->failed = true;
	a->why_owned = owned;
	a->why = owned != NULL ? owned : why;
	if (a->started)
		emit(a, jx_pack("{s:o}", "error", jx_str(a->why)), true);
}

/* model and created_at: the head of every chat/generate object. */
static json_t *
answer_head(const struct xlate_answer *a, int64_t now_unix_ns)
{
	json_t *o = obj();

	put(o, "model", jx_str(a->model));
	put(o, "created_at", time_str(now_unix_ns));
	return o;
}

/* The text member(s): message{} for chat, response/thinking for generate. */
static void
put_text(const struct xlate_answer *a, json_t *o, const char *content, const char *thinking, json_t *tool_calls)
{
	if (a->route == XLATE_CHAT) {
		json_t *m = obj();
		put(m, "role", jx_str("assistant"));
		put(m, "content", jx_str(content));
		if (thinking != NULL && *thinking != '\0')
			put(m, "thinking", jx_str(thinking));
		if (tool_calls != NULL)
			put(m, "tool_calls", tool_calls);
		put(o, "message", m);
	} else {
		put(o, "response", jx_str(content));
		if (thinking != NULL && *thinking != '\0')
			put(o, "thinking", jx_str(thinking));
		json_decref(tool_calls);
	}
}

static void
note_first(struct xlate_answer *a, int64_t now_ns)
{
	/* A whole JSON answer has no delta times: durations use timings, or
	 * the total (see the table above). */
	if (!a->have_first && a->mode == MODE_SSE) {
		a->have_first = true;
		a->t_first = now_ns;
	}
}

/* Ollama's tool_calls from the assembled pieces, or NULL when there are
 * none; fails the answer when arguments are not a JSON object. */
static json_t *
tool_calls_out(struct xlate_answer *a)
{
	json_t *list = NULL;
	int k = 0;

	for (int i = 0; i < a->n_tools; i++) {
		struct tool_acc *t = &a->tools[i];
		json_t *args, *fn, *call;
		json_error_t e;
		if (!t->used)
			continue;
		if (t->args.len == 0) {
			args = obj();
		} else if ((args = json_loads(t->args.p, JSON_DECODE_ANY, &e)) == NULL || !json_is_object(args)) {
			json_decref(args);
			json_decref(list);
			fail(a, "backend tool call arguments are not a JSON object", NULL);
			return NULL;
		}
		fn = obj();
		put(fn, "index", json_integer(k++));
		put(fn, "name", jx_str(t->name));
		put(fn, "arguments", args);
		call = obj();
		if (t->id != NULL && *t->id != '\0')
			put(call, "id", jx_str(t->id));
		put(call, "function", fn);
		if (list == NULL)
			list = arr();
		json_array_append_new(list, call);
	}
	return list;
}

/* Stream: the assembled tool calls as one line, once. */
static void
send_tools(struct xlate_answer *a, int64_t now_unix_ns)
{
	json_t *calls, *o;

	if (a->tools_sent || a->route != XLATE_CHAT)
		return;
	a->tools_sent = true;
	if ((calls = tool_calls_out(a)) == NULL)
		return;
	o = answer_head(a, now_unix_ns);
	put_text(a, o, "", NULL, calls);
	put(o, "done", json_false());
	emit(a, o, true);
}

static const char *
done_reason(const char *finish)
{
	if (finish == NULL)
		return NULL;
	if (strcmp(finish, "stop") == 0 || strcmp(finish, "tool_calls") == 0 || strcmp(finish, "function_call") == 0)
		return "stop";
	return finish; /* "length" and anything new, as it comes */
}

/* done, done_reason and the metrics (see the table above). */
static void
put_final(const struct xlate_answer *a, json_t *o, int64_t now_ns)
{
	int64_t total = now_ns > a->t_start ? now_ns - a->t_start : 0;
	int64_t prompt_count = a->prompt_tokens >= 0 ? a->prompt_tokens
	    : a->prompt_n >= 0                       ? a->prompt_n + (a->cache_n > 0 ? a->cache_n : 0)
	                                             : 0;
	int64_t eval_count = a->completion_tokens >= 0 ? a->completion_tokens
	    : a->predicted_n >= 0                      ? a->predicted_n
	                                               : (int64_t)a->n_deltas;
	int64_t first = a->have_first && a->t_first > a->t_start ? a->t_first - a->t_start : 0;
	const char *reason = done_reason(a->finish_reason);

	put(o, "done", json_true());
	if (reason != NULL)
		put(o, "done_reason", jx_str(reason));
	put(o, "total_duration", json_integer(total));
	put(o, "load_duration", json_integer(0));
	if (prompt_count > 0)
		put(o, "prompt_eval_count", json_integer(prompt_count));
	if (a->prompt_ms >= 0)
		put(o, "prompt_eval_duration", json_integer(llround(a->prompt_ms * 1e6)));
	else if (a->have_first)
		put(o, "prompt_eval_duration", json_integer(first));
	put(o, "eval_count", json_integer(eval_count));
	if (a->predicted_ms >= 0)
		put(o, "eval_duration", json_integer(llround(a->predicted_ms * 1e6)));
	else
		put(o, "eval_duration", json_integer(a->have_first ? total - first : total));
}

/* The end of a chat/generate answer: the final line, or the one object. */
static void
send_end(struct xlate_answer *a, int64_t now_ns, int64_t now_unix_ns)
{
	json_t *o;

	if (a->final_sent || a->failed)
		return;
	if (a->stream) {
		send_tools(a, now_unix_ns);
		if (a->failed)
			return;
		o = answer_head(a, now_unix_ns);
		put_text(a, o, "", NULL, NULL);
		put_final(a, o, now_ns);
		emit(a, o, true);
	} else {
		json_t *calls = a->route == XLATE_CHAT ? tool_calls_out(a) : NULL;
		if (a->failed)
			return;
		o = answer_head(a, now_unix_ns);
		put_text(a, o, sb_str(&a->content), sb_str(&a->thinking), calls);
		put_final(a, o, now_ns);
		emit(a, o, false);
	}
	a->final_sent = true;
}

/* The message of an {"error": ...} object. */
static const char *
error_text(const json_t *o)
{
	const json_t *e = json_object_get(o, "error");
	const char *s;

	if ((s = json_string_value(e)) != NULL)
		return s;
	if ((s = str_of(e, "message")) != NULL)
		return s;
	if ((s = str_of(o, "message")) != NULL)
		return s;
	return "backend error";
}

static void
take_tool_piece(struct xlate_answer *a, const json_t *tc, size_t pos)
{
	const json_t *ix = json_object_get(tc, "index");
	const json_t *fn = json_object_get(tc, "function");
	const json_t *args = json_object_get(fn, "arguments");
	json_int_t i = json_is_integer(ix) ? json_integer_value(ix) : (json_int_t)pos;
	struct tool_acc *t;
	const char *s;

	if (i < 0 || i >= XLATE_MAX_TOOLS) {
		fail(a, "backend tool call index out of range", NULL);
		return;
	}
	t = &a->tools[i];
	t->used = true;
	if (i >= a->n_tools)
		a->n_tools = (int)i + 1;
	if ((s = str_of(tc, "id")) != NULL && *s != '\0' && t->id == NULL)
		t->id = xstrdup(s);
	if ((s = str_of(fn, "name")) != NULL && *s != '\0' && t->name == NULL)
		t->name = xstrdup(s);
	if ((s = json_string_value(args)) != NULL) {
		sb_add(&t->args, s, json_string_length(args));
	} else if (json_is_object(args)) { /* some servers send an object */
		char *d = jx_dump(args, NULL);
		if (d != NULL)
			sb_add(&t->args, d, strlen(d));
		free(d);
	}
}

static void
take_numbers(struct xlate_answer *a, const json_t *o)
{
	const json_t *u = json_object_get(o, "usage");
	const json_t *t = json_object_get(o, "timings");
	const json_t *v;

	if (json_is_object(u)) {
		if (json_is_integer(v = json_object_get(u, "prompt_tokens")))
			a->prompt_tokens = json_integer_value(v);
		if (json_is_integer(v = json_object_get(u, "completion_tokens")))
			a->completion_tokens = json_integer_value(v);
		a->have_usage = true;
	}
	if (json_is_object(t)) {
		if (json_is_number(v = json_object_get(t, "prompt_ms")))
			a->prompt_ms = json_number_value(v);
		if (json_is_number(v = json_object_get(t, "predicted_ms")))
			a->predicted_ms = json_number_value(v);
		if (json_is_integer(v = json_object_get(t, "prompt_n")))
			a->prompt_n = json_integer_value(v);
		if (json_is_integer(v = json_object_get(t, "cache_n")))
			a->cache_n = json_integer_value(v);
		if (json_is_integer(v = json_object_get(t, "predicted_n")))
			a->predicted_n = json_integer_value(v);
	}
}

/* One chat/completion object: an SSE chunk, or a whole non-stream answer
 * (its choice has "message" instead of "delta"). */
static void
take_chunk(struct xlate_answer *a, const json_t *o, int64_t now_ns, int64_t now_unix_ns)
{
	const json_t *choices = json_object_get(o, "choices");
	const json_t *c = json_array_get(choices, 0); /* n is always 1 */
	const json_t *e = json_object_get(o, "error");

	if (!json_is_object(o)) {
		fail(a, "backend sent JSON that is not an object", NULL);
		return;
	}
	if (e != NULL && !json_is_null(e)) {
		fail(a, NULL, xstrdup(error_text(o)));
		return;
	}
	take_numbers(a, o);
	if (json_is_object(c)) {
		const json_t *d = json_object_get(c, "delta");
		const json_t *tcs;
		const char *content, *thinking, *finish = str_of(c, "finish_reason");
		if (d == NULL)
			d = json_object_get(c, "message");
		content = d != NULL ? str_of(d, "content") : str_of(c, "text");
		thinking = str_of(d, "reasoning_content");
		if (thinking == NULL)
			thinking = str_of(d, "reasoning");
		a->have_choice = true;
		if ((content != NULL && *content != '\0') || (thinking != NULL && *thinking != '\0')) {
			note_first(a, now_ns);
			a->n_deltas++;
			if (a->stream) {
				json_t *line = answer_head(a, now_unix_ns);
				put_text(a, line, content != NULL ? content : "", thinking, NULL);
				put(line, "done", json_false());
				emit(a, line, true);
			} else {
				if (content != NULL)
					sb_add(&a->content, content, strlen(content));
				if (thinking != NULL)
					sb_add(&a->thinking, thinking, strlen(thinking));
			}
		}
		if (json_is_array(tcs = json_object_get(d, "tool_calls")) && json_array_size(tcs) > 0) {
			size_t i;
			const json_t *tc;
			note_first(a, now_ns);
			a->n_deltas++;
			json_array_foreach(tcs, i, tc) take_tool_piece(a, tc, i);
		}
		if (finish != NULL && !a->have_finish) {
			a->have_finish = true;
			a->finish_reason = xstrdup(finish);
			if (a->stream && a->mode == MODE_SSE)
				send_tools(a, now_unix_ns);
		}
	}
	if (a->stream && a->mode == MODE_SSE && a->have_finish && a->have_usage)
		send_end(a, now_ns, now_unix_ns);
}

static void
sse_line(struct xlate_answer *a, const char *s, size_t n, int64_t now_ns, int64_t now_unix_ns)
{
	json_error_t e;
	json_t *o;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	/* Blank separators, ":" comments, event:/id:/retry: fields carry
	 * nothing here: each data line is one whole JSON chunk. */
	if (n < 5 || memcmp(s, "data:", 5) != 0)
		return;
	s += 5;
	n -= 5;
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	if (n == 6 && memcmp(s, "[DONE]", 6) == 0) {
		a->have_done = true;
		if (a->stream)
			send_end(a, now_ns, now_unix_ns);
		return;
	}
	if (a->final_sent)
		return; /* the client's answer is over */
	if ((o = json_loadb(s, n, 0, &e)) == NULL) {
		fail(a, "backend sent a stream chunk that is not JSON", NULL);
		return;
	}
	take_chunk(a, o, now_ns, now_unix_ns);
	json_decref(o);
}

void
xlate_feed(struct xlate_answer *a, const char *data, size_t len, int64_t now_ns, int64_t now_unix_ns)
{
	compact(a);
	while (a->mode == MODE_UNKNOWN && len > 0) {
		if (isspace((unsigned char)*data)) {
			data++;
			len--;
		} else {
			a->mode = *data == '{' || *data == '[' ? MODE_JSON : MODE_SSE;
		}
	}
	if (a->failed || len == 0)
		return;
	if (a->mode == MODE_JSON) {
		if (a->in.len + len > XLATE_MAX_BODY) {
			fail(a, "backend answer too large", NULL);
			return;
		}
		sb_add(&a->in, data, len);
		return;
	}
	while (len > 0 && !a->failed) {
		const char *nl = memchr(data, '\n', len);
		size_t n = nl != NULL ? (size_t)(nl - data) : len;
		if (a->in.len + n > XLATE_MAX_LINE) {
			fail(a, "backend stream line too long", NULL);
			return;
		}
		if (nl == NULL) {
			sb_add(&a->in, data, n);
			return;
		}
		if (a->in.len > 0) {
			sb_add(&a->in, data, n);
			sse_line(a, a->in.p, a->in.len, now_ns, now_unix_ns);
			a->in.len = 0;
		} else {
			sse_line(a, data, n, now_ns, now_unix_ns);
		}
		data += n + 1;
		len -= n + 1;
	}
}

/* A whole /v1/embeddings answer. */
static void
embed_answer(struct xlate_answer *a, json_t *o, int64_t now_ns)
{
	json_t *data = json_object_get(o, "data"), *item;
	const json_t *u = json_object_get(o, "usage");
	size_t n = json_array_size(data), i;
	json_t *vecs, *out;

	if (!json_is_array(data) || n == 0) {
		fail(a, "backend answer has no embeddings", NULL);
		return;
	}
	vecs = arr();
	for (i = 0; i < n; i++)
		json_array_append_new(vecs, json_null());
	json_array_foreach(data, i, item) {
		const json_t *ix = json_object_get(item, "index");
		json_t *emb = json_object_get(item, "embedding");
		json_int_t k = json_is_integer(ix) ? json_integer_value(ix) : (json_int_t)i;
		if (k < 0 || (size_t)k >= n || !json_is_null(json_array_get(vecs, (size_t)k)) || !json_is_array(emb)) {
			json_decref(vecs);
			fail(a, "backend embeddings are malformed", NULL);
			return;
		}
		/* The parsed numbers as they are: no float conversion on the way. */
		json_array_set(vecs, (size_t)k, emb);
	}
	if (a->route == XLATE_EMBEDDINGS) {
		out = jx_pack("{s:O}", "embedding", json_array_get(vecs, 0));
	} else {
		const json_t *pt = json_object_get(u, "prompt_tokens");
		out = obj();
		put(out, "model", jx_str(a->model));
		put(out, "embeddings", json_incref(vecs));
		put(out, "total_duration", json_integer(now_ns > a->t_start ? now_ns - a->t_start : 0));
		put(out, "load_duration", json_integer(0));
		if (json_is_integer(pt) && json_integer_value(pt) > 0)
			put(out, "prompt_eval_count", json_integer(json_integer_value(pt)));
	}
	json_decref(vecs);
	emit(a, out, false);
	a->final_sent = true;
}

static void
finish_json(struct xlate_answer *a, int64_t now_ns, int64_t now_unix_ns)
{
	json_error_t e;
	json_t *o = json_loadb(sb_str(&a->in), a->in.len, 0, &e);

	if (o == NULL) {
		fail(a, "backend answer is not JSON", NULL);
		return;
	}
	if (json_object_get(o, "error") != NULL && !json_is_null(json_object_get(o, "error"))) {
		fail(a, NULL, xstrdup(error_text(o)));
	} else if (a->route == XLATE_EMBED || a->route == XLATE_EMBEDDINGS) {
		embed_answer(a, o, now_ns);
	} else {
		take_chunk(a, o, now_ns, now_unix_ns);
		if (!a->failed && !a->have_choice)
			fail(a, "backend answer has no choices", NULL);
		send_end(a, now_ns, now_unix_ns);
	}
	json_decref(o);
}

bool
xlate_finish(struct xlate_answer *a, int64_t now_ns, int64_t now_unix_ns, const char **why)
{
	compact(a);
	if (!a->failed && !a->final_sent) {
		switch (a->mode) {
		case MODE_UNKNOWN:
			fail(a, "backend answer was empty", NULL);
			break;
		case MODE_JSON:
			finish_json(a, now_ns, now_unix_ns);
			break;
		case MODE_SSE:
			if (a->in.len > 0) /* a last line without its newline */
				sse_line(a, a->in.p, a->in.len, now_ns, now_unix_ns);
			a->in.len = 0;
			if (a->failed || a->final_sent)
				break;
			if (a->route == XLATE_EMBED || a->route == XLATE_EMBEDDINGS)
				fail(a, "backend streamed an embeddings answer", NULL);
			else if (a->have_finish || a->have_done)
				send_end(a, now_ns, now_unix_ns);
			else
				fail(a, "backend stream ended before its finish", NULL);
			break;
		}
	}
	*why = a->failed ? a->why : NULL;
	return !a->failed;
}

/* ---- backend errors ---- */

char *
xlate_error_message(const char *body, size_t len, long status)
{
	json_error_t e;
	json_t *o = body != NULL && len > 0 ? json_loadb(body, len, 0, &e) : NULL;
	bool is_json = o != NULL;
	char *msg = NULL;

	if (json_is_object(o)) {
		const json_t *err = json_object_get(o, "error");
		const json_t *detail = json_object_get(o, "detail");
		const char *s = NULL;
		if (err != NULL && !json_is_null(err))
			s = json_is_string(err) ? json_string_value(err) : str_of(err, "message");
		if (s == NULL)
			s = str_of(o, "message");
		if (s == NULL && json_is_string(detail))
			s = json_string_value(detail);
		if (s != NULL && *s != '\0')
			msg = xstrdup(s);
		else if (detail != NULL && !json_is_null(detail)) /* FastAPI's validation list */
			msg = jx_dump(detail, NULL);
	}
	json_decref(o);
	if (msg == NULL && body != NULL) {
		while (len > 0 && isspace((unsigned char)*body)) {
			body++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)body[len - 1]))
			len--;
		if (len > 0 && !is_json)
			msg = xstrndup(body, len > XLATE_MAX_ERROR ? XLATE_MAX_ERROR : len);
	}
	if (msg == NULL || *msg == '\0') {
		free(msg);
		return xasprintf("backend answered HTTP %ld", status);
	}
	if (!utf8_valid(msg, strlen(msg))) {
		char *clean = utf8_sanitize(msg);
		free(msg);
		msg = clean;
	}
	return msg;
}
