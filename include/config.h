/*
 * config: the whole configuration model of SPEC section 3.  Stages:
 * libconfig parse -> plain structs with every default set in one place
 * (config_defaults) -> validation that collects every problem -> a frozen,
 * reference-counted struct config.  A reload builds a complete new config
 * and swaps it in only if it validates; requests keep the one they started
 * with through their reference.
 */
#ifndef HARMONIC_CONFIG_H
#define HARMONIC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_EXIT_ERROR 78 /* sysexits EX_CONFIG */

/* What a host runs (SPEC 10); each kind is a backend module (backend.h). */
enum host_type {
	HOST_OLLAMA,           /* Ollama: the default */
	HOST_LLAMACPP,         /* llama.cpp's llama-server */
	HOST_OPENAI,           /* any OpenAI-compatible server: vLLM, SGLang, LM Studio */
	HOST_TYPE_COUNT
};

struct cfg_host {
	char *name;            /* [a-z0-9_-]+, unique */
	enum host_type type;
	char *url;             /* "http://host:port", no trailing slash */
	char *host_port;       /* "host:port" for the upstream Host header */
	double memory_gb;      /* memory usable for models */
	double reserve_gb;     /* headroom kept free; default 0 */
	double bandwidth_gbs;  /* informational; 0 = unset */
	double watts;          /* 0 = unset (no tokens per watt) */
	int num_parallel;      /* OLLAMA_NUM_PARALLEL on the host (llamacpp: -np); default 1 */
	bool num_parallel_set; /* given in the config (a llamacpp host's is read from /props otherwise) */
	int max_parallel;      /* cap over all models; default sum of slots */
	bool max_parallel_set;
	double planned_gb;     /* derived: sum of its placements' memory */
	int line;
};

struct cfg_tier {
	char *name;
	int weight;            /* share of contended slots; 1..1000 */
	int queue_depth;       /* waiting requests, not counting in flight */
	int reserve;           /* slots of each host lower tiers may not take */
	int line;
};

struct cfg_placement {
	int host;              /* index into config.hosts */
	int parallel;          /* slots; for auto the starting/effective cap */
	bool parallel_auto;    /* parallel = "auto" (SPEC 7) */
	int max_parallel_slots;/* auto only: upper bound of the controller */
	double memory_gb;      /* derived: base_gb + slots * kv_gb */
	int line;
};

enum keep_alive_kind { KEEP_ALIVE_UNSET, KEEP_ALIVE_SECONDS, KEEP_ALIVE_STRING };

/* How a model's replicas are chosen (SPEC 5, docs/routing.md). */
enum routing {
	ROUTING_AFFINITY,      /* the replica holding the longest known prompt prefix (default) */
	ROUTING_LEAST_LOADED,  /* the most free slots relative to the limit */
};

struct cfg_model {
	char *name;            /* as configured */
	char *key;             /* lowercased, ":latest" implied: lookup key */
	char *ollama;          /* the name on the backend (`ollama` or `backend_model`); default = name */
	bool num_ctx_set, keep_alive_set; /* given in the config (warned about where they do not apply) */
	int tier;              /* index into config.tiers */
	double base_gb;
	double kv_gb;          /* per slot at num_ctx */
	int num_ctx;           /* pinned options.num_ctx; 0 = not pinned */
	enum keep_alive_kind keep_alive_kind;
	double keep_alive_s;   /* KEEP_ALIVE_SECONDS */
	char *keep_alive_str;  /* KEEP_ALIVE_STRING, e.g. "30m" */
	struct cfg_placement *placements;
	int n_placements;
	enum routing routing;  /* its own `routing`, else the top-level one */
	bool routing_set;
	int line;
};

struct config {
	int refs;
	char *file;
	char **listen;         /* "host:port", "[v6]:port" or "unix:/path" */
	int n_listen;
	double queue_timeout;  /* s */
	double request_timeout;/* s */
	double connect_timeout;/* s, backend TCP connect */
	double health_interval;/* s between host probes */
	double idle_timeout;   /* s a client connection may sit idle */
	double header_timeout; /* s a new connection has to send a complete request head */
	int64_t max_body;      /* bytes */
	int max_connections;   /* concurrent client connections */
	double shutdown_grace; /* s */
	char *api_keys_file;   /* NULL = agent endpoints open */
	char *admin_keys_file; /* NULL = admin endpoints refused */
	char **api_keys;       /* read from api_keys_file at load; owned */
	char **api_key_names;  /* [n_api_keys]: the key's name, NULL if unnamed; owned */
	int n_api_keys;
	char **admin_keys;     /* read from admin_keys_file at load; owned */
	char **admin_key_names;/* [n_admin_keys], as api_key_names */
	int n_admin_keys;
	int log_level;         /* enum log_level */
	enum routing routing;  /* default for models; "affinity" */
	double affinity_wait;  /* s a request may wait for its affine replica; 0.5 */
	struct cfg_host *hosts;
	int n_hosts;
	struct cfg_tier *tiers;
	int n_tiers;
	struct cfg_model *models;
	int n_models;
};

enum diag_severity { DIAG_ERROR, DIAG_WARNING };

struct config_diag {
	enum diag_severity severity;
	char *text;            /* "FILE:LINE: setting: problem" */
};

struct config_diags {
	struct config_diag *v;
	int n;
	int errors;
};

/*
 * Load and validate FILE.  Returns a config with one reference (caller owns
 * it: config_unref) or NULL when there was any error.  Every error and
 * warning is appended to diags either way (caller frees: config_diags_free).
 */
struct config *config_load(const char *file, struct config_diags *diags);
/* Same from a string, reporting NAME as the file (tests, embedded default). */
struct config *config_load_string(const char *text, const char *name, struct config_diags *diags);
struct config *config_ref(struct config *cfg);
void config_unref(struct config *cfg);

/* Print every diagnostic, one per line, to out. */
void config_diags_print(const struct config_diags *d, FILE *out);
void config_diags_free(struct config_diags *d);

/* Normalise a client's model name: lowercase, ":latest" implied. Caller frees. */
char *config_model_key(const char *name);
/* Look a model up by client name; NULL when not configured. */
const struct cfg_model *config_find_model(const struct config *cfg, const char *name);
int config_find_host(const struct config *cfg, const char *name);
int config_find_tier(const struct config *cfg, const char *name);
/* "ollama", "llamacpp", "openai". */
const char *config_host_type_name(enum host_type t);
/* "affinity" or "least_loaded". */
const char *config_routing_name(enum routing r);
/* Slot budget of host h: max_parallel or the sum of its placements' slots. */
int config_host_slots(const struct config *cfg, int h);

#endif
