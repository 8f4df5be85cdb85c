/*
 * redact.h - replace secret values with "[REDACTED]" in events and messages.
 *
 * A redactor borrows the secret values (the secret set owns them and must outlive it).
 * Redaction happens on the JSON tree, before serialisation and before any signing, so a
 * value is caught however JSON would have escaped it.
 */
#pragma once

#include <jansson.h>
#include <stddef.h>

#define REDACTED "[REDACTED]"

struct redactor {
	const char *const *values;
	const size_t *lengths;
	size_t n;
};

/* Redact every string (keys included) in j in place. Returns how many strings changed. */
int redact_json(const struct redactor *r, json_t *j);

/*
 * Redact an event's data object: every string except the identifiers cellvisor itself
 * assigns or the operator chose as public (cellId, specId, runId), which must stay exact
 * for consumers (a short secret would otherwise cut into a UUID).
 */
int redact_event_data(const struct redactor *r, json_t *data);

/* Redact a NUL-terminated message in place into buf (size bytes). */
void redact_text(const struct redactor *r, char *buf, size_t size);
