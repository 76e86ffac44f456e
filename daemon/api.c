/*
 * api: body parsing and rewriting, error shapes, the JSON answer helper.
 * Error texts follow Ollama's (reference/ollama-api.md section 3) so
 * drop-in clients see what they expect.
 */
#include "api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "config.h"
#include "dialect.h"
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

void
api_pin_options(json_t *o, const struct cfg_model *m)
{
	dialect_pin_options(o, m);
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
		char *msg = xasprintf("json: cannot unmarshal %s into a request object", dialect_type_word(o));
		json_decref(o);
		return reject(out, 400, msg);
	}
	model = json_object_get(o, "model");
	if (model == NULL && r->kind == ROUTE_SHOW)
		model = json_object_get(o, "name"); /* deprecated alias clients still send */
	if (model != NULL && !json_is_string(model)) {
		char *msg = xasprintf("json: cannot unmarshal %s into field model of type string", dialect_type_word(model));
		json_decref(o);
		return reject(out, 400, msg);
	}
	name = model ? json_string_value(model) : "";
	if (*name == '\0') {
		char *msg;
		int status = r->dialect->missing_model(r, &msg);
		json_decref(o);
		return reject(out, status, msg);
	}
	stream = json_object_get(o, "stream");
	if (stream != NULL && !json_is_boolean(stream) && !json_is_null(stream)) {
		char *msg = xasprintf("json: cannot unmarshal %s into field stream of type bool", dialect_type_word(stream));
		json_decref(o);
		return reject(out, 400, msg);
	}
	if ((bad = r->dialect->check(r, o)) != NULL) {
		json_decref(o);
		return reject(out, 400, bad);
	}
	if ((m = config_find_model(cfg, name)) == NULL) {
		char *msg = r->dialect->unknown_model(r, name);
		json_decref(o);
		return reject(out, 404, msg);
	}
	out->model = xstrdup(name);
	out->stream = r->streams && (r->stream_default ? !json_is_false(stream) : json_is_true(stream));
	/* name may be the "name" member's string: deleting it frees name, so
	 * compare against the copy in out->model from here on. */
	/* The prompt's prefix keys, before the rewrite adds pinned options:
	 * only generating routes, only where there is a replica to choose. */
	if (r->kind == ROUTE_FORWARD && r->streams && m->n_placements > 1 && m->routing == ROUTING_AFFINITY) {
		out->aff = xmalloc(sizeof(*out->aff));
		affinity_keys_derive(o, m->key, NULL, out->aff);
	}
	if (r->kind == ROUTE_SHOW)
		json_object_del(o, "name");
	if (strcmp(m->ollama, out->model) != 0 || r->kind == ROUTE_SHOW)
		json_object_set_new(o, "model", jx_str(m->ollama));
	r->dialect->rewrite(r, o, m);
	out->up_body = jx_dump(o, &out->up_body_len);
	json_decref(o);
	if (out->up_body == NULL) {
		free(out->model);
		out->model = NULL;
		free(out->aff);
		out->aff = NULL;
		return reject(out, 500, xstrdup("harmonicd: cannot encode the request for the backend"));
	}
	return API_PARSED;
}

void
api_parsed_free(struct api_parsed *p)
{
	free(p->model);
	free(p->up_body);
	free(p->aff);
	free(p->error);
	memset(p, 0, sizeof(*p));
}

/* ---- errors ---- */

json_t *
api_error_body(const struct route *r, int status, const char *msg)
{
	return (r != NULL ? r->dialect : &dialect_ollama)->error_body(status, msg);
}

char *
api_unknown_model_message(const struct route *r, const char *name)
{
	return r->dialect->unknown_model(r, name);
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
