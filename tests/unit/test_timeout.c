/*
 * test_timeout.c - which cap bounds a run and how its firing is reported (DESIGN.md §4).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* cmocka needs setjmp.h, stdarg.h, stddef.h and stdint.h first. */
#include <cmocka.h>

#include "cell/timeout.h"
#include "spec/spec.h"

/* cmocka prints integers in hex; these print signed decimals and the expressions. */
#define assert_ll_equal(a, b)                                                                      \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b)                                                                      \
			fail_msg("%s == %s: %lld != %lld", #a, #b, _a, _b);                        \
	} while (0)

static const char *
source_name(enum timeout_source s)
{
	static const char *const names[_TIMEOUT_SOURCE_MAX] = {
	    [TIMEOUT_NONE] = "none",
	    [TIMEOUT_FLAG] = "flag",
	    [TIMEOUT_ENV] = "env",
	    [TIMEOUT_SPEC] = "spec",
	    [TIMEOUT_TTL] = "ttl",
	};
	return (unsigned)s < _TIMEOUT_SOURCE_MAX ? names[s] : "?";
}

#define assert_cap(cap, want_source, want_ms)                                                      \
	do {                                                                                       \
		struct timeout_cap _c = (cap);                                                     \
		assert_string_equal(source_name(_c.source), source_name(want_source));             \
		assert_ll_equal(_c.ms, (want_ms));                                                 \
	} while (0)

static void
test_no_cap(void **state)
{
	char buf[128];

	struct timeout_cap c = timeout_effective(0, 0, 0, 0);
	assert_cap(c, TIMEOUT_NONE, 0);
	timeout_message(&c, 0, buf, sizeof(buf));
	assert_string_equal(buf, "no timeout");
}

static void
test_single_caps(void **state)
{
	assert_cap(timeout_effective(300, 0, 0, 0), TIMEOUT_FLAG, 300);
	assert_cap(timeout_effective(0, 100, 0, 0), TIMEOUT_ENV, 100);
	assert_cap(timeout_effective(0, 0, 120, 0), TIMEOUT_SPEC, 120);
	assert_cap(timeout_effective(0, 0, 0, 1), TIMEOUT_TTL, 1000);
}

static void
test_tightest_wins(void **state)
{
	/* Each source wins when it is the strictly tightest, whatever its rank. */
	assert_cap(timeout_effective(50, 100, 120, 1), TIMEOUT_FLAG, 50);
	assert_cap(timeout_effective(5000, 100, 120, 1), TIMEOUT_ENV, 100);
	assert_cap(timeout_effective(5000, 4000, 120, 1), TIMEOUT_SPEC, 120);
	assert_cap(timeout_effective(5000, 4000, 3000, 2), TIMEOUT_TTL, 2000);
	assert_cap(timeout_effective(0, 5000, 0, 1), TIMEOUT_TTL, 1000);
	assert_cap(timeout_effective(0, 0, 999, 1), TIMEOUT_SPEC, 999);
	assert_cap(timeout_effective(0, 0, 1001, 1), TIMEOUT_TTL, 1000);
	/* unset (0) caps never win, even though 0 is "smaller" */
	assert_cap(timeout_effective(0, 7, 0, 0), TIMEOUT_ENV, 7);
}

static void
test_ties(void **state)
{
	/* flag > env > spec > ttl on equal caps */
	assert_cap(timeout_effective(1000, 1000, 1000, 1), TIMEOUT_FLAG, 1000);
	assert_cap(timeout_effective(0, 1000, 1000, 1), TIMEOUT_ENV, 1000);
	assert_cap(timeout_effective(0, 0, 1000, 1), TIMEOUT_SPEC, 1000);
	assert_cap(timeout_effective(1000, 1000, 0, 0), TIMEOUT_FLAG, 1000);
	assert_cap(timeout_effective(1000, 0, 1000, 0), TIMEOUT_FLAG, 1000);
	assert_cap(timeout_effective(0, 1000, 0, 1), TIMEOUT_ENV, 1000);
	assert_cap(timeout_effective(2000, 0, 0, 2), TIMEOUT_FLAG, 2000);
	/* a tie between the two loosest does not beat a tighter one */
	assert_cap(timeout_effective(0, 500, 1000, 1), TIMEOUT_ENV, 500);
}

static void
test_messages(void **state)
{
	char buf[128];
	struct timeout_cap c;

	c = timeout_effective(0, 100, 0, 0);
	timeout_message(&c, 0, buf, sizeof(buf));
	assert_string_equal(buf, "command timed out after 100 ms (CELLOS_RUN_TIMEOUT_MS)");

	c = timeout_effective(0, 0, 120, 0);
	timeout_message(&c, 0, buf, sizeof(buf));
	assert_string_equal(buf, "command timed out after 120 ms (spec.run.timeoutMs)");

	c = timeout_effective(0, 0, 0, 1);
	timeout_message(&c, 1, buf, sizeof(buf));
	assert_string_equal(buf, "cell killed by TTL watchdog after 1000 ms (ttl_seconds=1)");

	c = timeout_effective(300, 0, 0, 0);
	timeout_message(&c, 0, buf, sizeof(buf));
	assert_string_equal(buf, "command timed out after 300 ms (--timeout)");

	/* the message names the winner, with the winner's value */
	c = timeout_effective(0, 5000, 120, 60);
	timeout_message(&c, 60, buf, sizeof(buf));
	assert_string_equal(buf, "command timed out after 120 ms (spec.run.timeoutMs)");
	c = timeout_effective(0, 90000, 120000, 60);
	timeout_message(&c, 60, buf, sizeof(buf));
	assert_string_equal(buf, "cell killed by TTL watchdog after 60000 ms (ttl_seconds=60)");
	c = timeout_effective(0, SPEC_MAX_TIMEOUT_MS, 0, 0);
	timeout_message(&c, 0, buf, sizeof(buf));
	assert_string_equal(buf, "command timed out after 604800000 ms (CELLOS_RUN_TIMEOUT_MS)");
}

static void
test_message_truncates(void **state)
{
	char buf[16];
	struct timeout_cap c = {TIMEOUT_ENV, 100};

	timeout_message(&c, 0, buf, sizeof(buf));
	assert_string_equal(buf, "command timed o");
}

static void
test_parse_ms_valid(void **state)
{
	uint64_t v = 0;

	assert_ll_equal(timeout_parse_ms("1", &v), 0);
	assert_ll_equal(v, 1);
	assert_ll_equal(timeout_parse_ms("100", &v), 0);
	assert_ll_equal(v, 100);
	assert_ll_equal(timeout_parse_ms("0100", &v), 0);
	assert_ll_equal(v, 100);
	assert_ll_equal(timeout_parse_ms("604800000", &v), 0); /* one week, the maximum */
	assert_ll_equal(v, SPEC_MAX_TIMEOUT_MS);
}

static void
test_parse_ms_invalid(void **state)
{
	static const char *const bad[] = {
	    "",
	    "0",
	    "00",
	    "-1",
	    "+1",
	    " 1",
	    "1 ",
	    "1x",
	    "x1",
	    "1.5",
	    "1e3",
	    "0x10",
	    "604800001",            /* one week + 1 ms */
	    "18446744073709551615", /* UINT64_MAX */
	    "18446744073709551616", /* UINT64_MAX + 1: ERANGE */
	    "99999999999999999999999999",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 4242;
		int r = timeout_parse_ms(bad[i], &v);
		if (r != -EINVAL)
			fail_msg("timeout_parse_ms(\"%s\") = %d, want %d", bad[i], r, -EINVAL);
		/* ret_* is written only on success */
		if (v != 4242)
			fail_msg("timeout_parse_ms(\"%s\") wrote %llu on failure", bad[i],
			    (unsigned long long)v);
	}
	uint64_t v = 4242;
	assert_ll_equal(timeout_parse_ms(NULL, &v), -EINVAL);
	assert_ll_equal(v, 4242);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_cap),
	    cmocka_unit_test(test_single_caps),
	    cmocka_unit_test(test_tightest_wins),
	    cmocka_unit_test(test_ties),
	    cmocka_unit_test(test_messages),
	    cmocka_unit_test(test_message_truncates),
	    cmocka_unit_test(test_parse_ms_valid),
	    cmocka_unit_test(test_parse_ms_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
