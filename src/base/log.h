/*
 * log.h - the runner's own diagnostics on stderr.
 *
 * Library code logs at debug at most; the CLI edge logs once with context. Messages are
 * prefixed "cellvisor: ". Debug output is enabled with CELLVISOR_DEBUG=1. Callers must never
 * pass a secret's value to these functions.
 */
#pragma once

#include <stdbool.h>

#include "base/macro.h"

void log_set_quiet(bool quiet);
void log_set_debug(bool debug);
bool log_debug_enabled(void);

void log_error(const char *fmt, ...) _printf_(1, 2);
void log_warn(const char *fmt, ...) _printf_(1, 2);
void log_info(const char *fmt, ...) _printf_(1, 2);
void log_debug(const char *fmt, ...) _printf_(1, 2);
