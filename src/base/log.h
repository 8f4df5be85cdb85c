/*
 * log.h - the runner's own diagnostics on stderr.
 *
 * Library code logs at debug at most; the CLI edge logs once with context. Messages are
 * prefixed "cellvisor: ". Debug output is enabled with CELLVISOR_DEBUG=1. Callers must never
 * pass a secret's value to these functions.
 */
#pragma once

#include <stddef.h>

#include <stdbool.h>

#include "base/macro.h"

void log_set_quiet(bool quiet);
void log_set_debug(bool debug);
bool log_debug_enabled(void);

void log_error(const char *fmt, ...) _printf_(1, 2);
void log_warn(const char *fmt, ...) _printf_(1, 2);
void log_info(const char *fmt, ...) _printf_(1, 2);

/*
 * A filter applied to every message before it is written (after the "cellvisor: " prefix):
 * fn rewrites the NUL-terminated text in buf (size bytes) in place. The cell sets one that
 * redacts its secret values while it holds them; NULL removes it.
 */
void log_set_filter(void (*fn)(char *buf, size_t size, void *userdata), void *userdata);

/* The userdata of the filter in place, or NULL. */
void *log_filter_userdata(void);
void log_debug(const char *fmt, ...) _printf_(1, 2);
