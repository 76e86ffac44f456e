/*
 * route: the static route table and its lookup.
 */
#include "route.h"

#include <string.h>

#include "dashboard.h"
#include "local.h"
#include "metrics.h"
#include "admin.h"
#include "dialect.h"
#include "statsview.h"

/* The static route table.  Order matters only for prefix routes. */
static const struct route routes[] = {
	{"/", false, "GET HEAD", ROUTE_LOCAL, &dialect_ollama, false, false, local_root, AUTH_NONE},
	{"/api/version", false, "GET HEAD", ROUTE_LOCAL, &dialect_ollama, false, false, local_version, AUTH_AGENT},
	{"/api/tags", false, "GET HEAD", ROUTE_LOCAL, &dialect_ollama, false, false, local_tags, AUTH_AGENT},
	{"/api/ps", false, "GET HEAD", ROUTE_LOCAL, &dialect_ollama, false, false, local_ps, AUTH_AGENT},
	{"/api/generate", false, "POST", ROUTE_FORWARD, &dialect_ollama, true, true, NULL, AUTH_AGENT},
	{"/api/chat", false, "POST", ROUTE_FORWARD, &dialect_ollama, true, true, NULL, AUTH_AGENT},
	{"/api/embed", false, "POST", ROUTE_FORWARD, &dialect_ollama_embed, false, false, NULL, AUTH_AGENT},
	{"/api/embeddings", false, "POST", ROUTE_FORWARD, &dialect_ollama_embed, false, false, NULL, AUTH_AGENT},
	{"/api/show", false, "POST", ROUTE_SHOW, &dialect_ollama, false, false, NULL, AUTH_AGENT},
	{"/api/pull", false, "POST", ROUTE_UNSUPPORTED, &dialect_ollama, false, false, NULL, AUTH_AGENT},
	{"/api/push", false, "POST", ROUTE_UNSUPPORTED, &dialect_ollama, false, false, NULL, AUTH_AGENT},
	{"/api/create", false, "POST", ROUTE_UNSUPPORTED, &dialect_ollama, false, false, NULL, AUTH_AGENT},
	{"/api/copy", false, "POST", ROUTE_UNSUPPORTED, &dialect_ollama, false, false, NULL, AUTH_AGENT},
	{"/api/delete", false, "DELETE", ROUTE_UNSUPPORTED, &dialect_ollama, false, false, NULL, AUTH_AGENT},
	{"/v1/chat/completions", false, "POST", ROUTE_FORWARD, &dialect_openai, false, true, NULL, AUTH_AGENT},
	{"/v1/completions", false, "POST", ROUTE_FORWARD, &dialect_openai, false, true, NULL, AUTH_AGENT},
	{"/v1/embeddings", false, "POST", ROUTE_FORWARD, &dialect_openai_embed, false, false, NULL, AUTH_AGENT},
	{"/v1/messages", false, "POST", ROUTE_FORWARD, &dialect_anthropic, false, true, NULL, AUTH_AGENT},
	{"/v1/responses", false, "POST", ROUTE_FORWARD, &dialect_responses, false, true, NULL, AUTH_AGENT},
	{"/v1/models", false, "GET", ROUTE_LOCAL, &dialect_openai, false, false, local_v1_models, AUTH_AGENT},
	{"/v1/models/", true, "GET", ROUTE_LOCAL, &dialect_openai, false, false, local_v1_model, AUTH_AGENT},
	{"/healthz", false, "GET HEAD", ROUTE_LOCAL, &dialect_harmonic, false, false, local_healthz, AUTH_NONE},
	{"/readyz", false, "GET HEAD", ROUTE_LOCAL, &dialect_harmonic, false, false, local_readyz, AUTH_NONE},
	{"/stats", false, "GET", ROUTE_LOCAL, &dialect_harmonic, false, false, statsview_answer, AUTH_NONE},
	{"/metrics", false, "GET", ROUTE_LOCAL, &dialect_harmonic, false, false, metrics_answer, AUTH_NONE},
	{"/dashboard", false, "GET", ROUTE_LOCAL, &dialect_harmonic, false, false, dashboard_answer, AUTH_NONE},
	{"/admin/reload", false, "POST", ROUTE_LOCAL, &dialect_harmonic, false, false, admin_reload, AUTH_ADMIN},
	{"/admin/drain", false, "POST", ROUTE_LOCAL, &dialect_harmonic, false, false, admin_drain, AUTH_ADMIN},
};

const struct route *
route_find(const char *url)
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
