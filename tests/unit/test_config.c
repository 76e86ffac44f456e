/*
 * Unit tests for the config loader: the broken-config corpus under
 * tests/config/broken (one cmocka test per file, driven by the file's
 * "# expect-line:" and "# expect:" header), the good configs under
 * tests/config/good, every default of SPEC section 3, model lookup, the
 * num_parallel warning, "auto" placement caps and reference counting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "test_util.h"
#include "xmalloc.h"

#define MAX_EXPECT 8

/* What a broken config's header promises about its diagnostics. */
struct expectation {
	int line;                       /* -1 when the header has none */
	int n;
	char *text[MAX_EXPECT];         /* owned; expectation_free */
};

static void
read_expectation(const char *file, struct expectation *e)
{
	char buf[1024];
	FILE *f = fopen(file, "r");

	assert_non_null(f);
	e->line = -1;
	e->n = 0;
	while (fgets(buf, sizeof(buf), f) != NULL && buf[0] == '#') {
		buf[strcspn(buf, "\n")] = '\0';
		if (strncmp(buf, "# expect-line: ", 15) == 0)
			e->line = atoi(buf + 15);
		else if (strncmp(buf, "# expect: ", 10) == 0 && e->n < MAX_EXPECT)
			e->text[e->n++] = xstrdup(buf + 10);
	}
	fclose(f);
}

static void
expectation_free(struct expectation *e)
{
	for (int i = 0; i < e->n; i++)
		free(e->text[i]);
	e->n = 0;
}

/*
 * One broken config: the load fails, the diagnostic on the promised line
 * ("FILE:LINE: ") carries the first expected text, and every expected text
 * appears in some diagnostic.
 */
static void
test_broken_file(void **state)
{
	const char *file = *state;
	struct config_diags d = {0};
	struct expectation e;
	struct config *cfg;
	char *prefix;

	read_expectation(file, &e);
	if (e.line < 0 || e.n == 0)
		fail_msg("%s: header lacks '# expect-line:' or '# expect:'", file);
	cfg = config_load(file, &d);
	if (cfg != NULL || d.errors == 0) {
		diags_dump(&d);
		fail_msg("%s: loaded without errors", file);
	}
	prefix = xasprintf("%s:%d: ", file, e.line);
	if (diags_find(&d, prefix, e.text[0]) < 0) {
		diags_dump(&d);
		fail_msg("%s: no diagnostic \"%s...%s\"", file, prefix, e.text[0]);
	}
	for (int i = 1; i < e.n; i++) {
		if (diags_find(&d, NULL, e.text[i]) < 0) {
			diags_dump(&d);
			fail_msg("%s: no diagnostic contains \"%s\"", file, e.text[i]);
		}
	}
	free(prefix);
	expectation_free(&e);
	config_diags_free(&d);
}

/* One good config: loads with no error. */
static void
test_good_file(void **state)
{
	const char *file = *state;
	struct config_diags d = {0};
	struct config *cfg = config_load(file, &d);

	if (cfg == NULL || d.errors != 0) {
		diags_dump(&d);
		fail_msg("%s: did not load", file);
	}
	config_unref(cfg);
	config_diags_free(&d);
}

/* ---- helpers for configs given as text ---- */

static struct config *
load_ok(const char *text, struct config_diags *d)
{
	struct config *cfg = config_load_string(text, "test.conf", d);

	if (cfg == NULL) {
		diags_dump(d);
		fail_msg("config did not load");
	}
	return cfg;
}

#define ONE_HOST "hosts = ( { name = \"h\"; url = \"http://127.0.0.1:11434\"; memory_gb = 32.0; } );\n"
#define ONE_TIER "tiers = ( { name = \"t\"; } );\n"
#define ONE_MODEL \
	"models = ( { name = \"m\"; tier = \"t\"; placements = ( { host = \"h\"; } ); } );\n"

/* Every default of SPEC section 3 (and the loader's own) when absent. */
static void
test_defaults(void **state)
{
	struct config_diags d = {0};
	struct config *cfg = load_ok(ONE_HOST ONE_TIER ONE_MODEL, &d);
	const struct cfg_host *h = &cfg->hosts[0];
	const struct cfg_tier *t = &cfg->tiers[0];
	const struct cfg_model *m = &cfg->models[0];
	const struct cfg_placement *p = &m->placements[0];

	assert_int_equal(d.n, 0);
	assert_int_equal(cfg->refs, 1);
	assert_string_equal(cfg->file, "test.conf");
	assert_int_equal(cfg->n_listen, 1);
	assert_string_equal(cfg->listen[0], "127.0.0.1:11435");
	assert_true(cfg->queue_timeout == 120.0);
	assert_true(cfg->request_timeout == 900.0);
	assert_true(cfg->connect_timeout == 3.0);
	assert_true(cfg->health_interval == 2.0);
	assert_true(cfg->idle_timeout == 120.0);
	assert_int_equal(cfg->max_body, 8388608);
	assert_int_equal(cfg->max_connections, 16384);
	assert_true(cfg->shutdown_grace == 30.0);
	assert_null(cfg->api_keys_file);
	assert_null(cfg->admin_keys_file);
	assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
	assert_int_equal(cfg->routing, ROUTING_AFFINITY);
	assert_true(cfg->affinity_wait == 0.5);

	assert_string_equal(h->name, "h");
	assert_string_equal(h->url, "http://127.0.0.1:11434");
	assert_string_equal(h->host_port, "127.0.0.1:11434");
	assert_true(h->reserve_gb == 0.0);
	assert_true(h->bandwidth_gbs == 0.0);
	assert_true(h->watts == 0.0);
	assert_int_equal(h->num_parallel, 1);
	assert_false(h->max_parallel_set);
	assert_int_equal(h->max_parallel, 1);   /* sum of its placements' slots */
	assert_int_equal(config_host_slots(cfg, 0), 1);

	assert_int_equal(t->weight, 1);
	assert_int_equal(t->queue_depth, 256);
	assert_int_equal(t->reserve, 0);

	assert_string_equal(m->ollama, "m");      /* default = name */
	assert_string_equal(m->key, "m:latest");
	assert_int_equal(m->tier, 0);
	assert_true(m->base_gb == 0.0);
	assert_true(m->kv_gb == 0.0);
	assert_int_equal(m->num_ctx, 2048);
	assert_int_equal(m->keep_alive_kind, KEEP_ALIVE_UNSET);
	assert_int_equal(m->n_placements, 1);
	assert_int_equal(m->routing, ROUTING_AFFINITY); /* the top-level default */

	assert_int_equal(p->host, 0);
	assert_int_equal(p->parallel, 1);
	assert_false(p->parallel_auto);
	assert_int_equal(p->max_parallel_slots, 0);

	config_unref(cfg);
	config_diags_free(&d);
}

/* Settings given explicitly land in the struct, normalised. */
static void
test_explicit_settings(void **state)
{
	struct config_diags d = {0};
	FILE *kf = fopen("/tmp/harmonic-test-keys", "w");
	assert_non_null(kf);
	fputs("# a comment\n  key-one  \n\nkey-two\n", kf);
	fclose(kf);
	struct config *cfg = load_ok(
	    "listen = ( \"127.0.0.1:8080\", \"[::1]:8080\", \"unix:/run/h.sock\" );\n"
	    "max_body = 1048576; log_level = \"WARNING\"; api_keys_file = \"/tmp/harmonic-test-keys\";\n"
	    "hosts = ( { name = \"h\"; url = \"http://box/\"; memory_gb = 32; reserve_gb = 2;\n"
	    "            num_parallel = 8; max_parallel = 6; watts = 90.0; } );\n"
	    "tiers = ( { name = \"t\"; weight = 5; queue_depth = 9; reserve = 2; } );\n"
	    "models = ( { name = \"M\"; ollama = \"qwen3:4b\"; tier = \"t\"; base_gb = 2.5; kv_gb = 0.3;\n"
	    "             num_ctx = 8192; keep_alive = \"30m\";\n"
	    "             placements = ( { host = \"h\"; parallel = 4; } ); },\n"
	    "           { name = \"n\"; tier = \"t\"; keep_alive = -1;\n"
	    "             placements = ( { host = \"h\"; parallel = 2; } ); } );\n",
	    &d);

	assert_int_equal(cfg->n_listen, 3);
	assert_string_equal(cfg->listen[1], "[::1]:8080");
	assert_string_equal(cfg->listen[2], "unix:/run/h.sock");
	assert_int_equal(cfg->max_body, 1048576);
	assert_int_equal(cfg->log_level, LOG_LEVEL_WARN);
	assert_string_equal(cfg->api_keys_file, "/tmp/harmonic-test-keys");
	/* Keys: comments and blank lines skipped, white space trimmed. */
	assert_int_equal(cfg->n_api_keys, 2);
	assert_string_equal(cfg->api_keys[0], "key-one");
	assert_string_equal(cfg->api_keys[1], "key-two");
	/* No port: Ollama's 11434; the trailing slash goes. */
	assert_string_equal(cfg->hosts[0].url, "http://box:11434");
	assert_string_equal(cfg->hosts[0].host_port, "box:11434");
	assert_true(cfg->hosts[0].memory_gb == 32.0);   /* integer accepted as a number */
	assert_true(cfg->hosts[0].max_parallel_set);
	assert_int_equal(config_host_slots(cfg, 0), 6);
	assert_int_equal(cfg->tiers[0].weight, 5);
	assert_string_equal(cfg->models[0].ollama, "qwen3:4b");
	assert_string_equal(cfg->models[0].key, "m:latest");
	assert_int_equal(cfg->models[0].num_ctx, 8192);
	assert_int_equal(cfg->models[0].keep_alive_kind, KEEP_ALIVE_STRING);
	assert_string_equal(cfg->models[0].keep_alive_str, "30m");
	assert_int_equal(cfg->models[1].keep_alive_kind, KEEP_ALIVE_SECONDS);
	assert_true(cfg->models[1].keep_alive_s == -1.0);
	assert_true(fabs(cfg->models[0].placements[0].memory_gb - 3.7) < 1e-9);
	assert_true(fabs(cfg->hosts[0].planned_gb - 3.7) < 1e-9);
	config_unref(cfg);
	config_diags_free(&d);
}

/* Load a config whose api_keys_file holds text; NULL when it fails. */
static struct config *
load_keys(const char *text, struct config_diags *d)
{
	FILE *kf = fopen("/tmp/harmonic-test-named-keys", "w");

	assert_non_null(kf);
	fputs(text, kf);
	fclose(kf);
	return config_load_string("api_keys_file = \"/tmp/harmonic-test-named-keys\";\n" ONE_HOST ONE_TIER ONE_MODEL,
	    "test.conf", d);
}

/* Keys files: "KEY" or "NAME KEY" per line; names are checked, a key under
 * two names is refused, and no diagnostic ever shows a key. */
static void
test_key_files(void **state)
{
	static const struct {
		const char *text, *error; /* error: NULL = loads */
	} bad[] = {
		{"coder-1 sk-k1 extra\n", "line 1: expected KEY or NAME KEY, found more fields"},
		{"# c\n\nbad|name sk-k1\n", "line 3: a key's name is 1 to 128"},
		{"other sk-k1\n", "and not \"other\""},
		{"a sk-k1\nb sk-k1\n", "line 2 holds the same key as an earlier line, under another name"},
		{"sk-k1\nb sk-k1\n", "line 2 holds the same key as an earlier line, under another name"},
	};
	struct config_diags d = {0};
	struct config *cfg;
	char longname[200];

	cfg = load_keys("# agents\ncoder-1  sk-k1\n\treviewer.bot\tsk-k2  \nsk-k3\n  sk-k4\nx@y.z/w+v:1 sk-k5\n", &d);
	assert_non_null(cfg);
	assert_int_equal(d.errors, 0);
	assert_int_equal(cfg->n_api_keys, 5);
	assert_string_equal(cfg->api_keys[0], "sk-k1");
	assert_string_equal(cfg->api_key_names[0], "coder-1");
	assert_string_equal(cfg->api_keys[1], "sk-k2");
	assert_string_equal(cfg->api_key_names[1], "reviewer.bot");
	assert_string_equal(cfg->api_keys[2], "sk-k3");
	assert_null(cfg->api_key_names[2]); /* a plain line: no name */
	assert_null(cfg->api_key_names[3]);
	assert_string_equal(cfg->api_key_names[4], "x@y.z/w+v:1");
	config_unref(cfg);
	config_diags_free(&d);

	/* The same key twice under the same name: a warning, kept once. */
	cfg = load_keys("a sk-k1\na sk-k1\nsk-k2\nsk-k2\n", &d);
	assert_non_null(cfg);
	assert_int_equal(cfg->n_api_keys, 2);
	assert_int_equal(d.n - d.errors, 2); /* two warnings */
	assert_true(diags_find(&d, NULL, "line 2 holds the same key as an earlier line; ignored") >= 0);
	assert_true(diags_find(&d, NULL, "line 4 holds the same key") >= 0);
	config_unref(cfg);
	config_diags_free(&d);

	/* A name of 128 bytes is fine, 129 is not. */
	memset(longname, 'n', 128);
	strcpy(longname + 128, " sk-k1\n");
	cfg = load_keys(longname, &d);
	assert_non_null(cfg);
	assert_int_equal(strlen(cfg->api_key_names[0]), 128);
	config_unref(cfg);
	config_diags_free(&d);
	memset(longname, 'n', 129);
	strcpy(longname + 129, " sk-k1\n");
	assert_null(load_keys(longname, &d));
	config_diags_free(&d);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = load_keys(bad[i].text, &d);
		if (cfg != NULL || diags_find(&d, "test.conf:1: api_keys_file: ", bad[i].error) < 0) {
			diags_dump(&d);
			fail_msg("case %zu: want \"%s\"", i, bad[i].error);
		}
		/* A bad line is not also reported as an empty file. */
		assert_true(diags_find(&d, NULL, "holds no key") < 0);
		for (int k = 0; k < d.n; k++)
			if (strstr(d.v[k].text, "sk-k1") != NULL)
				fail_msg("a diagnostic shows a key: %s", d.v[k].text);
		config_diags_free(&d);
	}
}

static void
test_model_key(void **state)
{
	static const char *const cases[][2] = {
		{"executive", "executive:latest"},
		{"Executive", "executive:latest"},
		{"EXECUTIVE:LATEST", "executive:latest"},
		{"qwen3:4b", "qwen3:4b"},
		{"Qwen3:4B-Q4_K_M", "qwen3:4b-q4_k_m"},
		{"library/qwen3", "library/qwen3:latest"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *key = config_model_key(cases[i][0]);
		assert_string_equal(key, cases[i][1]);
		free(key);
	}
}

static void
test_find_model(void **state)
{
	struct config_diags d = {0};
	struct config *cfg = load_ok(ONE_HOST ONE_TIER
	    "models = ( { name = \"Executive\"; tier = \"t\"; placements = ( { host = \"h\"; } ); },\n"
	    "           { name = \"qwen3:4b\"; tier = \"t\"; placements = ( { host = \"h\"; } ); } );\n",
	    &d);
	const struct cfg_model *exec = &cfg->models[0], *qwen = &cfg->models[1];
	char longname[400];

	assert_ptr_equal(config_find_model(cfg, "executive"), exec);
	assert_ptr_equal(config_find_model(cfg, "EXECUTIVE"), exec);
	assert_ptr_equal(config_find_model(cfg, "executive:latest"), exec);
	assert_ptr_equal(config_find_model(cfg, "Executive:Latest"), exec);
	assert_ptr_equal(config_find_model(cfg, "qwen3:4b"), qwen);
	assert_ptr_equal(config_find_model(cfg, "QWEN3:4B"), qwen);
	assert_null(config_find_model(cfg, "qwen3"));           /* means qwen3:latest */
	assert_null(config_find_model(cfg, "executive:8b"));
	assert_null(config_find_model(cfg, "operator"));
	assert_null(config_find_model(cfg, ""));
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_null(config_find_model(cfg, longname));
	assert_int_equal(config_find_host(cfg, "h"), 0);
	assert_int_equal(config_find_host(cfg, "H"), -1);
	assert_int_equal(config_find_tier(cfg, "t"), 0);
	assert_int_equal(config_find_tier(cfg, "nope"), -1);
	config_unref(cfg);
	config_diags_free(&d);
}

/* Host urls and listen addresses: what passes and what is refused. */
static void
test_addresses(void **state)
{
	static const struct {
		const char *url, *host_port;   /* host_port NULL: refused */
	} urls[] = {
		{"http://box", "box:11434"},
		{"http://box:8080/", "box:8080"},
		{"http://10.0.0.1:1", "10.0.0.1:1"},
		{"http://[::1]", "[::1]:11434"},
		{"http://[fe80::1]:11434", "[fe80::1]:11434"},
		{"https://box:11434", NULL},
		{"http://box:11434/api", NULL},
		{"http://:11434", NULL},
		{"http://box:", NULL},
		{"http://box:0", NULL},
		{"http://box:65536", NULL},
		{"http://box:+80", NULL},
		{"http://box:http", NULL},
		{"http://::1:11434", NULL},
		{"http://[]:11434", NULL},
		{"http://[::1]x", NULL},
		{"http://user@box", NULL},
		{"box:11434", NULL},
	};
	static const struct {
		const char *addr;
		bool ok;
	} listens[] = {
		{"127.0.0.1:11435", true}, {"0.0.0.0:80", true}, {"localhost:11435", true},
		{"[::1]:11435", true}, {"[::]:11435", true}, {"unix:/run/harmonicd.sock", true},
		{"localhost", false}, {":11435", false}, {"127.0.0.1:", false},
		{"127.0.0.1:65536", false}, {"127.0.0.1:+80", false}, {"::1:11435", false},
		{"[::1]", false}, {"[]:80", false}, {"unix:relative.sock", false},
	};

	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		struct config_diags d = {0};
		char *text = xasprintf("hosts = ( { name = \"h\"; url = \"%s\"; memory_gb = 8.0; } );\n"
		    ONE_TIER ONE_MODEL, urls[i].url);
		struct config *cfg = config_load_string(text, "u.conf", &d);
		if (urls[i].host_port == NULL) {
			if (cfg != NULL || diags_find(&d, "u.conf:1: ", "must be http://HOST[:PORT]") < 0)
				fail_msg("url \"%s\" was not refused", urls[i].url);
		} else {
			if (cfg == NULL) {
				diags_dump(&d);
				fail_msg("url \"%s\" was refused", urls[i].url);
			}
			assert_string_equal(cfg->hosts[0].host_port, urls[i].host_port);
		}
		config_unref(cfg);
		config_diags_free(&d);
		free(text);
	}
	for (size_t i = 0; i < sizeof(listens) / sizeof(listens[0]); i++) {
		struct config_diags d = {0};
		char *text = xasprintf("listen = \"%s\";\n" ONE_HOST ONE_TIER ONE_MODEL, listens[i].addr);
		struct config *cfg = config_load_string(text, "l.conf", &d);
		if ((cfg != NULL) != listens[i].ok) {
			diags_dump(&d);
			fail_msg("listen \"%s\" %s", listens[i].addr, listens[i].ok ? "refused" : "accepted");
		}
		config_unref(cfg);
		config_diags_free(&d);
		free(text);
	}
}

/* More slots than OLLAMA_NUM_PARALLEL: a warning naming variable, value, host. */
static void
test_num_parallel_warning(void **state)
{
	struct config_diags d = {0};
	struct config *cfg = load_ok(
	    "hosts = ( { name = \"sparky\"; url = \"http://10.0.0.2:11434\"; memory_gb = 64.0;\n"
	    "            num_parallel = 4; } );\n" ONE_TIER
	    "models = ( { name = \"m\"; tier = \"t\"; base_gb = 2.5; kv_gb = 0.3;\n"
	    "             placements = ( { host = \"sparky\"; parallel = 12; } ); } );\n",
	    &d);
	int i = diags_find(&d, "test.conf:1: ", "OLLAMA_NUM_PARALLEL=12");

	assert_int_equal(d.errors, 0);
	assert_int_equal(d.n, 1);
	assert_true(i >= 0);
	assert_int_equal(d.v[i].severity, DIAG_WARNING);
	assert_non_null(strstr(d.v[i].text, "warning:"));
	assert_non_null(strstr(d.v[i].text, "host \"sparky\""));
	assert_non_null(strstr(d.v[i].text, "num_parallel is 4"));
	config_unref(cfg);
	config_diags_free(&d);

	/* At or under num_parallel: silent. */
	cfg = load_ok("hosts = ( { name = \"sparky\"; url = \"http://10.0.0.2\"; memory_gb = 64.0;\n"
	    "            num_parallel = 12; } );\n" ONE_TIER
	    "models = ( { name = \"m\"; tier = \"t\"; placements = ( { host = \"sparky\"; parallel = 12; } ); } );\n",
	    &d);
	assert_int_equal(d.n, 0);
	config_unref(cfg);
	config_diags_free(&d);
}

/*
 * "auto": the cap is max_parallel_slots when given, else num_parallel,
 * lowered to what the memory left after the fixed placements allows.
 */
static void
test_auto_caps(void **state)
{
	struct config_diags d = {0};
	struct config *cfg;

	/* 32 - 2 reserve - 7.3 fixed - 5.2 base = 17.5 GB left: 35 slots of 0.5 GB. */
	cfg = load_ok("hosts = ( { name = \"h\"; url = \"http://h\"; memory_gb = 32.0; reserve_gb = 2.0;\n"
	    "            num_parallel = 64; } );\n" ONE_TIER
	    "models = ( { name = \"auto\"; tier = \"t\"; base_gb = 5.2; kv_gb = 0.5;\n"
	    "             placements = ( { host = \"h\"; parallel = \"auto\"; } ); },\n"
	    "           { name = \"fixed\"; tier = \"t\"; base_gb = 2.5; kv_gb = 0.3;\n"
	    "             placements = ( { host = \"h\"; parallel = 16; } ); } );\n",
	    &d);
	assert_true(cfg->models[0].placements[0].parallel_auto);
	assert_int_equal(cfg->models[0].placements[0].parallel, 35);
	assert_int_equal(cfg->models[0].placements[0].max_parallel_slots, 35);
	assert_true(cfg->hosts[0].planned_gb <= 30.0 + 1e-9);
	assert_int_equal(config_host_slots(cfg, 0), 35 + 16);
	config_unref(cfg);
	config_diags_free(&d);

	/* Plenty of memory: num_parallel is the cap. */
	cfg = load_ok("hosts = ( { name = \"h\"; url = \"http://h\"; memory_gb = 128.0; num_parallel = 8; } );\n"
	    ONE_TIER
	    "models = ( { name = \"m\"; tier = \"t\"; base_gb = 5.2; kv_gb = 0.5;\n"
	    "             placements = ( { host = \"h\"; parallel = \"auto\"; } ); } );\n",
	    &d);
	assert_int_equal(cfg->models[0].placements[0].parallel, 8);
	assert_int_equal(d.n, 0);
	config_unref(cfg);
	config_diags_free(&d);

	/* An explicit max_parallel_slots is the cap (and warns past num_parallel). */
	cfg = load_ok("hosts = ( { name = \"h\"; url = \"http://h\"; memory_gb = 128.0; num_parallel = 8; } );\n"
	    ONE_TIER
	    "models = ( { name = \"m\"; tier = \"t\"; base_gb = 5.2; kv_gb = 0.5;\n"
	    "             placements = ( { host = \"h\"; parallel = \"auto\"; max_parallel_slots = 20; } ); } );\n",
	    &d);
	assert_int_equal(cfg->models[0].placements[0].parallel, 20);
	assert_int_equal(cfg->models[0].placements[0].max_parallel_slots, 20);
	assert_true(fabs(cfg->models[0].placements[0].memory_gb - 15.2) < 1e-9);
	assert_true(diags_find(&d, NULL, "OLLAMA_NUM_PARALLEL=20") >= 0);
	config_unref(cfg);
	config_diags_free(&d);
}

static void
test_refcount(void **state)
{
	struct config_diags d = {0};
	struct config *cfg = load_ok(ONE_HOST ONE_TIER ONE_MODEL, &d);

	assert_int_equal(cfg->refs, 1);
	assert_ptr_equal(config_ref(cfg), cfg);
	assert_int_equal(cfg->refs, 2);
	config_unref(cfg);
	assert_int_equal(cfg->refs, 1);
	assert_string_equal(cfg->hosts[0].name, "h");   /* still alive */
	config_unref(cfg);                              /* freed: ASan checks */
	config_unref(NULL);                             /* harmless */
	config_diags_free(&d);
	assert_int_equal(d.n, 0);
	assert_null(d.v);
}

/* Validation collects every problem instead of stopping at the first. */
static void
test_collects_all_errors(void **state)
{
	struct config_diags d = {0};
	struct config *cfg = config_load_string(
	    "queue_timout = 1.0;\n"
	    "hosts = ( { name = \"h\"; url = \"ftp://h\"; memory_gb = -1.0; } );\n"
	    "tiers = ( { name = \"t\"; weight = 0; } );\n"
	    "models = ( { name = \"m\"; tier = \"x\"; placements = ( { host = \"y\"; } ); } );\n",
	    "many.conf", &d);

	assert_null(cfg);
	assert_true(diags_find(&d, "many.conf:1: ", "queue_timout: unknown setting") >= 0);
	assert_true(diags_find(&d, "many.conf:2: ", "url \"ftp://h\"") >= 0);
	assert_true(diags_find(&d, "many.conf:2: ", "memory_gb: -1 is out of range") >= 0);
	assert_true(diags_find(&d, "many.conf:3: ", "weight: 0 is out of range") >= 0);
	assert_true(diags_find(&d, "many.conf:4: ", "tier \"x\" is not defined") >= 0);
	assert_true(diags_find(&d, "many.conf:4: ", "host \"y\" is not defined") >= 0);
	assert_int_equal(d.errors, 6);
	config_diags_free(&d);
}

static void
test_missing_file(void **state)
{
	struct config_diags d = {0};
	char *dir;

	assert_null(config_load("/nonexistent/harmonicd.conf", &d));
	assert_int_equal(d.errors, 1);
	assert_string_equal(d.v[0].text,
	    "/nonexistent/harmonicd.conf:0: cannot read the configuration file: No such file or directory");
	config_diags_free(&d);

	dir = test_path("tests/config");
	assert_null(config_load(dir, &d));
	assert_true(diags_find(&d, NULL, "cannot read the configuration file: Is a directory") >= 0);
	config_diags_free(&d);
	free(dir);
}

static void
test_unreadable_file(void **state)
{
	char dir[] = "/tmp/harmonic-test-XXXXXX", file[64];
	struct config_diags d = {0};
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/h.conf", dir);
	if (geteuid() == 0) {
		/* Root reads mode 000 files; a socket in the file's place cannot
		 * be opened by anyone, which exercises the same path. */
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_true(fd >= 0);
		snprintf(un.sun_path, sizeof(un.sun_path), "%s", file);
		assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
		assert_null(config_load(file, &d));
		assert_true(diags_find(&d, NULL, "cannot read the configuration file: No such device or address") >= 0);
		config_diags_free(&d);
		close(fd);
		unlink(file);
		rmdir(dir);
		return;
	}
	f = fopen(file, "w");
	assert_non_null(f);
	fputs(ONE_HOST ONE_TIER ONE_MODEL, f);
	fclose(f);
	assert_int_equal(chmod(file, 0), 0);
	assert_null(config_load(file, &d));
	assert_true(diags_find(&d, NULL, "cannot read the configuration file: Permission denied") >= 0);
	config_diags_free(&d);
	unlink(file);
	rmdir(dir);
}

/* @include resolves against the including file's directory, not the CWD. */
static void
test_include_relative(void **state)
{
	char dir[] = "/tmp/harmonic-test-XXXXXX", main_conf[64], inc[64];
	struct config_diags d = {0};
	struct config *cfg;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(main_conf, sizeof(main_conf), "%s/main.conf", dir);
	snprintf(inc, sizeof(inc), "%s/hosts.inc", dir);
	f = fopen(inc, "w");
	assert_non_null(f);
	fputs(ONE_HOST, f);
	fclose(f);
	f = fopen(main_conf, "w");
	assert_non_null(f);
	fputs("@include \"hosts.inc\"\n" ONE_TIER ONE_MODEL, f);
	fclose(f);

	cfg = config_load(main_conf, &d);
	if (cfg == NULL)
		diags_dump(&d);
	assert_non_null(cfg);
	assert_string_equal(cfg->hosts[0].name, "h");
	config_unref(cfg);
	config_diags_free(&d);
	unlink(inc);
	unlink(main_conf);
	rmdir(dir);
}

/* ---- corpus discovery ---- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted paths of the *.conf files in dir; *n gets the count. Caller frees each and the array. */
static char **
list_confs(const char *dir, int *n)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char **v = NULL;

	*n = 0;
	if (dp == NULL)
		return NULL;
	while ((de = readdir(dp)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len <= 5 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		v = xreallocarray(v, (size_t)*n + 1, sizeof(*v));
		v[(*n)++] = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(dp);
	if (*n > 0)
		qsort(v, (size_t)*n, sizeof(*v), cmp_str);
	return v;
}

/* routing and affinity_wait: the top level sets every model's default, a
 * model may override it; unknown values name the file, line and setting. */
static void
test_routing(void **state)
{
	struct config_diags d = {0};
	struct config *cfg = load_ok("routing = \"least_loaded\";\naffinity_wait = 0;\n" ONE_HOST ONE_TIER
	    "models = ( { name = \"m\"; tier = \"t\"; placements = ( { host = \"h\"; } ); },\n"
	    "  { name = \"n\"; tier = \"t\"; routing = \"affinity\"; placements = ( { host = \"h\"; } ); } );\n", &d);

	assert_int_equal(cfg->routing, ROUTING_LEAST_LOADED);
	assert_true(cfg->affinity_wait == 0.0);
	assert_int_equal(cfg->models[0].routing, ROUTING_LEAST_LOADED);
	assert_int_equal(cfg->models[1].routing, ROUTING_AFFINITY);
	assert_string_equal(config_routing_name(cfg->models[0].routing), "least_loaded");
	assert_string_equal(config_routing_name(cfg->models[1].routing), "affinity");
	config_unref(cfg);
	config_diags_free(&d);

	cfg = config_load_string("routing = 1;\n" ONE_HOST ONE_TIER ONE_MODEL, "test.conf", &d);
	assert_null(cfg);
	assert_true(diags_find(&d, "test.conf:1: ", "routing: must be \"affinity\" or \"least_loaded\"") >= 0);
	config_diags_free(&d);
}

/* Host types and backend_model (SPEC 10), and the warnings of settings
 * that only Ollama takes. */
static void
test_backend_kinds(void **state)
{
	struct config_diags d = {0};
	struct config *cfg = load_ok("hosts = ( { name = \"o\"; url = \"http://127.0.0.1:1\"; memory_gb = 64.0; },\n"
	    "  { name = \"l\"; url = \"http://127.0.0.1:2\"; memory_gb = 64.0; type = \"llamacpp\"; },\n"
	    "  { name = \"v\"; url = \"http://127.0.0.1:3\"; memory_gb = 64.0; type = \"openai\"; } );\n" ONE_TIER
	    "models = ( { name = \"mixed\"; tier = \"t\"; num_ctx = 4096; placements = ( { host = \"o\"; }, { host = \"l\"; parallel = 8; } ); },\n"
	    "  { name = \"llama\"; backend_model = \"qwen3-8b\"; tier = \"t\"; num_ctx = 4096; keep_alive = -1;\n"
	    "    placements = ( { host = \"l\"; parallel = 8; }, { host = \"v\"; } ); } );\n", &d);

	assert_int_equal(cfg->hosts[0].type, HOST_OLLAMA);
	assert_int_equal(cfg->hosts[1].type, HOST_LLAMACPP);
	assert_int_equal(cfg->hosts[2].type, HOST_OPENAI);
	assert_string_equal(config_host_type_name(cfg->hosts[1].type), "llamacpp");
	assert_false(cfg->hosts[1].num_parallel_set);
	assert_string_equal(cfg->models[1].ollama, "qwen3-8b");
	assert_string_equal(cfg->models[0].ollama, "mixed");
	/* A llamacpp host without num_parallel: no -np warning (read from /props). */
	assert_true(diags_find(&d, NULL, "-np") < 0);
	/* num_ctx on a mixed model applies to its Ollama replica: no warning;
	 * on a model without an Ollama host it is warned about. */
	assert_true(diags_find(&d, NULL, "llama: num_ctx and keep_alive not sent") >= 0);
	assert_true(diags_find(&d, NULL, "mixed: num_ctx") < 0);
	config_unref(cfg);
	config_diags_free(&d);

	cfg = load_ok("hosts = ( { name = \"l\"; url = \"http://127.0.0.1:2\"; memory_gb = 64.0; type = \"llamacpp\"; "
	    "num_parallel = 4; } );\n" ONE_TIER
	    "models = ( { name = \"m\"; tier = \"t\"; placements = ( { host = \"l\"; parallel = 8; } ); } );\n", &d);
	assert_true(diags_find(&d, NULL, "start llama-server on host \"l\" (http://127.0.0.1:2) with -np 8") >= 0);
	config_unref(cfg);
	config_diags_free(&d);
}

static int n_broken, n_good;

/* The issue asks for at least 25 broken configs; we keep at least 30. */
static void
test_corpus_size(void **state)
{
	if (n_broken < 30)
		fail_msg("only %d broken configs under %s/tests/config/broken", n_broken, test_top());
	assert_true(n_good >= 3);
}

int
main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_corpus_size),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_backend_kinds),
		cmocka_unit_test(test_explicit_settings),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_model_key),
		cmocka_unit_test(test_find_model),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_num_parallel_warning),
		cmocka_unit_test(test_auto_caps),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_collects_all_errors),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_include_relative),
		cmocka_unit_test(test_routing),
	};
	size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);
	char **broken, **good, *broken_dir, *good_dir;
	struct CMUnitTest *tests;
	size_t n = 0;
	int rc;

	log_init("test_config", LOG_LEVEL_ERR);
	broken_dir = test_path("tests/config/broken");
	good_dir = test_path("tests/config/good");
	broken = list_confs(broken_dir, &n_broken);
	good = list_confs(good_dir, &n_good);

	/* One group: the fixed tests, then one test per corpus file. */
	tests = xcalloc(n_fixed + (size_t)n_broken + (size_t)n_good, sizeof(*tests));
	for (size_t i = 0; i < n_fixed; i++)
		tests[n++] = fixed[i];
	for (int i = 0; i < n_broken; i++) {
		tests[n].name = strstr(broken[i], "tests/config/") ? strstr(broken[i], "tests/config/") : broken[i];
		tests[n].test_func = test_broken_file;
		tests[n++].initial_state = broken[i];
	}
	for (int i = 0; i < n_good; i++) {
		tests[n].name = strstr(good[i], "tests/config/") ? strstr(good[i], "tests/config/") : good[i];
		tests[n].test_func = test_good_file;
		tests[n++].initial_state = good[i];
	}
	rc = _cmocka_run_group_tests("config", tests, n, NULL, NULL);

	free(tests);
	for (int i = 0; i < n_broken; i++)
		free(broken[i]);
	for (int i = 0; i < n_good; i++)
		free(good[i]);
	free(broken);
	free(good);
	free(broken_dir);
	free(good_dir);
	return rc;
}
