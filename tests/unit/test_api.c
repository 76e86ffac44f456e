/*
 * Unit tests of the API layer's pure parts: the route table (exact and
 * prefix routes, allowed methods) and api_parse_body (Ollama's error texts
 * and statuses, model lookup, stream defaults, and the body rewritten for
 * the backend with num_ctx/keep_alive pinned and the backend tag).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "dialect.h"
#include "route.h"
#include "fixture_api.h"
#include "config.h"
#include "log.h"
#include "test_util.h"


static struct config *cfg;

static int
setup(void **state)
{
	struct config_diags d = {0};

	cfg = config_load_string(fixture_api_conf, "test.conf", &d);
	if (cfg == NULL)
		diags_dump(&d);
	config_diags_free(&d);
	return cfg == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	config_unref(cfg);
	cfg = NULL;
	return 0;
}

/* Parse body on path; the caller frees out. */
static enum api_result
parse(const char *path, const char *body, struct api_parsed *out)
{
	const struct route *r = route_find(path);

	assert_non_null(r);
	return api_parse_body(r, body, body ? strlen(body) : 0, cfg, out);
}

static void
expect_reject(const char *path, const char *body, int status, const char *error)
{
	struct api_parsed p;

	if (parse(path, body, &p) != API_REJECTED)
		fail_msg("%s %s: parsed, want %d \"%s\"", path, body ? body : "(null)", status, error);
	assert_int_equal(p.status, status);
	assert_non_null(p.error);
	if (strcmp(p.error, error) != 0)
		fail_msg("%s %s: error \"%s\", want \"%s\"", path, body ? body : "(null)", p.error, error);
	assert_null(p.model);
	assert_null(p.up_body);
	api_parsed_free(&p);
}

/* Parse body on path, which must succeed; returns the upstream body. */
static json_t *
expect_parsed(const char *path, const char *body, struct api_parsed *p)
{
	json_error_t e;
	json_t *up;

	if (parse(path, body, p) != API_PARSED)
		fail_msg("%s %s: rejected %d \"%s\"", path, body, p->status, p->error ? p->error : "");
	assert_null(p->error);
	assert_non_null(p->model);
	assert_non_null(p->up_body);
	assert_int_equal(p->up_body_len, strlen(p->up_body));
	up = json_loadb(p->up_body, p->up_body_len, 0, &e);
	assert_non_null(up);
	assert_true(json_is_object(up));
	return up;
}

static const char *
str_member(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- routes ---- */

static void
test_route_lookup(void **state)
{
	const struct route *r;

	assert_null(route_find("/nope"));
	assert_null(route_find("/api/generat"));
	assert_null(route_find("/api/generate/"));
	assert_null(route_find(""));

	r = route_find("/api/generate");
	assert_non_null(r);
	assert_string_equal(r->path, "/api/generate");
	assert_int_equal(r->kind, ROUTE_FORWARD);
	assert_ptr_equal(r->dialect, &dialect_ollama);
	assert_string_equal(route_upstream_path(r), "/api/generate");

	r = route_find("/v1/chat/completions");
	assert_non_null(r);
	assert_ptr_equal(r->dialect, &dialect_openai);
	assert_int_equal(r->kind, ROUTE_FORWARD);

	assert_int_equal(route_find("/api/show")->kind, ROUTE_SHOW);
	assert_int_equal(route_find("/api/pull")->kind, ROUTE_UNSUPPORTED);
	assert_int_equal(route_find("/api/tags")->kind, ROUTE_LOCAL);
	assert_non_null(route_find("/")->local);
}

static void
test_route_prefix(void **state)
{
	const struct route *list = route_find("/v1/models");
	const struct route *one = route_find("/v1/models/x");

	assert_non_null(list);
	assert_false(list->prefix);
	assert_non_null(one);
	assert_true(one->prefix);
	assert_string_equal(one->path, "/v1/models/");
	assert_ptr_equal(route_find("/v1/models/qwen3:4b"), one);
	assert_true(list != one);
	/* The bare prefix names no model. */
	assert_null(route_find("/v1/models/"));
}

static void
test_route_methods(void **state)
{
	const struct route *tags = route_find("/api/tags");
	const struct route *gen = route_find("/api/generate");
	const struct route *del = route_find("/api/delete");

	assert_string_equal(tags->methods, "GET HEAD");
	assert_true(route_allows(tags, "GET"));
	assert_true(route_allows(tags, "HEAD"));
	assert_false(route_allows(tags, "POST"));
	/* Only whole words match. */
	assert_false(route_allows(tags, "GE"));
	assert_false(route_allows(tags, "EAD"));
	assert_false(route_allows(tags, "T HE"));
	assert_false(route_allows(tags, "get"));

	assert_true(route_allows(gen, "POST"));
	assert_false(route_allows(gen, "GET"));
	assert_false(route_allows(gen, "POS"));
	assert_true(route_allows(del, "DELETE"));
	assert_false(route_allows(del, "LETE"));
	assert_false(route_allows(route_find("/v1/models"), "HEAD"));
}

/* ---- api_parse_body: rejections ---- */

static void
test_missing_body(void **state)
{
	expect_reject("/api/generate", NULL, 400, "missing request body");
	expect_reject("/api/chat", "", 400, "missing request body");
	expect_reject("/v1/chat/completions", "", 400, "missing request body");
}

static void
test_malformed_json(void **state)
{
	const char *bad[] = {"{", "{\"model\":}", "not json", "{\"model\":\"qwen3:4b\",}", "{} trailing", "42"};
	struct api_parsed p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse("/api/generate", bad[i], &p), API_REJECTED);
		assert_int_equal(p.status, 400);
		assert_non_null(p.error);
		api_parsed_free(&p);
	}
	assert_int_equal(parse("/api/chat", "{", &p), API_REJECTED);
	assert_non_null(strstr(p.error, "invalid JSON"));
	api_parsed_free(&p);
}

static void
test_not_an_object(void **state)
{
	expect_reject("/api/generate", "[1,2]", 400, "json: cannot unmarshal array into a request object");
	expect_reject("/api/chat", "[]", 400, "json: cannot unmarshal array into a request object");
}

static void
test_model_missing(void **state)
{
	expect_reject("/api/generate", "{}", 404, "model '' not found");
	expect_reject("/api/generate", "{\"model\":\"\",\"prompt\":\"hi\"}", 404, "model '' not found");
	expect_reject("/api/chat", "{}", 400, "model is required");
	expect_reject("/api/chat", "{\"model\":\"\",\"messages\":[]}", 400, "model is required");
	expect_reject("/api/embed", "{\"input\":\"x\"}", 404, "model '' not found");
	expect_reject("/v1/chat/completions", "{\"messages\":[]}", 400, "model is required");
	expect_reject("/api/show", "{}", 400, "model is required");
	/* "name" is only an alias on /api/show. */
	expect_reject("/api/chat", "{\"name\":\"qwen3:4b\"}", 400, "model is required");
}

static void
test_wrong_types(void **state)
{
	expect_reject("/api/generate", "{\"model\":5}", 400,
	    "json: cannot unmarshal number into field model of type string");
	expect_reject("/api/chat", "{\"model\":[\"qwen3:4b\"]}", 400,
	    "json: cannot unmarshal array into field model of type string");
	expect_reject("/api/chat", "{\"model\":null}", 400,
	    "json: cannot unmarshal null into field model of type string");
	expect_reject("/api/generate", "{\"model\":\"qwen3:4b\",\"stream\":\"yes\"}", 400,
	    "json: cannot unmarshal string into field stream of type bool");
	expect_reject("/v1/chat/completions", "{\"model\":\"qwen3:4b\",\"stream\":1}", 400,
	    "json: cannot unmarshal number into field stream of type bool");
	expect_reject("/api/chat", "{\"model\":\"qwen3:4b\",\"stream\":{}}", 400,
	    "json: cannot unmarshal object into field stream of type bool");
	expect_reject("/api/show", "{\"name\":true}", 400,
	    "json: cannot unmarshal bool into field model of type string");
}

/* prompt, messages and options are type-checked here (Ollama would refuse
 * them anyway); null passes, other members pass through untouched. */
static void
test_wrong_member_types(void **state)
{
	struct api_parsed p;
	json_t *up;

	expect_reject("/api/generate", "{\"model\":\"qwen3:4b\",\"prompt\":5}", 400,
	    "json: cannot unmarshal number into field prompt of type string");
	expect_reject("/api/generate", "{\"model\":\"qwen3:4b\",\"options\":\"fast\"}", 400,
	    "json: cannot unmarshal string into field options of type object");
	expect_reject("/api/generate", "{\"model\":\"qwen3:4b\",\"options\":[1,2]}", 400,
	    "json: cannot unmarshal array into field options of type object");
	expect_reject("/api/chat", "{\"model\":\"qwen3:4b\",\"messages\":\"hi\"}", 400,
	    "json: cannot unmarshal string into field messages of type array");
	expect_reject("/api/chat", "{\"model\":\"qwen3:4b\",\"messages\":[],\"options\":true}", 400,
	    "json: cannot unmarshal bool into field options of type object");
	expect_reject("/api/embeddings", "{\"model\":\"qwen3:4b\",\"prompt\":[\"a\"]}", 400,
	    "json: cannot unmarshal array into field prompt of type string");
	expect_reject("/api/embed", "{\"model\":\"qwen3:4b\",\"options\":1}", 400,
	    "json: cannot unmarshal number into field options of type object");
	expect_reject("/v1/chat/completions", "{\"model\":\"qwen3:4b\",\"messages\":{}}", 400,
	    "json: cannot unmarshal object into field messages of type array");
	/* Type errors come before the model lookup, like Ollama's decoding. */
	expect_reject("/api/chat", "{\"model\":\"nope\",\"messages\":1}", 400,
	    "json: cannot unmarshal number into field messages of type array");
	/* Members checked on one route only pass elsewhere; null passes. */
	up = expect_parsed("/api/embed", "{\"model\":\"qwen3:4b\",\"input\":[\"a\"],\"prompt\":7}", &p);
	json_decref(up);
	api_parsed_free(&p);
	up = expect_parsed("/v1/completions", "{\"model\":\"qwen3:4b\",\"prompt\":[\"a\",\"b\"]}", &p);
	json_decref(up);
	api_parsed_free(&p);
	up = expect_parsed("/api/chat", "{\"model\":\"qwen3:4b\",\"messages\":null,\"prompt\":null}", &p);
	json_decref(up);
	api_parsed_free(&p);
}

static void
test_unknown_model(void **state)
{
	expect_reject("/api/generate", "{\"model\":\"x\"}", 404, "model 'x' not found");
	expect_reject("/api/chat", "{\"model\":\"x\"}", 404, "model 'x' not found");
	expect_reject("/api/show", "{\"model\":\"x\"}", 404, "model 'x' not found");
	expect_reject("/api/embed", "{\"model\":\"x\"}", 404, "model \"x\" not found, try pulling it first");
	expect_reject("/api/embeddings", "{\"model\":\"x\"}", 404, "model \"x\" not found, try pulling it first");
	expect_reject("/v1/chat/completions", "{\"model\":\"x\"}", 404, "model \"x\" not found, try pulling it first");
	expect_reject("/v1/embeddings", "{\"model\":\"x\"}", 404, "model \"x\" not found, try pulling it first");
	/* A tag other than the configured one is another model. */
	expect_reject("/api/generate", "{\"model\":\"qwen3:8b\"}", 404, "model 'qwen3:8b' not found");
	expect_reject("/api/generate", "{\"model\":\"qwen3\"}", 404, "model 'qwen3' not found");
	/* The backend tag is not a client-visible name. */
	expect_reject("/api/generate", "{\"model\":\"qwen2.5-coder:7b\"}", 404, "model 'qwen2.5-coder:7b' not found");
}

/* ---- api_parse_body: accepted requests ---- */

static void
test_lookup_case_and_latest(void **state)
{
	const char *names[] = {"qwen3:4b", "QWEN3:4B", "Qwen3:4b"};
	const char *coder[] = {"coder", "Coder", "coder:latest", "CODER:LATEST"};
	struct api_parsed p;
	json_t *up;

	for (size_t i = 0; i < 3; i++) {
		char *body = xasprintf("{\"model\":\"%s\",\"prompt\":\"hi\"}", names[i]);
		up = expect_parsed("/api/generate", body, &p);
		assert_string_equal(p.model, names[i]); /* as the client sent it */
		assert_string_equal(str_member(up, "model"), "qwen3:4b");
		json_decref(up);
		api_parsed_free(&p);
		free(body);
	}
	for (size_t i = 0; i < 4; i++) {
		char *body = xasprintf("{\"model\":\"%s\",\"messages\":[]}", coder[i]);
		up = expect_parsed("/api/chat", body, &p);
		assert_string_equal(p.model, coder[i]);
		assert_string_equal(str_member(up, "model"), "qwen2.5-coder:7b");
		json_decref(up);
		api_parsed_free(&p);
		free(body);
	}
}

static void
expect_stream(const char *path, const char *body, bool want)
{
	struct api_parsed p;
	json_t *up = expect_parsed(path, body, &p);

	if (p.stream != want)
		fail_msg("%s %s: stream %d, want %d", path, body, p.stream, want);
	json_decref(up);
	api_parsed_free(&p);
}

static void
test_stream_defaults(void **state)
{
	expect_stream("/api/generate", "{\"model\":\"qwen3:4b\"}", true);
	expect_stream("/api/generate", "{\"model\":\"qwen3:4b\",\"stream\":null}", true);
	expect_stream("/api/generate", "{\"model\":\"qwen3:4b\",\"stream\":true}", true);
	expect_stream("/api/generate", "{\"model\":\"qwen3:4b\",\"stream\":false}", false);
	expect_stream("/api/chat", "{\"model\":\"qwen3:4b\"}", true);
	expect_stream("/api/chat", "{\"model\":\"qwen3:4b\",\"stream\":false}", false);
	expect_stream("/v1/chat/completions", "{\"model\":\"qwen3:4b\"}", false);
	expect_stream("/v1/chat/completions", "{\"model\":\"qwen3:4b\",\"stream\":null}", false);
	expect_stream("/v1/chat/completions", "{\"model\":\"qwen3:4b\",\"stream\":false}", false);
	expect_stream("/v1/chat/completions", "{\"model\":\"qwen3:4b\",\"stream\":true}", true);
	expect_stream("/v1/completions", "{\"model\":\"qwen3:4b\",\"stream\":true}", true);
	/* Embeddings never stream, whatever the client asks. */
	expect_stream("/api/embed", "{\"model\":\"qwen3:4b\",\"input\":\"x\"}", false);
	expect_stream("/api/embed", "{\"model\":\"qwen3:4b\",\"stream\":true}", false);
	expect_stream("/v1/embeddings", "{\"model\":\"qwen3:4b\",\"stream\":true}", false);
	expect_stream("/api/show", "{\"model\":\"qwen3:4b\"}", false);
}

static void
test_pinned_options_string_keep_alive(void **state)
{
	struct api_parsed p;
	json_t *up = expect_parsed("/api/generate",
	    "{\"model\":\"qwen3:4b\",\"prompt\":\"hi\",\"keep_alive\":0,\"options\":{\"num_ctx\":131072}}", &p);
	const json_t *opts = json_object_get(up, "options");

	assert_true(json_is_object(opts));
	assert_int_equal(json_integer_value(json_object_get(opts, "num_ctx")), 4096);
	assert_string_equal(str_member(up, "keep_alive"), "30m");
	assert_string_equal(str_member(up, "prompt"), "hi");
	assert_string_equal(str_member(up, "model"), "qwen3:4b");
	json_decref(up);
	api_parsed_free(&p);
}

static void
test_pinned_options_number_keep_alive(void **state)
{
	struct api_parsed p;
	json_t *up = expect_parsed("/api/chat",
	    "{\"model\":\"coder\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
	    "\"options\":{\"temperature\":0.25,\"seed\":7},\"keep_alive\":\"5m\",\"format\":\"json\"}",
	    &p);
	const json_t *opts = json_object_get(up, "options");
	const json_t *ka = json_object_get(up, "keep_alive");

	assert_true(json_is_object(opts));
	assert_int_equal(json_integer_value(json_object_get(opts, "num_ctx")), 8192);
	/* Existing options are kept. */
	assert_true(json_real_value(json_object_get(opts, "temperature")) == 0.25);
	assert_int_equal(json_integer_value(json_object_get(opts, "seed")), 7);
	assert_true(json_is_number(ka));
	assert_true(json_number_value(ka) == 300);
	assert_string_equal(str_member(up, "model"), "qwen2.5-coder:7b");
	assert_string_equal(str_member(up, "format"), "json");
	assert_true(json_is_array(json_object_get(up, "messages")));
	json_decref(up);
	api_parsed_free(&p);
}

/* A null "options" is replaced by one holding the pin (a non-object one is
 * rejected: test_wrong_member_types). */
static void
test_pinned_options_replace_null(void **state)
{
	struct api_parsed p;
	json_t *up = expect_parsed("/api/generate", "{\"model\":\"qwen3:4b\",\"options\":null}", &p);
	const json_t *opts = json_object_get(up, "options");

	assert_true(json_is_object(opts));
	assert_int_equal(json_object_size(opts), 1);
	assert_int_equal(json_integer_value(json_object_get(opts, "num_ctx")), 4096);
	json_decref(up);
	api_parsed_free(&p);
}

/* num_ctx = 0 and no keep_alive: nothing is added, the client's stays. */
static void
test_unpinned_model(void **state)
{
	struct api_parsed p;
	json_t *up = expect_parsed("/api/generate", "{\"model\":\"plain\",\"keep_alive\":\"1h\"}", &p);

	assert_null(json_object_get(up, "options"));
	assert_string_equal(str_member(up, "keep_alive"), "1h");
	json_decref(up);
	api_parsed_free(&p);
	up = expect_parsed("/api/generate", "{\"model\":\"plain\"}", &p);
	assert_null(json_object_get(up, "keep_alive"));
	assert_null(json_object_get(up, "options"));
	json_decref(up);
	api_parsed_free(&p);
}

/* The OpenAI routes are relayed without Ollama-only fields. */
static void
test_openai_not_pinned(void **state)
{
	struct api_parsed p;
	json_t *up = expect_parsed("/v1/chat/completions",
	    "{\"model\":\"Coder\",\"messages\":[],\"temperature\":0.5}", &p);

	assert_null(json_object_get(up, "options"));
	assert_null(json_object_get(up, "keep_alive"));
	assert_string_equal(str_member(up, "model"), "qwen2.5-coder:7b");
	assert_string_equal(p.model, "Coder");
	json_decref(up);
	api_parsed_free(&p);
}

/* The native embed routes are forwarded inference: pinned as well. */
static void
test_embed_pinned(void **state)
{
	struct api_parsed p;
	json_t *up = expect_parsed("/api/embed", "{\"model\":\"qwen3:4b\",\"input\":[\"a\",\"b\"]}", &p);

	assert_int_equal(json_integer_value(json_object_get(json_object_get(up, "options"), "num_ctx")), 4096);
	assert_string_equal(str_member(up, "keep_alive"), "30m");
	json_decref(up);
	api_parsed_free(&p);
}

/* /api/show: the deprecated "name" is accepted and rewritten to "model";
 * no slot is involved, so nothing is pinned. */
static void
test_show_name_alias(void **state)
{
	struct api_parsed p;
	json_t *up = expect_parsed("/api/show", "{\"name\":\"CODER\",\"verbose\":true}", &p);

	assert_string_equal(p.model, "CODER");
	assert_false(p.stream);
	assert_string_equal(str_member(up, "model"), "qwen2.5-coder:7b");
	assert_null(json_object_get(up, "name"));
	assert_true(json_is_true(json_object_get(up, "verbose")));
	assert_null(json_object_get(up, "options"));
	assert_null(json_object_get(up, "keep_alive"));
	json_decref(up);
	api_parsed_free(&p);

	/* "model" wins over "name"; the exact configured name is kept as is. */
	up = expect_parsed("/api/show", "{\"model\":\"qwen3:4b\",\"name\":\"coder\"}", &p);
	assert_string_equal(p.model, "qwen3:4b");
	assert_string_equal(str_member(up, "model"), "qwen3:4b");
	assert_null(json_object_get(up, "name"));
	json_decref(up);
	api_parsed_free(&p);
}

/* When the client's name is exactly the backend tag the body is only
 * extended, never otherwise changed. */
static void
test_model_kept_when_same(void **state)
{
	struct api_parsed p;
	json_t *up = expect_parsed("/v1/chat/completions",
	    "{\"model\":\"qwen3:4b\",\"messages\":[{\"role\":\"user\",\"content\":\"\\u00e9\"}],\"stream\":true}", &p);

	assert_string_equal(str_member(up, "model"), "qwen3:4b");
	assert_true(json_is_true(json_object_get(up, "stream")));
	assert_string_equal(str_member(json_array_get(json_object_get(up, "messages"), 0), "content"), "\xc3\xa9");
	json_decref(up);
	api_parsed_free(&p);
}

/* The body length is taken from len, not from a terminator. */
static void
test_length_bounded(void **state)
{
	const char *body = "{\"model\":\"qwen3:4b\"}GARBAGE";
	struct api_parsed p;

	assert_int_equal(api_parse_body(route_find("/api/generate"), body, 20, cfg, &p), API_PARSED);
	assert_string_equal(p.model, "qwen3:4b");
	api_parsed_free(&p);
	api_parsed_free(&p); /* freeing twice is safe */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_lookup),
		cmocka_unit_test(test_route_prefix),
		cmocka_unit_test(test_route_methods),
		cmocka_unit_test(test_missing_body),
		cmocka_unit_test(test_malformed_json),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_model_missing),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_wrong_member_types),
		cmocka_unit_test(test_unknown_model),
		cmocka_unit_test(test_lookup_case_and_latest),
		cmocka_unit_test(test_stream_defaults),
		cmocka_unit_test(test_pinned_options_string_keep_alive),
		cmocka_unit_test(test_pinned_options_number_keep_alive),
		cmocka_unit_test(test_pinned_options_replace_null),
		cmocka_unit_test(test_unpinned_model),
		cmocka_unit_test(test_openai_not_pinned),
		cmocka_unit_test(test_embed_pinned),
		cmocka_unit_test(test_show_name_alias),
		cmocka_unit_test(test_model_kept_when_same),
		cmocka_unit_test(test_length_bounded),
	};

	log_init("test_api", LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
