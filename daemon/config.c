/*
 * config: libconfig file -> struct config.  A table per group (top level,
 * host, tier, model, placement) names every allowed setting with its type,
 * range and default; read_group() walks a group once, rejecting unknown
 * names and converting known ones, so every setting is validated in one
 * place.  Cross-references and the memory budget are checked afterwards.
 * All problems are collected; nothing stops at the first one.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "log.h"
#include "utf8.h"
#include "xmalloc.h"

enum field_kind { F_INT, F_INT64, F_FLOAT, F_STRING, F_CUSTOM };

struct field {
	const char *name;
	enum field_kind kind;
	size_t off;            /* offset in the target struct; unused for F_CUSTOM */
	double min, max;       /* inclusive range for numbers */
	bool required;
	size_t set_off;        /* offset of a "was set" bool, or 0 */
};

#define NOSET 0

struct ctx {
	const char *file;
	struct config_diags *diags;
};

static void
diag_add(struct config_diags *d, enum diag_severity sev, const char *text)
{
	d->v = xreallocarray(d->v, (size_t)d->n + 1, sizeof(*d->v));
	d->v[d->n].severity = sev;
	d->v[d->n].text = xstrdup(text);
	d->n++;
	if (sev == DIAG_ERROR)
		d->errors++;
}

static void report(struct ctx *c, enum diag_severity sev, const config_setting_t *s, int line,
    const char *path, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Append "FILE:LINE: path: problem".  s (or line when s is NULL) locates it. */
static void
report(struct ctx *c, enum diag_severity sev, const config_setting_t *s, int line, const char *path,
    const char *fmt, ...)
{
	const char *file = c->file;
	char msg[512], *text;
	va_list ap;

	if (s != NULL) {
		if (config_setting_source_file(s) != NULL)
			file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	text = xasprintf("%s:%d: %s%s%s%s", file, line, sev == DIAG_WARNING ? "warning: " : "",
	    path ? path : "", path ? ": " : "", msg);
	diag_add(c->diags, sev, text);
	free(text);
}

static const char *
type_name(int t)
{
	switch (t) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a number";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	default: return "of unknown type";
	}
}

/* Numeric value of an INT, INT64 or FLOAT setting; false for other types. */
static bool
number_of(const config_setting_t *s, double *out, bool *integral)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		*out = config_setting_get_int(s);
		*integral = true;
		return true;
	case CONFIG_TYPE_INT64:
		*out = (double)config_setting_get_int64(s);
		*integral = true;
		return true;
	case CONFIG_TYPE_FLOAT:
		*out = config_setting_get_float(s);
		*integral = false;
		return true;
	default:
		return false;
	}
}

static bool
read_number(struct ctx *c, const config_setting_t *s, const char *path, bool want_int,
    double min, double max, double *out)
{
	bool integral;
	double v;

	if (!number_of(s, &v, &integral) || (want_int && !integral)) {
		report(c, DIAG_ERROR, s, 0, path, "must be %s, got %s",
		    want_int ? "an integer" : "a number", type_name(config_setting_type(s)));
		return false;
	}
	if (!isfinite(v) || v < min || v > max) {
		/* %.15g: exact for every limit in the tables (%g would print 1073741824 as 1.07374e+09). */
		report(c, DIAG_ERROR, s, 0, path, "%.15g is out of range (min %.15g, max %.15g)", v, min, max);
		return false;
	}
	*out = v;
	return true;
}

static char *
join_path(const char *prefix, const char *name)
{
	return prefix && *prefix ? xasprintf("%s.%s", prefix, name) : xstrdup(name);
}

/*
 * Read every member of group into base according to fields.  Unknown names
 * are errors; F_CUSTOM fields are left to the caller.  Returns false if any
 * field failed.
 */
static bool
read_group(struct ctx *c, const config_setting_t *group, const char *prefix,
    const struct field *fields, void *base)
{
	bool ok = true;
	int n = config_setting_length(group);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		const struct field *f;
		char *path;
		double v;

		for (f = fields; f->name != NULL; f++)
			if (name != NULL && strcmp(f->name, name) == 0)
				break;
		path = join_path(prefix, name ? name : "?");
		if (f->name == NULL) {
			report(c, DIAG_ERROR, s, 0, path, "unknown setting");
			ok = false;
			free(path);
			continue;
		}
		switch (f->kind) {
		case F_INT:
		case F_INT64:
			if (read_number(c, s, path, true, f->min, f->max, &v)) {
				if (f->kind == F_INT)
					*(int *)((char *)base + f->off) = (int)v;
				else
					*(int64_t *)((char *)base + f->off) = (int64_t)v;
			} else
				ok = false;
			break;
		case F_FLOAT:
			if (read_number(c, s, path, false, f->min, f->max, &v))
				*(double *)((char *)base + f->off) = v;
			else
				ok = false;
			break;
		case F_STRING:
			if (config_setting_type(s) != CONFIG_TYPE_STRING) {
				report(c, DIAG_ERROR, s, 0, path, "must be a string, got %s",
				    type_name(config_setting_type(s)));
				ok = false;
			} else if (*config_setting_get_string(s) == '\0') {
				report(c, DIAG_ERROR, s, 0, path, "must not be empty");
				ok = false;
			} else if (!utf8_valid(config_setting_get_string(s), strlen(config_setting_get_string(s)))) {
				/* Names reach JSON answers, headers and logs. */
				report(c, DIAG_ERROR, s, 0, path, "must be valid UTF-8");
				ok = false;
			} else {
				char **dst = (char **)((char *)base + f->off);
				free(*dst);
				*dst = xstrdup(config_setting_get_string(s));
			}
			break;
		case F_CUSTOM:
			break;
		}
		if (f->set_off != NOSET)
			*(bool *)((char *)base + f->set_off) = true;
		free(path);
	}
	for (const struct field *f = fields; f->name != NULL; f++) {
		if (f->required && config_setting_get_member(group, f->name) == NULL) {
			char *path = join_path(prefix, f->name);
			report(c, DIAG_ERROR, group, 0, path, "required setting is missing");
			free(path);
			ok = false;
		}
	}
	return ok;
}

/* ---- schema: every setting, its range and default, in one place ---- */

#define TOP(f) offsetof(struct config, f)
static const struct field top_fields[] = {
	{"listen", F_CUSTOM, 0, 0, 0, false, NOSET},
	{"queue_timeout", F_FLOAT, TOP(queue_timeout), 0.001, 86400, false, NOSET},
	{"request_timeout", F_FLOAT, TOP(request_timeout), 1, 604800, false, NOSET},
	{"connect_timeout", F_FLOAT, TOP(connect_timeout), 0.05, 600, false, NOSET},
	{"health_interval", F_FLOAT, TOP(health_interval), 0.05, 3600, false, NOSET},
	{"idle_timeout", F_FLOAT, TOP(idle_timeout), 1, 86400, false, NOSET},
	{"header_timeout", F_FLOAT, TOP(header_timeout), 0.5, 3600, false, NOSET},
	{"max_body", F_INT64, TOP(max_body), 1024, 1073741824, false, NOSET},
	{"max_connections", F_INT, TOP(max_connections), 1, 1000000, false, NOSET},
	{"shutdown_grace", F_FLOAT, TOP(shutdown_grace), 0, 3600, false, NOSET},
	{"api_keys_file", F_STRING, TOP(api_keys_file), 0, 0, false, NOSET},
	{"admin_keys_file", F_STRING, TOP(admin_keys_file), 0, 0, false, NOSET},
	{"log_level", F_CUSTOM, 0, 0, 0, false, NOSET},
	{"routing", F_CUSTOM, 0, 0, 0, false, NOSET},
	{"affinity_wait", F_FLOAT, TOP(affinity_wait), 0, 3600, false, NOSET},
	{"hosts", F_CUSTOM, 0, 0, 0, true, NOSET},
	{"tiers", F_CUSTOM, 0, 0, 0, true, NOSET},
	{"models", F_CUSTOM, 0, 0, 0, true, NOSET},
	{NULL, 0, 0, 0, 0, false, NOSET},
};

#define HOST(f) offsetof(struct cfg_host, f)
static const struct field host_fields[] = {
	{"name", F_STRING, HOST(name), 0, 0, true, NOSET},
	{"url", F_STRING, HOST(url), 0, 0, true, NOSET},
	{"memory_gb", F_FLOAT, HOST(memory_gb), 0.1, 1048576, true, NOSET},
	{"reserve_gb", F_FLOAT, HOST(reserve_gb), 0, 1048576, false, NOSET},
	{"bandwidth_gbs", F_FLOAT, HOST(bandwidth_gbs), 0, 1000000, false, NOSET},
	{"watts", F_FLOAT, HOST(watts), 0, 1000000, false, NOSET},
	{"num_parallel", F_INT, HOST(num_parallel), 1, 4096, false, HOST(num_parallel_set)},
	{"type", F_CUSTOM, 0, 0, 0, false, NOSET},
	{"max_parallel", F_INT, HOST(max_parallel), 1, 65536, false, HOST(max_parallel_set)},
	{NULL, 0, 0, 0, 0, false, NOSET},
};

#define TIER(f) offsetof(struct cfg_tier, f)
static const struct field tier_fields[] = {
	{"name", F_STRING, TIER(name), 0, 0, true, NOSET},
	{"weight", F_INT, TIER(weight), 1, 1000, false, NOSET},
	{"queue_depth", F_INT, TIER(queue_depth), 1, 1000000, false, NOSET},
	{"reserve", F_INT, TIER(reserve), 0, 4096, false, NOSET},
	{NULL, 0, 0, 0, 0, false, NOSET},
};

#define MODEL(f) offsetof(struct cfg_model, f)
static const struct field model_fields[] = {
	{"name", F_STRING, MODEL(name), 0, 0, true, NOSET},
	{"ollama", F_STRING, MODEL(ollama), 0, 0, false, NOSET},
	{"backend_model", F_CUSTOM, 0, 0, 0, false, NOSET},
	{"tier", F_CUSTOM, 0, 0, 0, true, NOSET},
	{"base_gb", F_FLOAT, MODEL(base_gb), 0, 100000, false, NOSET},
	{"kv_gb", F_FLOAT, MODEL(kv_gb), 0, 10000, false, NOSET},
	{"num_ctx", F_INT, MODEL(num_ctx), 0, 10485760, false, MODEL(num_ctx_set)},
	{"keep_alive", F_CUSTOM, 0, 0, 0, false, NOSET},
	{"routing", F_CUSTOM, 0, 0, 0, false, NOSET},
	{"placements", F_CUSTOM, 0, 0, 0, true, NOSET},
	{NULL, 0, 0, 0, 0, false, NOSET},
};

#define PLACE(f) offsetof(struct cfg_placement, f)
static const struct field placement_fields[] = {
	{"host", F_CUSTOM, 0, 0, 0, true, NOSET},
	{"parallel", F_CUSTOM, 0, 0, 0, false, NOSET},
	{"max_parallel_slots", F_INT, PLACE(max_parallel_slots), 1, 4096, false, NOSET},
	{NULL, 0, 0, 0, 0, false, NOSET},
};

/* Every default, in one place. */
static void
config_defaults(struct config *cfg)
{
	cfg->queue_timeout = 120.0;
	cfg->request_timeout = 900.0;
	cfg->connect_timeout = 3.0;
	cfg->health_interval = 2.0;
	cfg->idle_timeout = 120.0;
	cfg->header_timeout = 30.0;
	cfg->max_body = 8388608;
	cfg->max_connections = 16384;
	cfg->shutdown_grace = 30.0;
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->routing = ROUTING_AFFINITY;
	cfg->affinity_wait = 0.5;
}

static void
host_defaults(struct cfg_host *h)
{
	h->num_parallel = 1;
}

static void
tier_defaults(struct cfg_tier *t)
{
	t->weight = 1;
	t->queue_depth = 256;
}

static void
model_defaults(struct cfg_model *m)
{
	m->num_ctx = 2048;
	m->tier = -1;
}

static void
placement_defaults(struct cfg_placement *p)
{
	p->host = -1;
	p->parallel = 1;
}

/* ---- helpers for individual settings ---- */

static bool
valid_ident(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* A decimal port number, digits only (strtol alone takes "+80" and " 80"). */
static bool
valid_port(const char *s, size_t len, long min)
{
	long port = 0;

	if (len == 0 || len > 5)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		port = port * 10 + (s[i] - '0');
	}
	return port >= min && port <= 65535;
}

/* "host:port", "[v6]:port" or "unix:/path". */
static bool
valid_listen(const char *s)
{
	const char *colon;

	if (strncmp(s, "unix:", 5) == 0)
		return s[5] == '/' && strlen(s) < 100;
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':' || rb == s + 1)
			return false;
		colon = rb + 1;
	} else {
		/* A bare IPv6 address ("::1:11435") is ambiguous: brackets required. */
		colon = strchr(s, ':');
		if (colon == NULL || colon == s || strchr(colon + 1, ':') != NULL)
			return false;
	}
	return valid_port(colon + 1, strlen(colon + 1), 0);
}

/* "host", "host:port", "[v6]" or "[v6]:port": a non-empty host, a real port. */
static bool
url_authority_ok(const char *p, size_t len)
{
	const char *port;

	if (p[0] == '[') {
		const char *rb = memchr(p, ']', len);
		if (rb == NULL || rb == p + 1)
			return false;
		port = rb + 1;
		if (port == p + len)
			return true;
		if (*port != ':')
			return false;
	} else {
		port = memchr(p, ':', len);
		if (port == p)
			return false;
		if (port == NULL)
			return true;
		if (memchr(port + 1, ':', (size_t)(p + len - port - 1)) != NULL)
			return false;
	}
	port++;
	return valid_port(port, (size_t)(p + len - port), 1);
}

/* Split "http://host[:port][/]" into the base URL and host:port. */
static bool
parse_url(const char *url, char **base, char **host_port)
{
	const char *p;
	size_t len;

	if (strncmp(url, "http://", 7) != 0)
		return false;
	p = url + 7;
	len = strcspn(p, "/?#");
	if (len == 0 || (p[len] != '\0' && strcmp(p + len, "/") != 0))
		return false;
	for (size_t i = 0; i < len; i++)
		if (isspace((unsigned char)p[i]) || p[i] == '@')
			return false;
	if (!url_authority_ok(p, len))
		return false;
	*host_port = xstrndup(p, len);
	if (strchr(*host_port, ':') == NULL || (*host_port)[0] == '[') {
		/* Ollama's default port when none is given (and bare IPv6). */
		if ((*host_port)[0] != '[' || strstr(*host_port, "]:") == NULL) {
			char *with = xasprintf("%s:11434", *host_port);
			free(*host_port);
			*host_port = with;
		}
	}
	*base = xasprintf("http://%s", *host_port);
	return true;
}

/*
 * A Go duration string as Ollama accepts for keep_alive: optional sign,
 * then one or more number+unit pairs ("30m", "1h30m", "-1s", "0").
 */
static bool
valid_duration(const char *s)
{
	static const char *const units[] = {"ns", "us", "µs", "ms", "s", "m", "h"};

	if (*s == '+' || *s == '-')
		s++;
	if (strcmp(s, "0") == 0)
		return true;
	if (*s == '\0')
		return false;
	while (*s) {
		const char *start = s;
		size_t ul = 0;
		while (isdigit((unsigned char)*s) || *s == '.')
			s++;
		if (s == start)
			return false;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t l = strlen(units[i]);
			if (strncmp(s, units[i], l) == 0 && l > ul)
				ul = l;
		}
		if (ul == 0)
			return false;
		s += ul;
	}
	return true;
}

char *
config_model_key(const char *name)
{
	char *key = strchr(name, ':') ? xstrdup(name) : xasprintf("%s:latest", name);

	for (char *p = key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return key;
}

static const config_setting_t *
list_setting(struct ctx *c, const config_setting_t *root, const char *name)
{
	const config_setting_t *s = config_setting_get_member(root, name);

	if (s == NULL)
		return NULL;
	if (config_setting_type(s) != CONFIG_TYPE_LIST && config_setting_type(s) != CONFIG_TYPE_ARRAY) {
		report(c, DIAG_ERROR, s, 0, name, "must be a list ( ... ), got %s",
		    type_name(config_setting_type(s)));
		return NULL;
	}
	return s;
}

/* Element i of a list must be a group; reports otherwise. */
static const config_setting_t *
group_elem(struct ctx *c, const config_setting_t *list, int i, const char *path)
{
	const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);

	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		report(c, DIAG_ERROR, g, 0, path, "must be a group { ... }, got %s",
		    type_name(config_setting_type(g)));
		return NULL;
	}
	return g;
}

/* ---- sections ---- */

static void
read_listen(struct ctx *c, struct config *cfg, const config_setting_t *root)
{
	const config_setting_t *s = config_setting_get_member(root, "listen");
	int n;

	if (s == NULL) {
		cfg->listen = xcalloc(1, sizeof(char *));
		cfg->listen[0] = xstrdup("127.0.0.1:11435");
		cfg->n_listen = 1;
		return;
	}
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		n = 1;
	} else if (config_setting_type(s) == CONFIG_TYPE_LIST || config_setting_type(s) == CONFIG_TYPE_ARRAY) {
		n = config_setting_length(s);
		if (n == 0) {
			report(c, DIAG_ERROR, s, 0, "listen", "needs at least one address");
			return;
		}
	} else {
		report(c, DIAG_ERROR, s, 0, "listen", "must be a string or a list of strings, got %s",
		    type_name(config_setting_type(s)));
		return;
	}
	cfg->listen = xcalloc((size_t)n, sizeof(char *));
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_type(s) == CONFIG_TYPE_STRING
		    ? s : config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_get_string(e);
		if (v == NULL || !valid_listen(v)) {
			report(c, DIAG_ERROR, e, 0, "listen",
			    "\"%s\" is not HOST:PORT, [IPV6]:PORT or unix:/PATH", v ? v : "?");
			continue;
		}
		cfg->listen[cfg->n_listen++] = xstrdup(v);
	}
}

static void
read_log_level(struct ctx *c, struct config *cfg, const config_setting_t *root)
{
	const config_setting_t *s = config_setting_get_member(root, "log_level");
	int lvl;

	if (s == NULL)
		return;
	if (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    (lvl = log_level_parse(config_setting_get_string(s))) < 0) {
		report(c, DIAG_ERROR, s, 0, "log_level", "must be one of \"error\", \"warn\", \"info\", \"debug\"");
		return;
	}
	cfg->log_level = lvl;
}

static const char *const routing_names[] = {"affinity", "least_loaded"};

const char *
config_routing_name(enum routing r)
{
	return (unsigned)r < sizeof(routing_names) / sizeof(routing_names[0]) ? routing_names[r] : "?";
}

/* `routing` of group g (top level or a model) into *out; false when absent. */
static bool
read_routing(struct ctx *c, const config_setting_t *g, const char *path, enum routing *out)
{
	const config_setting_t *s = config_setting_get_member(g, "routing");
	const char *v;

	if (s == NULL)
		return false;
	v = config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
	for (unsigned i = 0; v != NULL && i < sizeof(routing_names) / sizeof(routing_names[0]); i++) {
		if (strcmp(v, routing_names[i]) == 0) {
			*out = (enum routing)i;
			return true;
		}
	}
	report(c, DIAG_ERROR, s, 0, path, "must be \"affinity\" or \"least_loaded\"");
	return false;
}

static void
read_hosts(struct ctx *c, struct config *cfg, const config_setting_t *root)
{
	const config_setting_t *list = list_setting(c, root, "hosts");
	int n = list ? config_setting_length(list) : 0;

	if (list != NULL && n == 0)
		report(c, DIAG_ERROR, list, 0, "hosts", "needs at least one host");
	cfg->hosts = xcalloc((size_t)n, sizeof(*cfg->hosts));
	for (int i = 0; i < n; i++) {
		char *path = xasprintf("hosts[%d]", i);
		const config_setting_t *g = group_elem(c, list, i, path);
		struct cfg_host *h = &cfg->hosts[cfg->n_hosts];
		const config_setting_t *s;

		if (g == NULL) {
			free(path);
			continue;
		}
		host_defaults(h);
		h->line = config_setting_source_line(g);
		read_group(c, g, path, host_fields, h);
		cfg->n_hosts++;
		if (h->name && !valid_ident(h->name))
			report(c, DIAG_ERROR, config_setting_get_member(g, "name"), 0, path,
			    "name \"%s\" must match [a-z0-9_-]+", h->name);
		for (int j = 0; h->name && j < cfg->n_hosts - 1; j++)
			if (cfg->hosts[j].name && strcmp(cfg->hosts[j].name, h->name) == 0)
				report(c, DIAG_ERROR, config_setting_get_member(g, "name"), 0, path,
				    "duplicate host name \"%s\" (first at line %d)", h->name, cfg->hosts[j].line);
		if (h->url) {
			char *base = NULL, *hp = NULL;
			if (!parse_url(h->url, &base, &hp)) {
				report(c, DIAG_ERROR, config_setting_get_member(g, "url"), 0, path,
				    "url \"%s\" must be http://HOST[:PORT]", h->url);
			} else {
				free(h->url);
				h->url = base;
				h->host_port = hp;
			}
		}
		if ((s = config_setting_get_member(g, "type")) != NULL) {
			const char *tn = config_setting_get_string(s);
			int t = HOST_TYPE_COUNT;
			for (int k = 0; tn != NULL && k < HOST_TYPE_COUNT; k++)
				if (strcmp(tn, config_host_type_name((enum host_type)k)) == 0)
					t = k;
			if (t == HOST_TYPE_COUNT)
				report(c, DIAG_ERROR, s, 0, path, "type must be one of \"ollama\", \"llamacpp\", \"openai\"");
			else
				h->type = (enum host_type)t;
		}
		if (h->reserve_gb >= h->memory_gb && h->memory_gb > 0)
			report(c, DIAG_ERROR, config_setting_get_member(g, "reserve_gb"), 0, path,
			    "reserve_gb %.1f leaves no memory of memory_gb %.1f (max %.1f)",
			    h->reserve_gb, h->memory_gb, h->memory_gb);
		free(path);
	}
}

static void
read_tiers(struct ctx *c, struct config *cfg, const config_setting_t *root)
{
	const config_setting_t *list = list_setting(c, root, "tiers");
	int n = list ? config_setting_length(list) : 0;

	if (list != NULL && n == 0)
		report(c, DIAG_ERROR, list, 0, "tiers", "needs at least one tier");
	cfg->tiers = xcalloc((size_t)n, sizeof(*cfg->tiers));
	for (int i = 0; i < n; i++) {
		char *path = xasprintf("tiers[%d]", i);
		const config_setting_t *g = group_elem(c, list, i, path);
		struct cfg_tier *t = &cfg->tiers[cfg->n_tiers];

		if (g == NULL) {
			free(path);
			continue;
		}
		tier_defaults(t);
		t->line = config_setting_source_line(g);
		read_group(c, g, path, tier_fields, t);
		cfg->n_tiers++;
		if (t->name && !valid_ident(t->name))
			report(c, DIAG_ERROR, config_setting_get_member(g, "name"), 0, path,
			    "name \"%s\" must match [a-z0-9_-]+", t->name);
		for (int j = 0; t->name && j < cfg->n_tiers - 1; j++)
			if (cfg->tiers[j].name && strcmp(cfg->tiers[j].name, t->name) == 0)
				report(c, DIAG_ERROR, config_setting_get_member(g, "name"), 0, path,
				    "duplicate tier name \"%s\" (first at line %d)", t->name, cfg->tiers[j].line);
		free(path);
	}
}

static void
read_placement(struct ctx *c, struct config *cfg, const config_setting_t *g, const char *path,
    struct cfg_placement *p)
{
	const config_setting_t *s;

	placement_defaults(p);
	p->line = config_setting_source_line(g);
	read_group(c, g, path, placement_fields, p);
	if ((s = config_setting_get_member(g, "host")) != NULL) {
		const char *name = config_setting_get_string(s);
		if (name == NULL)
			report(c, DIAG_ERROR, s, 0, path, "host must be a string");
		else if ((p->host = config_find_host(cfg, name)) < 0)
			report(c, DIAG_ERROR, s, 0, path, "host \"%s\" is not defined in hosts", name);
	}
	if ((s = config_setting_get_member(g, "parallel")) != NULL) {
		char *ppath = join_path(path, "parallel");
		double v;
		if (config_setting_type(s) == CONFIG_TYPE_STRING) {
			if (strcmp(config_setting_get_string(s), "auto") == 0)
				p->parallel_auto = true;
			else
				report(c, DIAG_ERROR, s, 0, ppath, "must be an integer or \"auto\"");
		} else if (read_number(c, s, ppath, true, 1, 4096, &v)) {
			p->parallel = (int)v;
		}
		free(ppath);
	}
	if (p->max_parallel_slots && !p->parallel_auto)
		report(c, DIAG_ERROR, config_setting_get_member(g, "max_parallel_slots"), 0, path,
		    "max_parallel_slots only applies with parallel = \"auto\"");
}

static void
read_keep_alive(struct ctx *c, struct cfg_model *m, const config_setting_t *s, const char *path)
{
	bool integral;
	double v;

	if (number_of(s, &v, &integral)) {
		m->keep_alive_kind = KEEP_ALIVE_SECONDS;
		m->keep_alive_s = v;
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING &&
	    valid_duration(config_setting_get_string(s))) {
		m->keep_alive_kind = KEEP_ALIVE_STRING;
		m->keep_alive_str = xstrdup(config_setting_get_string(s));
	} else {
		report(c, DIAG_ERROR, s, 0, path,
		    "keep_alive must be seconds (a number) or a duration with a unit such as \"30m\"");
	}
}

static void
read_models(struct ctx *c, struct config *cfg, const config_setting_t *root)
{
	const config_setting_t *list = list_setting(c, root, "models");
	int n = list ? config_setting_length(list) : 0;

	if (list != NULL && n == 0)
		report(c, DIAG_ERROR, list, 0, "models", "needs at least one model");
	cfg->models = xcalloc((size_t)n, sizeof(*cfg->models));
	for (int i = 0; i < n; i++) {
		char *path = xasprintf("models[%d]", i);
		const config_setting_t *g = group_elem(c, list, i, path);
		struct cfg_model *m = &cfg->models[cfg->n_models];
		const config_setting_t *s, *pl;

		if (g == NULL) {
			free(path);
			continue;
		}
		model_defaults(m);
		m->line = config_setting_source_line(g);
		read_group(c, g, path, model_fields, m);
		cfg->n_models++;
		if ((s = config_setting_get_member(g, "backend_model")) != NULL) {
			/* The neutral name of `ollama`: one of the two. */
			if (config_setting_type(s) != CONFIG_TYPE_STRING || *config_setting_get_string(s) == '\0')
				report(c, DIAG_ERROR, s, 0, path, "backend_model must be a non-empty string");
			else if (m->ollama != NULL)
				report(c, DIAG_ERROR, s, 0, path, "set backend_model or ollama, not both (they are the same setting)");
			else
				m->ollama = xstrdup(config_setting_get_string(s));
		}
		if (m->name) {
			m->key = config_model_key(m->name);
			if (m->ollama == NULL)
				m->ollama = xstrdup(m->name);
			for (int j = 0; j < cfg->n_models - 1; j++)
				if (cfg->models[j].key && strcmp(cfg->models[j].key, m->key) == 0)
					report(c, DIAG_ERROR, config_setting_get_member(g, "name"), 0, path,
					    "duplicate model name \"%s\" (first at line %d)", m->name,
					    cfg->models[j].line);
		}
		if ((s = config_setting_get_member(g, "tier")) != NULL) {
			const char *tn = config_setting_get_string(s);
			if (tn == NULL)
				report(c, DIAG_ERROR, s, 0, path, "tier must be a string");
			else if ((m->tier = config_find_tier(cfg, tn)) < 0)
				report(c, DIAG_ERROR, s, 0, path, "tier \"%s\" is not defined in tiers", tn);
		}
		{
			char *rpath = join_path(path, "routing");
			m->routing_set = read_routing(c, g, rpath, &m->routing);
			free(rpath);
		}
		if ((s = config_setting_get_member(g, "keep_alive")) != NULL) {
			m->keep_alive_set = true;
			char *kpath = join_path(path, "keep_alive");
			read_keep_alive(c, m, s, kpath);
			free(kpath);
		}
		pl = config_setting_get_member(g, "placements");
		if (pl != NULL && config_setting_type(pl) != CONFIG_TYPE_LIST) {
			report(c, DIAG_ERROR, pl, 0, path, "placements must be a list ( { host = ...; } )");
			pl = NULL;
		}
		if (pl != NULL && config_setting_length(pl) == 0)
			report(c, DIAG_ERROR, pl, 0, path, "placements needs at least one placement");
		if (pl != NULL) {
			int np = config_setting_length(pl);
			m->placements = xcalloc((size_t)np, sizeof(*m->placements));
			for (int k = 0; k < np; k++) {
				char *ppath = xasprintf("%s.placements[%d]", path, k);
				const config_setting_t *pg = group_elem(c, pl, k, ppath);
				if (pg != NULL) {
					struct cfg_placement *p = &m->placements[m->n_placements++];
					read_placement(c, cfg, pg, ppath, p);
					for (int q = 0; p->host >= 0 && q < m->n_placements - 1; q++)
						if (m->placements[q].host == p->host)
							report(c, DIAG_ERROR, pg, 0, ppath,
							    "model is placed twice on host \"%s\"",
							    cfg->hosts[p->host].name);
				}
				free(ppath);
			}
		}
		free(path);
	}
}

/* ---- cross checks: memory budget, slots, reserves ---- */

#define GB_EPSILON 1e-6

static void
check_budget(struct ctx *c, struct config *cfg)
{
	/* Fixed placements first, then auto ones take their cap from what is left. */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < cfg->n_models; i++) {
			struct cfg_model *m = &cfg->models[i];
			for (int k = 0; k < m->n_placements; k++) {
				struct cfg_placement *p = &m->placements[k];
				struct cfg_host *h;
				if (p->host < 0 || p->parallel_auto != (pass == 1))
					continue;
				h = &cfg->hosts[p->host];
				if (p->parallel_auto) {
					double left = h->memory_gb - h->reserve_gb - h->planned_gb - m->base_gb;
					int fit = m->kv_gb > 0 ? (int)floor(left / m->kv_gb + GB_EPSILON) : 4096;
					if (p->max_parallel_slots) {
						p->parallel = p->max_parallel_slots;
					} else {
						p->parallel = h->num_parallel;
						if (p->parallel > fit && fit >= 1)
							p->parallel = fit;
						p->max_parallel_slots = p->parallel;
					}
				}
				p->memory_gb = m->base_gb + p->parallel * m->kv_gb;
				h->planned_gb += p->memory_gb;
			}
		}
	}
	for (int h = 0; h < cfg->n_hosts; h++) {
		struct cfg_host *host = &cfg->hosts[h];
		double budget = host->memory_gb - host->reserve_gb;
		int slots = 0, reserves = 0, maxpar = 0;

		if (host->planned_gb > budget + GB_EPSILON) {
			report(c, DIAG_ERROR, NULL, host->line, host->name,
			    "placements need %.1f GB but the host's budget is %.1f GB (memory_gb %.1f - reserve_gb %.1f)",
			    host->planned_gb, budget, host->memory_gb, host->reserve_gb);
			for (int i = 0; i < cfg->n_models; i++)
				for (int k = 0; k < cfg->models[i].n_placements; k++) {
					const struct cfg_placement *p = &cfg->models[i].placements[k];
					if (p->host == h)
						report(c, DIAG_ERROR, NULL, p->line, host->name,
						    "  %-20s parallel %3d  base %5.1f  KV %5.1f  total %5.1f GB",
						    cfg->models[i].name, p->parallel, cfg->models[i].base_gb,
						    p->parallel * cfg->models[i].kv_gb, p->memory_gb);
				}
		}
		for (int i = 0; i < cfg->n_models; i++)
			for (int k = 0; k < cfg->models[i].n_placements; k++) {
				const struct cfg_placement *p = &cfg->models[i].placements[k];
				if (p->host != h)
					continue;
				slots += p->parallel;
				if (p->parallel > maxpar)
					maxpar = p->parallel;
			}
		if (maxpar > host->num_parallel && host->type == HOST_OLLAMA)
			report(c, DIAG_WARNING, NULL, host->line, host->name,
			    "a placement has %d slots but num_parallel is %d: set OLLAMA_NUM_PARALLEL=%d on host \"%s\" (%s), "
			    "or Ollama queues the extra requests silently",
			    maxpar, host->num_parallel, maxpar, host->name, host->url ? host->url : "?");
		else if (maxpar > host->num_parallel && host->type == HOST_LLAMACPP && host->num_parallel_set)
			report(c, DIAG_WARNING, NULL, host->line, host->name,
			    "a placement has %d slots but num_parallel (llama-server's -np) is %d: start llama-server on "
			    "host \"%s\" (%s) with -np %d, or it queues the extra requests",
			    maxpar, host->num_parallel, host->name, host->url ? host->url : "?", maxpar);
		if (!host->max_parallel_set)
			host->max_parallel = slots;
		for (int t = 0; t < cfg->n_tiers; t++)
			reserves += cfg->tiers[t].reserve;
		if (slots > 0 && reserves > host->max_parallel)
			report(c, DIAG_ERROR, NULL, host->line, host->name,
			    "tiers reserve %d slots in all but the host's slot budget is %d (max %d)",
			    reserves, host->max_parallel, host->max_parallel);
	}
}

/* num_ctx and keep_alive are Ollama's: llama-server and OpenAI-compatible
 * servers fix context and residency at start.  Warn where a model sets one
 * and no host of it is Ollama (on a mixed model they apply to its Ollama
 * replicas). */
static void
check_backend_settings(struct ctx *c, struct config *cfg)
{
	for (int i = 0; i < cfg->n_models; i++) {
		const struct cfg_model *m = &cfg->models[i];
		bool ollama = false;
		for (int k = 0; k < m->n_placements; k++)
			if (m->placements[k].host >= 0 && cfg->hosts[m->placements[k].host].type == HOST_OLLAMA)
				ollama = true;
		if (ollama || m->n_placements == 0 || m->placements[0].host < 0)
			continue;
		if (m->num_ctx_set || m->keep_alive_set)
			report(c, DIAG_WARNING, NULL, m->line, m->name,
			    "%s%s%s not sent: no host of this model runs Ollama (a %s server's context and residency are "
			    "set when it starts, e.g. llama-server -c); remove the setting",
			    m->num_ctx_set ? "num_ctx" : "", m->num_ctx_set && m->keep_alive_set ? " and " : "",
			    m->keep_alive_set ? "keep_alive" : "", config_host_type_name(cfg->hosts[m->placements[0].host].type));
	}
}

const char *
config_host_type_name(enum host_type t)
{
	static const char *const names[HOST_TYPE_COUNT] = {"ollama", "llamacpp", "openai"};

	return t >= 0 && t < HOST_TYPE_COUNT ? names[t] : "?";
}

/* ---- key files ---- */

#define KEY_MAX 512
#define KEY_NAME_MAX 128 /* AGENTS_NAME_MAX: a key's name is an agent's name */

/* A key's name: 1 to KEY_NAME_MAX of [A-Za-z0-9_.:@/+-], and not "other"
 * (the overflow entry of the agent table). */
static bool
key_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > KEY_NAME_MAX || strcmp(name, "other") == 0)
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr("_.:@/+-", *p) == NULL)
			return false;
	return true;
}

/*
 * Each line is "KEY" or "NAME KEY" (white space between); blank lines and
 * lines starting with '#' are skipped, surrounding white space trimmed.
 * The file is read at every (re)load.  Diagnostics name the file's line,
 * never a key (nor a name that might be a misplaced key).
 */
static void
read_keys(struct ctx *c, const config_t *lc, const char *setting, const char *file, char ***keys,
    char ***names, int *n)
{
	const config_setting_t *s = config_lookup(lc, setting);
	char line[KEY_MAX + 2];
	int lineno = 0, bad = 0;
	FILE *f;

	char *path = NULL;

	if (file == NULL)
		return;
	/* A relative path is taken from the config file's directory, like
	 * @include, so it does not depend on the daemon's working directory. */
	if (file[0] != '/' && strrchr(c->file, '/') != NULL)
		file = path = xasprintf("%.*s/%s", (int)(strrchr(c->file, '/') - c->file), c->file, file);
	if ((f = fopen(file, "r")) == NULL) {
		report(c, DIAG_ERROR, s, 0, setting, "cannot read \"%s\": %s", file, strerror(errno));
		free(path);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *e, *key, *name = NULL;
		int dup = -1;
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			report(c, DIAG_ERROR, s, 0, setting, "\"%s\" line %d is longer than %d bytes", file, lineno,
			    KEY_MAX);
			bad++;
			break;
		}
		while (isspace((unsigned char)*p))
			p++;
		e = p + strlen(p);
		while (e > p && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (*p == '\0' || *p == '#')
			continue;
		key = p;
		for (e = p; *e != '\0' && !isspace((unsigned char)*e); e++)
			;
		if (*e != '\0') {
			/* "NAME KEY" */
			*e++ = '\0';
			while (isspace((unsigned char)*e))
				e++;
			name = p;
			key = e;
			for (; *e != '\0'; e++)
				if (isspace((unsigned char)*e)) {
					report(c, DIAG_ERROR, s, 0, setting,
					    "\"%s\" line %d: expected KEY or NAME KEY, found more fields", file, lineno);
					bad++;
					key = NULL;
					break;
				}
			if (key == NULL)
				continue;
			if (!key_name_ok(name)) {
				report(c, DIAG_ERROR, s, 0, setting,
				    "\"%s\" line %d: a key's name is 1 to %d of the characters A-Z a-z 0-9 _ . : @ / + - "
				    "and not \"other\"", file, lineno, KEY_NAME_MAX);
				bad++;
				continue;
			}
		}
		for (int i = 0; i < *n && dup < 0; i++)
			if (strcmp((*keys)[i], key) == 0)
				dup = i;
		if (dup >= 0) {
			const char *other = (*names)[dup];
			bool same_name = (other == NULL && name == NULL) ||
			    (other != NULL && name != NULL && strcmp(other, name) == 0);
			/* Which name would a client using it get?  Refuse to guess. */
			report(c, same_name ? DIAG_WARNING : DIAG_ERROR, s, 0, setting,
			    "\"%s\" line %d holds the same key as an earlier line%s", file, lineno,
			    same_name ? "; ignored" : ", under another name");
			bad += !same_name;
			continue;
		}
		*keys = xreallocarray(*keys, (size_t)*n + 1, sizeof(char *));
		*names = xreallocarray(*names, (size_t)*n + 1, sizeof(char *));
		(*keys)[*n] = xstrdup(key);
		(*names)[(*n)++] = name ? xstrdup(name) : NULL;
	}
	fclose(f);
	if (*n == 0 && bad == 0)
		report(c, DIAG_ERROR, s, 0, setting, "\"%s\" holds no key", file);
	free(path);
}

/* ---- entry points ---- */

/* read_errno: errno right after a failed config_read_file, or 0. */
static struct config *
load(config_t *lc, const char *name, bool ok_parse, int read_errno, struct config_diags *diags)
{
	struct ctx c = {name, diags};
	struct config *cfg;
	const config_setting_t *root;

	if (!ok_parse) {
		const char *f = config_error_file(lc) ? config_error_file(lc) : name;
		char *text;
		if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
			text = xasprintf("%s:0: cannot read the configuration file: %s", name,
			    read_errno ? strerror(read_errno) : "I/O error");
		else
			text = xasprintf("%s:%d: %s", f, config_error_line(lc), config_error_text(lc));
		diag_add(diags, DIAG_ERROR, text);
		free(text);
		return NULL;
	}
	cfg = xcalloc(1, sizeof(*cfg));
	cfg->refs = 1;
	cfg->file = xstrdup(name);
	config_defaults(cfg);
	root = config_root_setting(lc);
	read_group(&c, root, "", top_fields, cfg);
	read_listen(&c, cfg, root);
	read_log_level(&c, cfg, root);
	read_routing(&c, root, "routing", &cfg->routing);
	read_hosts(&c, cfg, root);
	read_tiers(&c, cfg, root);
	read_models(&c, cfg, root);
	for (int i = 0; i < cfg->n_models; i++)
		if (!cfg->models[i].routing_set)
			cfg->models[i].routing = cfg->routing;
	if (diags->errors == 0) {
		check_budget(&c, cfg);
		check_backend_settings(&c, cfg);
	}
	read_keys(&c, lc, "api_keys_file", cfg->api_keys_file, &cfg->api_keys, &cfg->api_key_names, &cfg->n_api_keys);
	read_keys(&c, lc, "admin_keys_file", cfg->admin_keys_file, &cfg->admin_keys, &cfg->admin_key_names,
	    &cfg->n_admin_keys);
	if (diags->errors > 0) {
		config_unref(cfg);
		return NULL;
	}
	return cfg;
}

static void
set_include_dir(config_t *lc, const char *file)
{
	const char *slash = strrchr(file, '/');
	char *dir;

	/* libconfig resolves @include against the CWD unless told otherwise. */
	if (slash == NULL)
		return;
	dir = xstrndup(file, (size_t)(slash - file) + 1);
	config_set_include_dir(lc, dir);
	free(dir);
}

struct config *
config_load(const char *file, struct config_diags *diags)
{
	struct config *cfg;
	struct stat st;
	config_t lc;
	int ok, read_errno;

	config_init(&lc);
	set_include_dir(&lc, file);
	errno = 0;
	ok = config_read_file(&lc, file);
	read_errno = errno;
	/* fopen() succeeds on a directory; the read then fails without errno. */
	if (ok != CONFIG_TRUE && read_errno == 0 && stat(file, &st) == 0 && S_ISDIR(st.st_mode))
		read_errno = EISDIR;
	cfg = load(&lc, file, ok == CONFIG_TRUE, ok == CONFIG_TRUE ? 0 : read_errno, diags);
	config_destroy(&lc);
	return cfg;
}

struct config *
config_load_string(const char *text, const char *name, struct config_diags *diags)
{
	struct config *cfg;
	config_t lc;
	int ok;

	config_init(&lc);
	ok = config_read_string(&lc, text);
	cfg = load(&lc, name, ok == CONFIG_TRUE, 0, diags);
	config_destroy(&lc);
	return cfg;
}

struct config *
config_ref(struct config *cfg)
{
	cfg->refs++;
	return cfg;
}

void
config_unref(struct config *cfg)
{
	if (cfg == NULL || --cfg->refs > 0)
		return;
	for (int i = 0; i < cfg->n_listen; i++)
		free(cfg->listen[i]);
	free(cfg->listen);
	for (int i = 0; i < cfg->n_hosts; i++) {
		free(cfg->hosts[i].name);
		free(cfg->hosts[i].url);
		free(cfg->hosts[i].host_port);
	}
	free(cfg->hosts);
	for (int i = 0; i < cfg->n_tiers; i++)
		free(cfg->tiers[i].name);
	free(cfg->tiers);
	for (int i = 0; i < cfg->n_models; i++) {
		free(cfg->models[i].name);
		free(cfg->models[i].key);
		free(cfg->models[i].ollama);
		free(cfg->models[i].keep_alive_str);
		free(cfg->models[i].placements);
	}
	free(cfg->models);
	free(cfg->api_keys_file);
	free(cfg->admin_keys_file);
	for (int i = 0; i < cfg->n_api_keys; i++) {
		free(cfg->api_keys[i]);
		free(cfg->api_key_names[i]);
	}
	free(cfg->api_keys);
	free(cfg->api_key_names);
	for (int i = 0; i < cfg->n_admin_keys; i++) {
		free(cfg->admin_keys[i]);
		free(cfg->admin_key_names[i]);
	}
	free(cfg->admin_keys);
	free(cfg->admin_key_names);
	free(cfg->file);
	free(cfg);
}

void
config_diags_print(const struct config_diags *d, FILE *out)
{
	for (int i = 0; i < d->n; i++)
		fprintf(out, "%s\n", d->v[i].text);
}

void
config_diags_free(struct config_diags *d)
{
	for (int i = 0; i < d->n; i++)
		free(d->v[i].text);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

const struct cfg_model *
config_find_model(const struct config *cfg, const char *name)
{
	char key[256];
	size_t len = strlen(name);
	bool tagged = memchr(name, ':', len) != NULL;

	/* Hot path: no allocation; names longer than a key can never match. */
	if (len + (tagged ? 0 : 7) >= sizeof(key))
		return NULL;
	for (size_t i = 0; i < len; i++)
		key[i] = (char)tolower((unsigned char)name[i]);
	if (tagged)
		key[len] = '\0';
	else
		memcpy(key + len, ":latest", 8);
	for (int i = 0; i < cfg->n_models; i++)
		if (strcmp(cfg->models[i].key, key) == 0)
			return &cfg->models[i];
	return NULL;
}

int
config_find_host(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_hosts; i++)
		if (cfg->hosts[i].name && strcmp(cfg->hosts[i].name, name) == 0)
			return i;
	return -1;
}

int
config_find_tier(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->n_tiers; i++)
		if (cfg->tiers[i].name && strcmp(cfg->tiers[i].name, name) == 0)
			return i;
	return -1;
}

int
config_host_slots(const struct config *cfg, int h)
{
	return cfg->hosts[h].max_parallel;
}
