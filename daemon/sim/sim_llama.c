/*
 * sim_llama: llama-server's wire formats for harmonic-sim
 * (reference/llamacpp-server.md).  JSON is compact raw UTF-8, chunk fields
 * in llama-server's order.  A profile with one model is a plain
 * `llama-server -m`: the request's model is ignored and echoed; with
 * several it is router mode: POSTs route by the body's model, GETs by
 * ?model= (the first model without it).
 *
 * Slot ids: the engine knows which requests hold a slot of a model, not
 * which slot; the view here gives each holder the lowest free slot id when
 * it is first seen and keeps it until the request leaves, so /slots is
 * stable between probes.
 *
 * /v1/messages and /v1/responses reuse sim_agent: its conversion into a
 * chat, its events and bodies; only errors, the model echo and the
 * /metrics counting are llama-server's here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_agent.h"
#include "sim_engine.h"
#include "sim_llama.h"
#include "sim_profile.h"
#include "sim_wire.h"
#include "xmalloc.h"

#define CT_JSON "application/json; charset=utf-8"
#define CT_SSE "text/event-stream"
#define CT_METRICS "text/plain; version=0.0.4"
#define BUILD_INFO "b7100-harmonic-sim"
#define CREATED 1767225600              /* the profiles' "modified_at", 2026-01-01 */
#define JSON_OPEN "{\"answer\":\""    /* response_format json_object: the content's frame */
#define JSON_CLOSE "\"}"
#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

struct lslot {
	uint64_t task;                  /* request id of its current or last task */
	bool used;                      /* has run a task */
	bool busy;
};

/* Per model: its slots as /slots shows them and the /metrics counters. */
struct lmodel {
	struct lslot *slots;
	int n_slots;
	double prompt_tokens, prompt_seconds, predicted, predicted_seconds, n_decode;
	double busy_sum, busy_samples;  /* n_busy_slots_per_decode */
	int64_t n_tokens_max;
};

static struct {
	struct lmodel *m;               /* one per profile model, owned here */
	size_t n;
} L;

void
sim_llama_init(void)
{
	const struct sim_profile *p = sim_engine_profile();
	L.n = p->n_models;
	L.m = xcalloc(L.n, sizeof(*L.m));
	for (size_t i = 0; i < L.n; i++) {
		L.m[i].n_slots = p->models[i].num_parallel;
		L.m[i].slots = xcalloc((size_t)L.m[i].n_slots, sizeof(struct lslot));
	}
}

void
sim_llama_shutdown(void)
{
	for (size_t i = 0; i < L.n; i++)
		free(L.m[i].slots);
	free(L.m);
	L.m = NULL;
	L.n = 0;
}

static bool
router_mode(void)
{
	return sim_engine_profile()->n_models > 1;
}

static size_t
model_index(const struct sim_profile_model *pm)
{
	return (size_t)(pm - sim_engine_profile()->models);
}

/* The id llama-server would list: the profile name without ":latest". */
static void
model_id(const struct sim_profile_model *pm, char *buf, size_t size)
{
	size_t n = strlen(pm->name);
	if (n > 7 && strcmp(pm->name + n - 7, ":latest") == 0)
		n -= 7;
	snprintf(buf, size, "%.*s", (int)n, pm->name);
}

bool
sim_llama_loading(void)
{
	return sim_engine_loading_any();
}

bool
sim_llama_public_path(const char *url)
{
	return strcmp(url, "/v1/models") == 0 || strcmp(url, "/models") == 0 || strcmp(url, "/api/tags") == 0;
}

/* ---- errors ---- */

static const char *
error_type(int status)
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
	case 501:
		return "not_supported_error";
	case 503:
		return "unavailable_error";
	default:
		return "server_error";
	}
}

static json_t *
error_json(int status, const char *message)
{
	return json_pack("{s:{s:i, s:s, s:s}}", "error", "code", status, "message", message, "type",
	    error_type(status));
}

/* A complete JSON reply in req->out; steals j. */
static void
reply(struct sim_req *req, int status, json_t *j)
{
	char *s = sim_wire_dump(j);
	json_decref(j);
	req->out.len = req->out.off = 0;
	sim_buf_append(&req->out, s, strlen(s));
	free(s);
	req->status = status;
	req->content_type = CT_JSON;
	req->reply_ready = true;
	req->finished = true;
}

/* The Anthropic route wraps llama's error in Anthropic's envelope. */
static json_t *
route_error_json(const struct sim_req *req, int status, const char *message)
{
	if (req->api == SIM_API_MESSAGES)
		return json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", error_type(status), "message",
		    message);
	return error_json(status, message);
}

void
sim_llama_error(struct sim_req *req, int status, const char *message)
{
	reply(req, status, route_error_json(req, status, message));
}

void
sim_llama_restyle_error(struct sim_req *req)
{
	if (!req->reply_ready || req->status < 400)
		return;
	json_t *j = json_loadb(req->out.data ? req->out.data : "", req->out.len, 0, NULL);
	json_t *err = json_object_get(j, "error");
	const char *msg = json_is_string(err) ? json_string_value(err)
	    : json_string_value(json_object_get(err, "message"));
	char *copy = xstrdup(msg ? msg : "error");
	json_decref(j);
	sim_llama_error(req, req->status, copy);
	free(copy);
}

/* ---- GET endpoints ---- */

/* The model a GET asks about: ?model= in router mode, else the first. */
static const struct sim_profile_model *
get_model(const char *arg)
{
	const struct sim_profile *p = sim_engine_profile();
	if (!router_mode() || arg == NULL || *arg == '\0')
		return &p->models[0];
	return sim_profile_find(p, arg);
}

static bool
model_loaded(const struct sim_profile_model *pm)
{
	sim_engine_advance();
	return sim_engine_loaded(sim_engine_model(pm), false, NULL, NULL);
}

static json_t *
models_list(void)
{
	const struct sim_profile *p = sim_engine_profile();
	json_t *models = json_array(), *data = json_array();
	char id[256];

	for (size_t i = 0; i < p->n_models; i++) {
		const struct sim_profile_model *pm = &p->models[i];
		bool loaded = model_loaded(pm);
		model_id(pm, id, sizeof(id));
		json_array_append_new(models, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:[s], s:s, "
		    "s:{s:s, s:s, s:[s], s:s, s:s}}", "name", id, "model", id, "modified_at", "", "size", "", "digest", "",
		    "type", "model", "description", "", "tags", "", "capabilities", "completion", "parameters", "",
		    "details", "format", "gguf", "family", pm->family, "families", pm->family, "parameter_size",
		    pm->parameter_size, "quantization_level", pm->quantization));
		json_t *meta = loaded ? json_pack("{s:i, s:i, s:i, s:i, s:I, s:I}", "vocab_type", 2, "n_vocab", 151936,
		    "n_ctx_train", 40960, "n_embd", pm->embedding_length, "n_params", (json_int_t)(pm->base_gb * 1.6e9),
		    "size", (json_int_t)(pm->base_gb * 1073741824.0)) : json_null();
		json_t *d = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", id, "object", "model", "created",
		    (json_int_t)CREATED, "owned_by", "llamacpp", "meta", meta);
		if (router_mode())
			json_object_set_new(d, "status", json_pack("{s:s}", "value", loaded ? "loaded" : "loading"));
		json_array_append_new(data, d);
	}
	return json_pack("{s:o, s:s, s:o}", "models", models, "object", "list", "data", data);
}

static json_t *
slot_params(void)
{
	return json_pack("{s:i, s:I, s:f, s:i, s:f, s:f, s:f, s:f, s:f, s:i, s:b}", "n_predict", -1, "seed",
	    (json_int_t)4294967295LL, "temperature", 0.8, "top_k", 40, "top_p", 0.95, "min_p", 0.05,
	    "repeat_penalty", 1.0, "presence_penalty", 0.0, "frequency_penalty", 0.0, "max_tokens", -1, "stream",
	    true);
}

static int
slot_ctx(const struct sim_profile_model *pm)
{
	return sim_profile_default_ctx(sim_engine_profile(), pm);
}

static json_t *
props(const struct sim_profile_model *pm)
{
	char id[256], path[300];
	model_id(pm, id, sizeof(id));
	snprintf(path, sizeof(path), "/models/%s.gguf", id);
	return json_pack("{s:{s:o, s:i}, s:i, s:s, s:s, s:{s:b, s:b}, s:b, s:b, s:b, s:b, s:s, s:s, s:s, s:s}",
	    "default_generation_settings", "params", slot_params(), "n_ctx", slot_ctx(pm),
	    "total_slots", pm->num_parallel, "model_alias", id, "model_path", path,
	    "modalities", "vision", false, "audio", false,
	    "endpoint_slots", true, "endpoint_props", false, "endpoint_metrics", true, "webui", false,
	    "chat_template", "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}",
	    "bos_token", "<|im_start|>", "eos_token", "<|im_end|>", "build_info", BUILD_INFO);
}

/* Bring the slot view up to the engine: holders that left free their
 * slot (it keeps its last task id), new holders take the lowest free one. */
static void
refresh_slots(const struct sim_profile_model *pm)
{
	struct lmodel *lm = &L.m[model_index(pm)];
	const struct sim_req **held = xcalloc((size_t)lm->n_slots, sizeof(*held));
	size_t n;

	sim_engine_advance();
	n = sim_engine_slot_holders(sim_engine_model(pm), held, (size_t)lm->n_slots);
	for (int s = 0; s < lm->n_slots; s++) {
		bool still = false;
		for (size_t k = 0; lm->slots[s].busy && k < n; k++)
			still = still || held[k]->id == lm->slots[s].task;
		lm->slots[s].busy = still;
	}
	for (size_t k = 0; k < n; k++) {
		int s, free_at = -1;
		for (s = 0; s < lm->n_slots; s++) {
			if (lm->slots[s].busy && lm->slots[s].task == held[k]->id)
				break;
			if (!lm->slots[s].busy && free_at < 0)
				free_at = s;
		}
		if (s == lm->n_slots && free_at >= 0)
			lm->slots[free_at] = (struct lslot){ .task = held[k]->id, .used = true, .busy = true };
	}
	free(held);
}

static json_t *
slots(const struct sim_profile_model *pm)
{
	struct lmodel *lm = &L.m[model_index(pm)];
	json_t *a = json_array();

	refresh_slots(pm);
	for (int s = 0; s < lm->n_slots; s++) {
		const struct lslot *sl = &lm->slots[s];
		json_t *o = json_pack("{s:i, s:i, s:b, s:b}", "id", s, "n_ctx", slot_ctx(pm), "speculative", false,
		    "is_processing", sl->busy);
		if (sl->used) {
			json_object_set_new(o, "id_task", json_integer((json_int_t)sl->task));
			json_object_set_new(o, "params", slot_params());
			json_object_set_new(o, "next_token", json_pack("[{s:b, s:b, s:i, s:i}]", "has_next_token", sl->busy,
			    "has_new_line", false, "n_remain", -1, "n_decoded", 0));
		}
		json_array_append_new(a, o);
	}
	return a;
}

static void
metric(struct sim_buf *b, const char *name, const char *type, const char *help, double v)
{
	char *s = xasprintf("# HELP llamacpp:%s %s\n# TYPE llamacpp:%s %s\nllamacpp:%s %.10g\n", name, help, name,
	    type, name, v);
	sim_buf_append(b, s, strlen(s));
	free(s);
}

static char *
metrics(const struct sim_profile_model *pm)
{
	const struct lmodel *lm = &L.m[model_index(pm)];
	struct sim_model *m = sim_engine_model(pm);
	struct sim_buf b = { 0 };

	sim_engine_advance();
	metric(&b, "prompt_tokens_total", "counter", "Number of prompt tokens processed.", lm->prompt_tokens);
	metric(&b, "prompt_seconds_total", "counter", "Prompt process time", lm->prompt_seconds);
	metric(&b, "tokens_predicted_total", "counter", "Number of generation tokens processed.", lm->predicted);
	metric(&b, "tokens_predicted_seconds_total", "counter", "Predict process time", lm->predicted_seconds);
	metric(&b, "n_decode_total", "counter", "Total number of llama_decode() calls", lm->n_decode);
	metric(&b, "n_tokens_max", "counter", "Largest observed n_tokens.", (double)lm->n_tokens_max);
	metric(&b, "n_busy_slots_per_decode", "counter", "Average number of busy slots per llama_decode() call",
	    lm->busy_samples > 0 ? lm->busy_sum / lm->busy_samples : 0);
	metric(&b, "prompt_tokens_seconds", "gauge", "Average prompt throughput in tokens/s.",
	    lm->prompt_seconds > 0 ? lm->prompt_tokens / lm->prompt_seconds : 0);
	metric(&b, "predicted_tokens_seconds", "gauge", "Average generation throughput in tokens/s.",
	    lm->predicted_seconds > 0 ? lm->predicted / lm->predicted_seconds : 0);
	metric(&b, "requests_processing", "gauge", "Number of requests processing.", sim_engine_busy(m));
	metric(&b, "requests_deferred", "gauge", "Number of requests deferred.", sim_engine_deferred(m));
	return b.data;
}

static int
json_answer(int status, json_t *j, char **body, const char **ctype)
{
	*body = sim_wire_dump(j);
	json_decref(j);
	*ctype = CT_JSON;
	return status;
}

int
sim_llama_get(const char *url, const char *model_arg, char **body, const char **ctype)
{
	if (sim_llama_public_path(url))
		return json_answer(200, models_list(), body, ctype);
	if (sim_llama_loading())
		return json_answer(503, error_json(503, "Loading model"), body, ctype);
	if (strcmp(url, "/health") == 0 || strcmp(url, "/v1/health") == 0)
		return json_answer(200, json_pack("{s:s}", "status", "ok"), body, ctype);
	bool per_model = strcmp(url, "/props") == 0 || strcmp(url, "/slots") == 0 || strcmp(url, "/metrics") == 0;
	if (!per_model) /* llama-server's field order differs for this one */
		return json_answer(404, json_pack("{s:{s:s, s:s, s:i}}", "error", "message", "File Not Found", "type",
		    "not_found_error", "code", 404), body, ctype);
	const struct sim_profile_model *pm = get_model(model_arg);
	if (pm == NULL)
		return json_answer(404, error_json(404, "model not found"), body, ctype);
	if (strcmp(url, "/props") == 0)
		return json_answer(200, props(pm), body, ctype);
	if (strcmp(url, "/slots") == 0)
		return json_answer(200, slots(pm), body, ctype);
	*body = metrics(pm);
	*ctype = CT_METRICS;
	return 200;
}

/* ---- POST: checks and conversion ---- */

enum sim_api
sim_llama_post_api(const char *url, bool *count_only)
{
	*count_only = strcmp(url, "/v1/messages/count_tokens") == 0;
	if (*count_only || strcmp(url, "/v1/messages") == 0)
		return SIM_API_MESSAGES;
	if (strcmp(url, "/v1/responses") == 0)
		return SIM_API_RESPONSES;
	if (strcmp(url, "/v1/chat/completions") == 0 || strcmp(url, "/chat/completions") == 0)
		return SIM_API_V1_CHAT;
	if (strcmp(url, "/v1/completions") == 0)
		return SIM_API_V1_COMPLETIONS;
	if (strcmp(url, "/v1/embeddings") == 0)
		return SIM_API_V1_EMBEDDINGS;
	return SIM_API_COUNT;
}

static bool
present(json_t *v)
{
	return v != NULL && !json_is_null(v);
}

/* The check of one API's fields; NULL when fine, else the 400 message.
 * May rewrite body (a prompt array becomes its first string). */
static const char *
check_fields(struct sim_req *req, json_t *body)
{
	json_t *v;
	size_t i;

	if (present(v = json_object_get(body, "stream")) && !json_is_boolean(v))
		return "\"stream\" must be a boolean";
	for (const char *const *k = (const char *const[]){ "max_tokens", "n_predict", NULL }; *k; k++)
		if (present(v = json_object_get(body, *k)) && !json_is_number(v))
			return "\"max_tokens\" and \"n_predict\" must be integers";
	switch (req->api) {
	case SIM_API_V1_CHAT: {
		json_t *msgs = json_object_get(body, "messages"), *msg;
		if (!json_is_array(msgs))
			return "'messages' is required and must be an array";
		if (json_array_size(msgs) == 0)
			return "'messages' must not be empty";
		json_array_foreach(msgs, i, msg)
			if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "role")))
				return "each message must be an object with a 'role'";
		json_t *rf = json_object_get(body, "response_format");
		if (present(rf)) {
			const char *type = json_string_value(json_object_get(rf, "type"));
			static char rf_msg[160];
			if (type == NULL || (strcmp(type, "text") != 0 && strcmp(type, "json_object") != 0 &&
			    strcmp(type, "json_schema") != 0)) {
				snprintf(rf_msg, sizeof(rf_msg), "response_format type must be one of \"text\" or \"json_object\", "
				    "but got: %.60s", type ? type : "null");
				return rf_msg;
			}
			req->llama_json = strcmp(type, "text") != 0;
		}
		return NULL;
	}
	case SIM_API_V1_COMPLETIONS:
		v = json_object_get(body, "prompt");
		if (json_is_array(v) && json_array_size(v) > 0 && json_is_string(json_array_get(v, 0)))
			json_object_set(body, "prompt", json_array_get(v, 0));      /* the first prompt only */
		else if (!json_is_string(json_object_get(body, "prompt")))
			return "\"prompt\" must be provided (a string)";
		return NULL;
	case SIM_API_V1_EMBEDDINGS: {
		const char *fmt = json_string_value(json_object_get(body, "encoding_format"));
		v = json_object_get(body, "input");
		if (!present(v))
			v = json_object_get(body, "content");
		if (!present(v))
			return "\"input\" or \"content\" must be provided";
		if (json_is_string(v) ? json_string_length(v) == 0 : json_is_array(v) ? json_array_size(v) == 0 : false)
			return "Input content cannot be empty";
		if (json_is_array(v)) {
			json_t *s;
			json_array_foreach(v, i, s)
				if (!json_is_string(s))
					return "\"input\" must be a string or an array of strings";
		} else if (!json_is_string(v)) {
			return "\"input\" must be a string or an array of strings";
		}
		if (fmt != NULL && strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0)
			return "The format to return the embeddings in. Can be either float or base64";
		json_object_set(body, "input", v);
		return NULL;
	}
	default:
		return "unsupported endpoint";
	}
}

/* check_fields, then the token limit: n_predict, else max_tokens; a
 * limit past the natural answer (default_predict) lets it end with "stop"
 * like a real model.  NULL when fine, else the 400 message. */
static const char *
llama_fields(struct sim_req *req, json_t *out)
{
	const char *err = check_fields(req, out);
	if (err != NULL)
		return err;
	json_t *lim = json_object_get(out, "n_predict");
	if (!present(lim))
		lim = json_object_get(out, "max_tokens");
	double n = json_is_number(lim) ? json_number_value(lim) : -1;
	if (n >= 0 && n <= sim_engine_profile()->default_predict)
		json_object_set_new(out, "max_tokens", json_integer((json_int_t)n));
	else
		json_object_del(out, "max_tokens");
	json_object_del(out, "n_predict");
	json_object_del(out, "options");
	return NULL;
}

json_t *
sim_llama_prepare(struct sim_req *req, json_t *body, char **echo)
{
	const struct sim_profile *p = sim_engine_profile();
	const struct sim_profile_model *pm = &p->models[0];
	json_t *mv = json_object_get(body, "model");
	const char *name = json_string_value(mv);
	const char *err;
	char id[256];

	*echo = NULL;
	if (present(mv) && !json_is_string(mv)) {
		sim_llama_error(req, 400, "\"model\" must be a string");
		return NULL;
	}
	if (router_mode()) {
		if (name == NULL || *name == '\0') {
			sim_llama_error(req, 400, "model name is missing from the request");
			return NULL;
		}
		if ((pm = sim_profile_find(p, name)) == NULL) {
			sim_llama_error(req, 404, "model not found");
			return NULL;
		}
	}
	if (req->api == SIM_API_V1_EMBEDDINGS && !pm->embeddings) {
		sim_llama_error(req, 501, "This server does not support embeddings. Start it with `--embeddings`");
		return NULL;
	}
	json_t *out = json_deep_copy(body);
	/* The agent APIs' chat was checked by sim_agent, its limit in options. */
	if (!sim_wire_is_agent(req) && (err = llama_fields(req, out)) != NULL) {
		sim_llama_error(req, 400, err);
		json_decref(out);
		return NULL;
	}
	json_object_set_new(out, "keep_alive", json_integer(-1));      /* loaded for good */
	json_object_set_new(out, "model", json_string(pm->name));
	model_id(pm, id, sizeof(id));
	*echo = xstrdup(name != NULL && *name != '\0' ? name : id);
	return out;
}

void
sim_llama_count_reply(struct sim_req *req)
{
	reply(req, 200, json_pack("{s:I}", "input_tokens", (json_int_t)req->prompt_tokens));
}

/* ---- the engine's output ---- */

static const char *
completion_id(struct sim_req *req)
{
	if (req->llama_id[0] == '\0')
		sim_wire_rand_id(req->llama_id, sizeof(req->llama_id), "chatcmpl-", ALNUM, 32);
	return req->llama_id;
}

/* One SSE event "data: <json>\n\n"; steals j. */
static void
emit(struct sim_req *req, json_t *j)
{
	char *s = sim_wire_dump(j);
	json_decref(j);
	sim_buf_append(&req->out, "data: ", 6);
	sim_buf_append(&req->out, s, strlen(s));
	sim_buf_append(&req->out, "\n\n", 2);
	free(s);
	req->status = 200;
	req->content_type = CT_SSE;
	req->stream_started = true;
}

/* One named SSE event "event: NAME\ndata: <json>\n\n"; steals j. */
static void
emit_event(struct sim_req *req, const char *name, json_t *j)
{
	sim_buf_append(&req->out, "event: ", 7);
	sim_buf_append(&req->out, name, strlen(name));
	sim_buf_append(&req->out, "\n", 1);
	emit(req, j);
}

/* A chunk or body in llama-server's field order; steals choices. */
static json_t *
envelope(struct sim_req *req, json_t *choices, const char *object)
{
	return json_pack("{s:o, s:I, s:s, s:s, s:s, s:s}", "choices", choices, "created", (json_int_t)req->created,
	    "id", completion_id(req), "model", req->model_name ? req->model_name : "", "system_fingerprint",
	    BUILD_INFO, "object", object);
}

static json_t *
chat_chunk(struct sim_req *req, json_t *delta, const char *finish)
{
	return envelope(req, json_pack("[{s:s?, s:i, s:o}]", "finish_reason", finish, "index", 0, "delta", delta),
	    "chat.completion.chunk");
}

static json_t *
text_chunk(struct sim_req *req, const char *text, const char *finish)
{
	return envelope(req, json_pack("[{s:s, s:i, s:n, s:s?}]", "text", text, "index", 0, "logprobs",
	    "finish_reason", finish), "text_completion");
}

static double
ms_of(int64_t ns)
{
	return ns > 0 ? (double)ns / 1e6 : 0;
}

static json_t *
timings(const struct sim_req *req)
{
	int64_t cache_n = sim_request_cached_tokens(req), prompt_n = req->prompt_tokens - cache_n;
	double prompt_ms = ms_of(req->t_decode - req->t_prompt), predicted_ms = ms_of(req->t_done - req->t_decode);
	return json_pack("{s:I, s:I, s:f, s:f, s:f, s:I, s:f, s:f, s:f}", "cache_n", (json_int_t)cache_n,
	    "prompt_n", (json_int_t)prompt_n, "prompt_ms", prompt_ms,
	    "prompt_per_token_ms", prompt_n > 0 ? prompt_ms / (double)prompt_n : 0.0,
	    "prompt_per_second", prompt_ms > 0 ? (double)prompt_n * 1e3 / prompt_ms : 0.0,
	    "predicted_n", (json_int_t)req->emitted, "predicted_ms", predicted_ms,
	    "predicted_per_token_ms", req->emitted > 0 ? predicted_ms / (double)req->emitted : 0.0,
	    "predicted_per_second", predicted_ms > 0 ? (double)req->emitted * 1e3 / predicted_ms : 0.0);
}

static json_t *
usage(const struct sim_req *req)
{
	return json_pack("{s:I, s:I, s:I, s:{s:I}}", "completion_tokens", (json_int_t)req->emitted, "prompt_tokens",
	    (json_int_t)req->prompt_tokens, "total_tokens", (json_int_t)(req->prompt_tokens + req->emitted),
	    "prompt_tokens_details", "cached_tokens", (json_int_t)sim_request_cached_tokens(req));
}

/* Byte offset of the k-th of n pieces of s (len bytes), never inside a
 * UTF-8 sequence. */
static size_t
piece_at(const char *s, size_t len, int64_t k, int64_t n)
{
	size_t at = k >= n ? len : (size_t)((double)len * (double)k / (double)n);
	while (at < len && ((unsigned char)s[at] & 0xc0) == 0x80)
		at++;
	return at;
}

/* The tool call streams as llama-server's: a header with the name and
 * empty arguments, then the arguments string in one piece per token. */
static void
tool_token(struct sim_req *req)
{
	int64_t i = req->emitted - 1;
	char *args = sim_wire_dump(json_object_get(req->tool_call, "arguments"));
	size_t len = strlen(args), a = piece_at(args, len, i, req->target_tokens),
	    z = piece_at(args, len, i + 1, req->target_tokens);

	if (i == 0) {
		emit(req, chat_chunk(req, json_pack("{s:s, s:n}", "role", "assistant", "content"), NULL));
		emit(req, chat_chunk(req, json_pack("{s:[{s:i, s:s, s:s, s:{s:O, s:s}}]}", "tool_calls", "index", 0,
		    "id", req->call_id, "type", "function", "function", "name", json_object_get(req->tool_call, "name"),
		    "arguments", ""), NULL));
	}
	if (z > a)
		emit(req, chat_chunk(req, json_pack("{s:[{s:i, s:{s:s%}}]}", "tool_calls", "index", 0, "function",
		    "arguments", args + a, z - a), NULL));
	free(args);
}

/* A piece of answer text: a chunk, or kept for the final body. */
static void
text_piece(struct sim_req *req, const char *piece)
{
	if (!req->stream) {
		sim_buf_append(&req->text, piece, strlen(piece));
		return;
	}
	if (req->api == SIM_API_V1_COMPLETIONS) {
		emit(req, text_chunk(req, piece, NULL));
		return;
	}
	if (!req->stream_started)       /* the first result: role-only delta, then the text */
		emit(req, chat_chunk(req, json_pack("{s:s, s:n}", "role", "assistant", "content"), NULL));
	emit(req, chat_chunk(req, json_pack("{s:s}", "content", piece), NULL));
}

static void
out_token(struct sim_req *req, const char *word)
{
	if (sim_wire_is_agent(req)) {
		sim_agent_output.token(req, word);
		return;
	}
	if (req->api == SIM_API_V1_EMBEDDINGS)
		return;
	if (req->tool_call != NULL) {
		if (req->stream)
			tool_token(req);
		return;
	}
	if (req->llama_json && req->emitted == 1) {
		char *s = xasprintf("%s%s", JSON_OPEN, word[0] == ' ' ? word + 1 : word);
		text_piece(req, s);
		free(s);
	} else {
		text_piece(req, word);
	}
}

static void
count_metrics(const struct sim_req *req)
{
	const struct sim_model *m = req->model;
	struct lmodel *lm = &L.m[model_index(sim_engine_model_profile(m))];
	int64_t cached = sim_request_cached_tokens(req);

	lm->prompt_tokens += (double)(req->prompt_tokens - cached);
	lm->prompt_seconds += ms_of(req->t_decode - req->t_prompt) / 1e3;
	lm->predicted += (double)req->emitted;
	lm->predicted_seconds += ms_of(req->t_done - req->t_decode) / 1e3;
	lm->n_decode += (double)req->emitted + 1;
	lm->busy_sum += sim_engine_busy(m) > 0 ? sim_engine_busy(m) : 1;   /* approximate: the load as it ends */
	lm->busy_samples++;
	if (req->prompt_tokens + req->emitted > lm->n_tokens_max)
		lm->n_tokens_max = req->prompt_tokens + req->emitted;
}

static void
finish_embed(struct sim_req *req)
{
	const struct sim_profile_model *pm = sim_engine_model_profile(req->model);
	json_t *data = json_array(), *in;
	size_t i;

	json_array_foreach(req->inputs, i, in) {
		json_t *vec = sim_wire_embedding(json_string_value(in), pm->embedding_length, sim_engine_seed());
		json_array_append_new(data, json_pack("{s:o, s:i, s:s}", "embedding",
		    req->base64 ? sim_wire_base64_floats(vec) : json_incref(vec), "index", (int)i, "object", "embedding"));
		json_decref(vec);
	}
	reply(req, 200, json_pack("{s:s, s:s, s:{s:I, s:I}, s:o}", "model", req->model_name, "object", "list",
	    "usage", "prompt_tokens", (json_int_t)req->prompt_tokens, "total_tokens", (json_int_t)req->prompt_tokens,
	    "data", data));
}

static void
finish_whole(struct sim_req *req, const char *reason, const char *text)
{
	bool chat = req->api == SIM_API_V1_CHAT;
	json_t *choice;

	if (!chat) {
		choice = json_pack("{s:s, s:i, s:n, s:s}", "text", text, "index", 0, "logprobs", "finish_reason", reason);
	} else if (req->tool_call != NULL) {
		char *args = sim_wire_dump(json_object_get(req->tool_call, "arguments"));
		choice = json_pack("{s:s, s:i, s:{s:s, s:n, s:[{s:s, s:{s:O, s:s}, s:s}]}}", "finish_reason", reason,
		    "index", 0, "message", "role", "assistant", "content", "tool_calls", "type", "function", "function",
		    "name", json_object_get(req->tool_call, "name"), "arguments", args, "id", req->call_id);
		free(args);
	} else {
		choice = json_pack("{s:s, s:i, s:{s:s, s:s}}", "finish_reason", reason, "index", 0, "message", "role",
		    "assistant", "content", text);
	}
	json_t *j = envelope(req, json_pack("[o]", choice), chat ? "chat.completion" : "text_completion");
	/* The id goes after usage in llama-server's non-stream body. */
	json_object_del(j, "id");
	json_object_set_new(j, "usage", usage(req));
	json_object_set_new(j, "id", json_string(completion_id(req)));
	json_object_set_new(j, "timings", timings(req));
	reply(req, 200, j);
}

static void
out_finish(struct sim_req *req, const char *reason)
{
	if (sim_wire_is_agent(req)) {
		count_metrics(req);
		sim_agent_output.finish(req, reason);
		return;
	}
	if (req->api == SIM_API_V1_EMBEDDINGS) {
		finish_embed(req);
		count_metrics(req);
		return;
	}
	count_metrics(req);
	if (req->tool_call != NULL)
		reason = "tool_calls";
	/* response_format json: close the object the first token opened. */
	const char *closing = req->tool_call != NULL || !req->llama_json ? NULL
	    : req->emitted == 0 ? JSON_OPEN JSON_CLOSE : JSON_CLOSE;
	if (!req->stream) {
		if (closing != NULL)
			sim_buf_append(&req->text, closing, strlen(closing));
		finish_whole(req, reason, req->text.data ? req->text.data : "");
		return;
	}
	if (closing != NULL)
		text_piece(req, closing);
	json_t *last;
	if (req->api == SIM_API_V1_COMPLETIONS) {
		/* The final chunk always carries usage and timings. */
		last = text_chunk(req, "", reason);
		json_object_set_new(last, "usage", usage(req));
	} else {
		if (!req->stream_started)
			emit(req, chat_chunk(req, json_pack("{s:s, s:n}", "role", "assistant", "content"), NULL));
		last = chat_chunk(req, json_object(), reason);
		if (req->include_usage) {
			emit(req, last);
			last = envelope(req, json_array(), "chat.completion.chunk");
			json_object_set_new(last, "usage", usage(req));
		}
	}
	json_object_set_new(last, "timings", timings(req));
	emit(req, last);
	sim_buf_append(&req->out, "data: [DONE]\n\n", 14);
	req->finished = true;
}

static void
out_load_reply(struct sim_req *req, const char *reason)
{
	(void)reason;
	out_finish(req, "stop");        /* only an agent request can be empty: it just ends */
}

/* Before the first result: a plain JSON error with its status; after it,
 * one SSE error event and the end, without [DONE]. */
static void
out_error_inline(struct sim_req *req, int status, const char *message)
{
	if (!req->stream || !req->stream_started) {
		sim_llama_error(req, status, message);
		return;
	}
	if (req->api == SIM_API_MESSAGES)
		emit_event(req, "error", route_error_json(req, status, message));
	else if (req->api == SIM_API_RESPONSES)     /* the Responses API's own error event */
		emit_event(req, "error", json_pack("{s:s, s:s, s:s, s:n, s:I}", "type", "error", "code", error_type(status),
		    "message", message, "param", "sequence_number", (json_int_t)req->seq++));
	else
		emit(req, error_json(status, message));
	req->finished = true;
}

const struct sim_output sim_llama_output = {
	out_token, out_finish, out_load_reply, out_error_inline, sim_wire_word,
};
