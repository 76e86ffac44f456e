/*
 * Unit tests of the client dialects: each one's token accounting over its
 * own framing (Ollama NDJSON with the load reply and the error line,
 * Anthropic and Responses SSE events), its error shape, its checks before
 * the model lookup, and how it ends a failed stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "dialect.h"
#include "fixture_api.h"
#include "config.h"
#include "log.h"
#include "route.h"
#include "tokscan.h"

/* Scan body with d's line function, fed in 7-byte pieces. */
static struct tokscan
scan(const struct dialect *d, const char *body)
{
	struct tokscan ts;
	size_t n = strlen(body);

	tokscan_init(&ts, d->scan_line);
	for (size_t at = 0; at < n; at += 7)
		tokscan_feed(&ts, body + at, n - at < 7 ? n - at : 7);
	tokscan_finish(&ts);
	tokscan_free(&ts);
	return ts;
}

static const char anthropic_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
    "\"model\":\"qwen3:8b\",\"content\":[],\"usage\":{\"input_tokens\":99,\"output_tokens\":0}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":10,"
    "\"output_tokens\":2}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

/* Two deltas are two live tokens; the counts are message_delta's, never
 * message_start's estimate; message_stop finishes the stream. */
static void
test_anthropic_stream(void **state)
{
	struct tokscan ts = scan(&dialect_anthropic, anthropic_stream);
	char cut[sizeof(anthropic_stream)];

	assert_int_equal(ts.token_lines, 2);
	assert_true(ts.have_counts);
	assert_int_equal(ts.eval_count, 2);
	assert_int_equal(ts.prompt_eval_count, 10);
	assert_true(ts.done);
	assert_false(ts.error);
	/* Ollama ends a failed stream without the terminal events. */
	memcpy(cut, anthropic_stream, sizeof(cut));
	*strstr(cut, "event: content_block_stop") = '\0';
	ts = scan(&dialect_anthropic, cut);
	assert_false(ts.done);
	assert_false(ts.have_counts);
	assert_true(dialect_anthropic.needs_terminal);
}

static void
test_anthropic_nonstream_and_error(void **state)
{
	struct tokscan ts = scan(&dialect_anthropic,
	    "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[{\"type\":\"text\","
	    "\"text\":\"Hi\"}],\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":31,\"output_tokens\":48}}\n");

	assert_true(ts.done);
	assert_int_equal(ts.eval_count, 48);
	assert_int_equal(ts.prompt_eval_count, 31);
	ts = scan(&dialect_anthropic, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}\n\n");
	assert_true(ts.error);
}

static const char responses_stream[] =
    "event: response.created\n"
    "data: {\"response\":{\"id\":\"resp_1\",\"model\":\"m\",\"status\":\"in_progress\",\"usage\":null},"
    "\"sequence_number\":0,\"type\":\"response.created\"}\n\n"
    "event: response.output_text.delta\n"
    "data: {\"content_index\":0,\"delta\":\"Hi\",\"item_id\":\"msg_1\",\"output_index\":0,\"sequence_number\":1,"
    "\"type\":\"response.output_text.delta\"}\n\n"
    "event: response.output_text.delta\n"
    "data: {\"content_index\":0,\"delta\":\" you\",\"item_id\":\"msg_1\",\"output_index\":0,\"sequence_number\":2,"
    "\"type\":\"response.output_text.delta\"}\n\n"
    "event: response.output_text.delta\n"
    "data: {\"content_index\":0,\"delta\":\"!\",\"item_id\":\"msg_1\",\"output_index\":0,\"sequence_number\":3,"
    "\"type\":\"response.output_text.delta\"}\n\n"
    "event: response.completed\n"
    "data: {\"response\":{\"id\":\"resp_1\",\"model\":\"m\",\"output\":[],\"status\":\"completed\",\"usage\":"
    "{\"input_tokens\":14,\"output_tokens\":3,\"total_tokens\":17}},\"sequence_number\":4,"
    "\"type\":\"response.completed\"}\n\n";

static void
test_responses_stream(void **state)
{
	struct tokscan ts = scan(&dialect_responses, responses_stream);
	char cut[sizeof(responses_stream)];

	assert_int_equal(ts.token_lines, 3);
	assert_true(ts.done);
	assert_int_equal(ts.eval_count, 3);
	assert_int_equal(ts.prompt_eval_count, 14);
	memcpy(cut, responses_stream, sizeof(cut));
	*strstr(cut, "event: response.completed") = '\0';
	ts = scan(&dialect_responses, cut);
	assert_false(ts.done);
	ts = scan(&dialect_responses,
	    "{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"usage\":{\"input_tokens\":5,"
	    "\"output_tokens\":6,\"total_tokens\":11}}\n");
	assert_true(ts.done);
	assert_int_equal(ts.eval_count, 6);
	assert_int_equal(ts.prompt_eval_count, 5);
}

/* Issue 15, defect (b): a load reply generated nothing. */
static void
test_ollama_load_reply_counts_nothing(void **state)
{
	struct tokscan ts = scan(&dialect_ollama,
	    "{\"model\":\"m\",\"created_at\":\"t\",\"response\":\"\",\"done\":true,\"done_reason\":\"load\"}\n");

	assert_true(ts.done);
	assert_true(ts.have_counts);
	assert_int_equal(ts.eval_count, 0);
	assert_int_equal(ts.prompt_eval_count, 0);
}

/* Issue 15, defect (a): Ollama's own error line marks the answer failed. */
static void
test_ollama_error_line_marks_failure(void **state)
{
	struct tokscan ts = scan(&dialect_ollama,
	    "{\"model\":\"m\",\"response\":\"a\",\"done\":false}\n{\"error\":\"llama runner process has terminated\"}\n");

	assert_true(ts.error);
	assert_false(ts.done);
	assert_int_equal(ts.token_lines, 1);
}

static char *
error_text(const char *path, int status, const char *msg)
{
	size_t len;

	return api_error_text(route_find(path), status, msg, &len);
}

static void
test_error_shapes(void **state)
{
	char *s = error_text("/v1/messages", 404, "model 'x' not found");

	assert_string_equal(s, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model 'x' not found\"}}");
	free(s);
	s = error_text("/v1/messages", 401, "missing or wrong API key");
	assert_non_null(strstr(s, "\"authentication_error\""));
	free(s);
	s = error_text("/v1/messages", 503, "busy");
	assert_non_null(strstr(s, "\"overloaded_error\""));
	free(s);
	s = error_text("/v1/responses", 404, "model 'x' not found");
	assert_string_equal(s, "{\"error\":{\"message\":\"model 'x' not found\",\"type\":\"not_found_error\",\"param\":null,"
	                       "\"code\":null}}");
	free(s);
	s = error_text("/api/chat", 400, "bad");
	assert_string_equal(s, "{\"error\":\"bad\"}");
	free(s);
}

static void
test_failed_stream_endings(void **state)
{
	size_t len;
	char *s = dialect_anthropic.stream_failure("gone", &len);

	assert_string_equal(s, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"gone\"}}\n\n");
	assert_int_equal(len, strlen(s));
	free(s);
	s = dialect_responses.stream_failure("gone", &len);
	assert_true(strncmp(s, "event: response.failed\ndata: {", 30) == 0);
	assert_non_null(strstr(s, "\"status\":\"failed\""));
	free(s);
	s = dialect_ollama.stream_failure("gone", &len);
	assert_string_equal(s, "{\"error\":\"gone\"}\n");
	free(s);
}

static struct config *cfg;

static enum api_result
parse(const char *path, const char *body, struct api_parsed *p)
{
	return api_parse_body(route_find(path), body, strlen(body), cfg, p);
}

/* Ollama's checks and wording on the two agent endpoints, before any
 * backend sees the request; no pinned options ride on them. */
static void
test_agent_endpoints_parse(void **state)
{
	struct api_parsed p;

	assert_int_equal(parse("/v1/messages", "{\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &p),
	    API_REJECTED);
	assert_int_equal(p.status, 400);
	assert_string_equal(p.error, "model is required");
	api_parsed_free(&p);
	assert_int_equal(parse("/v1/messages", "{\"model\":\"qwen3:4b\",\"messages\":[{\"role\":\"user\"}]}", &p), API_REJECTED);
	assert_string_equal(p.error, "max_tokens is required and must be positive");
	api_parsed_free(&p);
	assert_int_equal(parse("/v1/messages", "{\"model\":\"qwen3:4b\",\"max_tokens\":5,\"messages\":[]}", &p), API_REJECTED);
	assert_string_equal(p.error, "messages is required");
	api_parsed_free(&p);
	assert_int_equal(parse("/v1/messages", "{\"model\":\"nope\",\"max_tokens\":5,\"messages\":[{}]}", &p), API_REJECTED);
	assert_int_equal(p.status, 404);
	assert_string_equal(p.error, "model 'nope' not found");
	api_parsed_free(&p);
	assert_int_equal(parse("/v1/messages", "{\"model\":\"qwen3:4b\",\"max_tokens\":5,\"messages\":[{}],\"stream\":true}", &p),
	    API_PARSED);
	assert_true(p.stream);
	assert_null(strstr(p.up_body, "num_ctx"));
	api_parsed_free(&p);
	assert_int_equal(parse("/v1/responses", "{\"model\":\"qwen3:4b\",\"input\":\"hi\"}", &p), API_PARSED);
	assert_false(p.stream); /* the default on both agent endpoints */
	assert_null(strstr(p.up_body, "num_ctx"));
	api_parsed_free(&p);
	assert_int_equal(parse("/v1/responses", "{\"model\":\"qwen3:4b\",\"input\":5}", &p), API_REJECTED);
	assert_int_equal(p.status, 400);
	api_parsed_free(&p);
}

static int
setup(void **state)
{
	struct config_diags d = {0};

	cfg = config_load_string(fixture_api_conf, "test.conf", &d);
	config_diags_free(&d);
	return cfg == NULL;
}

static int
teardown(void **state)
{
	config_unref(cfg);
	return 0;
}

int
main(void)
{
	log_init("test_dialect", LOG_LEVEL_ERR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_anthropic_stream),
		cmocka_unit_test(test_anthropic_nonstream_and_error),
		cmocka_unit_test(test_responses_stream),
		cmocka_unit_test(test_ollama_load_reply_counts_nothing),
		cmocka_unit_test(test_ollama_error_line_marks_failure),
		cmocka_unit_test(test_error_shapes),
		cmocka_unit_test(test_failed_stream_endings),
		cmocka_unit_test(test_agent_endpoints_parse),
	};

	return cmocka_run_group_tests_name("dialect", tests, setup, teardown);
}
