/*
 * test_uidpool.c - the sandbox's pool of per-cell host ids (uidpool.h): distinct ids while
 * held, a lock that outlives the taker in a child that inherited it, release on the last
 * close, and a lock directory that is refused unless it is the runner's alone.
 *
 * Works in a fresh directory under /tmp, never in /run/cellvisor (other runs use it).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/sandbox/uidpool.h"

#define FIRST 3000000000U

struct fixture {
	char top[64];    /* the "parent" of the lock directory */
	char parent[96]; /* top/cellvisor */
	int dir;
	char err[256];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->top, sizeof(f->top), "/tmp/test-uidpool-XXXXXX");
	assert_non_null(mkdtemp(f->top));
	snprintf(f->parent, sizeof(f->parent), "%s/cellvisor", f->top);
	f->dir = -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];
	if (f->dir >= 0)
		close(f->dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->top);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static int
open_dir(struct fixture *f)
{
	return sb_uidpool_open_dir(f->parent, "uids", f->err, sizeof(f->err));
}

static void
test_creates_a_private_directory(void **state)
{
	struct fixture *f = *state;
	f->dir = open_dir(f);
	assert_true(f->dir >= 0);
	struct stat st;
	assert_int_equal(fstat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, geteuid());
	/* A second open finds it as it is. */
	int again = open_dir(f);
	assert_true(again >= 0);
	close(again);
}

static void
test_ids_are_distinct_while_held_and_free_after_close(void **state)
{
	struct fixture *f = *state;
	uid_t a, b, c;
	f->dir = open_dir(f);
	assert_true(f->dir >= 0);
	int fa = sb_uidpool_acquire_at(f->dir, FIRST, 2, &a);
	int fb = sb_uidpool_acquire_at(f->dir, FIRST, 2, &b);
	assert_true(fa >= 0 && fb >= 0);
	assert_int_not_equal(a, b);
	assert_true(a >= FIRST && a < FIRST + 2 && b >= FIRST && b < FIRST + 2);
	assert_int_equal(sb_uidpool_acquire_at(f->dir, FIRST, 2, &c), -EUSERS);
	assert_true(fcntl(fa, F_GETFD) & FD_CLOEXEC);
	close(fa);
	int fc = sb_uidpool_acquire_at(f->dir, FIRST, 2, &c);
	assert_true(fc >= 0);
	assert_int_equal(c, a);
	close(fb);
	close(fc);
}

static void
test_a_child_holding_the_fd_keeps_the_id(void **state)
{
	struct fixture *f = *state;
	uid_t a, b;
	int hold[2];
	f->dir = open_dir(f);
	assert_true(f->dir >= 0);
	int fa = sb_uidpool_acquire_at(f->dir, FIRST, 1, &a);
	assert_true(fa >= 0);
	assert_int_equal(pipe(hold), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* As the cell's init: the runner's fd inherited (without exec), kept open. */
		char ch;
		close(hold[1]);
		(void)!read(hold[0], &ch, 1);
		_exit(0);
	}
	close(hold[0]);
	close(fa); /* the "runner" is gone */
	assert_int_equal(sb_uidpool_acquire_at(f->dir, FIRST, 1, &b), -EUSERS);
	close(hold[1]);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	int fb = sb_uidpool_acquire_at(f->dir, FIRST, 1, &b);
	assert_true(fb >= 0);
	assert_int_equal(b, a);
	close(fb);
}

static void
test_a_symlinked_lock_directory_is_refused(void **state)
{
	struct fixture *f = *state;
	char elsewhere[128], link[128];
	assert_int_equal(mkdir(f->parent, 0755), 0);
	snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", f->top);
	assert_int_equal(mkdir(elsewhere, 0700), 0);
	snprintf(link, sizeof(link), "%s/uids", f->parent);
	assert_int_equal(symlink(elsewhere, link), 0);
	int r = open_dir(f);
	assert_true(r == -ELOOP || r == -ENOTDIR);
	assert_non_null(strstr(f->err, "symlink"));
}

static void
test_a_lock_directory_others_may_enter_is_refused(void **state)
{
	struct fixture *f = *state;
	char uids[128];
	assert_int_equal(mkdir(f->parent, 0755), 0);
	snprintf(uids, sizeof(uids), "%s/uids", f->parent);
	assert_int_equal(mkdir(uids, 0700), 0);
	assert_int_equal(chmod(uids, 0755), 0);
	assert_int_equal(open_dir(f), -EPERM);
	assert_non_null(strstr(f->err, "mode 0700"));
	/* A parent others may write is refused too. */
	assert_int_equal(chmod(uids, 0700), 0);
	assert_int_equal(chmod(f->parent, 0777), 0);
	assert_int_equal(open_dir(f), -EPERM);
	assert_int_equal(chmod(f->parent, 0755), 0);
	/* And one of another owner. */
	assert_int_equal(chown(uids, 4242, 4242), 0);
	assert_int_equal(open_dir(f), -EPERM);
}

static void
test_a_planted_lock_file_symlink_is_not_followed(void **state)
{
	struct fixture *f = *state;
	char target[128], name[32];
	uid_t a;
	f->dir = open_dir(f);
	assert_true(f->dir >= 0);
	snprintf(target, sizeof(target), "%s/target", f->top);
	snprintf(name, sizeof(name), "%u", FIRST);
	assert_int_equal(symlinkat(target, f->dir, name), 0);
	assert_int_equal(sb_uidpool_acquire_at(f->dir, FIRST, 1, &a), -ELOOP);
	assert_int_equal(access(target, F_OK), -1); /* nothing created through it */
}

int
main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "skipped: needs root (chown)\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_creates_a_private_directory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ids_are_distinct_while_held_and_free_after_close,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_child_holding_the_fd_keeps_the_id, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_a_symlinked_lock_directory_is_refused, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(test_a_lock_directory_others_may_enter_is_refused,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_planted_lock_file_symlink_is_not_followed, setup,
	        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
