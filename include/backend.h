/*
 * backend: what differs between the kinds of server a host runs (SPEC 10),
 * behind one interface.  A host's `type` names its kind; health and the
 * request path ask the kind and never switch on it:
 *   - the probe round: what "up" means (Ollama: /api/version answers;
 *     llama-server: /health is 200, not 503 while it loads; an OpenAI-
 *     compatible server: /v1/models answers), what "loaded" means, and the
 *     backend's own view of its load where it has one (llama-server's
 *     /slots and /metrics, vLLM's /metrics), written to the runtime;
 *   - warm-up when a host comes up (Ollama's empty-prompt load; others
 *     load their model when they start: nothing);
 *   - where a forwarded request goes and in which shape: the same path and
 *     body for a host that speaks the client's dialect, else a translation
 *     (xlate.h) of Ollama-native requests to the OpenAI-compatible API,
 *     with the translator that turns the answer back;
 *   - /api/show, answered from the configuration and the probes where the
 *     host has no such call.
 * Placement, slots, tiers, affinity and statistics stay backend-neutral.
 */
#ifndef HARMONIC_BACKEND_H
#define HARMONIC_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct route;
struct rt_host;
struct rt_placement;
struct xlate_answer;

/* The verdict of a probe round: the host is up; it failed (one more strike
 * towards down); it answered that it is not ready (llama-server loading
 * its model: down at once); or the probe was cancelled (a reload). */
enum backend_verdict { BACKEND_UP, BACKEND_FAILED, BACKEND_NOT_READY, BACKEND_CANCELLED };
typedef void (*backend_probe_done)(struct rt_host *h, enum backend_verdict v);

/* Where the kinds' verdicts go: health registers it once, at start. */
void backend_set_verdict_sink(backend_probe_done sink);
/* A kind's liveness answer as a verdict, to the sink: status -1 is a
 * cancelled probe, a 200 the kind judged ok is up, a 503 from a kind whose
 * servers say "loading" that way is not ready, anything else failed. */
void backend_report(struct rt_host *h, long status, bool ok, bool loading_is_503);

/* One forwarded request as the backend must see it. */
struct backend_call {
	const char *path;               /* on the host; static or the route's */
	char *body;                     /* NULL: send the request's own body; else owned by the caller */
	size_t body_len;
	struct xlate_answer *answer;    /* NULL: relay the answer as it comes; else owned by the caller */
	const char *ctype;              /* with answer: the translation's Content-Type (static) */
	char *local;                    /* an answer made here (/api/show): JSON, owned; no transfer */
	size_t local_len;
};

struct backend {
	const char *name;               /* the host type, as configured */
	/* Start one probe round of h (timeout_s per call); it reports exactly
	 * one liveness verdict (backend_report), before the optional reads
	 * that follow it (loaded models, load view).  Returns -1 if nothing
	 * could be started (no verdict follows). */
	int (*probe)(struct rt_host *h, double timeout_s);
	/* h has come up (at start, or back after being down). */
	void (*came_up)(struct rt_host *h);
	/* What to change on host h that a probe found wrong lately (Ollama:
	 * the context option-less requests load its models with), or NULL.
	 * Caller frees. */
	char *(*advice)(const struct rt_host *h);
	/* Shape the forwarded request r (native_body: the request's rewritten
	 * body, model = the backend's name) for placement p; client_model is
	 * the name the client used, stream whether it asked for a stream.
	 * Returns 0, or -1 with *err (caller frees): a 400 for the client. */
	int (*prepare)(const struct rt_placement *p, const struct route *r, const char *native_body, size_t len,
	    const char *client_model, bool stream, struct backend_call *out, char **err);
};

extern const struct backend backend_ollama;
extern const struct backend backend_llamacpp;
extern const struct backend backend_openai;

/* The kind of host h. */
const struct backend *backend_of(const struct rt_host *h);

/* ---- shared by the kind modules ---- */

/* The Prometheus text value of metric NAME (a line "NAME VALUE" or
 * "NAME{labels} VALUE"; with want_label, only a line whose labels contain
 * it, e.g. model_name="x"); false when absent. */
bool backend_metric(const char *text, size_t len, const char *name, const char *want_label, double *value);
/* The path with "?model=NAME" appended, URL-encoded (caller frees). */
char *backend_path_for_model(const char *path, const char *model);
/* came_up and advice of kinds that load their model at start and have
 * nothing to advise. */
void backend_nothing_to_warm(struct rt_host *h);
char *backend_no_advice(const struct rt_host *h);
/* Release what prepare put in c. */
void backend_call_clear(struct backend_call *c);
/* prepare for a host that speaks the OpenAI-compatible API: /v1 routes go as
 * they are; Ollama-native routes are translated (xlate.h), /api/show is
 * answered from the configuration and the probes. */
int backend_prepare_openai_compatible(const struct rt_placement *p, const struct route *r, const char *native_body,
    size_t len, const char *client_model, bool stream, bool llamacpp, struct backend_call *out, char **err);
/* Set h's loaded list to the ids of an OpenAI model list ({"data":[{"id"}]})
 * and take each placement's context from it (max_model_len); with
 * serve_listed_only, a placement whose model is not listed takes no
 * traffic until it is.  false if body is no such list. */
bool backend_read_model_list(struct rt_host *h, const char *body, size_t len, bool serve_listed_only);

#endif
