/*
 * Unit tests of the UTF-8 checks and the checked jansson helpers: client
 * bytes that are not UTF-8 must never reach json_pack unrepaired (issue 13:
 * GET /v1/models/%FF killed the daemon through json_dumps(NULL)).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "jsonx.h"
#include "log.h"
#include "route.h"
#include "utf8.h"

static bool
valid(const char *s)
{
	return utf8_valid(s, strlen(s));
}

static void
test_valid_and_invalid(void **state)
{
	assert_true(valid(""));
	assert_true(valid("plain ascii"));
	assert_true(valid("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));   /* é € 😀 */
	assert_true(valid("\xF4\x8F\xBF\xBF"));                          /* U+10FFFF */
	assert_false(valid("\xFF"));
	assert_false(valid("a\x80" "b"));                                 /* lone continuation */
	assert_false(valid("\xC0\xAF"));                                  /* overlong '/' */
	assert_false(valid("\xC1\xBF"));
	assert_false(valid("\xE0\x80\xAF"));                              /* overlong, 3 bytes */
	assert_false(valid("\xF0\x80\x80\xAF"));                          /* overlong, 4 bytes */
	assert_false(valid("\xED\xA0\x80"));                              /* surrogate U+D800 */
	assert_false(valid("\xF4\x90\x80\x80"));                          /* past U+10FFFF */
	assert_false(valid("\xC3"));                                      /* truncated */
	assert_false(utf8_valid("a\0b", 3));                              /* NUL */
}

static void
test_sanitize_replaces_each_bad_byte(void **state)
{
	char *s = utf8_sanitize("a\xFF" "b\xC0\xAF" "c\xC3\xA9");

	assert_string_equal(s, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c\xC3\xA9");
	assert_true(valid(s));
	free(s);
}

static void
test_jx_helpers_never_null(void **state)
{
	json_t *o = jx_pack("{s:o,s:o}", "name", jx_str("bad\xFF"), "rate", jx_real(NAN));
	size_t len;
	char *s;

	assert_non_null(o);
	s = jx_dump(o, &len);
	assert_non_null(s);
	assert_int_equal(len, strlen(s));
	assert_string_equal(s, "{\"name\":\"bad\xEF\xBF\xBD\",\"rate\":0.0}");
	free(s);
	json_decref(o);
	/* Raw json_pack refuses invalid UTF-8: jx_pack returns NULL (logged)
	 * and jx_dump of NULL is NULL, not a crash. */
	o = jx_pack("{s:s}", "name", "bad\xFF");
	assert_null(o);
	assert_null(jx_dump(o, &len));
}

static void
test_error_bodies_from_bad_bytes(void **state)
{
	size_t len;
	char *s = api_error_text(route_find("/v1/models"), 404, "model \"\xFF\" not found", &len);
	json_t *o = json_loads(s, 0, NULL);

	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "type")),
	    "not_found_error");
	json_decref(o);
	free(s);
	s = api_error_text(NULL, 400, "bad \xC0\xAF", &len);
	assert_string_equal(s, "{\"error\":\"bad \xEF\xBF\xBD\xEF\xBF\xBD\"}");
	free(s);
}

int
main(void)
{
	log_init("test_utf8", LOG_LEVEL_ERR + 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_and_invalid),
		cmocka_unit_test(test_sanitize_replaces_each_bad_byte),
		cmocka_unit_test(test_jx_helpers_never_null),
		cmocka_unit_test(test_error_bodies_from_bad_bytes),
	};

	return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
