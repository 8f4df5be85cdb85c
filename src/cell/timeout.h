/*
 * timeout.h - which wall-clock cap bounds a run, and how it is reported (DESIGN.md §4).
 *
 * Up to four caps: the operator's --timeout flag and CELLOS_RUN_TIMEOUT_MS, the spec's
 * run.timeoutMs and the TTL (lifetime.ttlSeconds). The tightest set cap wins; on a tie the
 * operator's (flag, then env) wins over the spec, and the spec over the TTL.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

enum timeout_source {
	TIMEOUT_NONE,
	TIMEOUT_FLAG,
	TIMEOUT_ENV,
	TIMEOUT_SPEC,
	TIMEOUT_TTL,
	_TIMEOUT_SOURCE_MAX,
};

struct timeout_cap {
	enum timeout_source source;
	uint64_t ms;
};

/* Each argument 0 when unset. */
struct timeout_cap timeout_effective(uint64_t flag_ms, uint64_t env_ms, uint64_t spec_ms,
    uint64_t ttl_seconds);

/*
 * The spawnError text for a cap that fired, e.g.
 * "command timed out after 100 ms (CELLOS_RUN_TIMEOUT_MS)" or
 * "cell killed by TTL watchdog after 1000 ms (ttl_seconds=1)".
 */
void timeout_message(const struct timeout_cap *cap, uint64_t ttl_seconds, char *buf, size_t size);

/* Parse a decimal millisecond count (1 .. one week). 0 or -EINVAL. */
int timeout_parse_ms(const char *s, uint64_t *ret);
