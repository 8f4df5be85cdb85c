#include <string.h>

#include "base/macro.h"
#include "event/redact.h"

/* A new string with every occurrence of each secret replaced, or NULL if none occur. */
static char *
redact_string(const struct redactor *r, const char *s, size_t len)
{
	char *out = NULL;
	const char *cur = s;
	size_t cur_len = len;
	_cleanup_free_ char *tmp = NULL;

	for (size_t i = 0; i < r->n; i++) {
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
		void *tmp;
		json_object_foreach_safe (j, tmp, key, v) {
			changed += redact_json(r, v);
			char *nk = redact_string(r, key, strlen(key));
			if (nk) {
				json_object_set(j, nk, v);
				json_object_del(j, key);
				free(nk);
				changed++;
			}
		}
	}
	return changed;
}

void
redact_text(const struct redactor *r, char *buf, size_t size)
{
	if (!r || r->n == 0)
		return;
	char *n = redact_string(r, buf, strlen(buf));
	if (n) {
		size_t len = strlen(n);
		if (len >= size)
			len = size - 1;
		memcpy(buf, n, len);
		buf[len] = '\0';
		free(n);
	}
}
