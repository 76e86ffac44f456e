/*
 * Unit tests for the memory budget: the two shipped examples reproduce the
 * seed report's figures (SPEC section 3), and the tables printed by
 * budget_print / budget_check_file carry every row, the host total against
 * its budget, the tier totals and "configuration OK".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "config.h"
#include "log.h"
#include "test_util.h"
#include "xmalloc.h"

/* A GB figure as printed: tenths, rounded. */
static long
tenths(double gb)
{
	return lround(gb * 10.0);
}

static struct config *
load_example(const char *rel)
{
	struct config_diags d = {0};
	char *file = test_path(rel);
	struct config *cfg = config_load(file, &d);

	if (cfg == NULL || d.n != 0) {
		diags_dump(&d);
		fail_msg("%s: did not load cleanly", file);
	}
	config_diags_free(&d);
	free(file);
	return cfg;
}

/* Run budget_check_file on TOP/rel; *out and *err get what it printed (caller frees). */
static int
check_file(const char *rel, char **out, char **err)
{
	char *file = test_path(rel);
	size_t on, en;
	FILE *o = open_memstream(out, &on), *e = open_memstream(err, &en);
	int rc;

	assert_non_null(o);
	assert_non_null(e);
	rc = budget_check_file(file, o, e);
	fclose(o);
	fclose(e);
	free(file);
	return rc;
}

static void
test_dgx_spark_figures(void **state)
{
	struct config *cfg = load_example("etc/examples/dgx-spark.conf");

	assert_int_equal(cfg->n_tiers, 3);
	assert_int_equal(tenths(budget_tier_gb(cfg, 0)), 146);
	assert_int_equal(tenths(budget_tier_gb(cfg, 1)), 336);
	assert_int_equal(tenths(budget_tier_gb(cfg, 2)), 249);
	assert_int_equal(tenths(budget_total_gb(cfg)), 731);
	assert_int_equal(tenths(cfg->hosts[0].planned_gb), 731);
	config_unref(cfg);
}

static void
test_evo_x2_figures(void **state)
{
	struct config *cfg = load_example("etc/examples/evo-x2.conf");

	assert_int_equal(cfg->n_tiers, 3);
	assert_int_equal(tenths(budget_tier_gb(cfg, 0)), 122);
	assert_int_equal(tenths(budget_tier_gb(cfg, 1)), 276);
	assert_int_equal(tenths(budget_tier_gb(cfg, 2)), 125);
	assert_int_equal(tenths(budget_total_gb(cfg)), 523);
	assert_true(cfg->hosts[0].memory_gb == 92.0);
	config_unref(cfg);
}

/* The tier totals always add up to the grand total. */
static void
test_tiers_sum_to_total(void **state)
{
	static const char *const files[] = {
		"etc/examples/dgx-spark.conf", "etc/examples/evo-x2.conf",
		"tests/config/good/multi-host.conf", "tests/config/good/auto-placement.conf",
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct config *cfg = load_example(files[i]);
		double sum = 0;
		for (int t = 0; t < cfg->n_tiers; t++)
			sum += budget_tier_gb(cfg, t);
		assert_true(fabs(sum - budget_total_gb(cfg)) < 1e-9);
		config_unref(cfg);
	}
}

static void
test_check_prints_dgx_table(void **state)
{
	static const char *const want[] = {
		"host sparky (http://127.0.0.1:11434): 128.0 GB memory, 8.0 GB reserved, 84 slots",
		"  executive              executive          16      2.5      4.8       7.3\n",
		"  operator               executive          16      2.5      4.8       7.3\n",
		"  technical_director     directors          12      5.2      6.0      11.2\n",
		"  research_director      directors          12      5.2      6.0      11.2\n",
		"  creative_director      directors          12      5.2      6.0      11.2\n",
		"  coder                  specialists         8      9.3      6.4      15.7\n",
		"  analyst                specialists         8      5.2      4.0       9.2\n",
		"73.1 of 120.0 GB budget (61%)",
		"  executive              weight    8       14.6 GB\n",
		"  directors              weight    4       33.6 GB\n",
		"  specialists            weight    1       24.9 GB\n",
		"  total                                    73.1 GB\n",
	};
	char *out, *err;
	int rc = check_file("etc/examples/dgx-spark.conf", &out, &err);

	assert_int_equal(rc, 0);
	assert_string_equal(err, "");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (strstr(out, want[i]) == NULL)
			fail_msg("missing \"%s\" in:\n%s", want[i], out);
	/* "configuration OK" is the last line. */
	assert_true(strlen(out) > 17);
	assert_string_equal(out + strlen(out) - 17, "configuration OK\n");
	free(out);
	free(err);
}

static void
test_check_prints_evo_x2_totals(void **state)
{
	static const char *const want[] = {
		"host arcy (http://127.0.0.1:11434): 92.0 GB memory, 0.0 GB reserved, 52 slots",
		" 12.2 GB\n", " 27.6 GB\n", " 12.5 GB\n", " 52.3 GB\n",
		"52.3 of 92.0 GB budget", "configuration OK\n",
	};
	char *out, *err;

	assert_int_equal(check_file("etc/examples/evo-x2.conf", &out, &err), 0);
	assert_string_equal(err, "");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (strstr(out, want[i]) == NULL)
			fail_msg("missing \"%s\" in:\n%s", want[i], out);
	free(out);
	free(err);
}

/* Adaptive placements show their cap; a second host gets its own table. */
static void
test_print_auto_and_hosts(void **state)
{
	struct config *cfg = load_example("tests/config/good/auto-placement.conf");
	char *out;
	size_t n;
	FILE *f = open_memstream(&out, &n);

	budget_print(cfg, f);
	fclose(f);
	assert_non_null(strstr(out, "auto<=24"));
	assert_non_null(strstr(out, "auto<=32"));
	assert_null(strstr(out, "configuration OK"));   /* budget_check_file's job */
	free(out);
	config_unref(cfg);

	cfg = load_example("tests/config/good/multi-host.conf");
	f = open_memstream(&out, &n);
	budget_print(cfg, f);
	fclose(f);
	assert_non_null(strstr(out, "host sparky (http://192.168.1.20:11434)"));
	assert_non_null(strstr(out, "host arcy (http://192.168.1.21:11434)"));
	assert_non_null(strstr(out, "34.2 of 120.0 GB budget"));
	assert_non_null(strstr(out, "15.3 of 92.0 GB budget"));
	assert_non_null(strstr(out, "49.5 GB\n"));
	free(out);
	config_unref(cfg);
}

/* A broken config: exit status 78, the diagnostics on err, nothing on out. */
static void
test_check_broken(void **state)
{
	char *out, *err;

	assert_int_equal(check_file("tests/config/broken/memory-overflow.conf", &out, &err), CONFIG_EXIT_ERROR);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "memory-overflow.conf:10: sparky: placements need 55.8 GB"));
	assert_non_null(strstr(err, "coder                parallel  16"));
	assert_null(strstr(err, "configuration OK"));
	free(out);
	free(err);

	assert_int_equal(check_file("tests/config/no-such-file.conf", &out, &err), CONFIG_EXIT_ERROR);
	assert_non_null(strstr(err, "no-such-file.conf:0: cannot read the configuration file"));
	free(out);
	free(err);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dgx_spark_figures),
		cmocka_unit_test(test_evo_x2_figures),
		cmocka_unit_test(test_tiers_sum_to_total),
		cmocka_unit_test(test_check_prints_dgx_table),
		cmocka_unit_test(test_check_prints_evo_x2_totals),
		cmocka_unit_test(test_print_auto_and_hosts),
		cmocka_unit_test(test_check_broken),
	};

	log_init("test_budget", LOG_LEVEL_ERR);
	return cmocka_run_group_tests_name("budget", tests, NULL, NULL);
}
