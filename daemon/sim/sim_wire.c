/*
 * sim_wire: Ollama and OpenAI wire formats for harmonic-sim.  Field order
 * follows Ollama's Go structs; zero metrics are omitted (Go omitempty);
 * native non-stream bodies carry no trailing newline, /v1 bodies do.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim_engine.h"
#include "sim_hash.h"
#include "sim_profile.h"
#include "sim_wire.h"
#include "xmalloc.h"

#define CT_JSON "application/json; charset=utf-8"
#define CT_NDJSON "application/x-ndjson"
#define CT_SSE "text/event-stream"

void
sim_buf_append(struct sim_buf *b, const char *data, size_t len)
{
	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;    /* everything was sent: reuse from the start */
	b->data = xgrow(b->data, &b->cap, b->len + len + 1, 256);
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
sim_buf_free(struct sim_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static const char *const words[] = {
	"the", "model", "answers", "with", "a", "calm", "and", "measured", "voice", "about",
	"quantum", "bits", "that", "hold", "many", "states", "at", "once", "while", "classical",
	"ones", "hold", "one", "so", "some", "problems", "become", "faster", "to", "solve",
	"in", "principle", "though", "noise", "limits", "today's", "machines", "of", "modest", "size",
	"engineers", "correct", "errors", "by", "spreading", "information", "across", "several", "qubits", "which",
	"costs", "hardware", "but", "buys", "time", "for", "longer", "programs", "on", "real",
	"devices", "every", "year", "brings",
};


const char *
sim_wire_word(uint64_t seed, int64_t i)
{
	/* Leading space on all but the first word, like a BPE tokenizer. */
	static char tok[32];
	const char *w = words[sim_mix64(seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL) % (sizeof(words) / sizeof(words[0]))];
	snprintf(tok, sizeof(tok), "%s%s%s", i == 0 ? "" : " ", w, (i + 1) % 12 == 0 ? "." : "");
	return tok;
}

int64_t
sim_wire_count_tokens(const char *text)
{
	size_t n = text ? strlen(text) : 0;
	return n == 0 ? 0 : (int64_t)((n + 3) / 4);
}

int64_t
sim_wire_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
sim_wire_time(char *buf, size_t size, int64_t t_ns, bool utc)
{
	time_t secs = (time_t)(t_ns / 1000000000);
	long ns = (long)(t_ns % 1000000000);
	struct tm tm;
	char frac[16] = "", zone[16];

	if (utc)
		gmtime_r(&secs, &tm);
	else
		localtime_r(&secs, &tm);
	if (ns > 0) {
		snprintf(frac, sizeof(frac), ".%09ld", ns);
		for (size_t n = strlen(frac); frac[n - 1] == '0'; n--)
			frac[n - 1] = '\0';    /* Go trims trailing zeros */
	}
	int off = utc ? 0 : (int)(tm.tm_gmtoff % 86400);
	if (off == 0)
		snprintf(zone, sizeof(zone), "Z");
	else
		snprintf(zone, sizeof(zone), "%c%02d:%02d", off < 0 ? '-' : '+', abs(off) / 3600 % 24,
		    abs(off) % 3600 / 60);
	char base[32];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s%s%s", base, frac, zone);
}

char *
sim_wire_dump(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
	if (s == NULL)
		s = xstrdup("null");
	return s;
}

/* What Go's encoder escapes inside strings for HTML safety: <, >, &,
 * U+2028 and U+2029.  Returns the code point at c, or 0. */
static unsigned
html_unsafe(const char *c)
{
	const unsigned char *u = (const unsigned char *)c;
	if (*u == '<' || *u == '>' || *u == '&')
		return *u;
	if (u[0] == 0xe2 && u[1] == 0x80 && (u[2] == 0xa8 || u[2] == 0xa9))
		return u[2] == 0xa8 ? 0x2028 : 0x2029;
	return 0;
}

char *
sim_wire_dump_go(const json_t *j, bool sorted)
{
	size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9) | (sorted ? JSON_SORT_KEYS : 0);
	char *s = json_dumps(j, flags);
	size_t extra = 0;

	if (s == NULL)
		return xstrdup("null");
	/* Outside strings the compact form has none of these bytes, so a plain
	 * substitution gives Go's escaping. */
	for (const char *c = s; *c; c++)
		if (html_unsafe(c))
			extra += 6;
	if (extra == 0)
		return s;
	char *out = xmalloc(strlen(s) + extra + 1), *o = out;
	for (const char *c = s; *c; c++) {
		unsigned cp = html_unsafe(c);
		if (cp == 0) {
			*o++ = *c;
			continue;
		}
		o += sprintf(o, "\\u%04x", cp);
		if (cp > 0x7f)
			c += 2;         /* the rest of the 3-byte sequence */
	}
	*o = '\0';
	free(s);
	return out;
}

void
sim_wire_rand_id(char *buf, size_t size, const char *prefix, const char *alphabet, int n)
{
	static uint64_t state;
	size_t len = strlen(alphabet), at = (size_t)snprintf(buf, size, "%s", prefix);

	if (state == 0)
		state = (uint64_t)sim_wire_realtime_ns() ^ ((uint64_t)getpid() << 32);
	for (int i = 0; i < n && at + 1 < size; i++) {
		state += 0x9e3779b97f4a7c15ULL;
		buf[at++] = alphabet[sim_mix64(state) % len];
	}
	buf[at < size ? at : size - 1] = '\0';
}

bool
sim_wire_is_v1(const struct sim_req *req)
{
	return req->api == SIM_API_V1_CHAT || req->api == SIM_API_V1_COMPLETIONS ||
	    req->api == SIM_API_V1_EMBEDDINGS;
}

bool
sim_wire_is_agent(const struct sim_req *req)
{
	return req->api == SIM_API_MESSAGES || req->api == SIM_API_RESPONSES;
}

/* Append one stream record: an NDJSON line or an SSE event; steals j. */
static void
emit_record(struct sim_req *req, json_t *j)
{
	char *s = sim_wire_dump(j);
	json_decref(j);
	if (sim_wire_is_v1(req)) {
		sim_buf_append(&req->out, "data: ", 6);
		sim_buf_append(&req->out, s, strlen(s));
		sim_buf_append(&req->out, "\n\n", 2);
		req->content_type = CT_SSE;
	} else {
		sim_buf_append(&req->out, s, strlen(s));
		sim_buf_append(&req->out, "\n", 1);
		req->content_type = CT_NDJSON;
	}
	free(s);
	req->status = 200;
	req->stream_started = true;
}

void
sim_wire_reply(struct sim_req *req, int status, json_t *j)
{
	/* Go's json.Encoder on /v1 and the agent routes: a trailing newline.
	 * llama-server (its agent routes come here) writes plain JSON. */
	bool go = sim_engine_profile()->api != SIM_PROFILE_API_LLAMACPP;
	bool encoder = go && (sim_wire_is_v1(req) || sim_wire_is_agent(req));
	char *s = go && sim_wire_is_agent(req) ? sim_wire_dump_go(j, false) : sim_wire_dump(j);
	json_decref(j);
	req->out.len = req->out.off = 0;
	sim_buf_append(&req->out, s, strlen(s));
	if (encoder)
		sim_buf_append(&req->out, "\n", 1);
	free(s);
	req->status = status;
	req->content_type = encoder ? "application/json" : CT_JSON;
	req->reply_ready = true;
	req->finished = true;
}

static json_t *
native_head(const struct sim_req *req)
{
	char ts[64];
	sim_wire_time(ts, sizeof(ts), sim_wire_realtime_ns(), true);
	return json_pack("{s:s, s:s}", "model", req->model_name, "created_at", ts);
}

static json_t *
v1_chunk(const struct sim_req *req, const char *object)
{
	char id[32];
	snprintf(id, sizeof(id), "%s-%d", req->api == SIM_API_V1_CHAT ? "chatcmpl" : "cmpl", req->v1_id);
	return json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", id, "object", object, "created",
	    (json_int_t)req->created, "model", req->model_name, "system_fingerprint", "fp_ollama");
}

static json_t *
usage(const struct sim_req *req)
{
	return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)req->prompt_tokens,
	    "completion_tokens", (json_int_t)req->emitted, "total_tokens",
	    (json_int_t)(req->prompt_tokens + req->emitted));
}

/* Ollama's api.ToolCall list for the request's tool call. */
static json_t *
native_tool_calls(const struct sim_req *req)
{
	return json_pack("[{s:s, s:{s:i, s:O, s:O}}]", "id", req->call_id, "function", "index", 0, "name",
	    json_object_get(req->tool_call, "name"), "arguments", json_object_get(req->tool_call, "arguments"));
}

/* OpenAI's tool_calls list: arguments as a JSON string. */
static json_t *
v1_tool_calls(const struct sim_req *req)
{
	char *args = sim_wire_dump(json_object_get(req->tool_call, "arguments"));
	json_t *j = json_pack("[{s:s, s:i, s:s, s:{s:O, s:s}}]", "id", req->call_id, "index", 0, "type", "function",
	    "function", "name", json_object_get(req->tool_call, "name"), "arguments", args);
	free(args);
	return j;
}

void
sim_wire_token(struct sim_req *req, const char *word)
{
	json_t *j;

	/* A tool call's tokens stay inside Ollama's tool parser: nothing is
	 * written until the call is complete (sim_wire_finish). */
	if (req->tool_call != NULL)
		return;
	if (!req->stream) {
		sim_buf_append(&req->text, word, strlen(word));
		return;
	}
	switch (req->api) {
	case SIM_API_GENERATE:
		j = native_head(req);
		json_object_set_new(j, "response", json_string(word));
		json_object_set_new(j, "done", json_false());
		break;
	case SIM_API_CHAT:
		j = native_head(req);
		json_object_set_new(j, "message", json_pack("{s:s, s:s}", "role", "assistant", "content", word));
		json_object_set_new(j, "done", json_false());
		break;
	case SIM_API_V1_CHAT: {
		j = v1_chunk(req, "chat.completion.chunk");
		json_t *delta = req->emitted == 1 ? json_pack("{s:s, s:s}", "role", "assistant", "content", word)
		    : json_pack("{s:s}", "content", word);
		json_object_set_new(j, "choices", json_pack("[{s:i, s:o, s:n}]", "index", 0, "delta", delta,
		    "finish_reason"));
		break;
	}
	case SIM_API_V1_COMPLETIONS:
		j = v1_chunk(req, "text_completion");
		json_object_set_new(j, "choices", json_pack("[{s:s, s:i, s:n}]", "text", word, "index", 0,
		    "finish_reason"));
		if (req->include_usage)
			json_object_set_new(j, "usage", json_pack("{s:i, s:i, s:i}", "prompt_tokens", 0,
			    "completion_tokens", 0, "total_tokens", 0));
		break;
	default:
		return;
	}
	emit_record(req, j);
}

/* Ollama's final metrics, omitting zeros. */
static void
add_metrics(json_t *j, const struct sim_req *req)
{
	struct { const char *key; int64_t v; } m[] = {
		{ "total_duration", req->t_done - req->t_arrival },
		{ "load_duration", req->t_prompt - req->t_arrival },
		{ "prompt_eval_count", req->prompt_tokens },
		{ "prompt_eval_duration", req->t_decode - req->t_prompt },
		{ "eval_count", req->emitted },
		{ "eval_duration", req->t_done - req->t_decode },
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (m[i].v > 0)
			json_object_set_new(j, m[i].key, json_integer((json_int_t)m[i].v));
}

json_t *
sim_wire_base64_floats(const json_t *vec)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = json_array_size(vec), len = n * 4;
	unsigned char *raw = xmalloc(len + 3);
	char *out = xmalloc(len / 3 * 4 + 8);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		float f = (float)json_number_value(json_array_get(vec, i));
		uint32_t u;
		memcpy(&u, &f, sizeof(u));
		for (int b = 0; b < 4; b++)
			raw[i * 4 + (size_t)b] = (unsigned char)(u >> (8 * b));
	}
	raw[len] = raw[len + 1] = raw[len + 2] = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t w = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
		out[o++] = abc[w >> 18 & 63];
		out[o++] = abc[w >> 12 & 63];
		out[o++] = i + 1 < len ? abc[w >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? abc[w & 63] : '=';
	}
	out[o] = '\0';
	json_t *s = json_string(out);
	free(raw);
	free(out);
	return s;
}

static void
finish_embed(struct sim_req *req)
{
	const struct sim_profile_model *pm = sim_engine_model_profile(req->model);
	json_t *vecs = json_array();
	size_t i;
	json_t *in;

	json_array_foreach(req->inputs, i, in)
		json_array_append_new(vecs, sim_wire_embedding(json_string_value(in), pm->embedding_length,
		    sim_engine_seed()));
	if (req->api == SIM_API_EMBEDDINGS) {
		json_t *first = json_array_size(vecs) ? json_incref(json_array_get(vecs, 0)) : json_array();
		json_decref(vecs);
		sim_wire_reply(req, 200, json_pack("{s:o}", "embedding", first));
	} else if (req->api == SIM_API_V1_EMBEDDINGS) {
		json_t *data = json_array();
		json_array_foreach(vecs, i, in)
			json_array_append_new(data, json_pack("{s:s, s:o, s:i}", "object", "embedding",
			    "embedding", req->base64 ? sim_wire_base64_floats(in) : json_incref(in), "index", (int)i));
		json_decref(vecs);
		sim_wire_reply(req, 200, json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data,
		    "model", req->model_name, "usage", "prompt_tokens", (json_int_t)req->prompt_tokens,
		    "total_tokens", (json_int_t)req->prompt_tokens));
	} else {
		json_t *j = json_pack("{s:s, s:o}", "model", req->model_name, "embeddings", vecs);
		if (req->t_done - req->t_arrival > 0)
			json_object_set_new(j, "total_duration", json_integer((json_int_t)(req->t_done - req->t_arrival)));
		if (req->t_prompt - req->t_arrival > 0)
			json_object_set_new(j, "load_duration", json_integer((json_int_t)(req->t_prompt - req->t_arrival)));
		if (req->prompt_tokens > 0)
			json_object_set_new(j, "prompt_eval_count", json_integer((json_int_t)req->prompt_tokens));
		sim_wire_reply(req, 200, j);
	}
}

void
sim_wire_finish(struct sim_req *req, const char *done_reason)
{
	json_t *j;
	const char *text = req->text.data ? req->text.data : "";

	switch (req->api) {
	case SIM_API_EMBED:
	case SIM_API_EMBEDDINGS:
	case SIM_API_V1_EMBEDDINGS:
		finish_embed(req);
		return;
	case SIM_API_GENERATE:
	case SIM_API_CHAT:
		if (req->tool_call != NULL && req->stream) {
			j = native_head(req);
			json_object_set_new(j, "message", json_pack("{s:s, s:s, s:o}", "role", "assistant", "content", "",
			    "tool_calls", native_tool_calls(req)));
			json_object_set_new(j, "done", json_false());
			emit_record(req, j);
		}
		j = native_head(req);
		if (req->api == SIM_API_GENERATE)
			json_object_set_new(j, "response", json_string(req->stream ? "" : text));
		else
			json_object_set_new(j, "message", json_pack("{s:s, s:s}", "role", "assistant", "content",
			    req->stream ? "" : text));
		if (req->tool_call != NULL && !req->stream)
			json_object_set_new(json_object_get(j, "message"), "tool_calls", native_tool_calls(req));
		json_object_set_new(j, "done", json_true());
		json_object_set_new(j, "done_reason", json_string(done_reason));
		add_metrics(j, req);
		if (req->stream) {
			emit_record(req, j);
			req->finished = true;
		} else {
			sim_wire_reply(req, 200, j);
		}
		return;
	case SIM_API_V1_CHAT:
	case SIM_API_V1_COMPLETIONS:
		break;
	default:
		return;
	}
	bool chat = req->api == SIM_API_V1_CHAT;
	if (req->tool_call != NULL)
		done_reason = "tool_calls";
	if (!req->stream) {
		j = v1_chunk(req, chat ? "chat.completion" : "text_completion");
		json_t *choice = chat
		    ? json_pack("{s:i, s:{s:s, s:s}, s:s}", "index", 0, "message", "role", "assistant", "content", text,
			"finish_reason", done_reason)
		    : json_pack("{s:s, s:i, s:s}", "text", text, "index", 0, "finish_reason", done_reason);
		if (req->tool_call != NULL)
			json_object_set_new(json_object_get(choice, "message"), "tool_calls", v1_tool_calls(req));
		json_object_set_new(j, "choices", json_pack("[o]", choice));
		json_object_set_new(j, "usage", usage(req));
		sim_wire_reply(req, 200, j);
		return;
	}
	if (req->tool_call != NULL) {
		j = v1_chunk(req, "chat.completion.chunk");
		json_object_set_new(j, "choices", json_pack("[{s:i, s:{s:s, s:s, s:o}, s:n}]", "index", 0, "delta",
		    "role", "assistant", "content", "", "tool_calls", v1_tool_calls(req), "finish_reason"));
		emit_record(req, j);
	}
	j = v1_chunk(req, chat ? "chat.completion.chunk" : "text_completion");
	if (chat)
		json_object_set_new(j, "choices", json_pack("[{s:i, s:{}, s:s}]", "index", 0, "delta",
		    "finish_reason", done_reason));
	else
		json_object_set_new(j, "choices", json_pack("[{s:s, s:i, s:s}]", "text", "", "index", 0,
		    "finish_reason", done_reason));
	emit_record(req, j);
	if (req->include_usage) {
		j = v1_chunk(req, chat ? "chat.completion.chunk" : "text_completion");
		json_object_set_new(j, "choices", json_array());
		json_object_set_new(j, "usage", usage(req));
		emit_record(req, j);
	}
	sim_buf_append(&req->out, "data: [DONE]\n\n", 14);
	req->finished = true;
}

void
sim_wire_load_reply(struct sim_req *req, const char *reason)
{
	if (req->api == SIM_API_EMBED) {
		sim_wire_reply(req, 200, json_pack("{s:s, s:[]}", "model", req->model_name, "embeddings"));
		return;
	}
	if (req->api == SIM_API_EMBEDDINGS) {
		sim_wire_reply(req, 200, json_pack("{s:[]}", "embedding"));
		return;
	}
	json_t *j = native_head(req);
	if (req->api == SIM_API_CHAT)
		json_object_set_new(j, "message", json_pack("{s:s, s:s}", "role", "assistant", "content", ""));
	else
		json_object_set_new(j, "response", json_string(""));
	json_object_set_new(j, "done", json_true());
	json_object_set_new(j, "done_reason", json_string(reason));
	sim_wire_reply(req, 200, j);
}

static const char *
v1_error_type(int status)
{
	return status == 400 ? "invalid_request_error" : status == 404 ? "not_found_error" : "api_error";
}

/* Anthropic's error.type for a status, as Ollama picks it. */
static const char *
anthropic_error_type(int status)
{
	switch (status) {
	case 400:
		return "invalid_request_error";
	case 401:
		return "authentication_error";
	case 403:
		return "permission_error";
	case 404:
		return "not_found_error";
	case 429:
		return "rate_limit_error";
	case 503:
	case 529:
		return "overloaded_error";
	default:
		return "api_error";
	}
}

void
sim_wire_error(struct sim_req *req, int status, const char *message)
{
	if (req->api == SIM_API_MESSAGES) {
		char rid[32];
		sim_wire_rand_id(rid, sizeof(rid), "req_", "0123456789abcdef", 24);
		sim_wire_reply(req, status, json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "error", "type",
		    anthropic_error_type(status), "message", message, "request_id", rid));
	} else if (sim_wire_is_v1(req) || req->api == SIM_API_RESPONSES)
		sim_wire_reply(req, status, json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", message, "type",
		    v1_error_type(status), "param", "code"));
	else
		sim_wire_reply(req, status, json_pack("{s:s}", "error", message));
}

void
sim_wire_error_inline(struct sim_req *req, int status, const char *message)
{
	if (!req->stream || !req->stream_started) {
		sim_wire_error(req, status, message);
		return;
	}
	if (sim_wire_is_v1(req))
		emit_record(req, json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", message, "type",
		    v1_error_type(status), "param", "code"));
	else
		emit_record(req, json_pack("{s:s}", "error", message));
	req->finished = true;
}

json_t *
sim_wire_embedding(const char *text, int dims, uint64_t seed)
{
	uint64_t h = seed ^ 0x6a09e667f3bcc909ULL;
	for (const char *c = text ? text : ""; *c; c++)
		h = sim_mix64(h ^ (unsigned char)*c);
	double *v = xcalloc((size_t)dims, sizeof(double)), norm = 0;
	for (int i = 0; i < dims; i++) {
		v[i] = (double)(sim_mix64(h + (uint64_t)i) >> 11) / 9007199254740992.0 - 0.5;
		norm += v[i] * v[i];
	}
	norm = sqrt(norm);
	json_t *a = json_array();
	for (int i = 0; i < dims; i++)
		json_array_append_new(a, json_real(norm > 0 ? (double)(float)(v[i] / norm) : 0));
	free(v);
	return a;
}

const struct sim_output sim_wire_output = {
	sim_wire_token, sim_wire_finish, sim_wire_load_reply, sim_wire_error_inline, sim_wire_word,
};
