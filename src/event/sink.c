#include "event/sink.h"

#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base/fd.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/path.h"

enum sink_kind {
	SINK_FILE,
	SINK_FD,
	SINK_NOOP,
};

struct sink {
	enum sink_kind kind;
	int fd;
	char name[256];
};

int
sink_jsonl_open(const char *path, struct sink **ret, char *err, size_t err_size)
{
	int fd;
	int r = path_open_file(path, PATH_APPEND, &fd, err, err_size);
	if (r < 0)
		return r;
	struct sink *s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->kind = SINK_FILE;
	s->fd = fd;
	snprintf(s->name, sizeof(s->name), "%s", path);
	*ret = s;
	return 0;
}

int
sink_fd_new(int fd, const char *name, struct sink **ret)
{
	struct sink *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->kind = SINK_FD;
	s->fd = fd;
	snprintf(s->name, sizeof(s->name), "%s", name);
	*ret = s;
	return 0;
}

int
sink_noop_new(struct sink **ret)
{
	struct sink *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->kind = SINK_NOOP;
	s->fd = -EBADF;
	snprintf(s->name, sizeof(s->name), "noop");
	*ret = s;
	return 0;
}

const char *
sink_name(const struct sink *s)
{
	return s->name;
}

int
sink_write(struct sink *s, const char *line, size_t len)
{
	if (s->kind == SINK_NOOP)
		return 0;
	struct iovec iov[2] = {{(void *)line, len}, {(void *)"\n", 1}};
	for (;;) {
		ssize_t n = writev(s->fd, iov, 2);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if ((size_t)n == len + 1)
			return 0;
		/* A short write (pipe, full disk): finish it; the line stays whole on O_APPEND
		 * files because the kernel writes regular files all or nothing below 2 GiB. */
		size_t done = (size_t)n;
		if (done < len) {
			int r = fd_write_all(s->fd, line + done, len - done);
			if (r < 0)
				return r;
			done = len;
		}
		return fd_write_all(s->fd, "\n", len + 1 - done);
	}
}

int
sink_close(struct sink *s)
{
	int r = 0;
	if (!s)
		return 0;
	if (s->kind == SINK_FILE) {
		/* fsync of a character device (/dev/null) or a pipe is EINVAL: nothing to flush. */
		if (fsync(s->fd) < 0 && errno != EINVAL && errno != EROFS)
			r = -errno;
		if (close(s->fd) < 0 && r == 0 && errno != EINTR)
			r = -errno;
	}
	free(s);
	return r;
}

int
event_bus_add(struct event_bus *bus, struct sink *s)
{
	if (bus->n >= EVENT_BUS_MAX_SINKS) {
		sink_close(s);
		return -E2BIG;
	}
	bus->sinks[bus->n++] = s;
	return 0;
}

bool
event_bus_listening(const struct event_bus *bus)
{
	for (size_t i = 0; i < bus->n; i++)
		if (bus->sinks[i]->kind != SINK_NOOP)
			return true;
	return false;
}

int
event_bus_emit(struct event_bus *bus, json_t *ev)
{
	int r = 0;

	if (!ev)
		return -ENOMEM;
	/* The envelope is cellvisor's own; only data can carry a workload's values. */
	redact_event_data(bus->redactor, json_object_get(ev, "data"));
	char *line = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(ev);
	if (!line)
		return -ENOMEM;
	size_t len = strlen(line);
	if (len > EVENT_MAX_BYTES) {
		free(line);
		log_error("event larger than %d bytes not written", EVENT_MAX_BYTES);
		bus->failures++;
		return -E2BIG;
	}
	for (size_t i = 0; i < bus->n; i++) {
		int k = sink_write(bus->sinks[i], line, len);
		if (k < 0) {
			if (bus->failures++ == 0)
				log_error("cannot write event to %s: %s", sink_name(bus->sinks[i]),
				    strerror(-k));
			if (r == 0)
				r = k;
		}
	}
	free(line);
	return r;
}

int
event_bus_close(struct event_bus *bus)
{
	int r = 0;
	for (size_t i = 0; i < bus->n; i++) {
		int k = sink_close(bus->sinks[i]);
		if (k < 0 && r == 0) {
			log_error("cannot flush events to disk: %s", strerror(-k));
			r = k;
		}
	}
	bus->n = 0;
	return r;
}
