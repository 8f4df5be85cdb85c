/*
 * fd.h - file descriptor helpers.
 *
 * Every fd these helpers create is O_CLOEXEC. Functions return >= 0 on success and
 * -errno on failure; out-parameters (ret_*) are written only on success.
 */
#pragma once

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

/* Write all of buf, retrying on EINTR and short writes. */
int fd_write_all(int fd, const void *buf, size_t len);

/*
 * Read all of fd (a file, pipe or stdin) into a new NUL-terminated buffer of at most
 * max_bytes. Returns -EFBIG when the input is larger than max_bytes.
 */
int fd_read_bounded(int fd, size_t max_bytes, char **ret_buf, size_t *ret_len);

int fd_set_nonblock(int fd, bool on);

/* Open /dev/null read-only with O_CLOEXEC. */
int fd_open_devnull(void);

/* Write a short string to a (sysfs/cgroupfs) file relative to dirfd. */
int fd_write_file_at(int dirfd, const char *name, const char *value);

/* Read a small file relative to dirfd into buf (NUL-terminated, trailing newline kept). */
int fd_read_file_at(int dirfd, const char *name, char *buf, size_t size);

/* close_range(first, ~0U, 0) with a /proc/self/fd fallback; for use after fork(). */
void fd_close_from(int first);
