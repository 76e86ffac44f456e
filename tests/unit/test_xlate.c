/*
 * Unit tests of xlate: every request field of the mapping table for both
 * targets, and backend answers (SSE streams, whole JSON bodies,
 * embeddings, errors) translated into Ollama's lines and objects, the
 * same whatever the chunk boundaries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "xlate.h"
#include "xmalloc.h"

static const struct xlate_target LLAMA = {.llamacpp = true};
static const struct xlate_target VLLM = {.llamacpp = false};

#define T0 1000000000LL          /* monotonic ns when the request was sent */
#define UNIX 1764000000000000000LL /* wall clock: 2025-11-24T16:00:00Z */

/* ---- helpers ---- */

static json_t *
parse(const char *s)
{
	json_error_t e;
	json_t *o = json_loads(s, JSON_DECODE_ANY, &e);

	if (o == NULL)
		fail_msg("bad JSON in test: %s: %s", e.text, s);
	return o;
}

/* The backend body for native (text); asserts success and the path. */
static json_t *
req_ok(enum xlate_route r, const char *native, const struct xlate_target *t, const char *want_path)
{
	json_t *in = parse(native);
	const char *path = NULL;
	char *err = NULL;
	json_t *out = xlate_request(r, in, t, &path, &err);

	if (out == NULL)
		fail_msg("xlate_request failed: %s", err);
	assert_null(err);
	assert_string_equal(path, want_path);
	json_decref(in);
	return out;
}

/* The 400 message for native; asserts failure and that it contains want. */
static void
req_fails(enum xlate_route r, const char *native, const struct xlate_target *t, const char *want)
{
	json_t *in = parse(native);
	const char *path = NULL;
	char *err = NULL;
	json_t *out = xlate_request(r, in, t, &path, &err);

	assert_null(out);
	assert_non_null(err);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	free(err);
	json_decref(in);
}

/* Compact JSON text of member path "a.b.0.c" of o ("" when absent). */
static char *
at(const json_t *o, const char *path)
{
	char *copy = xstrdup(path), *save = NULL, *s;
	const json_t *v = o;
	char *text;

	for (s = strtok_r(copy, ".", &save); s != NULL && v != NULL; s = strtok_r(NULL, ".", &save)) {
		if (json_is_array(v))
			v = json_array_get(v, (size_t)atoi(s));
		else
			v = json_object_get(v, s);
	}
	free(copy);
	if (v == NULL)
		return xstrdup("");
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	return text;
}

#define assert_at(o, path, want)                                                                            \
	do {                                                                                                   \
		char *got_ = at((o), (path));                                                                      \
		if (strcmp(got_, (want)) != 0)                                                                     \
			fail_msg("%s: got %s, want %s", (path), got_, (want));                                         \
		free(got_);                                                                                        \
	} while (0)

struct run {
	char *out;        /* all output, NUL-terminated */
	bool ok;
	char why[256];    /* a copy: "" when complete */
};

/* Feed body in pieces of step bytes (0: one piece) at fixed clocks. */
static struct run
run(enum xlate_route r, bool stream, const char *body, size_t step)
{
	struct xlate_answer *a = xlate_answer_new(r, "client:model", stream, T0);
	struct run res = {0};
	size_t len = strlen(body), n;
	char *out = xstrdup("");
	size_t out_len = 0;
	const char *p, *why = NULL;

	for (size_t i = 0; i < len;) {
		size_t k = step == 0 ? len : (len - i < step ? len - i : step);
		xlate_feed(a, body + i, k, T0 + 5000000, UNIX);
		p = xlate_take(a, &n);
		out = xreallocarray(out, out_len + n + 1, 1);
		memcpy(out + out_len, p, n);
		out_len += n;
		out[out_len] = '\0';
		i += k;
	}
	res.ok = xlate_finish(a, T0 + 9000000, UNIX + 1, &why);
	p = xlate_take(a, &n);
	out = xreallocarray(out, out_len + n + 1, 1);
	memcpy(out + out_len, p, n);
	out_len += n;
	out[out_len] = '\0';
	res.out = out;
	snprintf(res.why, sizeof(res.why), "%s", why != NULL ? why : "");
	xlate_answer_free(a);
	return res;
}

/* The NDJSON lines of out as a JSON array (each line must parse). */
static json_t *
lines_of(const char *out)
{
	json_t *list = json_array();
	const char *s = out;

	while (*s != '\0') {
		const char *nl = strchr(s, '\n');
		json_error_t e;
		json_t *o;
		if (nl == NULL)
			fail_msg("NDJSON line without newline: %s", s);
		o = json_loadb(s, (size_t)(nl - s), 0, &e);
		if (o == NULL)
			fail_msg("bad output line: %.*s", (int)(nl - s), s);
		json_array_append_new(list, o);
		s = nl + 1;
	}
	return list;
}

static const char *llama_chat_stream =
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}],\"created\":1,\"id\":\"x\",\"model\":\"m\",\"object\":\"chat.completion.chunk\"}\n\n"
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"Hel\"}}],\"created\":1,\"id\":\"x\",\"model\":\"m\",\"object\":\"chat.completion.chunk\"}\n\n"
    "data: {\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"lo \\u00e9\\\"\"}}],\"created\":1,\"id\":\"x\",\"model\":\"m\",\"object\":\"chat.completion.chunk\"}\n\n"
    "data: {\"choices\":[{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{}}],\"created\":1,\"id\":\"x\",\"model\":\"m\",\"object\":\"chat.completion.chunk\"}\n\n"
    "data: {\"choices\":[],\"created\":1,\"id\":\"x\",\"model\":\"m\",\"object\":\"chat.completion.chunk\","
    "\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":14,\"total_tokens\":17},"
    "\"timings\":{\"cache_n\":10,\"prompt_n\":4,\"prompt_ms\":21.5,\"predicted_n\":3,\"predicted_ms\":60.25}}\n\n"
    "data: [DONE]\n\n";

/* ---- routes ---- */

static void
test_route_of(void **state)
{
	assert_int_equal(xlate_route_of("/api/chat"), XLATE_CHAT);
	assert_int_equal(xlate_route_of("/api/generate"), XLATE_GENERATE);
	assert_int_equal(xlate_route_of("/api/embed"), XLATE_EMBED);
	assert_int_equal(xlate_route_of("/api/embeddings"), XLATE_EMBEDDINGS);
	assert_int_equal(xlate_route_of("/api/chat?x=1"), XLATE_CHAT);
	assert_int_equal(xlate_route_of("/api/show"), -1);
	assert_int_equal(xlate_route_of("/api/chatx"), -1);
	assert_int_equal(xlate_route_of("/v1/chat/completions"), -1);
	assert_int_equal(xlate_route_of(NULL), -1);
	assert_string_equal(xlate_route_name(XLATE_EMBED), "embed");
}

/* ---- chat requests ---- */

static void
test_chat_basic(void **state)
{
	json_t *o = req_ok(XLATE_CHAT,
	    "{\"model\":\"qwen3-8b\",\"messages\":[{\"role\":\"System\",\"content\":\"be brief\"},"
	    "{\"role\":\"user\",\"content\":\"hi\"}],\"keep_alive\":\"5m\"}",
	    &LLAMA, "/v1/chat/completions");

	assert_at(o, "model", "\"qwen3-8b\"");
	assert_at(o, "messages",
	    "[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"}]");
	assert_at(o, "stream", "true"); /* Ollama's default */
	assert_at(o, "stream_options", "{\"include_usage\":true}");
	assert_at(o, "keep_alive", "");
	json_decref(o);

	o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"stream\":false,\"messages\":[{\"role\":\"user\"}]}", &VLLM,
	    "/v1/chat/completions");
	assert_at(o, "stream", "false");
	assert_at(o, "stream_options", "");
	assert_at(o, "messages.0.content", "\"\"");
	json_decref(o);
}

static void
test_chat_bad_messages(void **state)
{
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":{}}", &LLAMA, "messages must be an array");
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", &LLAMA, "role");
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":3}]}", &LLAMA,
	    "content must be a string");
	req_fails(XLATE_CHAT, "[1]", &LLAMA, "JSON object");
}

static void
test_chat_images(void **state)
{
	/* "iVBORw0KGgo=" is the PNG magic; "/9j/4AAQ" a JPEG's. */
	json_t *o = req_ok(XLATE_CHAT,
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"what is it?\","
	    "\"images\":[\"iVBORw0KGgo=\",\"/9j/4AAQ\",\"AAAA\"]}]}",
	    &LLAMA, "/v1/chat/completions");

	assert_at(o, "messages.0.content",
	    "[{\"type\":\"text\",\"text\":\"what is it?\"},"
	    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}},"
	    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,/9j/4AAQ\"}},"
	    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]");
	json_decref(o);

	/* No text: only the image part; line breaks in the base64 go. */
	o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"images\":[\"R0lG\\nODlh\"]}]}",
	    &VLLM, "/v1/chat/completions");
	assert_at(o, "messages.0.content",
	    "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/gif;base64,R0lGODlh\"}}]");
	json_decref(o);

	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"images\":[\"not base64!\"]}]}",
	    &LLAMA, "invalid image 0");
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"images\":[\"AAAAA\"]}]}", &LLAMA,
	    "not a base64");
	req_fails(XLATE_CHAT,
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"images\":[\"data:image/png;base64,AAAA\"]}]}",
	    &LLAMA, "invalid image");
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"images\":[\"AAAA\",7]}]}", &LLAMA,
	    "invalid image 1");
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"images\":\"AAAA\"}]}", &LLAMA,
	    "images must be an array");
}

static void
test_chat_tool_history(void **state)
{
	json_t *o = req_ok(XLATE_CHAT,
	    "{\"model\":\"m\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
	    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}],"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},"
	    "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hmm\",\"tool_calls\":["
	    "{\"function\":{\"index\":0,\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}},"
	    "{\"function\":{\"name\":\"get_time\",\"arguments\":{}}},"
	    "{\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\",\"days\":[1,2]}}}]},"
	    "{\"role\":\"tool\",\"tool_name\":\"get_time\",\"content\":\"noon\"},"
	    "{\"role\":\"tool\",\"tool_name\":\"get_weather\",\"content\":\"sunny\"},"
	    "{\"role\":\"tool\",\"tool_name\":\"get_weather\",\"content\":\"rain\"},"
	    "{\"role\":\"tool\",\"tool_name\":\"nothing\",\"content\":\"?\"},"
	    "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"abc\",\"function\":{\"name\":\"f\"}}]},"
	    "{\"role\":\"tool\",\"content\":\"r\"},"
	    "{\"role\":\"tool\",\"content\":\"r2\",\"tool_call_id\":\"given\"}]}",
	    &LLAMA, "/v1/chat/completions");

	assert_at(o, "tools.0.function.name", "\"get_weather\"");
	assert_at(o, "messages.1.reasoning_content", "\"hmm\"");
	assert_at(o, "messages.1.tool_calls.0",
	    "{\"id\":\"call_0\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
	    "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}");
	assert_at(o, "messages.1.tool_calls.1",
	    "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{}\"}}");
	assert_at(o, "messages.1.tool_calls.2.function.arguments", "\"{\\\"city\\\":\\\"Oslo\\\",\\\"days\\\":[1,2]}\"");
	assert_at(o, "messages.2", "{\"role\":\"tool\",\"content\":\"noon\",\"name\":\"get_time\",\"tool_call_id\":\"call_1\"}");
	assert_at(o, "messages.3.tool_call_id", "\"call_0\"");
	assert_at(o, "messages.4.tool_call_id", "\"call_2\"");
	assert_at(o, "messages.5.tool_call_id", ""); /* no such call */
	assert_at(o, "messages.6.tool_calls.0.id", "\"abc\"");
	assert_at(o, "messages.6.tool_calls.0.function.arguments", "\"{}\"");
	assert_at(o, "messages.7.tool_call_id", "\"abc\""); /* no name: the next unanswered */
	assert_at(o, "messages.8.tool_call_id", "\"given\"");
	json_decref(o);

	/* vLLM: no reasoning_content in the history. */
	o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"x\",\"thinking\":\"t\"}]}",
	    &VLLM, "/v1/chat/completions");
	assert_at(o, "messages.0", "{\"role\":\"assistant\",\"content\":\"x\"}");
	json_decref(o);

	req_fails(XLATE_CHAT,
	    "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\","
	    "\"arguments\":\"{\\\"a\\\":1}\"}}]}]}",
	    &LLAMA, "arguments must be an object");
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{}}]}]}",
	    &LLAMA, "without a function name");
}

static void
test_chat_format(void **state)
{
	json_t *o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"format\":\"json\"}", &LLAMA,
	    "/v1/chat/completions");

	assert_at(o, "response_format", "{\"type\":\"json_object\"}");
	json_decref(o);
	o = req_ok(XLATE_CHAT,
	    "{\"model\":\"m\",\"messages\":[],\"format\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}}",
	    &VLLM, "/v1/chat/completions");
	assert_at(o, "response_format",
	    "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"schema\",\"schema\":{\"type\":\"object\","
	    "\"properties\":{\"a\":{\"type\":\"integer\"}}}}}");
	json_decref(o);
	o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"format\":\"\"}", &LLAMA, "/v1/chat/completions");
	assert_at(o, "response_format", "");
	json_decref(o);
	o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"format\":null}", &LLAMA, "/v1/chat/completions");
	assert_at(o, "response_format", "");
	json_decref(o);
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"format\":\"xml\"}", &LLAMA, "invalid format");
}

static void
test_chat_think(void **state)
{
	json_t *o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"think\":false}", &LLAMA,
	    "/v1/chat/completions");

	assert_at(o, "chat_template_kwargs", "{\"enable_thinking\":false}");
	assert_at(o, "reasoning_effort", "");
	json_decref(o);
	o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"think\":true}", &LLAMA, "/v1/chat/completions");
	assert_at(o, "chat_template_kwargs", "{\"enable_thinking\":true}");
	json_decref(o);
	o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"think\":true}", &VLLM, "/v1/chat/completions");
	assert_at(o, "chat_template_kwargs", "");
	assert_at(o, "reasoning_effort", "");
	json_decref(o);
	o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"think\":\"max\"}", &LLAMA, "/v1/chat/completions");
	assert_at(o, "reasoning_effort", "\"high\"");
	assert_at(o, "chat_template_kwargs", "{\"enable_thinking\":true}");
	json_decref(o);
	o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"think\":\"low\"}", &VLLM, "/v1/chat/completions");
	assert_at(o, "reasoning_effort", "\"low\"");
	assert_at(o, "chat_template_kwargs", "");
	json_decref(o);
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"think\":\"lots\"}", &LLAMA, "invalid think");
}

static const char *all_options =
    "{\"model\":\"m\",\"messages\":[],\"options\":{\"num_predict\":128,\"temperature\":0.25,\"top_p\":0.9,"
    "\"top_k\":40.0,\"min_p\":0.05,\"seed\":42,\"stop\":[\"\\n\\n\",\"END\"],\"repeat_penalty\":1.1,"
    "\"presence_penalty\":0.5,\"frequency_penalty\":0.25,\"typical_p\":0.95,\"repeat_last_n\":64,"
    "\"mirostat\":2,\"num_ctx\":8192,\"num_gpu\":99,\"num_thread\":8,\"use_mmap\":true}}";

static void
test_options_llamacpp(void **state)
{
	json_t *o = req_ok(XLATE_CHAT, all_options, &LLAMA, "/v1/chat/completions");

	assert_at(o, "max_tokens", "128");
	assert_at(o, "temperature", "0.25");
	assert_at(o, "top_p", "0.90000000000000002");
	assert_at(o, "top_k", "40");
	assert_at(o, "min_p", "0.050000000000000003");
	assert_at(o, "seed", "42");
	assert_at(o, "stop", "[\"\\n\\n\",\"END\"]");
	assert_at(o, "repeat_penalty", "1.1000000000000001");
	assert_at(o, "repetition_penalty", "");
	assert_at(o, "presence_penalty", "0.5");
	assert_at(o, "frequency_penalty", "0.25");
	assert_at(o, "typical_p", "0.94999999999999996");
	assert_at(o, "repeat_last_n", "64");
	assert_at(o, "mirostat", "2");
	assert_at(o, "num_ctx", "");
	assert_at(o, "n_ctx", "");
	assert_at(o, "options", "");
	assert_at(o, "num_gpu", "");
	json_decref(o);
}

static void
test_options_generic(void **state)
{
	json_t *o = req_ok(XLATE_CHAT, all_options, &VLLM, "/v1/chat/completions");

	assert_at(o, "max_tokens", "128");
	assert_at(o, "top_k", "40");
	assert_at(o, "min_p", "0.050000000000000003");
	assert_at(o, "repetition_penalty", "1.1000000000000001");
	assert_at(o, "repeat_penalty", "");
	assert_at(o, "typical_p", "");
	assert_at(o, "repeat_last_n", "");
	assert_at(o, "mirostat", "");
	assert_at(o, "num_ctx", "");
	json_decref(o);
}

static void
test_options_edges(void **state)
{
	json_t *o = req_ok(XLATE_CHAT,
	    "{\"model\":\"m\",\"messages\":[],\"options\":{\"num_predict\":-1,\"seed\":-1,\"stop\":\"###\",\"temperature\":null}}",
	    &LLAMA, "/v1/chat/completions");

	assert_at(o, "max_tokens", "");
	assert_at(o, "seed", "");
	assert_at(o, "stop", "[\"###\"]");
	assert_at(o, "temperature", "");
	json_decref(o);
	o = req_ok(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"options\":{\"num_predict\":-2}}", &VLLM,
	    "/v1/chat/completions");
	assert_at(o, "max_tokens", "");
	json_decref(o);
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"options\":{\"temperature\":\"hot\"}}", &LLAMA,
	    "\"temperature\" must be a number");
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"options\":{\"stop\":[1]}}", &LLAMA, "stop");
	req_fails(XLATE_CHAT, "{\"model\":\"m\",\"messages\":[],\"options\":[]}", &LLAMA, "options must be an object");
}

/* ---- generate and embed requests ---- */

static void
test_generate_chat(void **state)
{
	json_t *o = req_ok(XLATE_GENERATE,
	    "{\"model\":\"m\",\"prompt\":\"why?\",\"system\":\"sys\",\"images\":[\"iVBORw0KGgo=\"],"
	    "\"context\":[1,2,3],\"template\":\"{{ .Prompt }}\",\"think\":false,\"format\":\"json\","
	    "\"options\":{\"num_predict\":5}}",
	    &LLAMA, "/v1/chat/completions");

	assert_at(o, "messages.0", "{\"role\":\"system\",\"content\":\"sys\"}");
	assert_at(o, "messages.1.role", "\"user\"");
	assert_at(o, "messages.1.content.0", "{\"type\":\"text\",\"text\":\"why?\"}");
	assert_at(o, "messages.1.content.1.image_url.url", "\"data:image/png;base64,iVBORw0KGgo=\"");
	assert_at(o, "messages.2", "");
	assert_at(o, "context", "");
	assert_at(o, "template", "");
	assert_at(o, "chat_template_kwargs", "{\"enable_thinking\":false}");
	assert_at(o, "response_format", "{\"type\":\"json_object\"}");
	assert_at(o, "max_tokens", "5");
	assert_at(o, "stream", "true");
	json_decref(o);

	o = req_ok(XLATE_GENERATE, "{\"model\":\"m\",\"prompt\":\"hi\",\"stream\":false}", &VLLM, "/v1/chat/completions");
	assert_at(o, "messages", "[{\"role\":\"user\",\"content\":\"hi\"}]");
	assert_at(o, "stream", "false");
	json_decref(o);
}

static void
test_generate_raw(void **state)
{
	json_t *o = req_ok(XLATE_GENERATE,
	    "{\"model\":\"m\",\"prompt\":\"<|im_start|>user\\nhi\",\"raw\":true,\"think\":true,"
	    "\"options\":{\"repeat_penalty\":1.5,\"stop\":[\"<|im_end|>\"]}}",
	    &VLLM, "/v1/completions");

	assert_at(o, "model", "\"m\"");
	assert_at(o, "prompt", "\"<|im_start|>user\\nhi\"");
	assert_at(o, "messages", "");
	assert_at(o, "suffix", "");
	assert_at(o, "repetition_penalty", "1.5");
	assert_at(o, "stop", "[\"<|im_end|>\"]");
	assert_at(o, "chat_template_kwargs", "");
	assert_at(o, "stream_options", "{\"include_usage\":true}");
	json_decref(o);

	o = req_ok(XLATE_GENERATE, "{\"model\":\"m\",\"prompt\":\"def f(\",\"suffix\":\"\\n  return x\"}", &LLAMA,
	    "/v1/completions");
	assert_at(o, "prompt", "\"def f(\"");
	assert_at(o, "suffix", "\"\\n  return x\"");
	json_decref(o);

	req_fails(XLATE_GENERATE, "{\"model\":\"m\",\"prompt\":\"x\",\"raw\":true,\"images\":[\"AAAA\"]}", &LLAMA,
	    "images are not supported");
}

static void
test_embed_requests(void **state)
{
	json_t *o = req_ok(XLATE_EMBED, "{\"model\":\"e\",\"input\":\"hello\",\"truncate\":false,\"keep_alive\":0}", &LLAMA,
	    "/v1/embeddings");

	assert_at(o, "model", "\"e\"");
	assert_at(o, "input", "\"hello\"");
	assert_at(o, "truncate", "");
	assert_at(o, "keep_alive", "");
	assert_at(o, "encoding_format", "\"float\"");
	assert_at(o, "dimensions", "");
	json_decref(o);
	o = req_ok(XLATE_EMBED, "{\"model\":\"e\",\"input\":[\"a\",\"b\"],\"dimensions\":256}", &VLLM, "/v1/embeddings");
	assert_at(o, "input", "[\"a\",\"b\"]");
	assert_at(o, "dimensions", "256");
	json_decref(o);
	o = req_ok(XLATE_EMBEDDINGS, "{\"model\":\"e\",\"prompt\":\"legacy\",\"options\":{\"num_ctx\":2}}", &LLAMA,
	    "/v1/embeddings");
	assert_at(o, "input", "\"legacy\"");
	assert_at(o, "prompt", "");
	assert_at(o, "options", "");
	json_decref(o);
	req_fails(XLATE_EMBED, "{\"model\":\"e\",\"input\":[\"a\",1]}", &LLAMA, "invalid input type");
	req_fails(XLATE_EMBED, "{\"model\":\"e\",\"input\":3}", &LLAMA, "invalid input type");
}

static void
test_local_answers(void **state)
{
	json_t *in = parse("{\"model\":\"m\",\"messages\":[]}");
	json_t *o = xlate_local_answer(XLATE_CHAT, in, "llama3.2", UNIX);

	assert_at(o, "model", "\"llama3.2\"");
	assert_at(o, "created_at", "\"2025-11-24T16:00:00Z\"");
	assert_at(o, "message", "{\"role\":\"assistant\",\"content\":\"\"}");
	assert_at(o, "done", "true");
	assert_at(o, "done_reason", "\"load\"");
	json_decref(o);
	json_decref(in);

	in = parse("{\"model\":\"m\",\"keep_alive\":\"0s\"}");
	o = xlate_local_answer(XLATE_GENERATE, in, "x", UNIX);
	assert_at(o, "response", "\"\"");
	assert_at(o, "done_reason", "\"unload\"");
	json_decref(o);
	o = xlate_local_answer(XLATE_CHAT, in, "x", UNIX);
	assert_at(o, "done_reason", "\"unload\"");
	json_decref(o);
	json_decref(in);

	in = parse("{\"model\":\"m\",\"keep_alive\":0,\"input\":[]}");
	o = xlate_local_answer(XLATE_EMBED, in, "x", UNIX);
	assert_at(o, "", "{\"model\":\"x\",\"embeddings\":[]}");
	json_decref(o);
	json_decref(in);

	in = parse("{\"model\":\"m\",\"prompt\":\"\"}");
	o = xlate_local_answer(XLATE_EMBEDDINGS, in, "x", UNIX);
	assert_at(o, "", "{\"embedding\":[]}");
	json_decref(o);
	json_decref(in);

	in = parse("{\"model\":\"m\",\"prompt\":\"p\",\"input\":\"p\",\"messages\":[{\"role\":\"user\"}],\"keep_alive\":0}");
	for (int r = 0; r < XLATE_ROUTE_COUNT; r++)
		assert_null(xlate_local_answer((enum xlate_route)r, in, "x", UNIX));
	json_decref(in);
}

/* ---- stream answers ---- */

static void
test_stream_chat(void **state)
{
	struct run res = run(XLATE_CHAT, true, llama_chat_stream, 0);
	json_t *l = lines_of(res.out);

	assert_true(res.ok);
	assert_string_equal(res.why, "");
	assert_int_equal(json_array_size(l), 3);
	assert_at(l, "0",
	    "{\"model\":\"client:model\",\"created_at\":\"2025-11-24T16:00:00Z\","
	    "\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}");
	assert_at(l, "1.message.content", "\"lo \xc3\xa9\\\"\"");
	/* The final line: counts from usage, durations from timings. */
	assert_at(l, "2",
	    "{\"model\":\"client:model\",\"created_at\":\"2025-11-24T16:00:00Z\","
	    "\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\","
	    "\"total_duration\":5000000,\"load_duration\":0,\"prompt_eval_count\":14,"
	    "\"prompt_eval_duration\":21500000,\"eval_count\":3,\"eval_duration\":60250000}");
	/* The text on the wire is raw UTF-8. */
	assert_non_null(strstr(res.out, "lo \xc3\xa9\\\""));
	json_decref(l);
	free(res.out);
}

/* Whole, byte by byte, every single cut, and with CRLF: the same output. */
static void
test_stream_any_split(void **state)
{
	struct run whole = run(XLATE_CHAT, true, llama_chat_stream, 0);
	size_t len = strlen(llama_chat_stream);

	for (size_t step = 1; step <= 7; step++) {
		struct run r = run(XLATE_CHAT, true, llama_chat_stream, step);
		assert_true(r.ok);
		assert_string_equal(r.out, whole.out);
		free(r.out);
	}
	for (size_t cut = 1; cut < len; cut++) {
		struct xlate_answer *a = xlate_answer_new(XLATE_CHAT, "client:model", true, T0);
		const char *p, *why;
		size_t n;
		char *out = xstrdup("");
		size_t out_len = 0;
		const size_t pieces[3][2] = {{0, cut}, {cut, len - cut}, {len, 0}};
		for (int i = 0; i < 3; i++) {
			if (i < 2)
				xlate_feed(a, llama_chat_stream + pieces[i][0], pieces[i][1], T0 + 5000000, UNIX);
			else
				assert_true(xlate_finish(a, T0 + 9000000, UNIX + 1, &why));
			p = xlate_take(a, &n);
			out = xreallocarray(out, out_len + n + 1, 1);
			memcpy(out + out_len, p, n);
			out_len += n;
			out[out_len] = '\0';
		}
		assert_string_equal(out, whole.out);
		free(out);
		xlate_answer_free(a);
	}

	/* CRLF line ends, comments, event: lines, no space after "data:". */
	char *crlf = xmalloc(2 * len + 64);
	size_t k = (size_t)sprintf(crlf, ": keep-alive\r\nevent: message\r\n");
	for (size_t i = 0; i < len; i++) {
		if (strncmp(llama_chat_stream + i, "data: ", 6) == 0) {
			memcpy(crlf + k, "data:", 5);
			k += 5;
			i += 5;
			continue;
		}
		if (llama_chat_stream[i] == '\n')
			crlf[k++] = '\r';
		crlf[k++] = llama_chat_stream[i];
	}
	crlf[k] = '\0';
	struct run r = run(XLATE_CHAT, true, crlf, 3);
	assert_true(r.ok);
	assert_string_equal(r.out, whole.out);
	free(r.out);
	free(crlf);
	free(whole.out);
}

static const char *tool_stream =
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_A\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"ci\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\":\\\"Par\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_B\",\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"is\\\"}\"}}]},\"finish_reason\":null}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":20}}\n\n"
    "data: [DONE]\n\n";

static void
test_stream_tool_calls(void **state)
{
	struct run res = run(XLATE_CHAT, true, tool_stream, 0);
	struct run bytes = run(XLATE_CHAT, true, tool_stream, 1);
	json_t *l = lines_of(res.out);

	assert_true(res.ok);
	assert_string_equal(bytes.out, res.out);
	assert_int_equal(json_array_size(l), 2);
	assert_at(l, "0.message",
	    "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":["
	    "{\"id\":\"call_A\",\"function\":{\"index\":0,\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}},"
	    "{\"id\":\"call_B\",\"function\":{\"index\":1,\"name\":\"get_time\",\"arguments\":{}}}]}");
	assert_at(l, "0.done", "false");
	assert_at(l, "1.done", "true");
	assert_at(l, "1.done_reason", "\"stop\"");
	assert_at(l, "1.eval_count", "20");
	assert_at(l, "1.prompt_eval_count", "30");
	json_decref(l);
	free(res.out);
	free(bytes.out);

	/* Arguments that are not an object fail the answer. */
	res = run(XLATE_CHAT, true,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"[1\"}}]}}]}\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n",
	    0);
	assert_false(res.ok);
	assert_string_equal(res.why, "backend tool call arguments are not a JSON object");
	l = lines_of(res.out);
	assert_int_equal(json_array_size(l), 2);
	assert_at(l, "1", "{\"error\":\"backend tool call arguments are not a JSON object\"}");
	json_decref(l);
	free(res.out);
}

/* The final line waits for both finish_reason and usage, in either order. */
static void
test_stream_usage_order(void **state)
{
	static const char *finish = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n";
	static const char *usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n";
	static const char *content = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ab\"}}]}\n\n";
	struct xlate_answer *a = xlate_answer_new(XLATE_GENERATE, "g", true, T0);
	const char *p, *why;
	size_t n;
	json_t *o;

	xlate_feed(a, content, strlen(content), T0 + 100, UNIX);
	p = xlate_take(a, &n);
	assert_true(n > 0);
	o = json_loadb(p, n, 0, NULL);
	assert_at(o, "response", "\"ab\"");
	json_decref(o);
	xlate_take(a, &n);
	assert_int_equal(n, 0);
	xlate_feed(a, finish, strlen(finish), T0 + 200, UNIX);
	xlate_take(a, &n);
	assert_int_equal(n, 0); /* no usage yet */
	xlate_feed(a, usage, strlen(usage), T0 + 300, UNIX);
	p = xlate_take(a, &n);
	o = json_loadb(p, n, 0, NULL);
	assert_non_null(o);
	assert_at(o, "done", "true");
	assert_at(o, "done_reason", "\"length\"");
	assert_at(o, "response", "\"\"");
	assert_at(o, "context", "");
	assert_at(o, "eval_count", "2");
	assert_at(o, "total_duration", "300");
	json_decref(o);
	xlate_feed(a, "data: [DONE]\n\n", 14, T0 + 400, UNIX);
	assert_true(xlate_finish(a, T0 + 500, UNIX, &why));
	xlate_take(a, &n);
	assert_int_equal(n, 0); /* one final line only */
	xlate_answer_free(a);

	/* Usage first (vLLM with continuous usage), then finish. */
	a = xlate_answer_new(XLATE_CHAT, "c", true, T0);
	xlate_feed(a, usage, strlen(usage), T0 + 100, UNIX);
	xlate_take(a, &n);
	assert_int_equal(n, 0);
	xlate_feed(a, finish, strlen(finish), T0 + 200, UNIX);
	p = xlate_take(a, &n);
	o = json_loadb(p, n, 0, NULL);
	assert_at(o, "done_reason", "\"length\"");
	assert_at(o, "prompt_eval_count", "7");
	json_decref(o);
	assert_true(xlate_finish(a, T0 + 500, UNIX, &why));
	xlate_answer_free(a);
}

/* No usage and no timings: counts from the deltas, durations measured. */
static void
test_stream_measured(void **state)
{
	static const char *d1 = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
	static const char *d2 = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
	static const char *d3 = "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"t\"}}]}\n\n";
	static const char *end = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
	struct xlate_answer *a = xlate_answer_new(XLATE_CHAT, "c", true, T0);
	const char *p, *why;
	size_t n;
	json_t *l;

	xlate_feed(a, d1, strlen(d1), T0 + 1000, UNIX);
	xlate_feed(a, d2, strlen(d2), T0 + 3000, UNIX);
	xlate_feed(a, d3, strlen(d3), T0 + 4000, UNIX);
	xlate_feed(a, end, strlen(end), T0 + 10000, UNIX + 123456000);
	assert_true(xlate_finish(a, T0 + 11000, UNIX, &why));
	p = xlate_take(a, &n);
	l = lines_of(p);
	assert_int_equal(json_array_size(l), 3);
	assert_at(l, "1.message", "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"t\"}");
	assert_at(l, "2.created_at", "\"2025-11-24T16:00:00.123456Z\"");
	assert_at(l, "2.total_duration", "10000");
	assert_at(l, "2.prompt_eval_duration", "3000");
	assert_at(l, "2.eval_duration", "7000");
	assert_at(l, "2.eval_count", "2");
	assert_at(l, "2.prompt_eval_count", "");
	json_decref(l);
	xlate_answer_free(a);

	/* timings without usage: predicted_n, prompt_n + cache_n. */
	struct run r = run(XLATE_CHAT, true,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
	    "\"timings\":{\"prompt_n\":3,\"cache_n\":5,\"predicted_n\":9,\"prompt_ms\":1.5,\"predicted_ms\":2}}\n"
	    "data: [DONE]\n",
	    0);
	assert_true(r.ok);
	l = lines_of(r.out);
	assert_at(l, "1.eval_count", "9");
	assert_at(l, "1.prompt_eval_count", "8");
	assert_at(l, "1.prompt_eval_duration", "1500000");
	assert_at(l, "1.eval_duration", "2000000");
	json_decref(l);
	free(r.out);

	/* The finish chunk and the end of the body, no [DONE], no usage. */
	r = run(XLATE_CHAT, true,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
	    0);
	assert_true(r.ok);
	l = lines_of(r.out);
	assert_int_equal(json_array_size(l), 2);
	assert_at(l, "1.done", "true");
	json_decref(l);
	free(r.out);
}

static void
test_stream_thinking_generate(void **state)
{
	struct run r = run(XLATE_GENERATE, true,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"!\",\"content\":\"ok\"}}]}\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n"
	    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n"
	    "data: [DONE]\n",
	    0);
	json_t *l = lines_of(r.out);

	assert_true(r.ok);
	assert_int_equal(json_array_size(l), 3);
	assert_at(l, "0", "{\"model\":\"client:model\",\"created_at\":\"2025-11-24T16:00:00Z\",\"response\":\"\",\"thinking\":\"hmm\",\"done\":false}");
	assert_at(l, "1.response", "\"ok\"");
	assert_at(l, "1.thinking", "\"!\"");
	assert_at(l, "2.response", "\"\"");
	assert_at(l, "2.message", "");
	json_decref(l);
	free(r.out);
}

/* /v1/completions stream (raw generate): text deltas, usage on the finish chunk. */
static void
test_stream_completions(void **state)
{
	struct run r = run(XLATE_GENERATE, true,
	    "data: {\"choices\":[{\"text\":\"Hi\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"object\":\"text_completion\"}\n\n"
	    "data: {\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}],"
	    "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1},\"timings\":{\"prompt_ms\":1,\"predicted_ms\":1}}\n\n"
	    "data: [DONE]\n\n",
	    0);
	json_t *l = lines_of(r.out);

	assert_true(r.ok);
	assert_int_equal(json_array_size(l), 2);
	assert_at(l, "0.response", "\"Hi\"");
	assert_at(l, "1.done_reason", "\"length\"");
	assert_at(l, "1.prompt_eval_count", "4");
	json_decref(l);
	free(r.out);
}

static void
test_stream_error_event(void **state)
{
	static const char *body =
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
	    "data: {\"error\":{\"code\":500,\"message\":\"Compute error.\",\"type\":\"server_error\"}}\n\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}\n\n";
	struct run r = run(XLATE_CHAT, true, body, 0);
	struct run b = run(XLATE_CHAT, true, body, 1);
	json_t *l = lines_of(r.out);

	assert_false(r.ok);
	assert_string_equal(r.why, "Compute error.");
	assert_string_equal(b.out, r.out);
	assert_int_equal(json_array_size(l), 2);
	assert_at(l, "1", "{\"error\":\"Compute error.\"}");
	json_decref(l);
	free(r.out);
	free(b.out);

	/* Before any output: no output, the caller answers. */
	r = run(XLATE_CHAT, true, "data: {\"error\":{\"message\":\"no slot\"}}\n\n", 0);
	assert_false(r.ok);
	assert_string_equal(r.why, "no slot");
	assert_string_equal(r.out, "");
	free(r.out);

	/* A chunk that is not JSON. */
	r = run(XLATE_CHAT, true, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\ndata: {oops\n", 0);
	assert_false(r.ok);
	assert_non_null(strstr(r.why, "not JSON"));
	assert_non_null(strstr(r.out, "\n{\"error\":\"backend sent a stream chunk that is not JSON\"}\n"));
	free(r.out);
}

static void
test_stream_cut(void **state)
{
	struct run r = run(XLATE_CHAT, true,
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"",
	    0);
	json_t *l = lines_of(r.out);

	assert_false(r.ok);
	assert_string_equal(r.why, "backend sent a stream chunk that is not JSON");
	assert_int_equal(json_array_size(l), 2);
	assert_at(l, "1", "{\"error\":\"backend sent a stream chunk that is not JSON\"}");
	json_decref(l);
	free(r.out);

	r = run(XLATE_CHAT, true, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", 0);
	assert_false(r.ok);
	assert_string_equal(r.why, "backend stream ended before its finish");
	l = lines_of(r.out);
	assert_int_equal(json_array_size(l), 2);
	assert_at(l, "1", "{\"error\":\"backend stream ended before its finish\"}");
	json_decref(l);
	free(r.out);

	/* Nothing sent yet: no output at all. */
	r = run(XLATE_CHAT, true, "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n", 0);
	assert_false(r.ok);
	assert_string_equal(r.out, "");
	free(r.out);
	r = run(XLATE_CHAT, true, "", 0);
	assert_false(r.ok);
	assert_string_equal(r.why, "backend answer was empty");
	free(r.out);

	/* A non-stream client never gets partial output. */
	r = run(XLATE_CHAT, false, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", 0);
	assert_false(r.ok);
	assert_string_equal(r.out, "");
	free(r.out);
}

/* ---- non-stream answers ---- */

static void
test_nonstream_chat(void **state)
{
	static const char *body =
	    "{\"choices\":[{\"finish_reason\":\"tool_calls\",\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
	    "\"reasoning_content\":\"think\",\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
	    "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"},\"id\":\"r4nd0m\"}]}}],"
	    "\"created\":1764000000,\"model\":\"qwen3:8b\",\"object\":\"chat.completion\","
	    "\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":14,\"total_tokens\":17},\"id\":\"chatcmpl-x\","
	    "\"timings\":{\"cache_n\":10,\"prompt_n\":4,\"prompt_ms\":21.5,\"predicted_n\":3,\"predicted_ms\":60.2}}";
	struct run r = run(XLATE_CHAT, false, body, 0);
	struct run b = run(XLATE_CHAT, false, body, 1);
	json_t *o = parse(r.out);

	assert_true(r.ok);
	assert_string_equal(b.out, r.out);
	assert_null(strchr(r.out, '\n')); /* one object, no newline, like Ollama */
	assert_at(o, "",
	    "{\"model\":\"client:model\",\"created_at\":\"2025-11-24T16:00:00.000000001Z\","
	    "\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"think\",\"tool_calls\":["
	    "{\"id\":\"r4nd0m\",\"function\":{\"index\":0,\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
	    "\"done\":true,\"done_reason\":\"stop\",\"total_duration\":9000000,\"load_duration\":0,"
	    "\"prompt_eval_count\":14,\"prompt_eval_duration\":21500000,\"eval_count\":3,\"eval_duration\":60200000}");
	json_decref(o);
	free(r.out);
	free(b.out);

	/* vLLM: no timings; no delta times either. */
	r = run(XLATE_CHAT, false,
	    "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"content\":\"Hello!\"},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}",
	    0);
	o = parse(r.out);
	assert_true(r.ok);
	assert_at(o, "message", "{\"role\":\"assistant\",\"content\":\"Hello!\"}");
	assert_at(o, "done_reason", "\"length\"");
	assert_at(o, "prompt_eval_duration", "");
	assert_at(o, "eval_duration", "9000000");
	assert_at(o, "eval_count", "2");
	json_decref(o);
	free(r.out);

	/* A stream client answered with a whole object: one line, then the final. */
	r = run(XLATE_CHAT, true,
	    "{\"choices\":[{\"index\":0,\"message\":{\"content\":\"Hey\"},\"finish_reason\":\"stop\"}]}", 0);
	assert_true(r.ok);
	o = lines_of(r.out);
	assert_int_equal(json_array_size(o), 2);
	assert_at(o, "0.message.content", "\"Hey\"");
	assert_at(o, "1.done", "true");
	json_decref(o);
	free(r.out);

	/* Broken or empty-handed bodies. */
	r = run(XLATE_CHAT, false, "{\"choices\":[", 0);
	assert_false(r.ok);
	assert_string_equal(r.why, "backend answer is not JSON");
	assert_string_equal(r.out, "");
	free(r.out);
	r = run(XLATE_CHAT, false, "{\"object\":\"chat.completion\"}", 0);
	assert_false(r.ok);
	assert_string_equal(r.why, "backend answer has no choices");
	free(r.out);
	r = run(XLATE_CHAT, false, "{\"error\":{\"message\":\"boom\"}}", 0);
	assert_false(r.ok);
	assert_string_equal(r.why, "boom");
	free(r.out);
}

static void
test_nonstream_generate(void **state)
{
	struct run r = run(XLATE_GENERATE, false,
	    "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"42\",\"reasoning_content\":\"calc\"},"
	    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1}}",
	    0);
	json_t *o = parse(r.out);

	assert_true(r.ok);
	assert_at(o, "response", "\"42\"");
	assert_at(o, "thinking", "\"calc\"");
	assert_at(o, "message", "");
	assert_at(o, "done_reason", "\"stop\"");
	assert_at(o, "prompt_eval_count", "9");
	json_decref(o);
	free(r.out);

	/* /v1/completions (raw). */
	r = run(XLATE_GENERATE, false,
	    "{\"object\":\"text_completion\",\"choices\":[{\"text\":\" world\",\"index\":0,\"logprobs\":null,"
	    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}",
	    0);
	o = parse(r.out);
	assert_true(r.ok);
	assert_at(o, "response", "\" world\"");
	assert_at(o, "thinking", "");
	json_decref(o);
	free(r.out);
}

static void
test_embed_answer(void **state)
{
	/* Out of order indexes; 17 significant digits survive. */
	static const char *body =
	    "{\"model\":\"e\",\"object\":\"list\",\"usage\":{\"prompt_tokens\":5,\"total_tokens\":5},\"data\":["
	    "{\"embedding\":[0.5,-1],\"index\":1,\"object\":\"embedding\"},"
	    "{\"embedding\":[0.012345678901234567,1e-30,3],\"index\":0,\"object\":\"embedding\"}]}";
	struct run r = run(XLATE_EMBED, false, body, 0);
	struct run b = run(XLATE_EMBED, false, body, 1);
	json_t *o = parse(r.out), *want;

	assert_true(r.ok);
	assert_string_equal(b.out, r.out);
	assert_at(o, "model", "\"client:model\"");
	assert_at(o, "embeddings.1", "[0.5,-1]");
	assert_at(o, "total_duration", "9000000");
	assert_at(o, "load_duration", "0");
	assert_at(o, "prompt_eval_count", "5");
	want = parse("[0.012345678901234567,1e-30,3]");
	json_t *got = json_array_get(json_object_get(o, "embeddings"), 0);
	assert_true(json_equal(got, want));
	assert_true(json_real_value(json_array_get(want, 0)) == json_real_value(json_array_get(got, 0)));
	json_decref(want);
	json_decref(o);
	free(r.out);
	free(b.out);

	r = run(XLATE_EMBEDDINGS, false,
	    "{\"data\":[{\"embedding\":[0.25,0.75],\"index\":0}],\"usage\":{\"prompt_tokens\":2}}", 0);
	assert_true(r.ok);
	assert_string_equal(r.out, "{\"embedding\":[0.25,0.75]}");
	free(r.out);

	r = run(XLATE_EMBED, false, "{\"data\":[{\"embedding\":[1],\"index\":0},{\"embedding\":[2],\"index\":0}]}", 0);
	assert_false(r.ok);
	assert_string_equal(r.why, "backend embeddings are malformed");
	free(r.out);
	r = run(XLATE_EMBED, false, "{\"data\":[]}", 0);
	assert_false(r.ok);
	free(r.out);
	r = run(XLATE_EMBED, true, "{\"error\":{\"message\":\"This server does not support embeddings.\"}}", 0);
	assert_false(r.ok);
	assert_string_equal(r.why, "This server does not support embeddings.");
	assert_string_equal(r.out, "");
	free(r.out);
}

/* ---- errors ---- */

static void
check_error(const char *body, long status, const char *want)
{
	char *m = xlate_error_message(body, body != NULL ? strlen(body) : 0, status);

	assert_string_equal(m, want);
	free(m);
}

static void
test_error_message(void **state)
{
	check_error("{\"error\":{\"code\":400,\"message\":\"the request exceeds the available context size, try increasing it\","
	            "\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":9000,\"n_ctx\":4096}}",
	    400, "the request exceeds the available context size, try increasing it");
	check_error("{\"error\":{\"message\":\"The model `x` does not exist.\",\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}",
	    404, "The model `x` does not exist.");
	check_error("{\"object\":\"error\",\"message\":\"old vllm\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}", 400,
	    "old vllm");
	check_error("{\"error\":\"ollama style\"}", 500, "ollama style");
	check_error("{\"detail\":\"Not Found\"}", 404, "Not Found");
	check_error("{\"detail\":[{\"loc\":[\"body\"],\"msg\":\"bad\"}]}", 422, "[{\"loc\":[\"body\"],\"msg\":\"bad\"}]");
	check_error("  Internal Server Error\r\n", 500, "Internal Server Error");
	check_error("bad \xff byte", 502, "bad \xef\xbf\xbd byte");
	check_error("", 503, "backend answered HTTP 503");
	check_error(NULL, 500, "backend answered HTTP 500");
	check_error("{\"foo\":1}", 500, "backend answered HTTP 500");
	check_error("{\"error\":{\"message\":\"\"}}", 400, "backend answered HTTP 400");

	char *big = xmalloc(5001);
	memset(big, 'x', 5000);
	big[5000] = '\0';
	char *m = xlate_error_message(big, 5000, 500);
	assert_int_equal(strlen(m), 1000);
	free(m);
	free(big);
}

static void
test_take(void **state)
{
	struct xlate_answer *a = xlate_answer_new(XLATE_CHAT, "c", true, T0);
	const char *chunk = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n";
	const char *p, *why;
	size_t n, first;

	p = xlate_take(a, &n);
	assert_int_equal(n, 0);
	assert_non_null(p);
	assert_false(xlate_started(a));
	xlate_feed(a, chunk, strlen(chunk), T0, UNIX);
	xlate_feed(a, chunk, strlen(chunk), T0, UNIX); /* not taken in between: both kept */
	assert_true(xlate_started(a));
	p = xlate_take(a, &n);
	first = n;
	assert_true(n > 0);
	assert_int_equal(memcmp(p, p + n / 2, n / 2), 0);
	xlate_take(a, &n);
	assert_int_equal(n, 0);
	xlate_feed(a, chunk, strlen(chunk), T0, UNIX);
	xlate_take(a, &n);
	assert_int_equal(n, first / 2);
	assert_false(xlate_finish(a, T0, UNIX, &why));
	xlate_answer_free(a);
	xlate_answer_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_of),
		cmocka_unit_test(test_chat_basic),
		cmocka_unit_test(test_chat_bad_messages),
		cmocka_unit_test(test_chat_images),
		cmocka_unit_test(test_chat_tool_history),
		cmocka_unit_test(test_chat_format),
		cmocka_unit_test(test_chat_think),
		cmocka_unit_test(test_options_llamacpp),
		cmocka_unit_test(test_options_generic),
		cmocka_unit_test(test_options_edges),
		cmocka_unit_test(test_generate_chat),
		cmocka_unit_test(test_generate_raw),
		cmocka_unit_test(test_embed_requests),
		cmocka_unit_test(test_local_answers),
		cmocka_unit_test(test_stream_chat),
		cmocka_unit_test(test_stream_any_split),
		cmocka_unit_test(test_stream_tool_calls),
		cmocka_unit_test(test_stream_usage_order),
		cmocka_unit_test(test_stream_measured),
		cmocka_unit_test(test_stream_thinking_generate),
		cmocka_unit_test(test_stream_completions),
		cmocka_unit_test(test_stream_error_event),
		cmocka_unit_test(test_stream_cut),
		cmocka_unit_test(test_nonstream_chat),
		cmocka_unit_test(test_nonstream_generate),
		cmocka_unit_test(test_embed_answer),
		cmocka_unit_test(test_error_message),
		cmocka_unit_test(test_take),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
