/*
 * sim_profile: a simulated host's description, loaded from a libconfig
 * profile under etc/sim/: the host's slot and queue limits and, per model,
 * the measured aggregate decode curve plus the timing and memory figures
 * that /api/ps, /api/show and the engine report.  Frozen after loading
 * (harmonic-sim's --context-length overrides context_length first).
 */
#ifndef HARMONIC_SIM_PROFILE_H
#define HARMONIC_SIM_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_PROFILE_MAX_LEVELS 32

struct sim_profile_model {
	char *name;                 /* display name, always with a tag ("executive:latest") */
	char **aliases;             /* normalized extra names sharing this model's slots */
	size_t n_aliases;
	char *family;               /* "qwen3" */
	char *parameter_size;       /* "8.2B" */
	char *quantization;         /* "Q4_K_M" */
	char digest[65];            /* 64 hex, derived from the name */
	int levels[SIM_PROFILE_MAX_LEVELS];     /* parallel levels, strictly increasing, first is 1 */
	double rates[SIM_PROFILE_MAX_LEVELS];   /* aggregate tok/s measured at each level */
	size_t n_levels;
	int num_parallel;           /* slots; host default unless overridden */
	int num_ctx;                /* the Modelfile's num_ctx; 0: none, the host's default applies */
	int embedding_length;       /* embedding vector size */
	double prompt_rate;         /* prompt-eval tok/s per request */
	int64_t load_ns;            /* cold load time, simulated ns */
	int64_t keep_alive_ns;      /* default keep_alive; negative = forever */
	double base_gb;             /* weights + runtime */
	double kv_gb;               /* KV cache per slot */
	bool derived;               /* curve derived, not measured (informational) */
	bool embeddings;            /* serves embeddings (llama-server --embeddings); default true */
};

/* Which server the sim impersonates: host.api, or harmonic-sim --api. */
enum sim_profile_api {
	SIM_PROFILE_API_OLLAMA,
	SIM_PROFILE_API_LLAMACPP,      /* llama.cpp's llama-server (sim_llama) */
};

struct sim_profile {
	char *host;                 /* host name, informational */
	char *version;              /* reported by /api/version */
	int num_parallel;           /* OLLAMA_NUM_PARALLEL: slots per model */
	int max_queue;              /* OLLAMA_MAX_QUEUE: waiting requests, whole host */
	int default_predict;        /* tokens generated when num_predict is absent */
	int context_length;         /* OLLAMA_CONTEXT_LENGTH: context of a load that names none */
	enum sim_profile_api api;   /* host.api: "ollama" (default) or "llamacpp" */
	struct sim_profile_model *models;
	size_t n_models;
};

/* Load and validate a profile; logs every problem with file:line and
 * returns NULL on error.  Caller owns the result (sim_profile_free). */
struct sim_profile *sim_profile_load(const char *path);
void sim_profile_free(struct sim_profile *p);

/* The aggregate tok/s of a model with n requests decoding at once:
 * linear between measured levels, held at the last level past it
 * (so per-request speed keeps falling), 0 for n <= 0. */
double sim_profile_aggregate(const struct sim_profile_model *m, int n);

/* Parse an api name ("ollama", "llamacpp"); -1 when unknown. */
int sim_profile_parse_api(const char *name, enum sim_profile_api *out);

/* Find a model by a client-supplied name: case-insensitive, implied
 * ":latest", aliases included.  NULL when unknown. */
const struct sim_profile_model *sim_profile_find(const struct sim_profile *p, const char *name);

/* Normalize a model name: lower case, ":latest" appended when untagged.
 * Caller owns the result (free). */
char *sim_profile_normalize(const char *name);

/* Largest context a profile, --context-length or options.num_ctx may give. */
#define SIM_PROFILE_MAX_CTX 16777216

/* The context a model loads with when a request names none (the /v1 and
 * agent APIs never name one): its Modelfile num_ctx, else the host's default. */
int sim_profile_default_ctx(const struct sim_profile *p, const struct sim_profile_model *m);

/* Resident size in bytes of a loaded model: base + num_parallel * kv. */
uint64_t sim_profile_model_bytes(const struct sim_profile_model *m);

/* Parse an Ollama keep_alive duration string ("5m", "1h30m", "0", "-1s",
 * "250ms") into ns.  Returns 0 on success, -1 when malformed or unit-less. */
int sim_profile_parse_duration(const char *s, int64_t *out_ns);

#endif
