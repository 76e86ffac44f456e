/* backend: the kind of a host, and what the kind modules share. */
#include "backend.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "ev.h"
#include "jsonx.h"
#include "log.h"
#include "sched.h"
#include "xlate.h"
#include "xmalloc.h"

static backend_probe_done verdict_sink;

void
backend_set_verdict_sink(backend_probe_done sink)
{
	verdict_sink = sink;
}

void
backend_report(struct rt_host *h, long status, bool ok, bool loading_is_503)
{
	enum backend_verdict v = BACKEND_FAILED;

	if (status < 0)
		v = BACKEND_CANCELLED;
	else if (status == 200 && ok)
		v = BACKEND_UP;
	else if (status == 503 && loading_is_503)
		v = BACKEND_NOT_READY;
	if (verdict_sink != NULL)
		verdict_sink(h, v);
}

const struct backend *
backend_of(const struct rt_host *h)
{
	switch (h->cfg->type) {
	case HOST_LLAMACPP:
		return &backend_llamacpp;
	case HOST_OPENAI:
		return &backend_openai;
	default:
		return &backend_ollama;
	}
}

bool
backend_metric(const char *text, size_t len, const char *name, const char *want_label, double *value)
{
	size_t nl = strlen(name);
	const char *end = text + len, *line = text;

	while (line < end) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		size_t n = eol ? (size_t)(eol - line) : (size_t)(end - line);
		if (n > nl && memcmp(line, name, nl) == 0 && (line[nl] == ' ' || line[nl] == '{')) {
			const char *v = line + nl;
			bool match = want_label == NULL;
			if (*v == '{') {
				const char *close = memchr(v, '}', n - nl);
				if (close == NULL)
					goto next;
				if (want_label != NULL && memmem(v, (size_t)(close - v), want_label, strlen(want_label)))
					match = true;
				v = close + 1;
			}
			if (match) {
				char buf[64];
				size_t vl = (size_t)(line + n - v);
				char *stop;
				if (vl >= sizeof(buf))
					vl = sizeof(buf) - 1;
				memcpy(buf, v, vl);
				buf[vl] = '\0';
				*value = strtod(buf, &stop);
				if (stop != buf)
					return true;
			}
		}
next:
		line += n + 1;
	}
	return false;
}

char *
backend_path_for_model(const char *path, const char *model)
{
	size_t n = strlen(model);
	char *enc = xmalloc(3 * n + 1), *o = enc;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)model[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~:", c))
			*o++ = (char)c;
		else {
			static const char hex[] = "0123456789ABCDEF";
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	o = xasprintf("%s?model=%s", path, enc);
	free(enc);
	return o;
}

void
backend_nothing_to_warm(struct rt_host *h)
{
	(void)h; /* such servers load their model when they start */
}

char *
backend_no_advice(const struct rt_host *h)
{
	(void)h;
	return NULL;
}

void
backend_call_clear(struct backend_call *c)
{
	free(c->body);
	free(c->local);
	xlate_answer_free(c->answer);
	memset(c, 0, sizeof(*c));
}

bool
backend_read_model_list(struct rt_host *h, const char *body, size_t len, bool serve_listed_only)
{
	json_t *o = json_loadb(body, len, 0, NULL), *data = json_object_get(o, "data"), *m;
	size_t i;

	if (!json_is_array(data)) {
		json_decref(o);
		return false;
	}
	for (int k = 0; k < h->n_loaded; k++)
		free(h->loaded[k]);
	free(h->loaded);
	h->loaded = xcalloc(json_array_size(data) + 1, sizeof(char *));
	h->n_loaded = 0;
	json_array_foreach(data, i, m) {
		const char *id = json_string_value(json_object_get(m, "id"));
		if (id != NULL)
			h->loaded[h->n_loaded++] = xstrdup(id);
	}
	for (int mi = 0; mi < sched->n_models; mi++)
		for (int k = 0; k < sched->models[mi].n_placements; k++) {
			struct rt_placement *p = &sched->models[mi].placements[k];
			bool listed = false;
			if (p->host != h)
				continue;
			json_array_foreach(data, i, m) {
				const char *id = json_string_value(json_object_get(m, "id"));
				json_t *ctx = json_object_get(m, "max_model_len");
				if (id == NULL || strcmp(id, p->model->cfg->ollama) != 0)
					continue;
				listed = true;
				if (json_is_integer(ctx) && json_integer_value(ctx) > 0 && json_integer_value(ctx) < (1 << 30))
					p->ctx_loaded = (int)json_integer_value(ctx);
			}
			if (!serve_listed_only)
				continue;
			if (p->unlisted != !listed) {
				p->unlisted = !listed;
				if (p->unlisted)
					log_warnx("host %s does not serve model \"%s\" (its /v1/models lists %d other%s): no "
					    "traffic for %s there until it does", h->cfg->name, p->model->cfg->ollama, h->n_loaded,
					    h->n_loaded == 1 ? "" : "s", p->model->cfg->name);
				else
					sched_dispatch();
			}
		}
	json_decref(o);
	return true;
}

/* /api/show for a host without one: what the configuration and the probes
 * know (the context the server runs with, from /props or /v1/models). */
static char *
show_answer(const struct rt_placement *p, size_t *len)
{
	const struct cfg_model *m = p->model->cfg;
	json_t *info = json_object(), *o;
	char *s;

	json_object_set_new(info, "general.architecture", json_string("llama"));
	json_object_set_new(info, "general.basename", jx_str(m->ollama));
	if (p->ctx_loaded > 0)
		json_object_set_new(info, "llama.context_length", json_integer(p->ctx_loaded));
	o = jx_pack("{s:s,s:o,s:s,s:s,s:{s:s,s:s,s:s,s:[],s:s,s:s},s:o,s:[s],s:s}", "license", "", "modelfile",
	    jx_str(m->ollama), "parameters", "", "template", "", "details", "parent_model", "", "format", "gguf", "family",
	    "", "families", "parameter_size", "", "quantization_level", "", "model_info", info, "capabilities",
	    "completion", "modified_at", "1970-01-01T00:00:00Z");
	s = o ? jx_dump(o, len) : NULL;
	json_decref(o);
	return s;
}

int
backend_prepare_openai_compatible(const struct rt_placement *p, const struct route *r, const char *native_body,
    size_t len, const char *client_model, bool stream, bool llamacpp, struct backend_call *out, char **err)
{
	int xr = xlate_route_of(r->path);
	struct xlate_target target = {llamacpp};
	json_t *native, *local, *body;

	memset(out, 0, sizeof(*out));
	if (r->kind == ROUTE_SHOW) {
		out->local = show_answer(p, &out->local_len);
		if (out->local == NULL) {
			*err = xstrdup("harmonicd: cannot encode the answer");
			return -1;
		}
		return 0;
	}
	if (xr < 0) {
		/* /v1 routes: the server speaks them; the model name is already its own. */
		out->path = route_upstream_path(r);
		return 0;
	}
	if ((native = json_loadb(native_body, len, 0, NULL)) == NULL) {
		*err = xstrdup("harmonicd: the request body is not JSON");
		return -1;
	}
	if ((local = xlate_local_answer((enum xlate_route)xr, native, client_model, ev_wall_ns())) != NULL) {
		out->local = jx_dump(local, &out->local_len);
		json_decref(local);
		json_decref(native);
		if (out->local == NULL) {
			*err = xstrdup("harmonicd: cannot encode the answer");
			return -1;
		}
		return 0;
	}
	body = xlate_request((enum xlate_route)xr, native, &target, &out->path, err);
	json_decref(native);
	if (body == NULL)
		return -1;
	out->body = jx_dump(body, &out->body_len);
	json_decref(body);
	if (out->body == NULL) {
		*err = xstrdup("harmonicd: cannot encode the request for the backend");
		return -1;
	}
	out->answer = xlate_answer_new((enum xlate_route)xr, client_model, stream, (int64_t)ev_now_us() * 1000);
	out->ctype = stream ? "application/x-ndjson" : "application/json; charset=utf-8";
	return 0;
}
