/*
 * backend_openai: any server with an OpenAI-compatible /v1 API (vLLM,
 * SGLang, LM Studio; llama-server too).  Up: GET /v1/models answers 200
 * with a model list; a placement whose model it does not list takes no
 * traffic.  Each round then reads /metrics where the server has it (vLLM:
 * vllm:num_requests_running and vllm:num_requests_waiting, labelled
 * model_name): the backend's view of its load.  No warm-up.  Requests:
 * /v1 routes as they are, Ollama-native ones translated (vLLM's sampling names).
 */
#include "backend.h"

#include <stdlib.h>
#include <string.h>

#include "sched.h"
#include "upstream.h"
#include "xmalloc.h"

/* What the first /metrics line of a gauge says for model, if anything. */
static bool
model_gauge(const char *body, size_t len, const char *name, const char *model, double *v)
{
	char *label = xasprintf("model_name=\"%s\"", model);
	bool found = backend_metric(body, len, name, label, v);

	free(label);
	return found;
}

static void
on_metrics(struct rt_host *h, const char *path, long status, const char *body, size_t len, void *arg)
{
	if (status != 200 || sched == NULL)
		return;
	for (int i = 0; i < sched->n_models; i++)
		for (int k = 0; k < sched->models[i].n_placements; k++) {
			struct rt_placement *p = &sched->models[i].placements[k];
			struct backend_load b;
			double running, waiting;
			if (p->host != h || !model_gauge(body, len, "vllm:num_requests_running", p->model->cfg->ollama, &running))
				continue;
			b = p->backend;
			b.busy = (int)running;
			if (model_gauge(body, len, "vllm:num_requests_waiting", p->model->cfg->ollama, &waiting))
				b.waiting = (int)waiting;
			/* No slot count to compare at send time: ours is now. */
			sched_placement_backend_load(p, &b, p->in_flight);
		}
}

static void
on_models(struct rt_host *h, const char *path, long status, const char *body, size_t len, void *arg)
{
	bool listed;

	if (sched == NULL)
		return;
	listed = status == 200 && backend_read_model_list(h, body, len, true);
	backend_report(h, status, listed, true);
	if (listed && h->up)
		upstream_probe(h, "/metrics", NULL, 2.0, on_metrics, NULL);
}

static int
probe(struct rt_host *h, double timeout_s)
{
	return upstream_probe(h, "/v1/models", NULL, timeout_s, on_models, NULL);
}

static int
prepare(const struct rt_placement *p, const struct route *r, const char *native_body, size_t len,
    const char *client_model, bool stream, struct backend_call *out, char **err)
{
	return backend_prepare_openai_compatible(p, r, native_body, len, client_model, stream, false, out, err);
}

const struct backend backend_openai = {
	.name = "openai",
	.probe = probe,
	.came_up = backend_nothing_to_warm,
	.advice = backend_no_advice,
	.prepare = prepare,
};
