#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool quiet;
static bool debug;
static void (*filter_fn)(char *buf, size_t size, void *userdata);
static void *filter_userdata;

void
log_set_filter(void (*fn)(char *buf, size_t size, void *userdata), void *userdata)
{
	filter_fn = fn;
	filter_userdata = fn ? userdata : NULL;
}

void *
log_filter_userdata(void)
{
	return filter_userdata;
}

void
log_set_quiet(bool q)
{
	quiet = q;
}

void
log_set_debug(bool d)
{
	debug = d;
}

bool
log_debug_enabled(void)
{
	return debug;
}

static void __attribute__((format(printf, 2, 0)))
log_v(const char *level, const char *fmt, va_list ap)
{
	char line[4096];
	int n = snprintf(line, sizeof(line), "cellvisor: %s", level);
	if (n < 0)
		return;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	if (filter_fn)
		filter_fn(line + n, sizeof(line) - (size_t)n - 1, filter_userdata);
	size_t len = strlen(line);
	line[len++] = '\n';
	/* One write per message so concurrent writers do not interleave lines. */
	(void)!fwrite(line, 1, len, stderr);
	fflush(stderr);
}

void
log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_v("", fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	if (quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_v("warning: ", fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	if (quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_v("", fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	if (!debug)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_v("debug: ", fmt, ap);
	va_end(ap);
}
