/*
 * api: route table, body parsing and rewriting, local endpoints.
 * Error texts follow Ollama's (reference/ollama-api.md section 3) so
 * drop-in clients see what they expect.
 */
#include "api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dashboard.h"
#include "metrics.h"
#include "ev.h"
#include "request.h"
#include "sched.h"
#include "server.h"
#include "statsview.h"
#include "xmalloc.h"

#define OLLAMA_COMPAT_VERSION "0.15.2" /* what /api/version reports: the report's Ollama */

static void local_root(const char *url, struct local_answer *out);
static void local_version(const char *url, struct local_answer *out);
static void local_tags(const char *url, struct local_answer *out);
static void local_ps(const char *url, struct local_answer *out);
static void local_v1_models(const char *url, struct local_answer *out);
static void local_v1_model(const char *url, struct local_answer *out);
static void local_healthz(const char *url, struct local_answer *out);
static void local_readyz(const char *url, struct local_answer *out);

/* The static route table.  Order matters only for prefix routes. */
static const struct route routes[] = {
	{"/", false, "GET HEAD", ROUTE_LOCAL, API_OLLAMA, false, false, local_root, AUTH_NONE},
	{"/api/version", false, "GET HEAD", ROUTE_LOCAL, API_OLLAMA, false, false, local_version, AUTH_AGENT},
	{"/api/tags", false, "GET HEAD", ROUTE_LOCAL, API_OLLAMA, false, false, local_tags, AUTH_AGENT},
	{"/api/ps", false, "GET HEAD", ROUTE_LOCAL, API_OLLAMA, false, false, local_ps, AUTH_AGENT},
	{"/api/generate", false, "POST", ROUTE_FORWARD, API_OLLAMA, true, true, NULL, AUTH_AGENT},
	{"/api/chat", false, "POST", ROUTE_FORWARD, API_OLLAMA, true, true, NULL, AUTH_AGENT},
	{"/api/embed", false, "POST", ROUTE_FORWARD, API_OLLAMA, false, false, NULL, AUTH_AGENT},
	{"/api/embeddings", false, "POST", ROUTE_FORWARD, API_OLLAMA, false, false, NULL, AUTH_AGENT},
	{"/api/show", false, "POST", ROUTE_SHOW, API_OLLAMA, false, false, NULL, AUTH_AGENT},
	{"/api/pull", false, "POST", ROUTE_UNSUPPORTED, API_OLLAMA, false, false, NULL, AUTH_AGENT},
	{"/api/push", false, "POST", ROUTE_UNSUPPORTED, API_OLLAMA, false, false, NULL, AUTH_AGENT},
	{"/api/create", false, "POST", ROUTE_UNSUPPORTED, API_OLLAMA, false, false, NULL, AUTH_AGENT},
	{"/api/copy", false, "POST", ROUTE_UNSUPPORTED, API_OLLAMA, false, false, NULL, AUTH_AGENT},
	{"/api/delete", false, "DELETE", ROUTE_UNSUPPORTED, API_OLLAMA, false, false, NULL, AUTH_AGENT},
	{"/v1/chat/completions", false, "POST", ROUTE_FORWARD, API_OPENAI, false, true, NULL, AUTH_AGENT},
	{"/v1/completions", false, "POST", ROUTE_FORWARD, API_OPENAI, false, true, NULL, AUTH_AGENT},
	{"/v1/embeddings", false, "POST", ROUTE_FORWARD, API_OPENAI, false, false, NULL, AUTH_AGENT},
	{"/v1/models", false, "GET", ROUTE_LOCAL, API_OPENAI, false, false, local_v1_models, AUTH_AGENT},
	{"/v1/models/", true, "GET", ROUTE_LOCAL, API_OPENAI, false, false, local_v1_model, AUTH_AGENT},
	{"/healthz", false, "GET HEAD", ROUTE_LOCAL, API_HARMONIC, false, false, local_healthz, AUTH_NONE},
	{"/readyz", false, "GET HEAD", ROUTE_LOCAL, API_HARMONIC, false, false, local_readyz, AUTH_NONE},
	{"/stats", false, "GET", ROUTE_LOCAL, API_HARMONIC, false, false, statsview_answer, AUTH_NONE},
	{"/metrics", false, "GET", ROUTE_LOCAL, API_HARMONIC, false, false, metrics_answer, AUTH_NONE},
	{"/dashboard", false, "GET", ROUTE_LOCAL, API_HARMONIC, false, false, dashboard_answer, AUTH_NONE},
	{"/admin/reload", false, "POST", ROUTE_LOCAL, API_HARMONIC, false, false, server_admin_reload, AUTH_ADMIN},
	{"/admin/drain", false, "POST", ROUTE_LOCAL, API_HARMONIC, false, false, server_admin_drain, AUTH_ADMIN},
};

const struct route *
api_route(const char *url)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *r = &routes[i];
		if (r->prefix ? strncmp(url, r->path, strlen(r->path)) == 0 && url[strlen(r->path)] != '\0'
		              : strcmp(url, r->path) == 0)
			return r;
	}
	return NULL;
}

bool
route_allows(const struct route *r, const char *method)
{
	const char *p = strstr(r->methods, method);
	size_t n = strlen(method);

	return p != NULL && (p == r->methods || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ');
}

bool
route_is_openai(const struct route *r)
{
	return r->api == API_OPENAI;
}

const char *
route_upstream_path(const struct route *r)
{
	return r->path;
}

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

/* Unknown model: Ollama's exact wording differs by endpoint. */
static char *
unknown_model_message(const struct route *r, const char *name)
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
		json_object_set_new(o, "keep_alive", json_real(m->keep_alive_s));
	else if (m->keep_alive_kind == KEEP_ALIVE_STRING)
		json_object_set_new(o, "keep_alive", json_string(m->keep_alive_str));
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
		char *msg = unknown_model_message(r, name);
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
		json_object_set_new(o, "model", json_string(m->ollama));
	if (is_native_inference(r))
		api_pin_options(o, m);
	out->up_body = json_dumps(o, JSON_COMPACT);
	out->up_body_len = strlen(out->up_body);
	json_decref(o);
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

enum api_result
api_parse(struct request *req)
{
	struct api_parsed p;

	if (api_parse_body(req->route, req->body, req->body_len, req->cfg, &p) == API_REJECTED) {
		request_close(req, STATS_REJECTED, "bad request");
		request_reply_error(req, p.status, p.error);
		api_parsed_free(&p);
		return API_REJECTED;
	}
	req->model = sched_find_model(p.model);
	req->stream = p.stream;
	if (req->route->kind == ROUTE_FORWARD && strcmp(req->model->cfg->ollama, p.model) != 0) {
		/* The backend will say its tag; the client must read its name. */
		json_t *from = json_string(req->model->cfg->ollama), *to = json_string(p.model);
		char *f = json_dumps(from, JSON_ENCODE_ANY), *t = json_dumps(to, JSON_ENCODE_ANY);
		req->echo_from = xasprintf("\"model\":%s", f);
		req->echo_to = xasprintf("\"model\":%s", t);
		free(f);
		free(t);
		json_decref(from);
		json_decref(to);
	}
	req->up_body = p.up_body;
	req->up_body_len = p.up_body_len;
	p.up_body = NULL;
	api_parsed_free(&p);
	return API_PARSED;
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
	if (r != NULL && route_is_openai(r))
		return json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", msg, "type", openai_error_type(status),
		    "param", "code");
	return json_pack("{s:s}", "error", msg);
}

/* ---- local endpoints ---- */

void
api_answer_json(struct local_answer *out, int status, json_t *o)
{
	out->status = status;
	out->ctype = "application/json; charset=utf-8";
	out->body = json_dumps(o, JSON_COMPACT);
	out->len = strlen(out->body);
	json_decref(o);
}

static void
answer_text(struct local_answer *out, int status, const char *text)
{
	out->status = status;
	out->ctype = "text/plain; charset=utf-8";
	out->body = xstrdup(text);
	out->len = strlen(text);
}

static void
local_root(const char *url, struct local_answer *out)
{
	answer_text(out, 200, "Ollama is running");
}

static void
local_version(const char *url, struct local_answer *out)
{
	api_answer_json(out, 200, json_pack("{s:s,s:s}", "version", OLLAMA_COMPAT_VERSION, "harmonicd", HARMONIC_VERSION));
}

/* A stable 64-hex digest from the name (FNV-1a, four lanes): clients only
 * need it to be well-formed and stable. */
static void
name_digest(const char *name, char out[65])
{
	for (int lane = 0; lane < 4; lane++) {
		uint64_t h = 1469598103934665603ull ^ (uint64_t)(lane + 1);
		for (const char *p = name; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		snprintf(out + lane * 16, 17, "%016llx", (unsigned long long)h);
	}
}

static void
rfc3339_now(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *
model_entry(const struct cfg_model *m)
{
	char digest[65], when[40];
	char *display;
	json_t *o;

	/* Display form keeps the configured case but always shows the tag. */
	display = strchr(m->name, ':') ? xstrdup(m->name) : xasprintf("%s:latest", m->name);
	name_digest(m->key, digest);
	rfc3339_now(when, sizeof(when));
	o = json_pack("{s:s,s:s,s:s,s:I,s:s,s:{s:s,s:s,s:s,s:[],s:s,s:s}}", "name", display, "model", display,
	    "modified_at", when, "size", (json_int_t)(m->base_gb * 1e9), "digest", digest, "details",
	    "parent_model", "", "format", "gguf", "family", "", "families", "parameter_size", "",
	    "quantization_level", "");
	free(display);
	return o;
}

static void
local_tags(const char *url, struct local_answer *out)
{
	json_t *models = json_array();

	for (int i = 0; i < sched->n_models; i++)
		json_array_append_new(models, model_entry(sched->models[i].cfg));
	api_answer_json(out, 200, json_pack("{s:o}", "models", models));
}

static bool
host_has_loaded(const struct rt_host *h, const char *tag)
{
	char *want = config_model_key(tag);
	bool found = false;

	for (int i = 0; i < h->n_loaded && !found; i++) {
		char *have = config_model_key(h->loaded[i]);
		found = strcmp(have, want) == 0;
		free(have);
	}
	free(want);
	return found;
}

static void
local_ps(const char *url, struct local_answer *out)
{
	json_t *models = json_array();

	for (int i = 0; i < sched->n_models; i++) {
		const struct rt_model *m = &sched->models[i];
		for (int k = 0; k < m->n_placements; k++) {
			const struct rt_placement *p = &m->placements[k];
			json_t *e;
			if (!host_has_loaded(p->host, m->cfg->ollama))
				continue;
			e = model_entry(m->cfg);
			json_object_set_new(e, "size_vram", json_integer((json_int_t)(p->cfg->memory_gb * 1e9)));
			json_object_set_new(e, "size", json_integer((json_int_t)(p->cfg->memory_gb * 1e9)));
			json_object_set_new(e, "expires_at", json_string("2318-01-01T00:00:00Z"));
			json_object_set_new(e, "context_length", json_integer(m->cfg->num_ctx));
			json_object_del(e, "modified_at");
			json_array_append_new(models, e);
			break;
		}
	}
	api_answer_json(out, 200, json_pack("{s:o}", "models", models));
}

static json_t *
v1_model(const struct cfg_model *m)
{
	return json_pack("{s:s,s:s,s:I,s:s}", "id", m->name, "object", "model", "created",
	    (json_int_t)time(NULL), "owned_by", "library");
}

static void
local_v1_models(const char *url, struct local_answer *out)
{
	json_t *data = json_array();

	for (int i = 0; i < sched->n_models; i++)
		json_array_append_new(data, v1_model(sched->models[i].cfg));
	api_answer_json(out, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

static void
local_v1_model(const char *url, struct local_answer *out)
{
	const char *name = url + strlen("/v1/models/");
	const struct cfg_model *m = config_find_model(sched->cfg, name);

	if (m == NULL) {
		char *msg = xasprintf("model \"%s\" not found", name);
		api_answer_json(out, 404, api_error_body(api_route("/v1/models"), 404, msg));
		free(msg);
		return;
	}
	api_answer_json(out, 200, v1_model(m));
}

static void
local_healthz(const char *url, struct local_answer *out)
{
	api_answer_json(out, 200, json_pack("{s:s}", "status", "ok"));
}

static void
local_readyz(const char *url, struct local_answer *out)
{
	int up = 0;

	for (int i = 0; i < sched->n_hosts; i++)
		up += sched->hosts[i].up;
	if (server_draining()) {
		api_answer_json(out, 503, json_pack("{s:s}", "status", "draining"));
		return;
	}
	if (up == 0) {
		api_answer_json(out, 503, json_pack("{s:s,s:i}", "status", "no host up", "hosts_up", 0));
		out->retry_after = 1;
		return;
	}
	api_answer_json(out, 200, json_pack("{s:s,s:i}", "status", "ready", "hosts_up", up));
}
