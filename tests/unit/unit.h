/*
 * unit.h - helpers shared by the cmocka unit tests: an assert that prints both values, and a
 * fresh temporary directory per test (*state is its path; path_in() names a file in it).
 * Include after <cmocka.h> (which needs setjmp.h, stdarg.h, stddef.h and stdint.h first).
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>

#define assert_ll_equal(a, b)                                                                      \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b)                                                                      \
			fail_msg("%s == %s: %lld != %lld", #a, #b, _a, _b);                        \
	} while (0)

static inline int
setup_dir(void **state)
{
	char *d = strdup("/tmp/cellvisor-unit.XXXXXX");
	if (!d || !mkdtemp(d))
		return -1;
	*state = d;
	return 0;
}

static inline int
teardown_dir(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
	int r = system(cmd);
	free(*state);
	return r == 0 ? 0 : -1;
}

static inline char *
path_in(void **state, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", (char *)*state, name) < 0)
		fail();
	return p;
}
