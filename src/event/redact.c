#include "event/redact.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/macro.h"

/* Up to this many secrets are matched longest first (the spec allows 256 refs). */
#define REDACT_MAX_SORTED 256

/* A new string with every occurrence of each secret replaced, or NULL if none occur. */
static char *
redact_string(const struct redactor *r, const char *s, size_t len)
{
	char *out = NULL;
	const char *cur = s;
	size_t cur_len = len;
	_cleanup_free_ char *tmp = NULL;

	/* Longest first: a secret that contains a shorter one goes whole, not in pieces. */
	size_t order[REDACT_MAX_SORTED];
	size_t n_sorted = r->n < REDACT_MAX_SORTED ? r->n : REDACT_MAX_SORTED;
	for (size_t i = 0; i < n_sorted; i++) {
		size_t j = i;
		for (; j > 0 && r->lengths[order[j - 1]] < r->lengths[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	for (size_t k = 0; k < r->n; k++) {
		size_t i = k < n_sorted ? order[k] : k;
		size_t sl = r->lengths[i];
		if (sl == 0 || !memmem(cur, cur_len, r->values[i], sl))
			continue;
		/* Worst case every byte starts a match. */
		size_t cap = cur_len / sl * strlen(REDACTED) + cur_len + 1;
		char *n = malloc(cap), *w = n;
		if (!n)
			return NULL;
		const char *p = cur, *end = cur + cur_len;
		while (p < end) {
			const char *m = memmem(p, (size_t)(end - p), r->values[i], sl);
			if (!m) {
				memcpy(w, p, (size_t)(end - p));
				w += end - p;
				break;
			}
			memcpy(w, p, (size_t)(m - p));
			w += m - p;
			memcpy(w, REDACTED, strlen(REDACTED));
			w += strlen(REDACTED);
			p = m + sl;
		}
		*w = '\0';
		free(tmp);
		tmp = n;
		cur = n;
		cur_len = (size_t)(w - n);
		out = n;
	}
	if (out)
		tmp = NULL;
	return out;
}

static bool
redact_would_change(const struct redactor *r, const char *s)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->lengths[i] && memmem(s, strlen(s), r->values[i], r->lengths[i]))
			return true;
	return false;
}

int
redact_json(const struct redactor *r, json_t *j)
{
	int changed = 0;

	if (!r || r->n == 0 || !j)
		return 0;
	if (json_is_string(j)) {
		char *n = redact_string(r, json_string_value(j), json_string_length(j));
		if (n) {
			json_string_set(j, n);
			free(n);
			changed++;
		}
	} else if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++)
			changed += redact_json(r, json_array_get(j, i));
	} else if (json_is_object(j)) {
		const char *key;
		json_t *v;
		/* Values first; keys are renamed after the walk so a new key is never revisited. */
		json_object_foreach(j, key, v) changed += redact_json(r, v);
		size_t n = json_object_size(j), k = 0;
		char **old = calloc(n ? n : 1, sizeof(char *));
		if (!old)
			return changed;
		json_object_foreach(j, key, v) if (redact_would_change(r, key)) old[k++] =
		    strdup(key);
		for (size_t i = 0; i < k; i++) {
			if (!old[i])
				continue;
			char *nk = redact_string(r, old[i], strlen(old[i]));
			json_t *val = json_object_get(j, old[i]);
			if (nk && val) {
				/* Never overwrite another key: "[REDACTED]", "[REDACTED]#2", ... */
				char *name = nk;
				char alt[64];
				for (int dup = 2; json_object_get(j, name) && dup < 1000; dup++) {
					snprintf(alt, sizeof(alt), "%.40s#%d", nk, dup);
					name = alt;
				}
				json_incref(val);
				json_object_del(j, old[i]);
				json_object_set_new(j, name, val);
				changed++;
			}
			free(nk);
			free(old[i]);
		}
		free(old);
	}
	return changed;
}

/*
 * A full buffer may have been cut in the middle of a secret: a tail that is the start of a
 * secret value goes too. (Over-redacting a tail that only looks like one is harmless.)
 */
static void
redact_cut_tail(const struct redactor *r, char *buf, size_t size)
{
	size_t len = strlen(buf);
	if (size == 0 || len + 1 < size)
		return;
	for (size_t i = 0; i < r->n; i++) {
		size_t sl = r->lengths[i];
		for (size_t k = sl > 1 ? sl - 1 : 0; k > 0; k--)
			if (k <= len && memcmp(buf + len - k, r->values[i], k) == 0) {
				size_t at = len - k;
				size_t room = size - 1 - at;
				size_t w = strlen(REDACTED) < room ? strlen(REDACTED) : room;
				memcpy(buf + at, REDACTED, w);
				buf[at + w] = '\0';
				len = at + w;
				break;
			}
	}
}

void
redact_text(const struct redactor *r, char *buf, size_t size)
{
	if (!r || r->n == 0 || size == 0)
		return;
	bool full = strlen(buf) + 1 >= size;
	char *n = redact_string(r, buf, strlen(buf));
	if (n) {
		size_t len = strlen(n);
		if (len >= size)
			len = size - 1;
		memcpy(buf, n, len);
		buf[len] = '\0';
		free(n);
	}
	if (full)
		redact_cut_tail(r, buf, size);
}

int
redact_event_data(const struct redactor *r, json_t *data)
{
	static const char *const identifiers[] = {"cellId", "specId", "runId", NULL};
	const char *key;
	json_t *v;
	int changed = 0;

	if (!json_is_object(data))
		return redact_json(r, data);
	json_object_foreach (data, key, v) {
		bool id = false;
		for (size_t i = 0; identifiers[i]; i++)
			id |= strcmp(key, identifiers[i]) == 0;
		if (!id)
			changed += redact_json(r, v);
	}
	return changed;
}
