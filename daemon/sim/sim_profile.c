/*
 * sim_profile: loads a simulated host's profile with libconfig and answers
 * the questions the engine asks of it (aggregate rate at a load level,
 * name lookup, memory size).  Everything here is immutable after load.
 */
#include <ctype.h>
#include <libconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sim_profile.h"
#include "xmalloc.h"

#define GB ((double)(1ULL << 30))

char *
sim_profile_normalize(const char *name)
{
	char *s = xstrdup(name);
	for (char *c = s; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	/* The tag separator is a ':' after the last '/' (a host:port prefix
	 * must not count as a tag). */
	const char *slash = strrchr(s, '/');
	if (strchr(slash ? slash : s, ':') == NULL) {
		char *t = xasprintf("%s:latest", s);
		free(s);
		s = t;
	}
	return s;
}

int
sim_profile_parse_duration(const char *s, int64_t *out_ns)
{
	static const struct { const char *unit; double ns; } units[] = {
		{ "ns", 1 }, { "us", 1e3 }, { "\xc2\xb5s", 1e3 }, { "ms", 1e6 },
		{ "s", 1e9 }, { "m", 60e9 }, { "h", 3600e9 },
	};
	const char *p = s;
	double sign = 1, total = 0;

	if (*p == '-' || *p == '+')
		sign = *p++ == '-' ? -1 : 1;
	if (strcmp(p, "0") == 0) {
		*out_ns = 0;
		return 0;
	}
	if (*p == '\0')
		return -1;
	while (*p) {
		char *end;
		if (!isdigit((unsigned char)*p) && *p != '.')
			return -1;
		double v = strtod(p, &end);
		if (end == p)
			return -1;
		p = end;
		size_t best = 0, best_len = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t len = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, len) == 0 && len > best_len) {
				best = i;
				best_len = len;
			}
		}
		if (best_len == 0)
			return -1;      /* Go: missing unit in duration */
		total += v * units[best].ns;
		p += best_len;
	}
	if (total > 9.2e18)
		total = 9.2e18;
	*out_ns = (int64_t)(sign * total);
	return 0;
}

double
sim_profile_aggregate(const struct sim_profile_model *m, int n)
{
	if (n <= 0 || m->n_levels == 0)
		return 0;
	if (n <= m->levels[0])
		return m->rates[0] * n / m->levels[0];
	for (size_t i = 1; i < m->n_levels; i++) {
		if (n <= m->levels[i]) {
			double f = (double)(n - m->levels[i - 1]) / (m->levels[i] - m->levels[i - 1]);
			return m->rates[i - 1] + f * (m->rates[i] - m->rates[i - 1]);
		}
	}
	/* Past the last measurement: hold it.  Bandwidth is saturated, so
	 * more streams only split the same aggregate further. */
	return m->rates[m->n_levels - 1];
}

const struct sim_profile_model *
sim_profile_find(const struct sim_profile *p, const char *name)
{
	if (name == NULL || *name == '\0')
		return NULL;
	char *norm = sim_profile_normalize(name);
	const struct sim_profile_model *found = NULL;
	for (size_t i = 0; i < p->n_models && !found; i++) {
		const struct sim_profile_model *m = &p->models[i];
		if (strcmp(m->name, norm) == 0)
			found = m;
		for (size_t j = 0; j < m->n_aliases && !found; j++)
			if (strcmp(m->aliases[j], norm) == 0)
				found = m;
	}
	free(norm);
	return found;
}

int
sim_profile_default_ctx(const struct sim_profile *p, const struct sim_profile_model *m)
{
	return m->num_ctx > 0 ? m->num_ctx : p->context_length;
}

uint64_t
sim_profile_model_bytes(const struct sim_profile_model *m)
{
	return (uint64_t)llround((m->base_gb + m->num_parallel * m->kv_gb) * GB);
}

/* FNV-1a, used to derive stable digests from names. */
static uint64_t
fnv1a(const char *s, uint64_t h)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void
make_digest(const char *name, char out[65])
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (int i = 0; i < 4; i++) {
		h = fnv1a(name, h + (uint64_t)i);
		snprintf(out + i * 16, 17, "%016llx", (unsigned long long)h);
	}
}

/* A number that may be written as an integer or a float. */
static int
get_number(const config_setting_t *s, const char *key, double *out)
{
	const config_setting_t *v = config_setting_get_member(s, key);
	if (v == NULL)
		return 1;
	switch (config_setting_type(v)) {
	case CONFIG_TYPE_INT:
		*out = config_setting_get_int(v);
		return 0;
	case CONFIG_TYPE_INT64:
		*out = (double)config_setting_get_int64(v);
		return 0;
	case CONFIG_TYPE_FLOAT:
		*out = config_setting_get_float(v);
		return 0;
	default:
		return -1;
	}
}

static const char *
get_string(const config_setting_t *s, const char *key, const char *def)
{
	const char *v;
	return config_setting_lookup_string(s, key, &v) ? v : def;
}

/* keep_alive: a number of seconds or a Go duration string. */
static int
get_keep_alive(const config_setting_t *s, int64_t *out)
{
	const config_setting_t *v = config_setting_get_member(s, "keep_alive");
	double secs;
	if (v == NULL)
		return 1;
	if (config_setting_type(v) == CONFIG_TYPE_STRING)
		return sim_profile_parse_duration(config_setting_get_string(v), out);
	if (get_number(s, "keep_alive", &secs) != 0)
		return -1;
	*out = (int64_t)(secs * 1e9);
	return 0;
}

struct loader {
	const char *path;
	int errors;
};

static void
problem(struct loader *ld, const config_setting_t *s, const char *what)
{
	log_errx("%s:%d: %s", ld->path, s ? config_setting_source_line(s) : 0, what);
	ld->errors++;
}

static void
load_curve(struct loader *ld, const config_setting_t *ms, struct sim_profile_model *m)
{
	const config_setting_t *lv = config_setting_get_member(ms, "levels");
	const config_setting_t *rt = config_setting_get_member(ms, "rates");
	if (lv == NULL || rt == NULL || !config_setting_is_array(lv) || !config_setting_is_array(rt)) {
		problem(ld, ms, "model needs arrays levels = [...] and rates = [...]");
		return;
	}
	int n = config_setting_length(lv);
	if (n != config_setting_length(rt) || n < 1 || n > SIM_PROFILE_MAX_LEVELS) {
		problem(ld, lv, "levels and rates must have the same length (1 to 32)");
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *l = config_setting_get_elem(lv, (unsigned)i);
		const config_setting_t *r = config_setting_get_elem(rt, (unsigned)i);
		if (config_setting_type(l) != CONFIG_TYPE_INT) {
			problem(ld, lv, "levels: integers expected");
			return;
		}
		m->levels[i] = config_setting_get_int(l);
		m->rates[i] = config_setting_type(r) == CONFIG_TYPE_FLOAT ? config_setting_get_float(r)
		    : config_setting_type(r) == CONFIG_TYPE_INT ? config_setting_get_int(r) : -1;
		if (m->rates[i] <= 0) {
			problem(ld, rt, "rates: positive numbers expected");
			return;
		}
		if (i == 0 ? m->levels[0] < 1 : m->levels[i] <= m->levels[i - 1]) {
			problem(ld, lv, "levels: positive and strictly increasing");
			return;
		}
	}
	m->n_levels = (size_t)n;
}

static void
load_model(struct loader *ld, struct sim_profile *p, const config_setting_t *ms,
    const config_setting_t *defaults, struct sim_profile_model *m)
{
	const char *name = get_string(ms, "name", NULL);
	double v;
	if (name == NULL || *name == '\0') {
		problem(ld, ms, "model: name missing");
		name = "?";
	}
	m->name = sim_profile_normalize(name);
	make_digest(m->name, m->digest);
	m->family = xstrdup(get_string(ms, "family", "qwen3"));
	m->parameter_size = xstrdup(get_string(ms, "parameter_size", "8B"));
	m->quantization = xstrdup(get_string(ms, "quantization", "Q4_K_M"));
	load_curve(ld, ms, m);

	/* Settings a model may inherit from the profile's defaults group. */
	struct { const char *key; double def; double min; double *dst; } nums[] = {
		{ "prompt_rate", 1000, 1, &m->prompt_rate },
		{ "base_gb", 5, 0, &m->base_gb },
		{ "kv_gb", 0.5, 0, &m->kv_gb },
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		*nums[i].dst = nums[i].def;
		if ((defaults && get_number(defaults, nums[i].key, nums[i].dst) < 0) ||
		    get_number(ms, nums[i].key, nums[i].dst) < 0 || *nums[i].dst < nums[i].min) {
			char *msg = xasprintf("%s: a number >= %g expected", nums[i].key, nums[i].min);
			problem(ld, ms, msg);
			free(msg);
		}
	}
	double load_s = 2.0;
	if ((defaults && get_number(defaults, "load_time", &load_s) < 0) ||
	    get_number(ms, "load_time", &load_s) < 0 || load_s < 0)
		problem(ld, ms, "load_time: seconds >= 0 expected");
	m->load_ns = (int64_t)(load_s * 1e9);

	m->keep_alive_ns = 300 * (int64_t)1000000000;    /* Ollama's default, 5m */
	if ((defaults && get_keep_alive(defaults, &m->keep_alive_ns) < 0) ||
	    get_keep_alive(ms, &m->keep_alive_ns) < 0)
		problem(ld, ms, "keep_alive: seconds or a duration string with a unit (\"5m\")");

	m->num_parallel = p->num_parallel;
	m->embedding_length = 1024;
	/* A model's own num_ctx is its Modelfile's PARAMETER num_ctx: it wins
	 * over the host's default context (defaults.num_ctx is that default). */
	if (get_number(ms, "num_parallel", &v) == 0)
		m->num_parallel = (int)v;
	int r = get_number(ms, "num_ctx", &v);
	if (r == 0 && v >= 1 && v <= SIM_PROFILE_MAX_CTX)
		m->num_ctx = (int)v;
	else if (r != 1)
		problem(ld, ms, "num_ctx: 1 to 16777216");
	if (get_number(ms, "embedding_length", &v) == 0)
		m->embedding_length = (int)v;
	if (m->num_parallel < 1 || m->num_parallel > 4096)
		problem(ld, ms, "num_parallel: 1 to 4096");
	if (m->embedding_length < 1 || m->embedding_length > 16384)
		problem(ld, ms, "embedding_length: 1 to 16384");
	int derived = 0;
	if (config_setting_lookup_bool(ms, "derived", &derived))
		m->derived = derived != 0;
	int emb = 1;
	m->embeddings = true;
	if (config_setting_lookup_bool(ms, "embeddings", &emb))
		m->embeddings = emb != 0;

	const config_setting_t *al = config_setting_get_member(ms, "aliases");
	if (al != NULL) {
		if (!config_setting_is_array(al) && !config_setting_is_list(al)) {
			problem(ld, al, "aliases: an array of strings expected");
			return;
		}
		int n = config_setting_length(al);
		m->aliases = xcalloc((size_t)n + 1, sizeof(char *));
		for (int i = 0; i < n; i++) {
			const char *a = config_setting_get_string_elem(al, (unsigned)i);
			if (a == NULL || *a == '\0') {
				problem(ld, al, "aliases: non-empty strings expected");
				continue;
			}
			m->aliases[m->n_aliases++] = sim_profile_normalize(a);
		}
	}
}

static void
check_duplicates(struct loader *ld, const struct sim_profile *p, const config_setting_t *models)
{
	/* Every name and alias must resolve to exactly one model. */
	for (size_t i = 0; i < p->n_models; i++) {
		const struct sim_profile_model *m = &p->models[i];
		for (size_t k = 0; k <= m->n_aliases; k++) {
			const char *n = k == 0 ? m->name : m->aliases[k - 1];
			if (sim_profile_find(p, n) != m) {
				char *msg = xasprintf("model name \"%s\" is used twice", n);
				problem(ld, models, msg);
				free(msg);
			}
		}
	}
}

struct sim_profile *
sim_profile_load(const char *path)
{
	struct loader ld = { path, 0 };
	config_t cfg;
	struct sim_profile *p = xcalloc(1, sizeof(*p));
	double v;

	config_init(&cfg);
	if (!config_read_file(&cfg, path)) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			log_errx("%s: cannot read profile", path);
		else
			log_errx("%s:%d: %s", path, config_error_line(&cfg), config_error_text(&cfg));
		config_destroy(&cfg);
		free(p);
		return NULL;
	}
	const config_setting_t *root = config_root_setting(&cfg);
	const config_setting_t *host = config_setting_get_member(root, "host");
	const config_setting_t *defaults = config_setting_get_member(root, "defaults");
	const config_setting_t *models = config_setting_get_member(root, "models");

	p->num_parallel = 1;    /* Ollama's own default */
	p->max_queue = 512;
	p->default_predict = 128;
	p->context_length = 2048;
	p->host = xstrdup(host ? get_string(host, "name", "sim") : "sim");
	p->version = xstrdup(host ? get_string(host, "version", "0.15.2") : "0.15.2");
	if (host) {
		if (get_number(host, "num_parallel", &v) == 0)
			p->num_parallel = (int)v;
		if (get_number(host, "max_queue", &v) == 0)
			p->max_queue = (int)v;
		if (get_number(host, "default_predict", &v) == 0)
			p->default_predict = (int)v;
		const char *api = get_string(host, "api", "ollama");
		if (sim_profile_parse_api(api, &p->api) < 0)
			problem(&ld, host, "host.api: \"ollama\" or \"llamacpp\"");
	}
	/* The host's default context (OLLAMA_CONTEXT_LENGTH): host.context_length,
	 * else defaults.num_ctx (the older spelling), else 2048. */
	const config_setting_t *ctx_in = host && config_setting_get_member(host, "context_length") ? host : defaults;
	const char *ctx_key = ctx_in == host ? "context_length" : "num_ctx";
	int r = ctx_in ? get_number(ctx_in, ctx_key, &v) : 1;
	if (r == 0 && v >= 1 && v <= SIM_PROFILE_MAX_CTX)
		p->context_length = (int)v;
	else if (r != 1)
		problem(&ld, ctx_in, ctx_in == host ? "host.context_length: 1 to 16777216" : "defaults.num_ctx: 1 to 16777216");
	if (p->num_parallel < 1 || p->num_parallel > 4096)
		problem(&ld, host, "host.num_parallel: 1 to 4096");
	if (p->max_queue < 0 || p->max_queue > 1000000)
		problem(&ld, host, "host.max_queue: 0 to 1000000");
	if (p->default_predict < 1 || p->default_predict > 1000000)
		problem(&ld, host, "host.default_predict: 1 to 1000000");

	if (models == NULL || !config_setting_is_list(models) || config_setting_length(models) == 0) {
		problem(&ld, models, "models = ( ... ) with at least one model expected");
	} else {
		p->n_models = (size_t)config_setting_length(models);
		p->models = xcalloc(p->n_models, sizeof(*p->models));
		for (size_t i = 0; i < p->n_models; i++)
			load_model(&ld, p, config_setting_get_elem(models, (unsigned)i), defaults, &p->models[i]);
		check_duplicates(&ld, p, models);
	}
	config_destroy(&cfg);
	if (ld.errors) {
		sim_profile_free(p);
		return NULL;
	}
	return p;
}

int
sim_profile_parse_api(const char *name, enum sim_profile_api *out)
{
	if (strcmp(name, "ollama") == 0)
		*out = SIM_PROFILE_API_OLLAMA;
	else if (strcmp(name, "llamacpp") == 0)
		*out = SIM_PROFILE_API_LLAMACPP;
	else
		return -1;
	return 0;
}

void
sim_profile_free(struct sim_profile *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_models; i++) {
		struct sim_profile_model *m = &p->models[i];
		for (size_t j = 0; j < m->n_aliases; j++)
			free(m->aliases[j]);
		free(m->aliases);
		free(m->name);
		free(m->family);
		free(m->parameter_size);
		free(m->quantization);
	}
	free(p->models);
	free(p->host);
	free(p->version);
	free(p);
}
