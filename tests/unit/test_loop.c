/*
 * test_loop.c - the epoll loop: timers, I/O sources, signals, quitting, idle wake-ups.
 *
 * Timing asserts are one-sided where they can be (a timer never fires before its deadline)
 * and generous where they cannot (it fires within seconds, not milliseconds), so a slow or
 * loaded machine does not make them flaky.
 */
#include <sys/epoll.h>

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
#include <time.h>
#include <unistd.h>

/* cmocka needs setjmp.h, stdarg.h, stddef.h and stdint.h first. */
#include <cmocka.h>

#include "loop/loop.h"

#define assert_ll_equal(a, b)                                                                      \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b)                                                                      \
			fail_msg("%s == %s: %lld != %lld", #a, #b, _a, _b);                        \
	} while (0)

#define MS       1000ULL
#define SLACK_US (5 * 1000 * MS) /* "soon" on a loaded machine */

static uint64_t
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* What the callbacks record. */
struct rec {
	int order[64];
	uint64_t at[64];
	int n;
	int quit_after; /* loop_quit(quit_code) once n reaches this, 0 = never */
	int quit_code;
	struct loop_timer *to_free;
	struct loop_source *src_to_free;
};

struct tag {
	struct rec *rec;
	int id;
};

static void
record(struct loop *l, struct rec *r, int id)
{
	assert_true(r->n < 64);
	r->order[r->n] = id;
	r->at[r->n] = now_us();
	r->n++;
	if (r->quit_after && r->n >= r->quit_after)
		loop_quit(l, r->quit_code);
}

static void
on_timer(struct loop *l, struct loop_timer *t, void *userdata)
{
	struct tag *tag = userdata;
	record(l, tag->rec, tag->id);
	if (tag->rec->to_free) {
		loop_timer_free(tag->rec->to_free);
		tag->rec->to_free = NULL;
	}
}

static void
on_quit_timer(struct loop *l, struct loop_timer *t, void *userdata)
{
	loop_quit(l, (int)(intptr_t)userdata);
}

static void
on_timer_io_unused(struct loop *l, int fd, uint32_t revents, void *userdata)
{
	fail_msg("this source must never fire");
}

/* A safety net: a test that would hang ends with this code instead. */
#define HUNG (-999)
static void
add_watchdog(struct loop *l)
{
	assert_ll_equal(loop_add_timer(l, now_us() + 20 * 1000 * MS, on_quit_timer,
	                    (void *)(intptr_t)HUNG, NULL),
	    0);
}

/* --- timers --- */

static void
test_timer_fires_at_deadline(void **state)
{
	struct loop *l;
	struct rec r = {.quit_after = 1, .quit_code = 0};
	struct tag tag = {&r, 1};
	struct loop_timer *t;

	assert_ll_equal(loop_new(&l), 0);
	uint64_t deadline = now_us() + 50 * MS;
	assert_ll_equal(loop_add_timer(l, deadline, on_timer, &tag, &t), 0);
	assert_ll_equal(loop_timer_deadline(t), deadline);
	add_watchdog(l);
	assert_ll_equal(loop_run(l), 0);
	assert_ll_equal(r.n, 1);
	if (r.at[0] < deadline)
		fail_msg("timer fired %llu us before its deadline",
		    (unsigned long long)(deadline - r.at[0]));
	if (r.at[0] > deadline + SLACK_US)
		fail_msg("timer fired %llu us after its deadline",
		    (unsigned long long)(r.at[0] - deadline));
	/* one wake-up for one deadline: no polling in between */
	assert_ll_equal(loop_wakeups(l), 1);
	loop_free(l);
}

static void
test_timers_in_deadline_order(void **state)
{
	struct loop *l;
	struct rec r = {.quit_after = 3};
	struct tag a = {&r, 1}, b = {&r, 2}, c = {&r, 3};

	assert_ll_equal(loop_new(&l), 0);
	uint64_t now = now_us();
	/* added out of order */
	assert_ll_equal(loop_add_timer(l, now + 90 * MS, on_timer, &c, NULL), 0);
	assert_ll_equal(loop_add_timer(l, now + 30 * MS, on_timer, &a, NULL), 0);
	assert_ll_equal(loop_add_timer(l, now + 60 * MS, on_timer, &b, NULL), 0);
	add_watchdog(l);
	assert_ll_equal(loop_run(l), 0);
	assert_ll_equal(r.n, 3);
	assert_ll_equal(r.order[0], 1);
	assert_ll_equal(r.order[1], 2);
	assert_ll_equal(r.order[2], 3);
	assert_true(r.at[0] >= now + 30 * MS);
	assert_true(r.at[1] >= now + 60 * MS);
	assert_true(r.at[2] >= now + 90 * MS);
	loop_free(l);
}

static void
test_many_timers_sorted(void **state)
{
	/* More timers than the heap's first allocation, all already due, in scrambled order. */
	struct loop *l;
	struct rec r = {.quit_after = 40};
	struct tag tags[40];

	assert_ll_equal(loop_new(&l), 0);
	uint64_t base = now_us() - 1000 * MS;
	for (int i = 0; i < 40; i++) {
		int id = (i * 17) % 40; /* a permutation of 0..39 */
		tags[i] = (struct tag){&r, id};
		assert_ll_equal(loop_add_timer(l, base + (uint64_t)id * 10, on_timer, &tags[i],
		                    NULL),
		    0);
	}
	add_watchdog(l);
	assert_ll_equal(loop_run(l), 0);
	assert_ll_equal(r.n, 40);
	for (int i = 0; i < 40; i++)
		if (r.order[i] != i)
			fail_msg("timer %d fired in position %d", r.order[i], i);
	/* all due at once: one wake-up */
	assert_ll_equal(loop_wakeups(l), 1);
	loop_free(l);
}

static void
test_past_and_zero_deadlines(void **state)
{
	struct loop *l;
	struct rec r = {.quit_after = 2};
	struct tag a = {&r, 1}, b = {&r, 2};

	assert_ll_equal(loop_new(&l), 0);
	assert_ll_equal(loop_add_timer(l, 0, on_timer, &a, NULL), 0);
	assert_ll_equal(loop_add_timer(l, now_us() - 5 * MS, on_timer, &b, NULL), 0);
	add_watchdog(l);
	assert_ll_equal(loop_run(l), 0);
	assert_ll_equal(r.n, 2);
	assert_ll_equal(r.order[0], 1);
	assert_ll_equal(r.order[1], 2);
	loop_free(l);
}

static void
test_freed_timer_does_not_fire(void **state)
{
	struct loop *l;
	struct rec r = {0};
	struct tag a = {&r, 1}, b = {&r, 2}, c = {&r, 3};
	struct loop_timer *ta, *tb, *tc;

	assert_ll_equal(loop_new(&l), 0);
	uint64_t now = now_us();
	assert_ll_equal(loop_add_timer(l, now + 20 * MS, on_timer, &a, &ta), 0);
	assert_ll_equal(loop_add_timer(l, now + 40 * MS, on_timer, &b, &tb), 0);
	assert_ll_equal(loop_add_timer(l, now + 60 * MS, on_timer, &c, &tc), 0);
	assert_ll_equal(loop_add_timer(l, now + 150 * MS, on_quit_timer, (void *)7, NULL), 0);
	/* the earliest (the armed one) and a middle one */
	loop_timer_free(ta);
	loop_timer_free(tb);
	loop_timer_free(NULL);
	assert_ll_equal(loop_run(l), 7);
	assert_ll_equal(r.n, 1);
	assert_ll_equal(r.order[0], 3);
	loop_free(l);
}

static void
test_free_timer_from_callback(void **state)
{
	/* Two timers due in the same round: the first frees the second, which must not run. */
	struct loop *l;
	struct rec r = {0};
	struct tag a = {&r, 1}, b = {&r, 2};
	struct loop_timer *tb;

	assert_ll_equal(loop_new(&l), 0);
	uint64_t now = now_us();
	assert_ll_equal(loop_add_timer(l, now + 10 * MS, on_timer, &a, NULL), 0);
	assert_ll_equal(loop_add_timer(l, now + 10 * MS + 1, on_timer, &b, &tb), 0);
	r.to_free = tb;
	assert_ll_equal(loop_add_timer(l, now + 100 * MS, on_quit_timer, (void *)3, NULL), 0);
	assert_ll_equal(loop_run(l), 3);
	assert_ll_equal(r.n, 1);
	assert_ll_equal(r.order[0], 1);
	loop_free(l);
}

static void
test_loop_free_releases_everything(void **state)
{
	/*
	 * "loop_free() releases everything" (loop.h): timers and I/O sources still registered
	 * when the loop is freed must not leak. The sanitizer build's LeakSanitizer is the
	 * judge here (a leak shows with loop_add_io <- this test in its stack).
	 */
	struct loop *l;
	struct rec r = {0};
	struct tag a = {&r, 1};
	int fds[2];

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	assert_ll_equal(loop_new(&l), 0);
	for (int i = 0; i < 20; i++)
		assert_ll_equal(loop_add_timer(l, now_us() + 3600 * 1000 * MS, on_timer, &a, NULL),
		    0);
	assert_ll_equal(loop_add_io(l, fds[0], EPOLLIN, on_timer_io_unused, NULL, NULL), 0);
	loop_free(l);
	loop_free(NULL);
	close(fds[0]);
	close(fds[1]);
	assert_ll_equal(r.n, 0);
}

/* --- I/O sources --- */

struct io_rec {
	int fires;
	char buf[16];
	uint32_t revents;
	struct loop_source *self, *other;
	int quit_code;
};

static void
on_readable(struct loop *l, int fd, uint32_t revents, void *userdata)
{
	struct io_rec *io = userdata;
	io->fires++;
	io->revents = revents;
	ssize_t n = read(fd, io->buf, sizeof(io->buf) - 1);
	if (n > 0)
		io->buf[n] = '\0';
	loop_quit(l, io->quit_code);
}

static void
test_io_pipe(void **state)
{
	struct loop *l;
	struct io_rec io = {.quit_code = 5};
	struct loop_source *s;
	int fds[2];

	assert_ll_equal(loop_new(&l), 0);
	assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	assert_ll_equal(loop_add_io(l, fds[0], EPOLLIN, on_readable, &io, &s), 0);
	assert_non_null(s);
	add_watchdog(l);
	assert_int_equal(write(fds[1], "ping", 4), 4);
	assert_ll_equal(loop_run(l), 5);
	assert_ll_equal(io.fires, 1);
	assert_string_equal(io.buf, "ping");
	assert_true(io.revents & EPOLLIN);
	/* an invalid fd cannot be added, and *ret is left alone */
	struct loop_source *none = NULL;
	assert_ll_equal(loop_add_io(l, -1, EPOLLIN, on_readable, &io, &none), -EBADF);
	assert_null(none);
	loop_source_free(s);
	loop_source_free(NULL);
	loop_free(l);
	close(fds[0]);
	close(fds[1]);
}

static void
test_io_hangup(void **state)
{
	struct loop *l;
	struct io_rec io = {.quit_code = 6};
	struct loop_source *s;
	int fds[2];

	assert_ll_equal(loop_new(&l), 0);
	assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	assert_ll_equal(loop_add_io(l, fds[0], EPOLLIN, on_readable, &io, &s), 0);
	add_watchdog(l);
	close(fds[1]);
	assert_ll_equal(loop_run(l), 6);
	assert_ll_equal(io.fires, 1);
	assert_true(io.revents & EPOLLHUP);
	loop_source_free(s);
	loop_free(l);
	close(fds[0]);
}

static void
on_free_other(struct loop *l, int fd, uint32_t revents, void *userdata)
{
	struct io_rec *io = userdata;
	io->fires++;
	loop_source_free(io->other);
	loop_source_free(io->self);
	loop_source_free(io->self); /* twice is harmless */
}

static void
test_io_free_from_callback(void **state)
{
	/*
	 * Two pipes ready in the same round; whichever runs first frees both sources, so
	 * exactly one callback runs, however epoll orders them.
	 */
	struct loop *l;
	struct io_rec a = {0}, b = {0};
	int p[2], q[2];

	assert_ll_equal(loop_new(&l), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(pipe2(q, O_CLOEXEC | O_NONBLOCK), 0);
	assert_ll_equal(loop_add_io(l, p[0], EPOLLIN, on_free_other, &a, &a.self), 0);
	assert_ll_equal(loop_add_io(l, q[0], EPOLLIN, on_free_other, &b, &b.self), 0);
	a.other = b.self;
	b.other = a.self;
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(write(q[1], "y", 1), 1);
	/* a level-triggered source that was not freed would fire again and again */
	assert_ll_equal(loop_add_timer(l, now_us() + 100 * MS, on_quit_timer, (void *)9, NULL), 0);
	assert_ll_equal(loop_run(l), 9);
	assert_ll_equal(a.fires + b.fires, 1);
	assert_ll_equal(loop_wakeups(l), 2); /* the pipes, then the timer */
	loop_free(l);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

/* --- quitting --- */

static void
test_quit_code(void **state)
{
	struct loop *l;

	assert_ll_equal(loop_new(&l), 0);
	assert_ll_equal(loop_add_timer(l, now_us(), on_quit_timer, (void *)42, NULL), 0);
	assert_ll_equal(loop_run(l), 42);
	loop_free(l);

	assert_ll_equal(loop_new(&l), 0);
	assert_ll_equal(loop_add_timer(l, now_us(), on_quit_timer, (void *)0, NULL), 0);
	assert_ll_equal(loop_run(l), 0);
	loop_free(l);
}

static void
test_quit_stops_dispatch(void **state)
{
	/* Timers due in the same round after the one that quits do not run. */
	struct loop *l;
	struct rec r = {.quit_after = 1, .quit_code = 11};
	struct tag a = {&r, 1}, b = {&r, 2};

	assert_ll_equal(loop_new(&l), 0);
	uint64_t due = now_us() - 1 * MS;
	assert_ll_equal(loop_add_timer(l, due, on_timer, &a, NULL), 0);
	assert_ll_equal(loop_add_timer(l, due + 1, on_timer, &b, NULL), 0);
	assert_ll_equal(loop_run(l), 11);
	assert_ll_equal(r.n, 1);
	assert_ll_equal(r.order[0], 1);
	loop_free(l); /* frees the timer that never ran */
}

/* --- signals --- */

struct sig_rec {
	int fires;
	uint32_t signo;
	int32_t pid;
};

static void
on_signal(struct loop *l, const struct signalfd_siginfo *si, void *userdata)
{
	struct sig_rec *s = userdata;
	s->fires++;
	s->signo = si->ssi_signo;
	s->pid = (int32_t)si->ssi_pid;
	loop_quit(l, 128 + (int)si->ssi_signo);
}

static void
test_signal(void **state)
{
	struct loop *l;
	struct sig_rec s = {0};
	const int sigs[] = {SIGUSR1, SIGUSR2};
	sigset_t cur;

	assert_ll_equal(loop_new(&l), 0);
	assert_null(loop_signal_mask_original(l));
	assert_ll_equal(loop_set_signals(l, sigs, 2, on_signal, &s), 0);
	const sigset_t *orig = loop_signal_mask_original(l);
	assert_non_null(orig);
	assert_false(sigismember(orig, SIGUSR1));
	/* blocked now, so the default action (terminate) cannot happen */
	assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
	assert_true(sigismember(&cur, SIGUSR1));
	assert_true(sigismember(&cur, SIGUSR2));

	add_watchdog(l);
	assert_int_equal(raise(SIGUSR1), 0);
	assert_ll_equal(loop_run(l), 128 + SIGUSR1);
	assert_ll_equal(s.fires, 1);
	assert_ll_equal(s.signo, SIGUSR1);
	assert_ll_equal(s.pid, getpid());
	loop_free(l);

	/* loop_free restores the mask it found */
	assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
	assert_false(sigismember(&cur, SIGUSR1));
	assert_false(sigismember(&cur, SIGUSR2));
}

/*
 * A second loop_set_signals() call must not strand the first call's signals: they stay
 * blocked (so their default action cannot run), hence they must still reach the handler.
 */
static void
test_signals_set_twice(void **state)
{
	struct loop *l;
	struct sig_rec s = {0};
	const int first[] = {SIGUSR1}, second[] = {SIGUSR2};
	sigset_t cur, usr1;

	assert_ll_equal(loop_new(&l), 0);
	assert_ll_equal(loop_set_signals(l, first, 1, on_signal, &s), 0);
	assert_ll_equal(loop_set_signals(l, second, 1, on_signal, &s), 0);
	assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &cur), 0);
	assert_true(sigismember(&cur, SIGUSR2));
	if (!sigismember(&cur, SIGUSR1)) {
		/* the second call replaced the set and unblocked the first: also coherent */
		loop_free(l);
		return;
	}
	assert_ll_equal(loop_add_timer(l, now_us() + 300 * MS, on_quit_timer, (void *)HUNG, NULL),
	    0);
	assert_int_equal(raise(SIGUSR1), 0);
	int r = loop_run(l);
	/* never leave a pending SIGUSR1 behind: loop_free unblocks it and it would kill us */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	struct timespec zero = {0, 0};
	bool stranded = sigtimedwait(&usr1, NULL, &zero) == SIGUSR1;
	loop_free(l);
	if (stranded)
		fail_msg("SIGUSR1 from the first loop_set_signals() stayed blocked but never "
		         "reached "
		         "the handler (loop_run = %d)",
		    r);
	assert_ll_equal(r, 128 + SIGUSR1);
	assert_ll_equal(s.signo, SIGUSR1);
}

/* --- idleness --- */

static void
test_idle_no_wakeups(void **state)
{
	/*
	 * With only a far timer (an hour away) and a near one that quits, the loop wakes up
	 * exactly once: for the near one. A timer freed before its deadline disarms the
	 * timerfd instead of waking the loop for nothing.
	 */
	struct loop *l;
	struct rec r = {0};
	struct tag far = {&r, 1}, freed = {&r, 2};
	struct loop_timer *tf;

	assert_ll_equal(loop_new(&l), 0);
	uint64_t now = now_us();
	assert_ll_equal(loop_add_timer(l, now + 3600 * 1000 * MS, on_timer, &far, NULL), 0);
	assert_ll_equal(loop_add_timer(l, now + 30 * MS, on_timer, &freed, &tf), 0);
	assert_ll_equal(loop_add_timer(l, now + 300 * MS, on_quit_timer, (void *)1, NULL), 0);
	loop_timer_free(tf);
	assert_ll_equal(loop_wakeups(l), 0);
	assert_ll_equal(loop_run(l), 1);
	assert_ll_equal(loop_wakeups(l), 1);
	assert_ll_equal(r.n, 0);
	assert_true(now_us() >= now + 300 * MS);
	loop_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timer_fires_at_deadline),
	    cmocka_unit_test(test_timers_in_deadline_order),
	    cmocka_unit_test(test_many_timers_sorted),
	    cmocka_unit_test(test_past_and_zero_deadlines),
	    cmocka_unit_test(test_freed_timer_does_not_fire),
	    cmocka_unit_test(test_free_timer_from_callback),
	    cmocka_unit_test(test_loop_free_releases_everything),
	    cmocka_unit_test(test_io_pipe),
	    cmocka_unit_test(test_io_hangup),
	    cmocka_unit_test(test_io_free_from_callback),
	    cmocka_unit_test(test_quit_code),
	    cmocka_unit_test(test_quit_stops_dispatch),
	    cmocka_unit_test(test_signal),
	    cmocka_unit_test(test_signals_set_twice),
	    cmocka_unit_test(test_idle_no_wakeups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
