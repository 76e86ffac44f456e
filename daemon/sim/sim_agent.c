/*
 * sim_agent: /v1/messages and /v1/responses for harmonic-sim, after
 * Ollama's anthropic and openai middlewares (reference/agent-apis.md).
 *
 * A request is converted into an /api/chat body and runs as a chat; the
 * engine's token and finish callbacks arrive here and become the API's
 * events.  The stream converters keep their state in the request
 * (block_open, seq, agent_id, item_id).  Anthropic events keep Go's struct
 * field order; Responses events are Go maps, so their keys are sorted.
 * Neither API sends an event for a failure after the first byte: the
 * stream just ends (an "error" fault) or the connection is cut ("close").
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim_agent.h"
#include "sim_engine.h"
#include "sim_wire.h"
#include "xmalloc.h"

#define CT_SSE "text/event-stream"
#define HEX "0123456789abcdef"
#define DIGITS "0123456789"

/* In llama-server mode (sim_llama runs these routes too): max_tokens is
 * optional and usage reports the prompt cache, as llama-server does. */
static bool
llama_mode(void)
{
	return sim_engine_profile()->api == SIM_PROFILE_API_LLAMACPP;
}

/* ---- request conversion ---- */

/* Go's name for the kind of a JSON value in decoder messages. */
static const char *
go_kind(const json_t *v)
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

/* 400 with a printf message in the API's shape; returns NULL for the caller. */
static json_t *
fail(struct sim_req *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static json_t *
fail(struct sim_req *req, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sim_wire_error(req, 400, msg);
	return NULL;
}

/* Go's decoder message for a malformed body (its wording, approximately). */
static json_t *
decode_error(struct sim_req *req, const json_error_t *e)
{
	const char *near = strstr(e->text, "near '");
	char c = near ? near[6] : '?';

	if (json_error_code(e) == json_error_premature_end_of_input)
		return fail(req, "unexpected EOF");
	if (json_error_code(e) == json_error_end_of_input_expected)
		return fail(req, "invalid character '%c' after top-level value", c);
	return fail(req, "invalid character '%c' looking for beginning of value", c);
}

/* Whether a field has the wrong JSON type (absent and null never do);
 * if so, the 400 with Go's decoder message is set. */
static bool
wrong_type(struct sim_req *req, json_t *obj, const char *key, json_type want, const char *go_struct,
    const char *go_type)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL || json_is_null(v))
		return false;
	if (json_typeof(v) == want || (want == JSON_TRUE && json_is_boolean(v)) ||
	    (want == JSON_REAL && json_is_number(v)))
		return false;
	fail(req, "json: cannot unmarshal %s into Go struct field %s.%s of type %s", go_kind(v), go_struct, key,
	    go_type);
	return true;
}

static size_t
str_len(const json_t *v)
{
	return json_is_string(v) ? json_string_length(v) : 0;
}

static size_t
dump_len(const json_t *v)
{
	char *s = sim_wire_dump(v);
	size_t n = strlen(s);
	free(s);
	return n;
}

/* A chat tool from a name, description and JSON schema (Ollama's api.Tool). */
static json_t *
chat_tool(json_t *name, json_t *description, json_t *schema)
{
	json_t *fn = json_pack("{s:O}", "name", name);
	if (json_is_string(description))
		json_object_set(fn, "description", description);
	json_object_set_new(fn, "parameters", json_is_object(schema) ? json_incref(schema) : json_object());
	return json_pack("{s:s, s:o}", "type", "function", "function", fn);
}

/* Ollama decodes only base64 image sources; false when the 400 is set
 * (missing names the error for a block without a source). */
static bool
image_ok(struct sim_req *req, json_t *blk, const char *missing)
{
	json_t *src = json_object_get(blk, "source");
	const char *type = json_string_value(json_object_get(src, "type"));

	if (!json_is_object(src)) {
		fail(req, "%s", missing);
		return false;
	}
	if (type == NULL || strcmp(type, "base64") != 0) {
		fail(req, "invalid image source type: %s. Only base64 images are supported.", type ? type : "");
		return false;
	}
	return true;
}

/* Anthropic text of a tool_result's content: a string or text blocks;
 * image blocks must be base64.  -1 on a 400 (reply set). */
static int
tool_result_text(struct sim_req *req, json_t *content, char **out)
{
	*out = NULL;
	if (json_is_string(content)) {
		*out = xstrdup(json_string_value(content));
		return 0;
	}
	struct sim_buf b = { 0 };
	size_t i;
	json_t *blk;
	json_array_foreach(content, i, blk) {
		const char *type = json_string_value(json_object_get(blk, "type"));
		if (type != NULL && strcmp(type, "text") == 0) {
			const char *t = json_string_value(json_object_get(blk, "text"));
			sim_buf_append(&b, t ? t : "", t ? strlen(t) : 0);
		} else if (type != NULL && strcmp(type, "image") == 0 &&
		    !image_ok(req, blk, "invalid tool_result image source")) {
			sim_buf_free(&b);
			return -1;
		}
	}
	*out = b.data ? b.data : xstrdup("");
	return 0;
}

/*
 * One Anthropic message into chat messages (appended to msgs), as
 * Ollama's convertMessage: a user message's tool results come first, as
 * "tool" messages; estimate accumulates the bytes Ollama's estimate
 * counts.  -1 on a 400 (reply set).
 */
static int
convert_message(struct sim_req *req, json_t *m, json_t *msgs, size_t *estimate)
{
	json_t *content = json_object_get(m, "content"), *blocks;
	const char *role_in = json_string_value(json_object_get(m, "role"));
	char *role = xstrdup(role_in ? role_in : "");
	struct sim_buf text = { 0 };
	json_t *calls = json_array(), *results = json_array();
	const char *thinking = NULL;
	size_t i;
	json_t *blk;
	int rc = -1;

	for (char *c = role; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	*estimate += strlen(role);
	if (json_is_string(content)) {
		blocks = json_pack("[{s:s, s:O}]", "type", "text", "text", content);
	} else if (json_is_array(content) || content == NULL || json_is_null(content)) {
		blocks = json_is_array(content) ? json_incref(content) : json_array();
	} else {
		fail(req, "json: cannot unmarshal %s into Go struct field MessageParam.messages.content of type "
		    "[]anthropic.ContentBlock", go_kind(content));
		goto out_free;
	}
	json_array_foreach(blocks, i, blk) {
		const char *type = json_string_value(json_object_get(blk, "type"));
		json_t *t = json_object_get(blk, "text"), *th = json_object_get(blk, "thinking");
		*estimate += str_len(t) + str_len(th);
		if (type == NULL)
			continue;
		if (strcmp(type, "tool_use") == 0 || strcmp(type, "tool_result") == 0)
			*estimate += dump_len(blk);
		if (strcmp(type, "text") == 0) {
			sim_buf_append(&text, json_string_value(t) ? json_string_value(t) : "", str_len(t));
		} else if (strcmp(type, "image") == 0) {
			if (!image_ok(req, blk, "invalid image source"))
				goto out;
		} else if (strcmp(type, "tool_use") == 0 || strcmp(type, "server_tool_use") == 0) {
			const char *id = json_string_value(json_object_get(blk, "id"));
			const char *name = json_string_value(json_object_get(blk, "name"));
			json_t *input = json_object_get(blk, "input");
			if (strcmp(type, "tool_use") == 0 && (id == NULL || *id == '\0')) {
				fail(req, "tool_use block missing required 'id' field");
				goto out;
			}
			if (strcmp(type, "tool_use") == 0 && (name == NULL || *name == '\0')) {
				fail(req, "tool_use block missing required 'name' field");
				goto out;
			}
			json_t *fn = json_pack("{s:i, s:s, s:o}", "index", (int)json_array_size(calls), "name",
			    name ? name : "", "arguments", json_is_object(input) ? json_incref(input) : json_object());
			json_array_append_new(calls, json_pack("{s:s, s:o}", "id", id ? id : "", "function", fn));
		} else if (strcmp(type, "tool_result") == 0 || strcmp(type, "web_search_tool_result") == 0) {
			char *rt;
			json_t *c = json_object_get(blk, "content");
			if (strcmp(type, "tool_result") == 0) {
				if (tool_result_text(req, c, &rt) < 0)
					goto out;
			} else {
				rt = json_is_string(c) ? xstrdup(json_string_value(c)) : sim_wire_dump(c);
			}
			const char *tid = json_string_value(json_object_get(blk, "tool_use_id"));
			json_array_append_new(results, json_pack("{s:s, s:s, s:s}", "role", "tool", "content", rt,
			    "tool_call_id", tid ? tid : ""));
			free(rt);
		} else if (strcmp(type, "thinking") == 0 && json_is_string(th)) {
			thinking = json_string_value(th);
		}
	}
	bool user_results = strcmp(role, "user") == 0 && json_array_size(results) > 0;
	if (user_results)
		json_array_extend(msgs, results);
	if (text.len > 0 || json_array_size(calls) > 0 || (thinking != NULL && *thinking != '\0')) {
		json_t *cm = json_pack("{s:s, s:s}", "role", role, "content", text.data ? text.data : "");
		if (thinking != NULL && *thinking != '\0')
			json_object_set_new(cm, "thinking", json_string(thinking));
		if (json_array_size(calls) > 0)
			json_object_set(cm, "tool_calls", calls);
		json_array_append_new(msgs, cm);
	}
	if (!user_results)
		json_array_extend(msgs, results);
	rc = 0;
out:
	json_decref(blocks);
out_free:
	json_decref(calls);
	json_decref(results);
	sim_buf_free(&text);
	free(role);
	return rc;
}

/* Anthropic tool_choice as the chat's (OpenAI-shaped) tool_choice, or NULL. */
static json_t *
anthropic_choice(json_t *tc)
{
	const char *type = json_string_value(json_object_get(tc, "type"));
	if (type == NULL)
		return NULL;
	if (strcmp(type, "any") == 0)
		return json_string("required");
	if (strcmp(type, "none") == 0 || strcmp(type, "auto") == 0)
		return json_string(type);
	if (strcmp(type, "tool") == 0 && json_is_string(json_object_get(tc, "name")))
		return json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name", json_object_get(tc, "name"));
	return NULL;
}

static json_t *
convert_messages(struct sim_req *req, json_t *body)
{
	static const char *const st = "MessagesRequest";
	json_t *model = json_object_get(body, "model"), *max = json_object_get(body, "max_tokens");
	json_t *in = json_object_get(body, "messages"), *system = json_object_get(body, "system");
	size_t estimate = 0, i;
	json_t *m, *t;

	if (wrong_type(req, body, "model", JSON_STRING, st, "string") ||
	    wrong_type(req, body, "max_tokens", JSON_INTEGER, st, "int") ||
	    wrong_type(req, body, "messages", JSON_ARRAY, st, "[]anthropic.MessageParam") ||
	    wrong_type(req, body, "stream", JSON_TRUE, st, "bool") ||
	    wrong_type(req, body, "tools", JSON_ARRAY, st, "[]anthropic.Tool"))
		return NULL;
	if (json_string_length(model) == 0)
		return fail(req, "model is required");
	/* llama-server defaults max_tokens; count_tokens has none. */
	if (json_integer_value(max) <= 0 && !req->count_only && !(llama_mode() && (max == NULL || json_is_null(max))))
		return fail(req, "max_tokens is required and must be positive");
	if (json_array_size(in) == 0)
		return fail(req, "messages is required");

	json_t *msgs = json_array();
	if (json_is_string(system)) {
		estimate += json_string_length(system);
		if (json_string_length(system) > 0)
			json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "system", "content", system));
	} else if (json_is_array(system)) {
		struct sim_buf b = { 0 };
		json_array_foreach(system, i, t) {
			json_t *tx = json_object_get(t, "text");
			estimate += str_len(tx) + str_len(json_object_get(t, "thinking"));
			const char *type = json_string_value(json_object_get(t, "type"));
			if (type != NULL && strcmp(type, "text") == 0 && json_is_string(tx))
				sim_buf_append(&b, json_string_value(tx), json_string_length(tx));
		}
		if (b.len > 0)
			json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", b.data));
		sim_buf_free(&b);
	} else if (system != NULL && !json_is_null(system)) {
		estimate += dump_len(system);
	}
	json_array_foreach(in, i, m) {
		if (convert_message(req, m, msgs, &estimate) < 0) {
			json_decref(msgs);
			return NULL;
		}
	}
	json_t *tools = json_array();
	json_array_foreach(json_object_get(body, "tools"), i, t) {
		json_t *name = json_object_get(t, "name"), *schema = json_object_get(t, "input_schema");
		const char *type = json_string_value(json_object_get(t, "type"));
		estimate += str_len(name) + str_len(json_object_get(t, "description"));
		estimate += schema ? dump_len(schema) : 0;
		if (type != NULL && strncmp(type, "web_search", 10) == 0)
			continue;       /* Ollama's server-side search: not modelled */
		if (json_is_string(name))
			json_array_append_new(tools, chat_tool(name, json_object_get(t, "description"), schema));
	}

	req->estimate = (int64_t)(estimate / 4);
	if (req->estimate == 0 && (json_array_size(in) > 0 || (system != NULL && !json_is_null(system))))
		req->estimate = 1;
	sim_wire_rand_id(req->agent_id, sizeof(req->agent_id), "msg_", HEX, 24);

	json_t *chat = json_pack("{s:O, s:o, s:b, s:{}}", "model", model, "messages", msgs, "stream",
	    json_is_true(json_object_get(body, "stream")), "options");
	if (json_is_integer(max))
		json_object_set(json_object_get(chat, "options"), "num_predict", max);
	if (json_array_size(tools) > 0)
		json_object_set(chat, "tools", tools);
	json_decref(tools);
	json_t *choice = anthropic_choice(json_object_get(body, "tool_choice"));
	if (choice != NULL)
		json_object_set_new(chat, "tool_choice", choice);
	return chat;
}

/* Text of Responses content parts (input_text, output_text); images are
 * skipped, files refused.  where names the parts in messages.  NULL on a
 * 400 (reply set); caller owns the result (free). */
static char *
parts_text(struct sim_req *req, json_t *parts, size_t item, const char *where)
{
	struct sim_buf b = { 0 };
	size_t i;
	json_t *p;

	if (json_is_string(parts))
		return xstrdup(json_string_value(parts));
	if (parts != NULL && !json_is_null(parts) && !json_is_array(parts)) {
		fail(req, "input[%zu]: %s must be a string or array: json: cannot unmarshal %s into Go value of type "
		    "[]json.RawMessage", item, where, go_kind(parts));
		return NULL;
	}
	json_array_foreach(parts, i, p) {
		const char *type = json_string_value(json_object_get(p, "type"));
		type = type ? type : "";
		if (strcmp(type, "input_text") == 0 || strcmp(type, "output_text") == 0) {
			const char *t = json_string_value(json_object_get(p, "text"));
			sim_buf_append(&b, t ? t : "", t ? strlen(t) : 0);
		} else if (strcmp(type, "input_file") == 0) {
			sim_buf_free(&b);
			fail(req, "file inputs are not currently supported");
			return NULL;
		} else if (strcmp(type, "input_image") != 0) {
			sim_buf_free(&b);
			fail(req, "input[%zu]: %s[%zu]: unknown content type: %s", item, where, i, type);
			return NULL;
		}
	}
	return b.data ? b.data : xstrdup("");
}

/* Responses input items into chat messages, as Ollama's
 * FromResponsesRequest.  -1 on a 400 (reply set). */
static int
convert_items(struct sim_req *req, json_t *items, json_t *msgs)
{
	const char *thinking = NULL;    /* a reasoning item waits for the next assistant message */
	size_t i;
	json_t *it;

	json_array_foreach(items, i, it) {
		const char *type = json_string_value(json_object_get(it, "type"));
		const char *role = json_string_value(json_object_get(it, "role"));
		if ((type == NULL || *type == '\0') && role != NULL && *role != '\0')
			type = "message";
		if (type == NULL || *type == '\0') {
			fail(req, "input[%zu]: input item missing required 'type' field", i);
			return -1;
		}
		json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
		if (strcmp(type, "message") == 0) {
			char *text = parts_text(req, json_object_get(it, "content"), i, "content");
			if (text == NULL)
				return -1;
			json_t *cm = json_pack("{s:s, s:s}", "role", role ? role : "", "content", text);
			free(text);
			if (role != NULL && strcmp(role, "assistant") == 0 && thinking != NULL) {
				json_object_set_new(cm, "thinking", json_string(thinking));
				thinking = NULL;
			}
			json_array_append_new(msgs, cm);
		} else if (strcmp(type, "function_call") == 0) {
			const char *args = json_string_value(json_object_get(it, "arguments"));
			const char *name = json_string_value(json_object_get(it, "name"));
			const char *cid = json_string_value(json_object_get(it, "call_id"));
			json_t *a = json_object();
			if (args != NULL && *args != '\0') {
				json_error_t e;
				json_decref(a);
				a = json_loads(args, 0, &e);
				if (!json_is_object(a)) {
					json_decref(a);
					fail(req, "failed to parse function call arguments: %s", e.text);
					return -1;
				}
			}
			const char *last_role = json_string_value(json_object_get(last, "role"));
			if (last_role == NULL || strcmp(last_role, "assistant") != 0) {
				last = json_pack("{s:s, s:s}", "role", "assistant", "content", "");
				json_array_append_new(msgs, last);
			}
			json_t *calls = json_object_get(last, "tool_calls");
			if (calls == NULL) {
				calls = json_array();
				json_object_set_new(last, "tool_calls", calls);
			}
			if (thinking != NULL) {
				json_object_set_new(last, "thinking", json_string(thinking));
				thinking = NULL;
			}
			json_array_append_new(calls, json_pack("{s:s, s:{s:i, s:s, s:o}}", "id", cid ? cid : "",
			    "function", "index", (int)json_array_size(calls), "name", name ? name : "",
			    "arguments", a));
		} else if (strcmp(type, "function_call_output") == 0) {
			char *text = parts_text(req, json_object_get(it, "output"), i, "output");
			const char *cid = json_string_value(json_object_get(it, "call_id"));
			if (text == NULL)
				return -1;
			json_array_append_new(msgs, json_pack("{s:s, s:s, s:s}", "role", "tool", "content", text,
			    "tool_call_id", cid ? cid : ""));
			free(text);
		} else if (strcmp(type, "reasoning") == 0) {
			thinking = json_string_value(json_object_get(it, "encrypted_content"));
		} else if (strcmp(type, "web_search_call") != 0) {
			fail(req, "input[%zu]: unknown input item type: \"%s\"", i, type);
			return -1;
		}
	}
	if (thinking != NULL && *thinking != '\0')
		json_array_append_new(msgs, json_pack("{s:s, s:s, s:s}", "role", "assistant", "content", "", "thinking",
		    thinking));
	return 0;
}

/* A number as Go writes a float64: whole values without a fraction. */
static json_t *
go_float(json_t *v, double def)
{
	double d = json_is_number(v) ? json_number_value(v) : def;
	if (d == (double)(json_int_t)d)
		return json_integer((json_int_t)d);
	return json_real(d);
}

/* The request fields a Responses answer repeats (ToResponse). */
static json_t *
responses_echo(json_t *body)
{
	json_t *tools = json_array(), *t, *v;
	size_t i;

	json_array_foreach(json_object_get(body, "tools"), i, t) {
		json_t *d = json_object_get(t, "description"), *s = json_object_get(t, "strict");
		json_t *p = json_object_get(t, "parameters");
		const char *type = json_string_value(json_object_get(t, "type"));
		const char *name = json_string_value(json_object_get(t, "name"));
		json_array_append_new(tools, json_pack("{s:s, s:s, s:O, s:O, s:O}", "type", type ? type : "", "name",
		    name ? name : "", "description", json_is_string(d) ? d : json_null(), "strict",
		    json_is_boolean(s) ? s : json_null(), "parameters", json_is_object(p) ? p : json_null()));
	}
	json_t *echo = json_pack("{s:o}", "tools", tools);
	v = json_object_get(body, "instructions");
	json_object_set_new(echo, "instructions", json_string_length(v) > 0 ? json_incref(v) : json_null());
	v = json_object_get(body, "truncation");
	json_object_set_new(echo, "truncation", json_is_string(v) ? json_incref(v) : json_string("disabled"));
	json_t *fmt = json_object_get(json_object_get(body, "text"), "format"), *f = json_pack("{s:s}", "type", "text");
	if (json_is_object(fmt)) {
		const char *type = json_string_value(json_object_get(fmt, "type"));
		json_object_set_new(f, "type", json_string(type ? type : ""));
		if (json_string_length(json_object_get(fmt, "name")) > 0)
			json_object_set(f, "name", json_object_get(fmt, "name"));
		if (json_object_get(fmt, "schema") != NULL && !json_is_null(json_object_get(fmt, "schema")))
			json_object_set(f, "schema", json_object_get(fmt, "schema"));
		if (json_is_boolean(json_object_get(fmt, "strict")))
			json_object_set(f, "strict", json_object_get(fmt, "strict"));
	}
	json_object_set_new(echo, "format", f);
	json_object_set_new(echo, "top_p", go_float(json_object_get(body, "top_p"), 1));
	json_object_set_new(echo, "temperature", go_float(json_object_get(body, "temperature"), 1));
	json_t *r = json_object_get(body, "reasoning");
	const char *effort = json_string_value(json_object_get(r, "effort"));
	const char *summary = json_string_value(json_object_get(r, "summary"));
	json_object_set_new(echo, "effort", effort && *effort ? json_string(effort) : json_null());
	json_object_set_new(echo, "summary", summary && *summary ? json_string(summary) : json_null());
	v = json_object_get(body, "max_output_tokens");
	json_object_set_new(echo, "max_output_tokens", json_is_integer(v) ? json_incref(v) : json_null());
	json_object_set_new(echo, "background", json_boolean(json_is_true(json_object_get(body, "background"))));
	return echo;
}

/* Responses tool_choice as the chat's tool_choice, or NULL. */
static json_t *
responses_choice(json_t *tc)
{
	if (json_is_string(tc))
		return json_incref(tc);
	const char *type = json_string_value(json_object_get(tc, "type"));
	if (type != NULL && strcmp(type, "function") == 0 && json_is_string(json_object_get(tc, "name")))
		return json_pack("{s:s, s:{s:O}}", "type", "function", "function", "name", json_object_get(tc, "name"));
	return NULL;
}

static json_t *
convert_responses(struct sim_req *req, json_t *body)
{
	static const char *const st = "ResponsesRequest";
	static const char *const efforts[] = { "none", "minimal", "low", "medium", "high", "xhigh", "ultra", "max" };
	json_t *input = json_object_get(body, "input"), *v;
	size_t i;

	if (wrong_type(req, body, "model", JSON_STRING, st, "string") ||
	    wrong_type(req, body, "stream", JSON_TRUE, st, "bool") ||
	    wrong_type(req, body, "background", JSON_TRUE, st, "bool") ||
	    wrong_type(req, body, "instructions", JSON_STRING, st, "string") ||
	    wrong_type(req, body, "max_output_tokens", JSON_INTEGER, st, "int") ||
	    wrong_type(req, body, "temperature", JSON_REAL, st, "float64") ||
	    wrong_type(req, body, "top_p", JSON_REAL, st, "float64") ||
	    wrong_type(req, body, "truncation", JSON_STRING, st, "string") ||
	    wrong_type(req, body, "tools", JSON_ARRAY, st, "[]openai.ResponsesTool"))
		return NULL;
	if (input != NULL && !json_is_null(input) && !json_is_string(input) && !json_is_array(input))
		return fail(req, "input must be a string or array: json: cannot unmarshal %s into Go value of type "
		    "[]json.RawMessage", go_kind(input));
	const char *effort = json_string_value(json_object_get(json_object_get(body, "reasoning"), "effort"));
	if (effort != NULL && *effort != '\0') {
		for (i = 0; i < sizeof(efforts) / sizeof(efforts[0]) && strcmp(effort, efforts[i]) != 0; i++)
			;
		if (i == sizeof(efforts) / sizeof(efforts[0]))
			return fail(req, "invalid reasoning value: \"%s\" (must be \"minimal\", \"low\", \"medium\", "
			    "\"high\", \"xhigh\", \"ultra\", \"max\", or \"none\")", effort);
	}

	json_t *msgs = json_array();
	v = json_object_get(body, "instructions");
	if (json_string_length(v) > 0)
		json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "system", "content", v));
	if (json_string_length(input) > 0)
		json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "user", "content", input));
	if (json_is_array(input) && convert_items(req, input, msgs) < 0) {
		json_decref(msgs);
		return NULL;
	}
	json_t *tools = json_array(), *t;
	json_array_foreach(json_object_get(body, "tools"), i, t) {
		const char *type = json_string_value(json_object_get(t, "type"));
		if (type != NULL && strcmp(type, "function") == 0 && json_is_string(json_object_get(t, "name")))
			json_array_append_new(tools, chat_tool(json_object_get(t, "name"),
			    json_object_get(t, "description"), json_object_get(t, "parameters")));
	}

	req->echo = responses_echo(body);
	sim_wire_rand_id(req->agent_id, sizeof(req->agent_id), "resp_", DIGITS, 6);
	sim_wire_rand_id(req->item_id, sizeof(req->item_id), "msg_", DIGITS, 6);

	v = json_object_get(body, "model");
	json_t *chat = json_pack("{s:s, s:o, s:b, s:{}}", "model", json_is_string(v) ? json_string_value(v) : "",
	    "messages", msgs, "stream", json_is_true(json_object_get(body, "stream")), "options");
	v = json_object_get(body, "max_output_tokens");
	if (json_is_integer(v))
		json_object_set(json_object_get(chat, "options"), "num_predict", v);
	if (json_array_size(tools) > 0)
		json_object_set(chat, "tools", tools);
	json_decref(tools);
	json_t *choice = responses_choice(json_object_get(body, "tool_choice"));
	if (choice != NULL)
		json_object_set_new(chat, "tool_choice", choice);
	return chat;
}

json_t *
sim_agent_convert(struct sim_req *req)
{
	json_error_t e;
	size_t n = req->body.len, i;

	for (i = 0; i < n && isspace((unsigned char)req->body.data[i]); i++)
		;
	if (i == n)
		return fail(req, "EOF");
	json_t *body = json_loadb(req->body.data, n, JSON_DECODE_ANY, &e);
	if (body == NULL)
		return decode_error(req, &e);
	json_t *chat = NULL;
	if (!json_is_object(body))
		fail(req, "json: cannot unmarshal %s into Go value of type %s", go_kind(body),
		    req->api == SIM_API_MESSAGES ? "anthropic.MessagesRequest" : "openai.ResponsesRequest");
	else if (req->api == SIM_API_MESSAGES)
		chat = convert_messages(req, body);
	else
		chat = convert_responses(req, body);
	json_decref(body);
	return chat;
}

/* ---- events and bodies ---- */

/* One SSE event: "event: NAME\ndata: JSON\n\n"; steals data. */
static void
event(struct sim_req *req, const char *name, json_t *data, bool sorted)
{
	char *s = sim_wire_dump_go(data, sorted);
	json_decref(data);
	sim_buf_append(&req->out, "event: ", 7);
	sim_buf_append(&req->out, name, strlen(name));
	sim_buf_append(&req->out, "\ndata: ", 7);
	sim_buf_append(&req->out, s, strlen(s));
	sim_buf_append(&req->out, "\n\n", 2);
	free(s);
	req->content_type = CT_SSE;
	req->status = 200;
	req->stream_started = true;
}

static const char *
text_of(const struct sim_req *req)
{
	return req->text.data ? req->text.data : "";
}

/* Anthropic stop_reason from Ollama's done_reason; NULL to leave it out. */
static const char *
stop_reason(const struct sim_req *req, const char *done_reason)
{
	if (req->tool_call != NULL)
		return "tool_use";
	if (strcmp(done_reason, "stop") == 0)
		return "end_turn";
	if (strcmp(done_reason, "length") == 0)
		return "max_tokens";
	return *done_reason ? "stop_sequence" : NULL;
}

/* Anthropic usage; in llama mode with the slot's cached prompt tokens. */
static json_t *
anthropic_usage(const struct sim_req *req, int64_t input_tokens, int64_t output_tokens)
{
	json_t *u = json_pack("{s:I, s:I}", "input_tokens", (json_int_t)input_tokens, "output_tokens",
	    (json_int_t)output_tokens);
	if (llama_mode())
		json_object_set_new(u, "cache_read_input_tokens", json_integer((json_int_t)sim_request_cached_tokens(req)));
	return u;
}

static void
anthropic_event(struct sim_req *req, const char *name, json_t *data)
{
	event(req, name, data, false);
}

static void
message_start(struct sim_req *req, int64_t input_tokens)
{
	anthropic_event(req, "message_start", json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:[], s:o}}", "type",
	    "message_start", "message", "id", req->agent_id, "type", "message", "role", "assistant", "model",
	    req->model_name, "content", "usage", anthropic_usage(req, input_tokens, 0)));
}

static void
block_stop(struct sim_req *req, int index)
{
	anthropic_event(req, "content_block_stop", json_pack("{s:s, s:i}", "type", "content_block_stop", "index",
	    index));
}

static void
messages_token(struct sim_req *req, const char *word)
{
	if (!req->stream_started)
		message_start(req, req->estimate);
	if (!req->block_open) {
		anthropic_event(req, "content_block_start", json_pack("{s:s, s:i, s:{s:s, s:s}}", "type",
		    "content_block_start", "index", 0, "content_block", "type", "text", "text", ""));
		req->block_open = true;
	}
	anthropic_event(req, "content_block_delta", json_pack("{s:s, s:i, s:{s:s, s:s}}", "type",
	    "content_block_delta", "index", 0, "delta", "type", "text_delta", "text", word));
}

static void
messages_finish(struct sim_req *req, const char *done_reason)
{
	const char *stop = stop_reason(req, done_reason);
	json_t *name = json_object_get(req->tool_call, "name"), *args = json_object_get(req->tool_call, "arguments");

	if (!req->stream) {
		json_t *content = json_array();
		if (req->text.len > 0)
			json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", text_of(req)));
		if (req->tool_call != NULL)
			json_array_append_new(content, json_pack("{s:s, s:s, s:O, s:O}", "type", "tool_use", "id",
			    req->call_id, "name", name, "input", args));
		json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", req->agent_id, "type", "message", "role",
		    "assistant", "model", req->model_name, "content", json_array_size(content) ? content : json_null());
		if (json_array_size(content) == 0)
			json_decref(content);
		if (stop != NULL)
			json_object_set_new(j, "stop_reason", json_string(stop));
		json_object_set_new(j, "usage", anthropic_usage(req, req->prompt_tokens, req->emitted));
		sim_wire_reply(req, 200, j);
		return;
	}
	/* A tool call comes in a chunk of its own before the final one; only
	 * a final chunk that is also the first carries the real prompt count. */
	if (!req->stream_started)
		message_start(req, req->tool_call != NULL ? req->estimate : req->prompt_tokens);
	int index = 0;
	if (req->block_open)
		block_stop(req, index++);
	if (req->tool_call != NULL) {
		char *partial = sim_wire_dump_go(args, false);
		anthropic_event(req, "content_block_start", json_pack("{s:s, s:i, s:{s:s, s:s, s:O, s:{}}}", "type",
		    "content_block_start", "index", index, "content_block", "type", "tool_use", "id", req->call_id,
		    "name", name, "input"));
		anthropic_event(req, "content_block_delta", json_pack("{s:s, s:i, s:{s:s, s:s}}", "type",
		    "content_block_delta", "index", index, "delta", "type", "input_json_delta", "partial_json",
		    partial));
		block_stop(req, index);
		free(partial);
	}
	json_t *delta = stop ? json_pack("{s:s}", "stop_reason", stop) : json_object();
	anthropic_event(req, "message_delta", json_pack("{s:s, s:o, s:o}", "type", "message_delta", "delta",
	    delta, "usage", anthropic_usage(req, req->prompt_tokens, req->emitted)));
	anthropic_event(req, "message_stop", json_pack("{s:s}", "type", "message_stop"));
	req->finished = true;
}

/* A Responses stream event: type and sequence_number added, keys sorted. */
static void
responses_event(struct sim_req *req, const char *type, json_t *data)
{
	json_object_set_new(data, "type", json_string(type));
	json_object_set_new(data, "sequence_number", json_integer(req->seq++));
	event(req, type, data, true);
}

static json_t *
responses_usage(const struct sim_req *req)
{
	return json_pack("{s:I, s:I, s:I, s:{s:I}, s:{s:i}}", "input_tokens", (json_int_t)req->prompt_tokens,
	    "output_tokens", (json_int_t)req->emitted, "total_tokens", (json_int_t)(req->prompt_tokens + req->emitted),
	    "input_tokens_details", "cached_tokens", (json_int_t)(llama_mode() ? sim_request_cached_tokens(req) : 0),
	    "output_tokens_details", "reasoning_tokens", 0);
}

/* The response object (ToResponse's fields, in its order); steals output
 * and usage.  The stream's version writes reasoning's absent fields as null. */
static json_t *
response_object(const struct sim_req *req, const char *status, json_t *output, json_t *usage, bool completed,
    bool stream)
{
	const json_t *e = req->echo;
	json_int_t now = (json_int_t)time(NULL);
	json_t *effort = json_object_get(e, "effort"), *summary = json_object_get(e, "summary"), *reasoning;

	if (json_is_null(effort) && json_is_null(summary)) {
		reasoning = json_null();
	} else {
		reasoning = json_object();
		if (stream || !json_is_null(effort))
			json_object_set(reasoning, "effort", effort);
		if (stream || !json_is_null(summary))
			json_object_set(reasoning, "summary", summary);
	}
	/* ResponsesResponse's fields, in its order. */
	struct { const char *key; json_t *v; } f[] = {
		{ "id", json_string(req->agent_id) },
		{ "object", json_string("response") },
		{ "created_at", json_integer(now) },
		{ "completed_at", completed ? json_integer(now) : json_null() },
		{ "status", json_string(status) },
		{ "incomplete_details", json_null() },
		{ "model", json_string(req->model_name) },
		{ "previous_response_id", json_null() },
		{ "instructions", json_incref(json_object_get(e, "instructions")) },
		{ "output", output },
		{ "error", json_null() },
		{ "tools", json_incref(json_object_get(e, "tools")) },
		{ "tool_choice", json_string("auto") },
		{ "truncation", json_incref(json_object_get(e, "truncation")) },
		{ "parallel_tool_calls", json_true() },
		{ "text", json_pack("{s:O}", "format", json_object_get(e, "format")) },
		{ "top_p", json_incref(json_object_get(e, "top_p")) },
		{ "presence_penalty", json_integer(0) },
		{ "frequency_penalty", json_integer(0) },
		{ "top_logprobs", json_integer(0) },
		{ "temperature", json_incref(json_object_get(e, "temperature")) },
		{ "reasoning", reasoning },
		{ "usage", usage ? usage : json_null() },
		{ "max_output_tokens", json_incref(json_object_get(e, "max_output_tokens")) },
		{ "max_tool_calls", json_null() },
		{ "store", json_false() },
		{ "background", json_incref(json_object_get(e, "background")) },
		{ "service_tier", json_string("default") },
		{ "metadata", json_object() },
		{ "safety_identifier", json_null() },
		{ "prompt_cache_key", json_null() },
	};
	json_t *j = json_object();
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		json_object_set_new(j, f[i].key, f[i].v);
	return j;
}

static json_t *
output_text_part(const char *text)
{
	return json_pack("{s:s, s:s, s:[], s:[]}", "type", "output_text", "text", text, "annotations", "logprobs");
}

static json_t *
message_item(const struct sim_req *req, const char *status, json_t *content)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", req->item_id, "type", "message", "status", status,
	    "role", "assistant", "content", content);
}

static json_t *
function_item(const struct sim_req *req, const char *id, const char *status, const char *args)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:O, s:s}", "id", id, "type", "function_call", "status", status,
	    "call_id", req->call_id, "name", json_object_get(req->tool_call, "name"), "arguments", args);
}

static void
responses_begin(struct sim_req *req)
{
	responses_event(req, "response.created", json_pack("{s:o}", "response",
	    response_object(req, "in_progress", json_array(), NULL, false, true)));
	responses_event(req, "response.in_progress", json_pack("{s:o}", "response",
	    response_object(req, "in_progress", json_array(), NULL, false, true)));
}

static void
responses_token(struct sim_req *req, const char *word)
{
	sim_buf_append(&req->text, word, strlen(word));
	if (!req->stream_started)
		responses_begin(req);
	if (!req->block_open) {
		responses_event(req, "response.output_item.added", json_pack("{s:i, s:o}", "output_index", 0, "item",
		    message_item(req, "in_progress", json_array())));
		responses_event(req, "response.content_part.added", json_pack("{s:s, s:i, s:i, s:o}", "item_id",
		    req->item_id, "output_index", 0, "content_index", 0, "part", output_text_part("")));
		req->block_open = true;
	}
	responses_event(req, "response.output_text.delta", json_pack("{s:s, s:i, s:i, s:s, s:[]}", "item_id",
	    req->item_id, "output_index", 0, "content_index", 0, "delta", word, "logprobs"));
}

static void
responses_finish(struct sim_req *req, const char *done_reason)
{
	char *args = req->tool_call ? sim_wire_dump_go(json_object_get(req->tool_call, "arguments"), false) : NULL;
	char fc[48];

	if (!req->stream) {
		json_t *output;
		if (req->tool_call != NULL) {
			snprintf(fc, sizeof(fc), "fc_%s_0", req->agent_id);
			output = json_pack("[o]", function_item(req, fc, "completed", args));
		} else {
			output = json_pack("[o]", message_item(req, "completed", json_pack("[o]",
			    output_text_part(text_of(req)))));
		}
		sim_wire_reply(req, 200, response_object(req, "completed", output, responses_usage(req), true, false));
		free(args);
		return;
	}
	if (!req->stream_started)
		responses_begin(req);
	json_t *output = json_array();
	if (req->tool_call != NULL) {
		char n[16];
		sim_wire_rand_id(n, sizeof(n), "", DIGITS, 6);
		snprintf(fc, sizeof(fc), "fc_%s_0", n);
		responses_event(req, "response.output_item.added", json_pack("{s:i, s:o}", "output_index", 0, "item",
		    function_item(req, fc, "in_progress", "")));
		if (*args != '\0')
			responses_event(req, "response.function_call_arguments.delta", json_pack("{s:s, s:i, s:s}",
			    "item_id", fc, "output_index", 0, "delta", args));
		responses_event(req, "response.function_call_arguments.done", json_pack("{s:s, s:i, s:s}", "item_id",
		    fc, "output_index", 0, "arguments", args));
		responses_event(req, "response.output_item.done", json_pack("{s:i, s:o}", "output_index", 0, "item",
		    function_item(req, fc, "completed", args)));
		json_array_append_new(output, function_item(req, fc, "completed", args));
	} else if (req->block_open) {
		responses_event(req, "response.output_text.done", json_pack("{s:s, s:i, s:i, s:s, s:[]}", "item_id",
		    req->item_id, "output_index", 0, "content_index", 0, "text", text_of(req), "logprobs"));
		responses_event(req, "response.content_part.done", json_pack("{s:s, s:i, s:i, s:o}", "item_id",
		    req->item_id, "output_index", 0, "content_index", 0, "part", output_text_part(text_of(req))));
		responses_event(req, "response.output_item.done", json_pack("{s:i, s:o}", "output_index", 0, "item",
		    message_item(req, "completed", json_pack("[o]", output_text_part(text_of(req))))));
		json_array_append_new(output, message_item(req, "completed", json_pack("[o]",
		    output_text_part(text_of(req)))));
	}
	/* Ollama's final output is a nil slice when nothing was produced. */
	if (json_array_size(output) == 0) {
		json_decref(output);
		output = json_null();
	}
	responses_event(req, "response.completed", json_pack("{s:o}", "response",
	    response_object(req, "completed", output, responses_usage(req), true, true)));
	req->finished = true;
	free(args);
	(void)done_reason;      /* status is "completed" whatever the reason */
}

/* ---- the engine's output ---- */

static void
out_token(struct sim_req *req, const char *word)
{
	if (!sim_wire_is_agent(req)) {
		sim_wire_output.token(req, word);
		return;
	}
	/* A tool call's tokens stay inside Ollama's tool parser. */
	if (req->tool_call != NULL)
		return;
	if (!req->stream) {
		sim_buf_append(&req->text, word, strlen(word));
		return;
	}
	if (req->api == SIM_API_MESSAGES)
		messages_token(req, word);
	else
		responses_token(req, word);
}

static void
out_finish(struct sim_req *req, const char *done_reason)
{
	if (!sim_wire_is_agent(req))
		sim_wire_output.finish(req, done_reason);
	else if (req->api == SIM_API_MESSAGES)
		messages_finish(req, done_reason);
	else
		responses_finish(req, done_reason);
}

/* The chat handler's load reply (no messages) goes through the converters
 * like any final chunk: no tokens, done_reason "load". */
static void
out_load_reply(struct sim_req *req, const char *reason)
{
	if (!sim_wire_is_agent(req))
		sim_wire_output.load_reply(req, reason);
	else
		out_finish(req, reason);
}

/* After the first byte Ollama's converters emit nothing for the chat's
 * error line: the stream ends without its terminal events. */
static void
out_error_inline(struct sim_req *req, int status, const char *message)
{
	if (!sim_wire_is_agent(req))
		sim_wire_output.error_inline(req, status, message);
	else if (!req->stream || !req->stream_started)
		sim_wire_error(req, status, message);
	else
		req->finished = true;
}

const struct sim_output sim_agent_output = {
	out_token, out_finish, out_load_reply, out_error_inline, sim_wire_word,
};
