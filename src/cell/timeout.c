#include "cell/timeout.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "spec/spec.h"

struct timeout_cap
timeout_effective(uint64_t flag_ms, uint64_t env_ms, uint64_t spec_ms, uint64_t ttl_seconds)
{
	/* In tie-break order: a later candidate must be strictly tighter to win. */
	const struct timeout_cap candidates[] = {
	    {TIMEOUT_FLAG, flag_ms},
	    {TIMEOUT_ENV, env_ms},
	    {TIMEOUT_SPEC, spec_ms},
	    {TIMEOUT_TTL, ttl_seconds * 1000},
	};
	struct timeout_cap best = {TIMEOUT_NONE, 0};

	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		if (candidates[i].ms == 0)
			continue;
		if (best.source == TIMEOUT_NONE || candidates[i].ms < best.ms)
			best = candidates[i];
	}
	return best;
}

void
timeout_message(const struct timeout_cap *cap, uint64_t ttl_seconds, char *buf, size_t size)
{
	unsigned long long ms = (unsigned long long)cap->ms;

	switch (cap->source) {
	case TIMEOUT_FLAG:
		snprintf(buf, size, "command timed out after %llu ms (--timeout)", ms);
		break;
	case TIMEOUT_ENV:
		snprintf(buf, size, "command timed out after %llu ms (CELLOS_RUN_TIMEOUT_MS)", ms);
		break;
	case TIMEOUT_SPEC:
		snprintf(buf, size, "command timed out after %llu ms (spec.run.timeoutMs)", ms);
		break;
	case TIMEOUT_TTL:
		snprintf(buf, size, "cell killed by TTL watchdog after %llu ms (ttl_seconds=%llu)",
		    ms, (unsigned long long)ttl_seconds);
		break;
	default:
		snprintf(buf, size, "no timeout");
		break;
	}
}

int
timeout_parse_ms(const char *s, uint64_t *ret)
{
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > SPEC_MAX_TIMEOUT_MS)
		return -EINVAL;
	*ret = v;
	return 0;
}
