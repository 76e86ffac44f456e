/*
 * Unit tests of auth: a key presented as "Authorization: Bearer KEY" or as
 * "x-api-key: KEY" finds its index (the key's name is looked up by it),
 * a wrong, partial, longer or empty key finds nothing, and with no keys
 * configured everything passes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth.h"
#include "log.h"

static char k1[] = "key-one", k2[] = "key-two", k3[] = "sk-ant-three";
static char *keys[] = {k1, k2, k3};
#define N 3

static void
test_bearer(void **state)
{
	assert_int_equal(auth_find(keys, N, "Bearer key-one", NULL), 0);
	assert_int_equal(auth_find(keys, N, "Bearer key-two", NULL), 1);
	assert_int_equal(auth_find(keys, N, "bearer   sk-ant-three  ", NULL), 2); /* scheme in any case, blanks */
	assert_int_equal(auth_find(keys, N, "BEARER key-two\t", NULL), 1);
	assert_int_equal(auth_find(keys, N, "Bearer key-on", NULL), AUTH_NO_MATCH);   /* a prefix */
	assert_int_equal(auth_find(keys, N, "Bearer key-one1", NULL), AUTH_NO_MATCH); /* longer */
	assert_int_equal(auth_find(keys, N, "Bearer KEY-ONE", NULL), AUTH_NO_MATCH);  /* keys are exact */
	assert_int_equal(auth_find(keys, N, "Bearer ", NULL), AUTH_NO_MATCH);
	assert_int_equal(auth_find(keys, N, "Basic key-one", NULL), AUTH_NO_MATCH);
	assert_int_equal(auth_find(keys, N, "key-one", NULL), AUTH_NO_MATCH);
	assert_int_equal(auth_find(keys, N, NULL, NULL), AUTH_NO_MATCH);
}

static void
test_x_api_key(void **state)
{
	assert_int_equal(auth_find(keys, N, NULL, "sk-ant-three"), 2);
	assert_int_equal(auth_find(keys, N, NULL, " key-one "), 0);
	assert_int_equal(auth_find(keys, N, NULL, "Bearer key-one"), AUTH_NO_MATCH); /* the bare key only */
	assert_int_equal(auth_find(keys, N, NULL, "wrong"), AUTH_NO_MATCH);
	assert_int_equal(auth_find(keys, N, NULL, ""), AUTH_NO_MATCH);
	/* Both headers: a match in either passes, Bearer first. */
	assert_int_equal(auth_find(keys, N, "Bearer key-two", "key-one"), 1);
	assert_int_equal(auth_find(keys, N, "Bearer wrong", "key-one"), 0);
	assert_int_equal(auth_find(keys, N, "Bearer key-two", "wrong"), 1);
	assert_int_equal(auth_find(keys, N, "Bearer wrong", "wrong"), AUTH_NO_MATCH);
}

static void
test_open_and_first_match(void **state)
{
	char s1[] = "same", s2[] = "same";
	char *dup[] = {s1, s2};

	assert_int_equal(auth_find(keys, 0, NULL, NULL), AUTH_OPEN);
	assert_int_equal(auth_find(keys, 0, "Bearer anything", NULL), AUTH_OPEN);
	assert_int_equal(auth_find(dup, 2, "Bearer same", NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_x_api_key),
		cmocka_unit_test(test_open_and_first_match),
	};

	log_init("test_auth", LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
