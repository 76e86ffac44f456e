/*
 * api: body parsing and rewriting, error shapes, the JSON answer helper.
 * Error texts follow Ollama's (reference/ollama-api.md section 3) so
 * drop-in clients see what they expect.
 */
#include "api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "jsonx.h"
#include "log.h"
#include "xmalloc.h"

/* ---- forwarded requests ---- */

static enum api_result
reject(struct api_parsed *out, int status, char *msg)
{
	out->status = status;
	out->error = msg;
	return API_REJECTED;
}

static bool
is_native_inference(const struct route *r)
{
	return r->api == API_OLLAMA && r->kind == ROUTE_FORWARD;
}

static const char *
json_type_word(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER:
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "bool";
	default: return "null";
	}
}

/*
 * Members whose type harmonicd checks itself rather than relaying Ollama's
 * 400: cheap to check here, a clearer error, and no slot or queue place is
 * spent on a request the backend would refuse.  null is accepted (Go
 * unmarshals it to the zero value).  Everything else passes through.
 */
static const struct member_type {
	const char *path;
	const char *member;
	json_type type;
	const char *type_word;
} member_types[] = {
	{"/api/generate", "prompt", JSON_STRING, "string"},
	{"/api/generate", "options", JSON_OBJECT, "object"},
	{"/api/chat", "messages", JSON_ARRAY, "array"},
	{"/api/chat", "options", JSON_OBJECT, "object"},
	{"/api/embed", "options", JSON_OBJECT, "object"},
	{"/api/embeddings", "prompt", JSON_STRING, "string"},
	{"/api/embeddings", "options", JSON_OBJECT, "object"},
	{"/v1/chat/completions", "messages", JSON_ARRAY, "array"},
};

/* The first member of o with a wrong type for route r, as an error text. */
static char *
member_type_error(const struct route *r, const json_t *o)
{
	for (size_t i = 0; i < sizeof(member_types) / sizeof(member_types[0]); i++) {
		const struct member_type *t = &member_types[i];
		const json_t *v;
		if (strcmp(t->path, r->path) != 0 || (v = json_object_get(o, t->member)) == NULL)
			continue;
		if (json_typeof(v) != t->type && !json_is_null(v))
			return xasprintf("json: cannot unmarshal %s into field %s of type %s", json_type_word(v),
			    t->member, t->type_word);
	}
	return NULL;
}

char *
api_unknown_model_message(const struct route *r, const char *name)
{
	if (r->api == API_OPENAI || strcmp(r->path, "/api/embed") == 0 || strcmp(r->path, "/api/embeddings") == 0)
		return xasprintf("model \"%s\" not found, try pulling it first", name);
	return xasprintf("model '%s' not found", name);
}

void
api_pin_options(json_t *o, const struct cfg_model *m)
{
	if (m->num_ctx > 0) {
		json_t *opts = json_object_get(o, "options");
		if (!json_is_object(opts)) {
			opts = json_object();
			json_object_set_new(o, "options", opts);
		}
		json_object_set_new(opts, "num_ctx", json_integer(m->num_ctx));
	}
	if (m->keep_alive_kind == KEEP_ALIVE_SECONDS)
		json_object_set_new(o, "keep_alive", jx_real(m->keep_alive_s));
	else if (m->keep_alive_kind == KEEP_ALIVE_STRING)
		json_object_set_new(o, "keep_alive", jx_str(m->keep_alive_str));
}

enum api_result
api_parse_body(const struct route *r, const char *body, size_t len, const struct config *cfg,
    struct api_parsed *out)
{
	const struct cfg_model *m;
	json_error_t jerr;
	json_t *o, *model, *stream;
	const char *name;
	char *bad;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		return reject(out, 400, xstrdup("missing request body"));
	o = json_loadb(body, len, 0, &jerr);
	if (o == NULL)
		return reject(out, 400, xasprintf("invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
		    jerr.text));
	if (!json_is_object(o)) {
		char *msg = xasprintf("json: cannot unmarshal %s into a request object", json_type_word(o));
		json_decref(o);
		return reject(out, 400, msg);
	}
	model = json_object_get(o, "model");
	if (model == NULL && r->kind == ROUTE_SHOW)
		model = json_object_get(o, "name"); /* deprecated alias clients still send */
	if (model != NULL && !json_is_string(model)) {
		char *msg = xasprintf("json: cannot unmarshal %s into field model of type string", json_type_word(model));
		json_decref(o);
		return reject(out, 400, msg);
	}
	name = model ? json_string_value(model) : "";
	if (*name == '\0') {
		bool not_found = strcmp(r->path, "/api/generate") == 0 || strcmp(r->path, "/api/embed") == 0;
		json_decref(o);
		return not_found ? reject(out, 404, xstrdup("model '' not found"))
		                 : reject(out, 400, xstrdup("model is required"));
	}
	stream = json_object_get(o, "stream");
	if (stream != NULL && !json_is_boolean(stream) && !json_is_null(stream)) {
		char *msg = xasprintf("json: cannot unmarshal %s into field stream of type bool", json_type_word(stream));
		json_decref(o);
		return reject(out, 400, msg);
	}
	if ((bad = member_type_error(r, o)) != NULL) {
		json_decref(o);
		return reject(out, 400, bad);
	}
	if ((m = config_find_model(cfg, name)) == NULL) {
		char *msg = api_unknown_model_message(r, name);
		json_decref(o);
		return reject(out, 404, msg);
	}
	out->model = xstrdup(name);
	out->stream = r->streams && (r->stream_default ? !json_is_false(stream) : json_is_true(stream));
	/* name may be the "name" member's string: deleting it frees name, so
	 * compare against the copy in out->model from here on. */
	if (r->kind == ROUTE_SHOW)
		json_object_del(o, "name");
	if (strcmp(m->ollama, out->model) != 0 || r->kind == ROUTE_SHOW)
		json_object_set_new(o, "model", jx_str(m->ollama));
	if (is_native_inference(r))
		api_pin_options(o, m);
	out->up_body = jx_dump(o, &out->up_body_len);
	json_decref(o);
	if (out->up_body == NULL) {
		free(out->model);
		out->model = NULL;
		return reject(out, 500, xstrdup("harmonicd: cannot encode the request for the backend"));
	}
	return API_PARSED;
}

void
api_parsed_free(struct api_parsed *p)
{
	free(p->model);
	free(p->up_body);
	free(p->error);
	memset(p, 0, sizeof(*p));
}

/* ---- errors ---- */

static const char *
openai_error_type(int status)
{
	if (status == 401 || status == 403)
		return "authentication_error";
	if (status == 404)
		return "not_found_error";
	if (status >= 400 && status < 500)
		return "invalid_request_error";
	return "api_error";
}

json_t *
api_error_body(const struct route *r, int status, const char *msg)
{
	return api_error_body_in(r != NULL ? r->api : API_OLLAMA, status, msg);
}

json_t *
api_error_body_in(enum route_api api, int status, const char *msg)
{
	if (api == API_OPENAI)
		return jx_pack("{s:{s:o,s:s,s:n,s:n}}", "error", "message", jx_str(msg), "type",
		    openai_error_type(status), "param", "code");
	return jx_pack("{s:o}", "error", jx_str(msg));
}

/* ---- answers ---- */

void
api_answer_json(struct local_answer *out, int status, json_t *o)
{
	out->ctype = "application/json; charset=utf-8";
	out->body = jx_dump(o, &out->len);
	json_decref(o);
	if (out->body == NULL) {
		api_internal_error(&out->body, &out->len);
		status = 500;
	}
	out->status = status;
}

void
api_internal_error(char **body, size_t *len)
{
	static const char text[] = "{\"error\":\"harmonicd: internal error while encoding the answer\"}";

	*body = xstrdup(text);
	*len = sizeof(text) - 1;
}

char *
api_error_text(const struct route *r, int status, const char *msg, size_t *len)
{
	json_t *o = api_error_body(r, status, msg);
	char *s = jx_dump(o, len);

	json_decref(o);
	if (s == NULL)
		api_internal_error(&s, len);
	return s;
}
