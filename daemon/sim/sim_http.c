/*
 * sim_http: routes and parses requests for harmonic-sim and drives MHD.
 * /v1/messages and /v1/responses are converted by sim_agent into /api/chat
 * bodies and then take the chat path; every chat request goes through the
 * tool rule (tool_rule, docs/sim.md).
 *
 * Life of an inference request: the first handler call allocates a
 * sim_req (owned by the connection, freed in completed()); body pieces
 * accumulate up to MAX_BODY; on the final call the body is parsed and the
 * request is either answered at once (errors, faults, unload) or submitted
 * to the engine, after which the handler suspends.  The engine wakes the
 * request when output exists; MHD then calls the handler again, which
 * queues either the complete body or, for streams, a callback response.
 * Headers therefore go out with the first token, like Ollama's.  The
 * content reader suspends whenever it has nothing to send.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "sim_agent.h"
#include "sim_engine.h"
#include "sim_http.h"
#include "sim_llama.h"
#include "sim_profile.h"
#include "sim_wire.h"
#include "xmalloc.h"

#define MAX_BODY (8u << 20)
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_JSON "application/json; charset=utf-8"
#define DEFAULT_CREATED 1767225600      /* 2026-01-01, the profiles' "modified_at" */

TAILQ_HEAD(sim_req_all, sim_req);

static struct {
	struct MHD_Daemon *mhd;
	int loop_epfd;
	bool stopping;
	bool resumed;                   /* a resume awaits MHD_run */
	uint64_t next_id;
	struct sim_req_all live;
} H;

enum method { M_GET = 1, M_HEAD = 2, M_POST = 4 };

/* ---- small response helpers ---- */

/* Whether the sim serves llama-server's API (sim_llama) instead of Ollama's. */
static bool
llama_mode(void)
{
	return sim_engine_profile()->api == SIM_PROFILE_API_LLAMACPP;
}

static enum MHD_Result
queue_bytes(struct MHD_Connection *c, unsigned status, const char *ctype, const char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", ctype);
	if (llama_mode())
		MHD_add_response_header(r, "Server", "llama.cpp");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
queue_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	return queue_bytes(c, status, CT_TEXT, text, strlen(text));
}

/* Queue a JSON body (steals j); newline for the /v1 encoder's style. */
static enum MHD_Result
queue_json(struct MHD_Connection *c, unsigned status, json_t *j, bool newline)
{
	char *s = sim_wire_dump(j);
	json_decref(j);
	char *body = newline ? xasprintf("%s\n", s) : xstrdup(s);
	enum MHD_Result ret = queue_bytes(c, status, newline ? "application/json" : CT_JSON, body, strlen(body));
	free(body);
	free(s);
	return ret;
}

/* ---- model listings ---- */

static json_t *
details(const struct sim_profile_model *m)
{
	return json_pack("{s:s, s:s, s:s, s:[s], s:s, s:s}", "parent_model", "", "format", "gguf", "family",
	    m->family, "families", m->family, "parameter_size", m->parameter_size, "quantization_level",
	    m->quantization);
}

static json_t *
tags(void)
{
	const struct sim_profile *p = sim_engine_profile();
	json_t *models = json_array();
	char ts[64];

	sim_wire_time(ts, sizeof(ts), (int64_t)DEFAULT_CREATED * 1000000000, false);
	for (size_t i = 0; i < p->n_models; i++) {
		const struct sim_profile_model *m = &p->models[i];
		json_array_append_new(models, json_pack("{s:s, s:s, s:s, s:I, s:s, s:o}", "name", m->name, "model",
		    m->name, "modified_at", ts, "size", (json_int_t)(m->base_gb * 1073741824.0), "digest", m->digest,
		    "details", details(m)));
	}
	return json_pack("{s:o}", "models", models);
}

static json_t *
ps(void)
{
	const struct sim_profile *p = sim_engine_profile();
	json_t *models = json_array();
	int64_t now_sim = sim_engine_now(), now_real = sim_wire_realtime_ns();

	sim_engine_advance();
	for (size_t i = 0; i < p->n_models; i++) {
		const struct sim_profile_model *m = &p->models[i];
		int64_t expires;
		int ctx;
		/* Like Ollama, a model being loaded is listed (with its new context). */
		if (!sim_engine_loaded(sim_engine_model(m), true, &expires, &ctx))
			continue;
		/* Forever is shown the way Ollama does: a date centuries away. */
		int64_t when = expires == INT64_MAX ? (int64_t)9000000000 * 1000000000
		    : now_real + (int64_t)((double)(expires - now_sim) / sim_engine_speed());
		char ts[64];
		sim_wire_time(ts, sizeof(ts), when, false);
		json_int_t size = (json_int_t)sim_profile_model_bytes(m);
		json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:o, s:s, s:I, s:i}", "name", m->name, "model", m->name,
		    "size", size, "digest", m->digest, "details", details(m), "expires_at", ts, "size_vram", size,
		    "context_length", ctx);
		/* Latest expiry first, like Ollama. */
		size_t at = 0;
		for (; at < json_array_size(models); at++)
			if (strcmp(json_string_value(json_object_get(json_array_get(models, at), "expires_at")), ts) < 0)
				break;
		json_array_insert_new(models, at, o);
	}
	return json_pack("{s:o}", "models", models);
}

static json_t *
v1_model(const struct sim_profile_model *m, const char *id)
{
	return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created", (json_int_t)DEFAULT_CREATED,
	    "owned_by", "library");
}

static json_t *
show(const struct sim_profile_model *m)
{
	char *params = xasprintf("%-30s %d\n%-30s %s", "num_ctx", sim_profile_default_ctx(sim_engine_profile(), m),
	    "stop", "\"<|im_end|>\"");
	char *modelfile = xasprintf("# Modelfile generated by harmonic-sim\nFROM %s\n", m->name);
	char ctx_key[64], emb_key[64], ts[64];
	snprintf(ctx_key, sizeof(ctx_key), "%s.context_length", m->family);
	snprintf(emb_key, sizeof(emb_key), "%s.embedding_length", m->family);
	sim_wire_time(ts, sizeof(ts), (int64_t)DEFAULT_CREATED * 1000000000, false);
	json_t *info = json_pack("{s:s, s:I, s:i, s:i}", "general.architecture", m->family,
	    "general.parameter_count", (json_int_t)(m->base_gb * 1.6e9), ctx_key, 40960, emb_key, m->embedding_length);
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:[s,s], s:s}", "license", "Apache License 2.0",
	    "modelfile", modelfile, "parameters", params, "template", "{{ .Prompt }}", "details", details(m),
	    "model_info", info, "capabilities", "completion", "tools", "modified_at", ts);
	free(params);
	free(modelfile);
	return j;
}

/* ---- parsing ---- */

static const char *
api_struct(enum sim_api api)
{
	switch (api) {
	case SIM_API_CHAT:
		return "ChatRequest";
	case SIM_API_EMBED:
		return "EmbedRequest";
	case SIM_API_EMBEDDINGS:
		return "EmbeddingRequest";
	default:
		return "GenerateRequest";
	}
}

static const char *
json_type_go(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	default:
		return "bool";
	}
}

/* Go's decoder message for a field of the wrong type; NULL when fine. */
static char *
check_type(struct sim_req *req, json_t *body, const char *key, json_type want, const char *go_type)
{
	json_t *v = json_object_get(body, key);
	if (v == NULL || json_is_null(v))
		return NULL;
	if (json_typeof(v) == want || (want == JSON_TRUE && json_is_boolean(v)) ||
	    (want == JSON_INTEGER && json_is_number(v)))
		return NULL;
	return xasprintf("json: cannot unmarshal %s into Go struct field %s.%s of type %s", json_type_go(v),
	    api_struct(req->api), key, go_type);
}

/* keep_alive: number of seconds or a Go duration; -1 on a 400 (reply set). */
static int
parse_keep_alive(struct sim_req *req, json_t *body)
{
	json_t *v = json_object_get(body, "keep_alive");
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_number(v)) {
		req->keep_alive_ns = (int64_t)(json_number_value(v) * 1e9);
	} else if (json_is_string(v)) {
		if (sim_profile_parse_duration(json_string_value(v), &req->keep_alive_ns) < 0) {
			const char *s = json_string_value(v);
			bool digits = s[0] != '\0' && strspn(s, "0123456789.-+") == strlen(s);
			char *msg = xasprintf(digits ? "time: missing unit in duration \"%s\"" : "time: invalid duration \"%s\"", s);
			sim_wire_error(req, 400, msg);
			free(msg);
			return -1;
		}
	} else {
		sim_wire_error(req, 400, "json: cannot unmarshal bool into Go struct field of type api.Duration");
		return -1;
	}
	req->keep_alive_set = true;
	return 0;
}

/* num_predict from options (native) or max_tokens (/v1). -1 on error. */
static int
parse_predict(struct sim_req *req, json_t *body)
{
	const struct sim_profile *p = sim_engine_profile();
	json_t *v;

	if (sim_wire_is_v1(req)) {
		v = json_object_get(body, "max_tokens");
		if (v != NULL && !json_is_null(v) && !json_is_number(v)) {
			sim_wire_error(req, 400, "invalid type for 'max_tokens' field");
			return -1;
		}
	} else {
		json_t *opts = json_object_get(body, "options");
		if (opts != NULL && !json_is_null(opts) && !json_is_object(opts)) {
			sim_wire_error(req, 400, "json: cannot unmarshal value into Go struct field options of type map[string]interface {}");
			return -1;
		}
		v = json_object_get(opts, "num_predict");
		if (v != NULL && !json_is_null(v) && !json_is_number(v)) {
			sim_wire_error(req, 500, "option \"num_predict\" must be of type integer");
			return -1;
		}
	}
	req->target_tokens = p->default_predict;
	if (v != NULL && json_is_number(v) && json_number_value(v) >= 0) {
		double n = json_number_value(v);
		req->target_tokens = n > 10000000 ? 10000000 : (int64_t)n;
		req->explicit_predict = true;
	}
	return 0;
}

/*
 * The context the request runs at: options.num_ctx on the native API (a
 * positive number; anything else is the default), else the model's
 * default context, which is all the /v1 and agent APIs can have: they
 * carry no options.  -1 on error (reply set; parse_predict has already
 * checked that options is an object).
 */
static int
parse_ctx(struct sim_req *req, json_t *body)
{
	const struct sim_profile *p = sim_engine_profile();
	json_t *v;

	req->num_ctx = sim_profile_default_ctx(p, sim_engine_model_profile(req->model));
	if (sim_wire_is_v1(req) || sim_wire_is_agent(req))
		return 0;
	v = json_object_get(json_object_get(body, "options"), "num_ctx");
	if (v != NULL && !json_is_null(v) && !json_is_number(v)) {
		sim_wire_error(req, 500, "option \"num_ctx\" must be of type integer");
		return -1;
	}
	if (v != NULL && json_is_number(v) && json_number_value(v) >= 1) {
		double n = json_number_value(v);
		req->num_ctx = n > SIM_PROFILE_MAX_CTX ? SIM_PROFILE_MAX_CTX : (int)n;
	}
	return 0;
}

static uint64_t
hash_text(uint64_t h, const char *s)
{
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

/* Tokens and a text hash for chat messages; -1 on a 400 (reply set). */
static int
parse_messages(struct sim_req *req, json_t *msgs, bool *empty)
{
	size_t i;
	json_t *msg;
	uint64_t h = 0xcbf29ce484222325ULL;

	*empty = true;
	if (msgs == NULL || json_is_null(msgs))
		return 0;
	if (!json_is_array(msgs)) {
		sim_wire_error(req, 400, sim_wire_is_v1(req) ? "invalid type for 'messages' field"
		    : "json: cannot unmarshal value into Go struct field ChatRequest.messages of type []api.Message");
		return -1;
	}
	json_array_foreach(msgs, i, msg) {
		json_t *content = json_object_get(msg, "content");
		const char *text = json_string_value(content);
		if (json_is_array(content)) {           /* /v1 content parts */
			size_t k;
			json_t *part;
			json_array_foreach(content, k, part) {
				const char *t = json_string_value(json_object_get(part, "text"));
				req->prompt_tokens += sim_wire_count_tokens(t);
				h = hash_text(h, t);
			}
		}
		req->prompt_tokens += sim_wire_count_tokens(text) + 4;  /* role markers */
		h = hash_text(h, text);
		/* Earlier tool calls are part of the prompt: name and arguments
		 * (an object natively, a JSON string on /v1). */
		size_t k;
		json_t *tc;
		json_array_foreach(json_object_get(msg, "tool_calls"), k, tc) {
			json_t *fn = json_object_get(tc, "function"), *args = json_object_get(fn, "arguments");
			req->prompt_tokens += sim_wire_count_tokens(json_string_value(json_object_get(fn, "name")));
			if (json_is_string(args)) {
				req->prompt_tokens += sim_wire_count_tokens(json_string_value(args));
			} else if (args != NULL) {
				char *a = sim_wire_dump(args);
				req->prompt_tokens += sim_wire_count_tokens(a);
				free(a);
			}
		}
		*empty = false;
	}
	req->text_seed = h;
	return 0;
}

/* ---- the tool rule (docs/sim.md) ---- */

static bool
ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Offset of the first whole-word occurrence of word in text, or -1. */
static long
find_word(const char *text, const char *word)
{
	size_t n = strlen(word);
	if (n == 0)
		return -1;
	for (const char *p = strstr(text, word); p != NULL; p = strstr(p + 1, word))
		if ((p == text || !ident_char(p[-1])) && !ident_char(p[n]))
			return (long)(p - text);
	return -1;
}

/* The text of a chat message (a string, or /v1 content parts) without
 * Claude Code's <system-reminder> sections.  Caller owns (free). */
static char *
user_text(json_t *msg)
{
	static const char open[] = "<system-reminder>", close[] = "</system-reminder>";
	json_t *content = json_object_get(msg, "content");
	struct sim_buf b = { 0 };
	size_t i;
	json_t *part;

	if (json_is_string(content))
		sim_buf_append(&b, json_string_value(content), json_string_length(content));
	json_array_foreach(content, i, part) {
		const char *t = json_string_value(json_object_get(part, "text"));
		if (t != NULL)
			sim_buf_append(&b, t, strlen(t));
	}
	char *s = b.data ? b.data : xstrdup(""), *a, *z;
	while ((a = strstr(s, open)) != NULL) {
		z = strstr(a, close);
		if (z == NULL)
			*a = '\0';
		else
			memmove(a, z + strlen(close), strlen(z + strlen(close)) + 1);
	}
	return s;
}

/* The next `quoted` span of text after *at, or NULL.  Caller owns (free). */
static char *
next_span(const char *text, const char **at)
{
	for (;;) {
		const char *a = strchr(*at, '`'), *z;
		if (a == NULL || (z = strchr(a + 1, '`')) == NULL)
			return NULL;
		*at = z + 1;
		if (z > a + 1)
			return xstrndup(a + 1, (size_t)(z - a - 1));
	}
}

/*
 * Simple arguments from a tool's JSON schema: each property listed in
 * "required", in order; strings (and arrays of strings, split on spaces)
 * take the user text's `quoted` spans in turn, numbers are 1, booleans
 * false, objects {} and other arrays [].
 */
static json_t *
tool_arguments(json_t *params, const char *text)
{
	json_t *args = json_object(), *props = json_object_get(params, "properties"), *name;
	const char *at = text;
	size_t i;

	json_array_foreach(json_object_get(params, "required"), i, name) {
		const char *key = json_string_value(name);
		json_t *prop = json_object_get(props, key);
		const char *type = json_string_value(json_object_get(prop, "type"));
		json_t *v;
		if (key == NULL)
			continue;
		type = type ? type : "string";
		if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0) {
			v = json_integer(1);
		} else if (strcmp(type, "boolean") == 0) {
			v = json_false();
		} else if (strcmp(type, "object") == 0) {
			v = json_object();
		} else if (strcmp(type, "array") == 0) {
			const char *items = json_string_value(json_object_get(json_object_get(prop, "items"), "type"));
			char *span = items && strcmp(items, "string") == 0 ? next_span(text, &at) : NULL;
			v = json_array();
			for (char *tok = span ? strtok(span, " \t\n") : NULL; tok != NULL; tok = strtok(NULL, " \t\n"))
				json_array_append_new(v, json_string(tok));
			free(span);
		} else {
			char *span = next_span(text, &at);
			v = json_string(span ? span : "");
			free(span);
		}
		json_object_set_new(args, key, v);
	}
	return args;
}

/*
 * Decide whether a chat request is answered with a tool call (sets
 * req->tool_call).  Only when the request has tools, no tool result came
 * after the last assistant message, and the last message other than
 * system and developer messages (Claude Code appends one) is the user's:
 * then tool_choice "none" never calls, a named tool_choice calls that tool,
 * and otherwise the first tool whose name the user's text contains as a
 * whole word is called ("required" falls back to the first tool).  The
 * call costs the tokens of its JSON; if num_predict allows fewer, the
 * answer is text.
 */
static void
tool_rule(struct sim_req *req, json_t *msgs, json_t *tools, json_t *choice)
{
	const char *mode = json_string_value(choice);
	const char *forced = json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
	size_t n = json_array_size(msgs), i;
	json_t *tool = NULL, *t, *last = NULL;
	long best = -1;

	if (json_array_size(tools) == 0 || n == 0 || (mode != NULL && strcmp(mode, "none") == 0))
		return;
	for (i = n; i-- > 0;) {
		json_t *m = json_array_get(msgs, i);
		const char *role = json_string_value(json_object_get(m, "role"));
		role = role ? role : "";
		if (strcmp(role, "assistant") == 0)
			break;
		if (strcmp(role, "tool") == 0)
			return;         /* answer the tool results with text */
		if (last == NULL && strcmp(role, "system") != 0 && strcmp(role, "developer") != 0)
			last = m;
	}
	const char *role = json_string_value(json_object_get(last, "role"));
	if (role == NULL || strcmp(role, "user") != 0)
		return;
	char *text = user_text(last);
	json_array_foreach(tools, i, t) {
		const char *name = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
		long at;
		if (name == NULL)
			continue;
		if (forced != NULL) {
			if (strcmp(name, forced) == 0)
				tool = t;
		} else if ((at = find_word(text, name)) >= 0 && (best < 0 || at < best)) {
			best = at;
			tool = t;
		}
	}
	if (tool == NULL && forced == NULL && mode != NULL && strcmp(mode, "required") == 0)
		tool = json_array_get(tools, 0);
	if (tool != NULL) {
		json_t *fn = json_object_get(tool, "function");
		json_t *call = json_pack("{s:O, s:o}", "name", json_object_get(fn, "name"), "arguments",
		    tool_arguments(json_object_get(fn, "parameters"), text));
		char *s = sim_wire_dump(call);
		int64_t cost = sim_wire_count_tokens(s);
		free(s);
		if (req->explicit_predict && req->target_tokens < cost) {
			json_decref(call);
		} else {
			req->tool_call = call;
			req->target_tokens = cost;
			req->explicit_predict = false;  /* the model stops after the call */
			sim_wire_rand_id(req->call_id, sizeof(req->call_id), "call_",
			    "abcdefghijklmnopqrstuvwxyz0123456789", 8);
		}
	}
	free(text);
}

/* Embedding inputs into req->inputs; -1 on a 400 (reply set). */
static int
parse_inputs(struct sim_req *req, json_t *body, const char *key)
{
	json_t *in = json_object_get(body, key);
	req->inputs = json_array();
	if (in == NULL || json_is_null(in)) {
		if (req->api == SIM_API_V1_EMBEDDINGS) {
			sim_wire_error(req, 400, "invalid input");
			return -1;
		}
		return 0;
	}
	if (json_is_string(in)) {
		if (json_string_length(in) > 0 || req->api == SIM_API_V1_EMBEDDINGS)
			json_array_append(req->inputs, in);
	} else if (json_is_array(in) && req->api != SIM_API_EMBEDDINGS) {
		size_t i;
		json_t *s;
		json_array_foreach(in, i, s) {
			if (!json_is_string(s)) {
				sim_wire_error(req, 400, "invalid input type");
				return -1;
			}
			json_array_append(req->inputs, s);
		}
		if (json_array_size(in) == 0 && req->api == SIM_API_V1_EMBEDDINGS) {
			sim_wire_error(req, 400, "invalid input");
			return -1;
		}
	} else {
		sim_wire_error(req, 400, "invalid input type");
		return -1;
	}
	size_t i;
	json_t *s;
	json_array_foreach(req->inputs, i, s)
		req->prompt_tokens += sim_wire_count_tokens(json_string_value(s)) + 1;
	return 0;
}

/* Unknown or missing model: each endpoint has its own wording. */
static void
model_error(struct sim_req *req, const char *name)
{
	char *msg;
	if (name == NULL || *name == '\0') {
		if (req->api == SIM_API_GENERATE || req->api == SIM_API_EMBED)
			sim_wire_error(req, 404, "model '' not found");
		else
			sim_wire_error(req, 400, "model is required");
		return;
	}
	if (req->api == SIM_API_EMBED || req->api == SIM_API_EMBEDDINGS)
		msg = xasprintf("model \"%s\" not found, try pulling it first", name);
	else
		msg = xasprintf("model '%s' not found", name);
	sim_wire_error(req, 404, msg);
	free(msg);
}

/* The prompt's tokens for the prompt cache, laid out (sim_cache.h) so that
 * there are exactly prompt_tokens of them.  Embeddings are not cached. */
static void
prompt_sequence(struct sim_req *req, json_t *body)
{
	switch (req->api) {
	case SIM_API_GENERATE:
	case SIM_API_V1_COMPLETIONS:
		sim_cache_generate_prompt(&req->prompt_seq, json_string_value(json_object_get(body, "system")),
		    json_string_value(json_object_get(body, "prompt")), req->api == SIM_API_GENERATE);
		break;
	case SIM_API_CHAT:
	case SIM_API_V1_CHAT:
	case SIM_API_MESSAGES:
	case SIM_API_RESPONSES:
		sim_cache_chat_prompt(&req->prompt_seq, json_object_get(body, "messages"), json_object_get(body, "tools"));
		break;
	default:
		return;
	}
	if ((int64_t)req->prompt_seq.len != req->prompt_tokens)
		log_warnx("request %" PRIu64 ": %zu prompt cache tokens for a prompt of %" PRId64 " (sim bug)", req->id,
		    req->prompt_seq.len, req->prompt_tokens);
}

/* Parse an inference request and start it.  Either the reply is set or
 * the request is in the engine. */
static void
start_inference(struct sim_req *req, json_t *body)
{
	const struct sim_profile *p = sim_engine_profile();
	char *err = NULL;
	bool empty = true;

	if ((err = check_type(req, body, "model", JSON_STRING, "string")) ||
	    (err = check_type(req, body, "stream", JSON_TRUE, "bool")) ||
	    (err = check_type(req, body, "prompt", JSON_STRING, "string"))) {
		sim_wire_error(req, 400, err);
		free(err);
		return;
	}
	const char *name = json_string_value(json_object_get(body, "model"));
	const struct sim_profile_model *pm = sim_profile_find(p, name);
	if (req->api == SIM_API_V1_CHAT) {
		json_t *msgs = json_object_get(body, "messages");
		if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
			sim_wire_error(req, 400, "[] is too short - 'messages'");
			return;
		}
	}
	if (pm == NULL) {
		model_error(req, name);
		return;
	}
	req->model = sim_engine_model(pm);
	req->model_name = xstrdup(name);
	json_t *stream = json_object_get(body, "stream");
	req->stream = json_is_boolean(stream) ? json_is_true(stream) : !sim_wire_is_v1(req);
	req->include_usage = json_is_true(json_object_get(json_object_get(body, "stream_options"), "include_usage"));
	req->created = sim_wire_realtime_ns() / 1000000000;
	req->v1_id = (int)((req->id * 7919u + sim_engine_seed()) % 999u);
	if (parse_keep_alive(req, body) < 0 || parse_predict(req, body) < 0 || parse_ctx(req, body) < 0)
		return;

	switch (req->api) {
	case SIM_API_GENERATE:
	case SIM_API_V1_COMPLETIONS: {
		json_t *pr = json_object_get(body, "prompt");
		if (pr != NULL && !json_is_null(pr) && !json_is_string(pr)) {
			sim_wire_error(req, 400, "invalid type for 'prompt' field");
			return;
		}
		const char *prompt = json_string_value(pr);
		empty = prompt == NULL || *prompt == '\0';
		req->prompt_tokens = sim_wire_count_tokens(prompt) + (req->api == SIM_API_GENERATE ? 10 : 0);
		req->text_seed = hash_text(0xcbf29ce484222325ULL, prompt);
		if (req->api == SIM_API_V1_COMPLETIONS)
			empty = false;      /* /v1 always generates */
		break;
	}
	case SIM_API_CHAT:
	case SIM_API_V1_CHAT:
	case SIM_API_MESSAGES:
	case SIM_API_RESPONSES: {
		json_t *msgs = json_object_get(body, "messages"), *tools = json_object_get(body, "tools"), *t;
		size_t i;
		if (parse_messages(req, msgs, &empty) < 0)
			return;
		req->prompt_tokens += 6;        /* chat template overhead */
		/* The template renders the tool definitions into the prompt. */
		json_array_foreach(tools, i, t) {
			json_t *fn = json_object_get(t, "function");
			char *d = sim_wire_dump(fn ? fn : t);
			req->prompt_tokens += sim_wire_count_tokens(d);
			free(d);
		}
		/* max_tokens is a cap: a natural answer (default_predict) ends first. */
		if (sim_wire_is_agent(req) && req->explicit_predict && req->target_tokens > p->default_predict) {
			req->target_tokens = p->default_predict;
			req->explicit_predict = false;
		}
		if (json_is_array(msgs))
			tool_rule(req, msgs, tools, json_object_get(body, "tool_choice"));
		break;
	}
	case SIM_API_EMBED:
	case SIM_API_V1_EMBEDDINGS:
	case SIM_API_EMBEDDINGS:
		if (req->api == SIM_API_V1_EMBEDDINGS) {
			const char *fmt = json_string_value(json_object_get(body, "encoding_format"));
			if (fmt != NULL && strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0) {
				char *msg = xasprintf("Invalid value for 'encoding_format' = %s. Supported values: ['float', 'base64'].", fmt);
				sim_wire_error(req, 400, msg);
				free(msg);
				return;
			}
			req->base64 = fmt != NULL && strcmp(fmt, "base64") == 0;
		}
		if (parse_inputs(req, body, req->api == SIM_API_EMBEDDINGS ? "prompt" : "input") < 0)
			return;
		empty = json_array_size(req->inputs) == 0;
		req->stream = false;
		req->target_tokens = 0;
		break;
	default:
		return;
	}

	if (req->count_only) {          /* tokenized, never run */
		sim_llama_count_reply(req);
		return;
	}
	if (empty) {
		req->target_tokens = 0;
		req->prompt_tokens = 0;
		req->stream = req->stream && sim_wire_is_agent(req);
		if (req->keep_alive_set && req->keep_alive_ns == 0) {
			sim_engine_unload(req->model);
			sim_wire_load_reply(req, "unload");
			return;
		}
		req->load_only = true;
	} else {
		prompt_sequence(req, body);
		sim_engine_take_fault(req);
		if (req->fault == SIM_FAULT_FAIL) {
			sim_wire_error(req, req->fault_status, req->fault_message);
			return;
		}
		if (req->fault == SIM_FAULT_BUSY) {
			sim_wire_error(req, req->fault_status, req->fault_message);
			return;
		}
	}
	if (sim_engine_submit(req) < 0)
		sim_wire_error(req, 503, SIM_BUSY_MESSAGE);
}

/* ---- control endpoints and POST dispatch ---- */

/* An inference POST in llama mode: llama-server's checks (sim_llama),
 * then the shared inference path, its errors in llama's shape. */
static void
llama_post(struct sim_req *req)
{
	json_error_t jerr;
	json_t *body, *conv;
	char *echo = NULL;

	if (sim_llama_loading()) {
		sim_llama_error(req, 503, "Loading model");
		return;
	}
	if (req->api == SIM_API_COUNT) {
		sim_llama_error(req, 404, "File Not Found");
		return;
	}
	body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &jerr);
	if (body == NULL) {
		char *msg = xasprintf("invalid JSON body: %s", jerr.text);
		sim_llama_error(req, 400, msg);
		free(msg);
		return;
	}
	if (sim_wire_is_agent(req)) {
		/* As llama-server: the agent request becomes a chat (sim_agent's). */
		json_t *chat = sim_agent_convert(req);
		json_decref(body);
		if ((body = chat) == NULL) {
			sim_llama_restyle_error(req);
			return;
		}
	}
	if ((conv = sim_llama_prepare(req, body, &echo)) != NULL) {
		start_inference(req, conv);
		sim_llama_restyle_error(req);
		if (req->model_name != NULL) {
			free(req->model_name);
			req->model_name = echo;
			echo = NULL;
		}
	}
	free(echo);
	json_decref(conv);
	json_decref(body);
}

static void
handle_post(struct sim_req *req, const char *url)
{
	json_error_t jerr;
	json_t *body = NULL;

	if (llama_mode() && strncmp(url, "/_sim/", 6) != 0) {
		llama_post(req);
		return;
	}

	if (strcmp(url, "/_sim/reset") == 0) {
		sim_engine_fault_reset();
		sim_engine_stats_reset();
		sim_wire_reply(req, 200, json_pack("{s:s}", "status", "reset"));
		return;
	}
	if (strcmp(url, "/_sim/stats/reset") == 0) {
		sim_engine_stats_reset();
		sim_wire_reply(req, 200, json_pack("{s:s}", "status", "reset"));
		return;
	}
	if (sim_wire_is_agent(req)) {
		/* As Ollama's middlewares: convert, then serve as a chat. */
		if ((body = sim_agent_convert(req)) != NULL)
			start_inference(req, body);
		json_decref(body);
		return;
	}
	if (req->body.len == 0) {
		sim_wire_error(req, 400, "missing request body");
		return;
	}
	body = json_loadb(req->body.data, req->body.len, JSON_DECODE_ANY, &jerr);
	if (body == NULL || !json_is_object(body)) {
		char *msg = body ? xstrdup("json: cannot unmarshal non-object into Go value")
		    : xasprintf("invalid character looking for beginning of value: %s", jerr.text);
		sim_wire_error(req, 400, msg);
		free(msg);
		json_decref(body);
		return;
	}
	if (strcmp(url, "/_sim/fault") == 0) {
		const char *err = sim_engine_fault_add(body);
		if (err)
			sim_wire_reply(req, 400, json_pack("{s:s}", "error", err));
		else {
			json_t *stats = sim_engine_stats();
			sim_wire_reply(req, 200, json_pack("{s:s, s:O}", "status", "armed", "faults",
			    json_object_get(stats, "faults")));
			json_decref(stats);
		}
	} else if (strcmp(url, "/api/show") == 0) {
		const char *name = json_string_value(json_object_get(body, "model"));
		if (name == NULL || *name == '\0')
			name = json_string_value(json_object_get(body, "name"));
		const struct sim_profile_model *pm = sim_profile_find(sim_engine_profile(), name);
		if (name == NULL || *name == '\0') {
			sim_wire_error(req, 400, "model is required");
		} else if (pm == NULL) {
			char *norm = sim_profile_normalize(name);
			char *msg = xasprintf("model '%s' not found", norm);
			sim_wire_error(req, 404, msg);
			free(msg);
			free(norm);
		} else {
			sim_wire_reply(req, 200, show(pm));
		}
	} else {
		start_inference(req, body);
	}
	json_decref(body);
}

/* ---- routing ---- */

static const struct route {
	const char *path;
	unsigned methods;
	enum sim_api api;               /* for POST inference routes */
} routes[] = {
	{ "/", M_GET | M_HEAD, SIM_API_COUNT },
	{ "/api/version", M_GET | M_HEAD, SIM_API_COUNT },
	{ "/api/tags", M_GET | M_HEAD, SIM_API_COUNT },
	{ "/api/ps", M_GET, SIM_API_COUNT },
	{ "/v1/models", M_GET, SIM_API_COUNT },
	{ "/_sim/stats", M_GET, SIM_API_COUNT },
	{ "/api/generate", M_POST, SIM_API_GENERATE },
	{ "/api/chat", M_POST, SIM_API_CHAT },
	{ "/api/embed", M_POST, SIM_API_EMBED },
	{ "/api/embeddings", M_POST, SIM_API_EMBEDDINGS },
	{ "/api/show", M_POST, SIM_API_COUNT },
	{ "/v1/chat/completions", M_POST, SIM_API_V1_CHAT },
	{ "/v1/completions", M_POST, SIM_API_V1_COMPLETIONS },
	{ "/v1/embeddings", M_POST, SIM_API_V1_EMBEDDINGS },
	{ "/v1/messages", M_POST, SIM_API_MESSAGES },
	{ "/v1/responses", M_POST, SIM_API_RESPONSES },
	{ "/_sim/fault", M_POST, SIM_API_COUNT },
	{ "/_sim/reset", M_POST, SIM_API_COUNT },
	{ "/_sim/stats/reset", M_POST, SIM_API_COUNT },
};

static const struct route *
route_find(const char *url)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(routes[i].path, url) == 0)
			return &routes[i];
	return NULL;
}

static enum MHD_Result
handle_get(struct MHD_Connection *c, const char *url)
{
	if (strcmp(url, "/") == 0)
		return queue_text(c, 200, "Ollama is running");
	if (strcmp(url, "/api/version") == 0)
		return queue_json(c, 200, json_pack("{s:s}", "version", sim_engine_profile()->version), false);
	if (strcmp(url, "/api/tags") == 0)
		return queue_json(c, 200, tags(), false);
	if (strcmp(url, "/api/ps") == 0)
		return queue_json(c, 200, ps(), false);
	if (strcmp(url, "/_sim/stats") == 0)
		return queue_json(c, 200, sim_engine_stats(), false);
	if (strcmp(url, "/v1/models") == 0) {
		const struct sim_profile *p = sim_engine_profile();
		json_t *data = json_array();
		for (size_t i = 0; i < p->n_models; i++)
			json_array_append_new(data, v1_model(&p->models[i], p->models[i].name));
		return queue_json(c, 200, json_pack("{s:s, s:o}", "object", "list", "data", data), true);
	}
	/* /v1/models/{model} */
	const char *id = url + strlen("/v1/models/");
	const struct sim_profile_model *pm = sim_profile_find(sim_engine_profile(), id);
	if (pm == NULL) {
		char *msg = xasprintf("model '%s' not found", id);
		json_t *j = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", msg, "type", "not_found_error",
		    "param", "code");
		free(msg);
		return queue_json(c, 404, j, true);
	}
	return queue_json(c, 200, v1_model(pm, id), true);
}

/* A GET in llama mode (sim_llama), /_sim/stats as in Ollama mode. */
static enum MHD_Result
llama_get(struct MHD_Connection *c, const char *url)
{
	if (strcmp(url, "/_sim/stats") == 0)
		return queue_json(c, 200, sim_engine_stats(), false);
	const char *model = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
	const char *ctype;
	char *body;
	int status = sim_llama_get(url, model, &body, &ctype);
	enum MHD_Result ret = queue_bytes(c, (unsigned)status, ctype, body, strlen(body));
	free(body);
	return ret;
}

/* ---- connection plumbing ---- */

static void
watch_add(struct sim_req *req)
{
	if (req->watched)
		return;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL)
		return;
	struct epoll_event ev = { .events = EPOLLRDHUP, .data.ptr = req };
	req->fd = ci->connect_fd;
	if (epoll_ctl(H.loop_epfd, EPOLL_CTL_ADD, req->fd, &ev) == 0)
		req->watched = true;
	else
		log_warn("epoll_ctl add fd %d", req->fd);
}

static void
watch_del(struct sim_req *req)
{
	if (!req->watched)
		return;
	epoll_ctl(H.loop_epfd, EPOLL_CTL_DEL, req->fd, NULL);
	req->watched = false;
}

static void
suspend(struct sim_req *req)
{
	MHD_suspend_connection(req->conn);
	req->suspended = true;
	watch_add(req);
}

void
sim_http_wake(struct sim_req *req)
{
	if (req->suspended) {
		req->suspended = false;
		MHD_resume_connection(req->conn);
		H.resumed = true;
	}
}

bool
sim_http_take_resumed(void)
{
	bool r = H.resumed;
	H.resumed = false;
	return r;
}

void
sim_http_watch_event(void *data, uint32_t events)
{
	struct sim_req *req = data;
	if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	/* Level-triggered: stop watching, or the loop would spin. */
	watch_del(req);
	if (req->gone || req->phase == SIM_PHASE_DONE)
		return;
	req->gone = true;
	log_debug("request %llu: client disconnected (%s)", (unsigned long long)req->id,
	    sim_engine_phase_name(req->phase));
	sim_engine_cancel(req, true);
	sim_http_wake(req);
}

static ssize_t
reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sim_req *req = cls;
	if (req->gone || H.stopping)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (req->out.off < req->out.len) {
		size_t n = req->out.len - req->out.off;
		if (n > max)
			n = max;
		memcpy(buf, req->out.data + req->out.off, n);
		req->out.off += n;
		return (ssize_t)n;
	}
	if (req->abort_conn)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (req->finished)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing due yet: returning a bare 0 would make MHD busy-loop. */
	suspend(req);
	return 0;
}

/* Queue whatever the request has, or wait for the engine. */
static enum MHD_Result
respond(struct sim_req *req)
{
	if (req->gone || H.stopping)
		return MHD_NO;
	if (req->abort_conn && !req->stream_started)
		return MHD_NO;          /* fault: close before any byte */
	/* The agent middlewares set these on every stream request, before
	 * knowing whether the answer is an error. */
	bool agent_stream = sim_wire_is_agent(req) && req->stream;
	if (req->reply_ready && !agent_stream && !req->had_slot) {
		req->response_queued = true;
		return queue_bytes(req->conn, (unsigned)req->status, req->content_type, req->out.data, req->out.len);
	}
	if (req->reply_ready || req->stream_started) {
		struct MHD_Response *r = req->reply_ready
		    ? MHD_create_response_from_buffer(req->out.len, req->out.data, MHD_RESPMEM_MUST_COPY)
		    : MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, req, NULL);
		if (r == NULL)
			return MHD_NO;
		MHD_add_response_header(r, "Content-Type", req->content_type);
		if (llama_mode())
			MHD_add_response_header(r, "Server", "llama.cpp");
		if (req->api == SIM_API_V1_CHAT || req->api == SIM_API_V1_COMPLETIONS || agent_stream)
		if ((agent_stream || !req->reply_ready) &&
		    (req->api == SIM_API_V1_CHAT || req->api == SIM_API_V1_COMPLETIONS || agent_stream))
			MHD_add_response_header(r, "Cache-Control", "no-cache");
		if (agent_stream)
			MHD_add_response_header(r, "Connection", "keep-alive");
		/* Headers leave after the slot was granted: its cache use is known
		 * (tests' ground truth; no real server sends this). */
		if (req->had_slot) {
			char n[24];
			snprintf(n, sizeof(n), "%" PRId64, sim_request_cached_tokens(req));
			MHD_add_response_header(r, "X-Sim-Cached-Tokens", n);
		}
		req->response_queued = true;
		enum MHD_Result ret = MHD_queue_response(req->conn, req->reply_ready ? (unsigned)req->status : 200, r);
		MHD_destroy_response(r);
		return ret;
	}
	suspend(req);
	return MHD_YES;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
    const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct sim_req *req = *con_cls;

	if (req == NULL) {
		const struct route *rt = route_find(url);
		unsigned m = strcmp(method, "GET") == 0 ? M_GET : strcmp(method, "HEAD") == 0 ? M_HEAD
		    : strcmp(method, "POST") == 0 ? M_POST : 0;
		bool control = strncmp(url, "/_sim/", 6) == 0;
		enum sim_api llama_api = SIM_API_COUNT;
		bool count_only = false;
		if (llama_mode() && !control) {
			/* llama-server: every other path or method is its 404 (or the
			 * loading 503); POST bodies are read before answering. */
			if (m != M_POST)
				return llama_get(c, url);
			static const struct route any_post = { "", M_POST, SIM_API_COUNT };
			llama_api = sim_llama_post_api(url, &count_only);
			rt = &any_post;
		}
		bool model_path = rt != NULL && rt->path[0] == '\0' ? false
		    : strncmp(url, "/v1/models/", 11) == 0 && url[11] != '\0';
		if (rt == NULL && !model_path)
			return queue_text(c, 404, "404 page not found");
		if (model_path ? !(m & M_GET) : !(m & rt->methods))
			return queue_text(c, 405, "405 method not allowed");
		if (m != M_POST)
			return handle_get(c, url);
		req = xcalloc(1, sizeof(*req));
		req->id = ++H.next_id;
		req->conn = c;
		req->fd = -1;
		req->api = rt->api == SIM_API_COUNT ? SIM_API_GENERATE : rt->api;
		if (llama_mode() && !control)
			req->api = llama_api;   /* SIM_API_COUNT: llama_post answers 404 */
		req->count_only = count_only;
		req->t_arrival = sim_engine_now();
		TAILQ_INSERT_TAIL(&H.live, req, all);
		*con_cls = req;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (req->body.len + *upload_size > MAX_BODY) {
			if (!req->reply_ready)
				sim_wire_error(req, 413, "request body too large");
		} else {
			sim_buf_append(&req->body, upload_data, *upload_size);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (!req->started) {
		req->started = true;
		if (!req->reply_ready)
			handle_post(req, url);
	}
	return respond(req);
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct sim_req *req = *con_cls;
	if (req == NULL)
		return;
	*con_cls = NULL;
	watch_del(req);
	/* Still in the engine means the connection ended early: a disconnect
	 * unless we are the ones closing everything. */
	sim_engine_cancel(req, !H.stopping && !req->abort_conn);
	TAILQ_REMOVE(&H.live, req, all);
	sim_buf_free(&req->out);
	sim_buf_free(&req->text);
	sim_buf_free(&req->body);
	sim_tokens_free(&req->prompt_seq);
	json_decref(req->inputs);
	json_decref(req->tool_call);
	json_decref(req->echo);
	free(req->model_name);
	free(req->fault_message);
	free(req);
}

int
sim_http_start(const char *listen, int loop_epfd)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;

	TAILQ_INIT(&H.live);
	H.loop_epfd = loop_epfd;
	if (colon == NULL || colon == listen || colon[1] == '\0' || (size_t)(colon - listen) >= sizeof(host)) {
		log_errx("--listen %s: HOST:PORT expected", listen);
		return -1;
	}
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	int gai = getaddrinfo(host, colon + 1, &hints, &ai);
	if (gai != 0) {
		log_errx("--listen %s: %s", listen, gai_strerror(gai));
		return -1;
	}
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	H.mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL,
	    MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
	    MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	    MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
	    MHD_OPTION_END);
	freeaddrinfo(ai);
	if (H.mhd == NULL) {
		log_errx("cannot listen on %s (address in use?)", listen);
		return -1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(H.mhd, MHD_DAEMON_INFO_EPOLL_FD);
	return di ? di->epoll_fd : -1;
}

void
sim_http_run(void)
{
	MHD_run(H.mhd);
}

int
sim_http_timeout_ms(void)
{
	MHD_UNSIGNED_LONG_LONG t;
	if (H.resumed)
		return 0;
	if (MHD_get_timeout(H.mhd, &t) != MHD_YES)
		return -1;
	return t > 60000 ? 60000 : (int)t;
}

int
sim_http_drain(void)
{
	struct sim_req *req;
	int suspended = 0;

	H.stopping = true;
	TAILQ_FOREACH(req, &H.live, all) {
		sim_engine_cancel(req, false);
		if (req->suspended) {
			sim_http_wake(req);
			suspended++;
		}
	}
	/* A resumed connection counts until MHD has processed the resume. */
	return suspended;
}

void
sim_http_stop(void)
{
	if (H.mhd != NULL)
		MHD_stop_daemon(H.mhd);   /* closes the rest; completed() frees them */
	H.mhd = NULL;
}
