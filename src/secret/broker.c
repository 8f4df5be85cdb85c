#include "secret/broker.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fd.h"
#include "base/macro.h"
#include "base/path.h"

static int
load_file(const char *ref, const char *var, char *err, size_t err_size, struct secret *out)
{
	const char *path = getenv(var);
	struct stat st;

	if (!path || !*path) {
		snprintf(err, err_size, "secret '%s': %s is not set", ref, var);
		return -ENOENT;
	}
	/*
	 * The trusted-path rule (base/path.h): no symlink in any component - a parent directory
	 * a user swapped for a symlink would otherwise make root read a file of its choosing -
	 * directories owned by root or the runner, a regular file with one link, and a FIFO is
	 * never opened. The path is the operator's, so it may be named; the content never is.
	 */
	_cleanup_close_ int fd = -EBADF;
	char why[PATH_MAX + 200];
	int r = path_open_file(path, PATH_READ, &fd, why, sizeof(why));
	if (r == -EINVAL || r == -EISDIR) {
		snprintf(err, err_size, "secret '%s': %s does not name a regular file: %s", ref,
		    var, why);
		return r;
	}
	if (r < 0) {
		snprintf(err, err_size, "secret '%s': %s: %s", ref, var, why);
		return r;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	(void)fd_set_nonblock(fd, false);
	if (st.st_size > SECRET_MAX_BYTES) {
		snprintf(err, err_size, "secret '%s': the file named by %s is larger than %d bytes",
		    ref, var, SECRET_MAX_BYTES);
		return -EFBIG;
	}
	char *buf = malloc(SECRET_MAX_BYTES + 2);
	if (!buf)
		return -ENOMEM;
	(void)mlock(buf, SECRET_MAX_BYTES + 2);
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, SECRET_MAX_BYTES + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			explicit_bzero(buf, len);
			free(buf);
			snprintf(err, err_size, "secret '%s': cannot read the file named by %s: %s",
			    ref, var, strerror(e));
			return -e;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > SECRET_MAX_BYTES) {
			explicit_bzero(buf, len);
			free(buf);
			snprintf(err, err_size,
			    "secret '%s': the file named by %s is larger than %d bytes", ref, var,
			    SECRET_MAX_BYTES);
			return -EFBIG;
		}
	}
	if (len > 0 && buf[len - 1] == '\n') {
		len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
	}
	buf[len] = '\0';
	out->value = buf;
	out->len = len;
	return 0;
}

int
secret_resolve(const struct spec_strv *refs, char *err, size_t err_size, struct secret_set **ret)
{
	struct secret_set *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	s->v = calloc(refs->n + 1, sizeof(*s->v));
	s->values = calloc(refs->n + 1, sizeof(*s->values));
	s->lengths = calloc(refs->n + 1, sizeof(*s->lengths));
	if (!s->v || !s->values || !s->lengths) {
		secret_set_free(s);
		return -ENOMEM;
	}
	if (refs->n > 0) {
		const char *broker = getenv("CELLOS_BROKER");
		if (!broker || !*broker) {
			snprintf(err, err_size,
			    "secret '%s': no secret broker configured (set CELLOS_BROKER=file)",
			    refs->v[0]);
			secret_set_free(s);
			return -ENOENT;
		}
		if (strcmp(broker, "file") != 0) {
			snprintf(err, err_size,
			    "CELLOS_BROKER: unknown broker '%.64s' (known: file)", broker);
			secret_set_free(s);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < refs->n; i++) {
		struct secret *sec = &s->v[i];
		char var[200];
		sec->ref = strdup(refs->v[i]);
		if (!sec->ref) {
			secret_set_free(s);
			return -ENOMEM;
		}
		spec_secret_env_name(refs->v[i], sec->env_name, sizeof(sec->env_name));
		snprintf(var, sizeof(var), "CELLOS_SECRET_FILE_%s", sec->env_name);
		s->n++;
		r = load_file(refs->v[i], var, err, err_size, sec);
		if (r < 0) {
			secret_set_free(s);
			return r;
		}
		s->values[i] = sec->value;
		s->lengths[i] = sec->len;
	}
	*ret = s;
	return 0;
}

void
secret_set_free(struct secret_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].value) {
			explicit_bzero(s->v[i].value, s->v[i].len);
			free(s->v[i].value);
		}
		free(s->v[i].ref);
	}
	free(s->v);
	free(s->values);
	free(s->lengths);
	free(s);
}
