/*
 * macro.h - cleanup attributes and small helpers used everywhere.
 *
 * Every local resource is owned by a variable declared with a cleanup attribute;
 * TAKE_PTR / TAKE_FD hand ownership on. Destructors accept NULL / negative fds.
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define _cleanup_(f)    __attribute__((cleanup(f)))
#define _cleanup_free_  _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _unused_        __attribute__((unused))
#define _noreturn_      __attribute__((noreturn))
#define _printf_(a, b)  __attribute__((format(printf, a, b)))

static inline void
freep(void *p)
{
	free(*(void **)p);
}

/* close(2) that keeps errno and never retries on EINTR (Linux closes the fd anyway). */
static inline int
safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		(void)close(fd);
		errno = saved;
	}
	return -EBADF;
}

static inline void
closep(int *fd)
{
	safe_close(*fd);
}

#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p = (p);                                                            \
		(p) = NULL;                                                                        \
		_p;                                                                                \
	})

#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd = (fd);                                                                    \
		(fd) = -EBADF;                                                                     \
		_fd;                                                                               \
	})

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
