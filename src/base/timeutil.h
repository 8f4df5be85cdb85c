/*
 * timeutil.h - clocks and time formatting.
 *
 * Every timeout, deadline and duration uses CLOCK_MONOTONIC; CLOCK_REALTIME is used only
 * for the human-facing `time` field of events.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC  1000000ULL
#define NSEC_PER_USEC 1000ULL

/* Monotonic time in microseconds. */
uint64_t now_mono_us(void);

/* Current UTC time as RFC 3339 with milliseconds, e.g. 2026-11-21T23:51:19.123Z. */
void time_rfc3339_now(char *buf, size_t size);

#define TIME_RFC3339_MAX 32
