/*
 * sink.h - where events go: a JSONL file, a stream (stdout), or nowhere.
 *
 * A sink takes one complete serialised event (without the newline) per call and writes it
 * as one line with a single write(2), so concurrent appenders never interleave partial
 * lines. The JSONL file sink is opened under base/path.h's trusted-path rule (no symlink on
 * the way, directories and an existing file owned by the runner, a regular file only, never
 * waiting on a FIFO), with O_APPEND|O_CLOEXEC, and fsyncs on close, so a run's events are on
 * disk before the runner exits.
 *
 * struct event_bus fans one event out to every sink after redaction; the bus owns its
 * sinks. Events larger than EVENT_MAX_BYTES are refused (and reported) rather than cut.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "event/redact.h"

#define EVENT_MAX_BYTES     (1024 * 1024)
#define EVENT_BUS_MAX_SINKS 4

struct sink;

/* Open (create, mode 0600) a JSONL file for appending; on failure err (may be NULL) says
 * which part of path broke the rule. */
int sink_jsonl_open(const char *path, struct sink **ret, char *err, size_t err_size);
/* A sink writing to an fd the caller keeps open (stdout). */
int sink_fd_new(int fd, const char *name, struct sink **ret);
int sink_noop_new(struct sink **ret);

/* Write one line; -errno on failure. */
int sink_write(struct sink *s, const char *line, size_t len);
const char *sink_name(const struct sink *s);
/* Flush to stable storage and free. Returns the first error seen. */
int sink_close(struct sink *s);

struct event_bus {
	struct sink *sinks[EVENT_BUS_MAX_SINKS];
	size_t n;
	const struct redactor *redactor; /* borrowed, may be NULL */
	unsigned failures;
};

/* Takes ownership of s. */
int event_bus_add(struct event_bus *bus, struct sink *s);

/* Whether any sink writes somewhere (the noop sink does not): when none does, events need
 * not be built at all. */
bool event_bus_listening(const struct event_bus *bus);

/* Redact, serialise and write ev to every sink; steals ev. */
int event_bus_emit(struct event_bus *bus, json_t *ev);

/* Close every sink (fsync); returns the first error. */
int event_bus_close(struct event_bus *bus);
