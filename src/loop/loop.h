/*
 * loop.h - the single-threaded event loop: one epoll, one timerfd, one signalfd.
 *
 * I/O sources watch fds (pipes, pidfds, cgroup.events); timers are kept in a min-heap that
 * drives one CLOCK_MONOTONIC timerfd armed at the earliest deadline; signals are blocked and
 * read from a signalfd. Nothing wakes the loop unless an fd is ready or a deadline is due:
 * an idle loop makes no wake-ups.
 *
 * Ownership: sources and timers are owned by the loop; callers hold pointers to them until
 * they free them with loop_source_free() / loop_timer_free() (safe from inside callbacks:
 * the memory is released after the current dispatch round). loop_free() releases everything.
 */
#pragma once

#include <sys/signalfd.h>

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_source;
struct loop_timer;

typedef void (*loop_io_fn)(struct loop *l, int fd, uint32_t revents, void *userdata);
typedef void (*loop_timer_fn)(struct loop *l, struct loop_timer *t, void *userdata);
typedef void (*loop_signal_fn)(struct loop *l, const struct signalfd_siginfo *si, void *userdata);

int loop_new(struct loop **ret);
void loop_free(struct loop *l);

/* Watch fd for events (EPOLLIN, EPOLLPRI, ...). The fd stays owned by the caller. */
int loop_add_io(struct loop *l, int fd, uint32_t events, loop_io_fn fn, void *userdata,
    struct loop_source **ret);
void loop_source_free(struct loop_source *s);

/* Change what an io source waits for (0 = nothing, for backpressure). */
int loop_source_set_events(struct loop_source *s, uint32_t events);

/*
 * A one-shot timer at an absolute CLOCK_MONOTONIC deadline in microseconds. A timer that
 * fires is freed by the loop before its callback runs (the callback gets t == NULL): the
 * owner must forget its pointer there and never loop_timer_free() it afterwards.
 */
int loop_add_timer(struct loop *l, uint64_t deadline_us, loop_timer_fn fn, void *userdata,
    struct loop_timer **ret);
uint64_t loop_timer_deadline(const struct loop_timer *t);
void loop_timer_free(struct loop_timer *t);

/*
 * Block sigs and deliver them through the loop's signalfd to fn. One handler per loop.
 * Children must restore the mask before exec: loop_signal_mask_original() gives it.
 */
int loop_set_signals(struct loop *l, const int *sigs, int n, loop_signal_fn fn, void *userdata);
const sigset_t *loop_signal_mask_original(const struct loop *l);

/* Run until loop_quit(). Returns the code given to loop_quit() or -errno. */
int loop_run(struct loop *l);
void loop_quit(struct loop *l, int code);

/* Wake-ups so far (epoll_wait returns), for the benchmark's idle check. */
uint64_t loop_wakeups(const struct loop *l);
