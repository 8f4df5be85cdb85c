/*
 * broker.h - secrets for a cell, resolved before it starts.
 *
 * The file broker follows CellOS: CELLOS_BROKER=file and, per ref, CELLOS_SECRET_FILE_<KEY>
 * (ref upper-cased, '-' and '.' to '_') naming a regular file, opened with O_NOFOLLOW (a
 * symlink is refused), at most SECRET_MAX_BYTES, one trailing newline stripped. Values live
 * in memory locked against swap where possible and are wiped by secret_set_free(). Error
 * messages name the ref and the variable, never the value.
 */
#pragma once

#include <stddef.h>

#include "spec/spec.h"

#define SECRET_MAX_BYTES (64 * 1024)

struct secret {
	char *ref;
	char env_name[160];
	char *value; /* NUL-terminated; may contain NULs before len */
	size_t len;
};

struct secret_set {
	struct secret *v;
	size_t n;
	/* Parallel arrays for the redactor and the backend. */
	const char **values;
	size_t *lengths;
};

/*
 * Resolve every ref with the broker named by CELLOS_BROKER (env). err gets a one-line
 * reason on failure. An empty ref list needs no broker.
 */
int secret_resolve(const struct spec_strv *refs, char *err, size_t err_size,
    struct secret_set **ret);

/* Wipe and free. */
void secret_set_free(struct secret_set *s);
