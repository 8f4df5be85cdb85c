#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base/fd.h"
#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"

int
cli_load_spec(const char *path, bool all_errors, struct cell_spec **ret)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct spec_errors errs;
	size_t len;
	int r;

	if (strcmp(path, "-") == 0)
		r = fd_read_bounded(STDIN_FILENO, SPEC_MAX_BYTES, &buf, &len);
	else {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			log_error("cannot open spec %s: %s", path, strerror(errno));
			return -errno;
		}
		r = fd_read_bounded(fd, SPEC_MAX_BYTES, &buf, &len);
	}
	if (r == -EFBIG) {
		log_error("spec: document is larger than %d bytes", SPEC_MAX_BYTES);
		return -EINVAL;
	}
	if (r < 0) {
		log_error("cannot read spec %s: %s", path, strerror(-r));
		return r;
	}
	r = spec_parse(buf, len, ret, &errs);
	if (r == -ENOMEM) {
		log_error("out of memory while reading the spec");
		return r;
	}
	if (r < 0) {
		for (size_t i = 0; i < errs.n && (all_errors || i == 0); i++) {
			char line[600];
			spec_error_format(&errs.e[i], line, sizeof(line));
			log_error("%s", line);
		}
		if (all_errors && errs.truncated)
			log_error("(more errors not shown)");
		return -EINVAL;
	}
	return 0;
}
