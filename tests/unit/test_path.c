/*
 * test_path.c - the trusted-path rule (base/path.h): no symlink on the way, owned directories,
 * regular single-link files, FIFOs never opened, private directories, unpredictable temp names.
 * The ownership cases that need a second user are in tests/integration/test_run_paths.py.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka needs setjmp.h, stdarg.h, stddef.h and stdint.h first. */
#include <cmocka.h>

#include "base/path.h"
#include "unit.h"

#define assert_contains(s, needle)                                                                 \
	do {                                                                                       \
		if (!strstr((s), (needle)))                                                        \
			fail_msg("\"%s\" does not contain \"%s\"", (s), (needle));                 \
	} while (0)

static void
test_append_creates_then_appends(void **state)
{
	char *p = path_in(state, "ev.jsonl");
	char err[512] = "";
	int fd = -1;
	struct stat st;

	assert_ll_equal(path_open_file(p, PATH_APPEND, &fd, err, sizeof(err)), 0);
	assert_ll_equal(write(fd, "a\n", 2), 2);
	assert_ll_equal(fstat(fd, &st), 0);
	assert_ll_equal(st.st_mode & 07777, 0600 & ~0022);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	assert_ll_equal(path_open_file(p, PATH_APPEND, &fd, err, sizeof(err)), 0);
	assert_ll_equal(write(fd, "b\n", 2), 2);
	close(fd);
	assert_ll_equal(path_open_file(p, PATH_READ, &fd, err, sizeof(err)), 0);
	char buf[8] = "";
	assert_ll_equal(read(fd, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "a\nb\n");
	close(fd);
	free(p);
}

static void
test_symlink_anywhere_is_refused(void **state)
{
	char *real = path_in(state, "real"), *link = path_in(state, "link");
	char *through = path_in(state, "link/f"), *last = path_in(state, "real/lastlink");
	char err[512] = "";
	int fd = 12345;

	assert_ll_equal(mkdir(real, 0700), 0);
	assert_ll_equal(symlink(real, link), 0);
	assert_ll_equal(path_open_file(through, PATH_APPEND, &fd, err, sizeof(err)), -ELOOP);
	assert_ll_equal(fd, 12345); /* ret_* only on success */
	assert_contains(err, "/link is a symlink, which is refused");
	char *created = path_in(state, "real/f");
	assert_ll_equal(access(created, F_OK), -1);

	assert_ll_equal(symlink("/etc/hostname", last), 0);
	assert_ll_equal(path_open_file(last, PATH_READ, &fd, err, sizeof(err)), -ELOOP);
	assert_ll_equal(path_open_dir(link, &fd, err, sizeof(err)), -ELOOP);
	free(real);
	free(link);
	free(through);
	free(last);
	free(created);
}

static void
test_special_files_are_refused_without_waiting(void **state)
{
	char *fifo = path_in(state, "fifo"), *dir = path_in(state, "dir");
	char err[512] = "";
	int fd;

	assert_ll_equal(mkfifo(fifo, 0600), 0);
	/* No reader, no writer: an open that waited would hang the test. */
	assert_ll_equal(path_open_file(fifo, PATH_APPEND, &fd, err, sizeof(err)), -EINVAL);
	assert_contains(err, "is a FIFO, not a regular file");
	assert_ll_equal(path_open_file(fifo, PATH_READ, &fd, err, sizeof(err)), -EINVAL);
	assert_ll_equal(mkdir(dir, 0700), 0);
	assert_ll_equal(path_open_file(dir, PATH_READ, &fd, err, sizeof(err)), -EISDIR);
	assert_contains(err, "is a directory, not a regular file");
	assert_ll_equal(path_open_file("/dev/null", PATH_APPEND, &fd, err, sizeof(err)), -EINVAL);
	assert_contains(err, "/dev/null is a character device, not a regular file");
	assert_ll_equal(path_open_dir(fifo, &fd, err, sizeof(err)), -ENOTDIR);
	assert_contains(err, "is a FIFO, not a directory");
	free(fifo);
	free(dir);
}

static void
test_hard_links_and_modes(void **state)
{
	char *a = path_in(state, "a"), *b = path_in(state, "b"), *c = path_in(state, "c");
	char err[512] = "";
	int fd;

	close(open(a, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	assert_ll_equal(link(a, b), 0);
	assert_ll_equal(path_open_file(b, PATH_READ, &fd, err, sizeof(err)), -EMLINK);
	assert_contains(err, "has 2 hard links");
	close(open(c, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	assert_ll_equal(chmod(c, 0620), 0);
	assert_ll_equal(path_open_file(c, PATH_APPEND, &fd, err, sizeof(err)), -EPERM);
	assert_contains(err, "is writable by group or others (mode 0620)");
	/* Reading does not care who may write the file, only the directories. */
	assert_ll_equal(path_open_file(c, PATH_READ, &fd, err, sizeof(err)), 0);
	close(fd);

	char *open_dir = path_in(state, "open"), *inside = path_in(state, "open/f");
	assert_ll_equal(mkdir(open_dir, 0700), 0);
	assert_ll_equal(chmod(open_dir, 0777), 0);
	assert_ll_equal(path_open_file(inside, PATH_APPEND, &fd, err, sizeof(err)), -EPERM);
	assert_contains(err, "/open is writable by group or others (mode 0777) and not sticky");
	assert_ll_equal(chmod(open_dir, 01777), 0);
	assert_ll_equal(path_open_file(inside, PATH_APPEND, &fd, err, sizeof(err)), 0);
	close(fd);
	free(a);
	free(b);
	free(c);
	free(open_dir);
	free(inside);
}

static void
test_relative_and_dot_dot(void **state)
{
	char cwd[PATH_MAX], err[512] = "";
	int fd;
	char *sub = path_in(state, "sub");

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_ll_equal(mkdir(sub, 0700), 0);
	assert_ll_equal(chdir(sub), 0);
	assert_ll_equal(path_open_file("rel.jsonl", PATH_APPEND, &fd, err, sizeof(err)), 0);
	close(fd);
	assert_ll_equal(path_open_file("./../sub//rel.jsonl", PATH_READ, &fd, err, sizeof(err)), 0);
	close(fd);
	assert_ll_equal(path_open_file("..", PATH_READ, &fd, err, sizeof(err)), -EISDIR);
	assert_contains(err, ".. does not name a file");
	assert_ll_equal(path_open_file("missing/x", PATH_READ, &fd, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "missing: No such file or directory");
	assert_ll_equal(chdir(cwd), 0);
	assert_ll_equal(path_open_file("", PATH_READ, &fd, err, sizeof(err)), -EINVAL);
	assert_ll_equal(path_open_file("/", PATH_READ, &fd, NULL, 0), -EISDIR);
	free(sub);
}

static void
test_private_dir_and_temp_names(void **state)
{
	char err[512] = "";
	int dirfd, cell, cell2, t1, t2;
	char n1[PATH_TEMP_NAME_SIZE], n2[PATH_TEMP_NAME_SIZE];
	struct stat st;

	assert_ll_equal(path_open_dir((char *)*state, &dirfd, err, sizeof(err)), 0);
	assert_ll_equal(path_open_private_dir_at(dirfd, *state, "cell", &cell, err, sizeof(err)),
	    0);
	assert_ll_equal(fstat(cell, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_ll_equal(st.st_mode & 07777, 0700 & ~0022);
	/* found again: used */
	assert_ll_equal(path_open_private_dir_at(dirfd, *state, "cell", &cell2, err, sizeof(err)),
	    0);
	close(cell2);
	assert_ll_equal(fchmodat(dirfd, "cell", 0770, 0), 0);
	assert_ll_equal(path_open_private_dir_at(dirfd, *state, "cell", &cell2, err, sizeof(err)),
	    -EPERM);
	assert_contains(err, "/cell is writable by group or others (mode 0770)");
	assert_ll_equal(symlinkat("/tmp", dirfd, "cell-link"), 0);
	assert_ll_equal(path_open_private_dir_at(dirfd, *state, "cell-link", &cell2, err,
	                    sizeof(err)),
	    -ELOOP);
	assert_ll_equal(path_open_private_dir_at(dirfd, *state, "..", &cell2, err, sizeof(err)),
	    -EINVAL);

	assert_ll_equal(path_create_temp_at(cell, n1, &t1), 0);
	assert_ll_equal(path_create_temp_at(cell, n2, &t2), 0);
	assert_string_not_equal(n1, n2);
	assert_ll_equal(strlen(n1), PATH_TEMP_NAME_SIZE - 1);
	assert_ll_equal(strncmp(n1, ".cellvisor-", 11), 0);
	assert_ll_equal(fstatat(cell, n1, &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	close(t1);
	close(t2);
	close(cell);
	close(dirfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_append_creates_then_appends, setup_dir,
	        teardown_dir),
	    cmocka_unit_test_setup_teardown(test_symlink_anywhere_is_refused, setup_dir,
	        teardown_dir),
	    cmocka_unit_test_setup_teardown(test_special_files_are_refused_without_waiting,
	        setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_hard_links_and_modes, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_relative_and_dot_dot, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_private_dir_and_temp_names, setup_dir,
	        teardown_dir),
	};
	umask(0022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
