/*
 * sim_engine: the simulated Ollama scheduler and decoder.  It owns the
 * per-model slot tables, the FIFO of waiting requests, model load/expiry,
 * the armed faults and the statistics, and decides exactly when each token
 * of each request is due.
 *
 * Timing model: every model keeps a "virtual decode clock" v, the number
 * of tokens one decoding request has produced since the model started,
 * advanced as  dv/dt = aggregate(n) / n  with n the requests decoding now.
 * A request that joined at v0 has produced floor(v - v0) tokens, so the
 * aggregate curve of the profile emerges from load, and token due times are
 * integrated over rate changes instead of accumulated per-token sleeps.
 * All times are simulated nanoseconds (wall time since start * speed).
 *
 * Single-threaded: every function runs on the main loop's thread.
 */
#ifndef HARMONIC_SIM_ENGINE_H
#define HARMONIC_SIM_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat_queue.h"
#include "sim_cache.h"
#include "sim_profile.h"

/* Ollama's 503 text when its queue is full (reference/ollama-api.md). */
#define SIM_BUSY_MESSAGE "server busy, please try again.  maximum pending requests exceeded"

struct MHD_Connection;
struct sim_model;

enum sim_api {
	SIM_API_GENERATE,
	SIM_API_CHAT,
	SIM_API_EMBED,
	SIM_API_EMBEDDINGS,
	SIM_API_V1_CHAT,
	SIM_API_V1_COMPLETIONS,
	SIM_API_V1_EMBEDDINGS,
	SIM_API_MESSAGES,               /* /v1/messages: a chat request inside (sim_agent) */
	SIM_API_RESPONSES,              /* /v1/responses: likewise */
	SIM_API_COUNT
};

enum sim_phase {
	SIM_PHASE_NEW,          /* parsed, not yet submitted */
	SIM_PHASE_QUEUED,       /* waiting for a slot, FIFO */
	SIM_PHASE_LOADING,      /* holds a slot, model loading */
	SIM_PHASE_PROMPT,       /* holds a slot, evaluating the prompt */
	SIM_PHASE_DECODE,       /* holds a slot, producing tokens */
	SIM_PHASE_HUNG,         /* holds a slot, never answers (fault) */
	SIM_PHASE_DONE,         /* left the engine: finished, failed or cancelled */
	SIM_PHASE_COUNT
};

enum sim_fault_kind {
	SIM_FAULT_NONE,
	SIM_FAULT_FAIL,         /* error status before the first byte */
	SIM_FAULT_BUSY,         /* Ollama's 503 queue-full answer */
	SIM_FAULT_HANG,         /* accept, take a slot, never answer */
	SIM_FAULT_SLOW,         /* delay the first token */
	SIM_FAULT_CLOSE,        /* close the socket after K tokens */
	SIM_FAULT_ERROR,        /* inline {"error":...} after K tokens */
	SIM_FAULT_COUNT
};

/* A growable byte buffer; off is how much the HTTP reader consumed. */
struct sim_buf {
	char *data;
	size_t len, off, cap;
};

/*
 * One inference request.  Owned by its MHD connection (created in the
 * access handler, freed in the completion callback); the engine only links
 * it into a model's lists while phase is QUEUED..HUNG.
 */
struct sim_req {
	TAILQ_ENTRY(sim_req) entry;     /* model->waiting or model->active */
	TAILQ_ENTRY(sim_req) all;       /* sim_http's list of live requests */
	uint64_t id;
	enum sim_api api;
	enum sim_phase phase;
	struct sim_model *model;
	char *model_name;               /* exactly as the client sent it */
	bool stream;
	bool include_usage;             /* /v1 stream_options.include_usage */
	bool base64;                    /* /v1/embeddings encoding_format "base64" */
	bool load_only;                 /* empty prompt / messages: load reply */
	bool count_only;                /* llama /v1/messages/count_tokens: count, run nothing */
	bool explicit_predict;          /* num_predict given: stop with "length" */
	int64_t keep_alive_ns;          /* from the request, or the model default */
	bool keep_alive_set;
	int num_ctx;                    /* context it runs at: options.num_ctx, or the model default */
	int64_t prompt_tokens;
	int64_t target_tokens;          /* tokens to generate */
	uint64_t text_seed;             /* picks the deterministic words */
	json_t *inputs;                 /* embed: array of input strings */
	json_t *tool_call;              /* chat: answer with this call {name, arguments}, or NULL */
	char call_id[16];               /* its id, call_xxxxxxxx */

	/* fault armed for this request */
	enum sim_fault_kind fault;
	int64_t fault_after;            /* tokens before close/error */
	int64_t fault_delay_ns;         /* slow first token, simulated */
	int fault_status;
	char *fault_message;

	/* prompt cache (sim_cache.h) */
	struct sim_tokens prompt_seq;   /* the prompt's tokens, empty when not cacheable (embeddings);
	                                 * freed with the request (sim_tokens_free) */
	bool had_slot;                  /* the engine granted a slot: cached_tokens is final */
	int slot;                       /* the slot it holds or held */
	int64_t cached_tokens;          /* prompt tokens its slot had cached: not evaluated */

	/* simulated timeline, ns */
	int64_t t_arrival, t_slot, t_prompt, t_decode, t_done;
	double v0;                      /* model's v when decoding began */
	int64_t emitted;                /* tokens produced so far */
	int64_t created;                /* unix seconds, shared by /v1 chunks */
	int v1_id;                      /* chatcmpl-N / cmpl-N */

	/* /v1/messages and /v1/responses, owned by sim_agent */
	char agent_id[40];              /* msg_<24 hex> / resp_<n> */
	char item_id[24];               /* responses: the message item, msg_<n> */
	int64_t estimate;               /* messages: message_start input_tokens */
	json_t *echo;                   /* responses: request fields the response repeats */
	int seq;                        /* responses: next sequence_number */
	bool block_open;                /* text block / output_text part started */

	/* llama-server mode, owned by sim_llama */
	char llama_id[48];              /* chatcmpl-<32 alnum> */
	bool llama_json;                /* response_format json_object/json_schema: content is JSON */

	/* output, filled by the engine through sim_wire */
	struct sim_buf out;             /* streamed bytes not yet sent */
	struct sim_buf text;            /* whole answer text, for non-stream */
	int status;                     /* status of a complete (non-stream) reply */
	const char *content_type;
	bool reply_ready;               /* out holds a complete reply body */
	bool stream_started;            /* first chunk exists: headers may go */
	bool finished;                  /* no more bytes will be added */
	bool abort_conn;                /* close the socket once out is drained */
	bool gone;                      /* client disconnected */

	/* HTTP state, owned by sim_http */
	struct MHD_Connection *conn;
	bool suspended;
	bool response_queued;
	bool watched;                   /* fd is in the loop's RDHUP watch */
	int fd;
	bool started;
	struct sim_buf body;
};

/* Called whenever a request has new output or finished, so the HTTP layer
 * can resume its connection. */
typedef void (*sim_engine_wake_fn)(struct sim_req *);

/* Set up model state for a profile; speed scales simulated time. */
/* How the engine's events become bytes on the wire (sim_wire.c): handed
 * over at init, so the engine does not depend on the wire format. */
struct sim_output {
	void (*token)(struct sim_req *req, const char *word);
	void (*finish)(struct sim_req *req, const char *done_reason);
	void (*load_reply)(struct sim_req *req, const char *reason);
	void (*error_inline)(struct sim_req *req, int status, const char *message);
	const char *(*word)(uint64_t seed, int64_t i);
};

void sim_engine_init(const struct sim_profile *p, double speed, uint64_t seed, sim_engine_wake_fn wake,
    const struct sim_output *out);
void sim_engine_shutdown(void);

/* Simulated time now, ns. */
int64_t sim_engine_now(void);
/* Wall CLOCK_MONOTONIC ns at which simulated time t is reached. */
int64_t sim_engine_wall_of(int64_t t);
double sim_engine_speed(void);
uint64_t sim_engine_seed(void);
const struct sim_profile *sim_engine_profile(void);

/* The model state for a profile entry. */
struct sim_model *sim_engine_model(const struct sim_profile_model *pm);
const struct sim_profile_model *sim_engine_model_profile(const struct sim_model *m);

/*
 * Consume the first armed fault matching this model (NULL model = any)
 * into req->fault*.  FAIL/BUSY are answered by the caller; the rest
 * shape the request's run.
 */
void sim_engine_take_fault(struct sim_req *req);

/* Admit a parsed request: take a slot or wait FIFO.  A request whose
 * num_ctx differs from the resident (or loading) model's waits, and every
 * later one behind it, until the model's slots are empty; it then reloads
 * the model at its context (load_time again).  Returns 0, or -1 when the
 * host's waiting queue is full (caller answers 503). */
int sim_engine_submit(struct sim_req *req);

/* The client is gone (or the connection closed): free its slot or queue
 * place at once.  counts_as_disconnect feeds the stats. */
void sim_engine_cancel(struct sim_req *req, bool counts_as_disconnect);

/* Bring every model up to now: finish phases, emit due tokens.  Returns
 * the simulated time of the next thing due, or INT64_MAX. */
int64_t sim_engine_advance(void);

/* Unload a model now if idle, else once its requests finish. */
void sim_engine_unload(struct sim_model *m);
/* Whether a model is resident now (lazy keep_alive expiry); with
 * loading, a model being loaded counts too (Ollama's /api/ps lists it).
 * *ctx (if not NULL) gets the context it is (being) loaded with. */
bool sim_engine_loaded(struct sim_model *m, bool loading, int64_t *expires_at, int *ctx);

/* Fault control.  sim_engine_fault_add parses the JSON of POST /_sim/fault;
 * returns NULL on success or a static message for a 400. */
const char *sim_engine_fault_add(json_t *spec);
void sim_engine_fault_reset(void);
/* Reset counters (max_in_flight becomes in_flight now). */
void sim_engine_stats_reset(void);
/* GET /_sim/stats body and the armed faults.  Caller owns (json_decref). */
json_t *sim_engine_stats(void);

const char *sim_engine_phase_name(enum sim_phase phase);

/* ---- llama-server mode (sim_llama) ---- */

/* Start loading every model now, as llama-server does at start; they never
 * expire (no keep_alive).  Call once, right after sim_engine_init. */
void sim_engine_preload_all(void);
/* Whether any model is still loading (brings the engine up to now). */
bool sim_engine_loading_any(void);
/* Requests holding a slot, and requests waiting for one (deferred). */
int sim_engine_busy(const struct sim_model *m);
int sim_engine_deferred(const struct sim_model *m);
/* The requests holding a slot of m, oldest first, at most max of them. */
size_t sim_engine_slot_holders(const struct sim_model *m, const struct sim_req **out, size_t max);
/* Prompt tokens of req found in its slot's cache, so not evaluated: 0
 * before it has a slot.  prompt_tokens - this were evaluated.  What
 * llama-server reports as timings.cache_n / cached_tokens (SPEC 9). */
int64_t sim_request_cached_tokens(const struct sim_req *req);

#endif
