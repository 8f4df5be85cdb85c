#include "loop/loop.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"

enum source_kind {
	SOURCE_IO,
	SOURCE_TIMERFD,
	SOURCE_SIGNALFD,
};

struct loop_source {
	struct loop *loop;
	enum source_kind kind;
	int fd;
	loop_io_fn fn;
	void *userdata;
	bool dead;
	struct loop_source *next_dead;
	struct loop_source *prev, *next; /* live io sources, for loop_free() */
};

struct loop_timer {
	struct loop *loop;
	uint64_t deadline_us;
	size_t heap_index;
	loop_timer_fn fn;
	void *userdata;
};

struct loop {
	int epfd;
	int timerfd;
	int sigfd;
	struct loop_source timer_src, signal_src;
	loop_signal_fn signal_fn;
	void *signal_userdata;
	sigset_t original_mask;
	sigset_t handled; /* every signal routed to the signalfd so far */
	bool mask_saved;

	struct loop_timer **heap;
	size_t n_heap, cap_heap;
	uint64_t armed_us; /* deadline the timerfd is armed for, 0 = disarmed */

	struct loop_source *dead;
	struct loop_source *live;
	bool quit;
	int quit_code;
	uint64_t wakeups;
};

int
loop_new(struct loop **ret)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->sigfd = -EBADF;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto fail;
	l->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (l->timerfd < 0)
		goto fail;
	l->timer_src = (struct loop_source){.loop = l, .kind = SOURCE_TIMERFD, .fd = l->timerfd};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->timer_src};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->timerfd, &ev) < 0)
		goto fail;
	*ret = l;
	return 0;
fail:;
	int r = -errno;
	loop_free(l);
	return r;
}

static void
reap_dead(struct loop *l)
{
	while (l->dead) {
		struct loop_source *s = l->dead;
		l->dead = s->next_dead;
		free(s);
	}
}

void
loop_free(struct loop *l)
{
	if (!l)
		return;
	while (l->live)
		loop_source_free(l->live);
	reap_dead(l);
	for (size_t i = 0; i < l->n_heap; i++)
		free(l->heap[i]);
	free(l->heap);
	safe_close(l->epfd);
	safe_close(l->timerfd);
	if (l->sigfd >= 0) {
		/* Signals that arrived after the last dispatch are consumed here: unblocking
		 * them below would otherwise let their default action kill the caller. */
		struct signalfd_siginfo si;
		while (read(l->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			;
	}
	safe_close(l->sigfd);
	if (l->mask_saved)
		sigprocmask(SIG_SETMASK, &l->original_mask, NULL);
	free(l);
}

int
loop_add_io(struct loop *l, int fd, uint32_t events, loop_io_fn fn, void *userdata,
    struct loop_source **ret)
{
	struct loop_source *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	*s = (struct loop_source){.loop = l,
	    .kind = SOURCE_IO,
	    .fd = fd,
	    .fn = fn,
	    .userdata = userdata};
	struct epoll_event ev = {.events = events, .data.ptr = s};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		free(s);
		return r;
	}
	s->next = l->live;
	if (l->live)
		l->live->prev = s;
	l->live = s;
	if (ret)
		*ret = s;
	return 0;
}

int
loop_source_set_events(struct loop_source *s, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = s};
	if (epoll_ctl(s->loop->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
		return -errno;
	return 0;
}

void
loop_source_free(struct loop_source *s)
{
	if (!s || s->dead)
		return;
	struct loop *l = s->loop;
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, s->fd, NULL);
	if (s->prev)
		s->prev->next = s->next;
	else
		l->live = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->dead = true;
	s->next_dead = s->loop->dead;
	s->loop->dead = s;
}

/* --- timers: a binary min-heap on deadline_us --- */

static void
heap_swap(struct loop *l, size_t a, size_t b)
{
	struct loop_timer *t = l->heap[a];
	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->heap_index = a;
	l->heap[b]->heap_index = b;
}

static void
heap_up(struct loop *l, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (l->heap[p]->deadline_us <= l->heap[i]->deadline_us)
			break;
		heap_swap(l, i, p);
		i = p;
	}
}

static void
heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t a = 2 * i + 1, b = a + 1, m = i;
		if (a < l->n_heap && l->heap[a]->deadline_us < l->heap[m]->deadline_us)
			m = a;
		if (b < l->n_heap && l->heap[b]->deadline_us < l->heap[m]->deadline_us)
			m = b;
		if (m == i)
			return;
		heap_swap(l, i, m);
		i = m;
	}
}

static void
rearm(struct loop *l)
{
	uint64_t next = l->n_heap ? l->heap[0]->deadline_us : 0;
	if (next == l->armed_us)
		return;
	struct itimerspec its = {0};
	if (next) {
		/* A zero it_value disarms: a deadline at 0 must still fire. */
		uint64_t d = next ? next : 1;
		its.it_value.tv_sec = (time_t)(d / 1000000);
		its.it_value.tv_nsec = (long)(d % 1000000) * 1000;
	}
	(void)timerfd_settime(l->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
	l->armed_us = next;
}

int
loop_add_timer(struct loop *l, uint64_t deadline_us, loop_timer_fn fn, void *userdata,
    struct loop_timer **ret)
{
	if (l->n_heap == l->cap_heap) {
		size_t ncap = l->cap_heap ? l->cap_heap * 2 : 8;
		struct loop_timer **n = realloc(l->heap, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		l->heap = n;
		l->cap_heap = ncap;
	}
	struct loop_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	*t = (struct loop_timer){.loop = l,
	    .deadline_us = deadline_us ? deadline_us : 1,
	    .heap_index = l->n_heap,
	    .fn = fn,
	    .userdata = userdata};
	l->heap[l->n_heap++] = t;
	heap_up(l, t->heap_index);
	rearm(l);
	if (ret)
		*ret = t;
	return 0;
}

uint64_t
loop_timer_deadline(const struct loop_timer *t)
{
	return t->deadline_us;
}

static void
heap_remove(struct loop *l, struct loop_timer *t)
{
	size_t i = t->heap_index;
	l->n_heap--;
	if (i != l->n_heap) {
		heap_swap(l, i, l->n_heap);
		heap_down(l, i);
		heap_up(l, i);
	}
}

void
loop_timer_free(struct loop_timer *t)
{
	if (!t)
		return;
	struct loop *l = t->loop;
	heap_remove(l, t);
	free(t);
	rearm(l);
}

static void
dispatch_timers(struct loop *l)
{
	uint64_t exp;
	struct timespec ts;

	(void)!read(l->timerfd, &exp, sizeof(exp));
	l->armed_us = 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	while (l->n_heap && l->heap[0]->deadline_us <= now && !l->quit) {
		struct loop_timer *t = l->heap[0];
		heap_remove(l, t);
		loop_timer_fn fn = t->fn;
		void *ud = t->userdata;
		/* One-shot: the timer is gone before its callback runs. */
		t->heap_index = SIZE_MAX;
		free(t);
		fn(l, NULL, ud);
	}
	rearm(l);
}

int
loop_set_signals(struct loop *l, const int *sigs, int n, loop_signal_fn fn, void *userdata)
{
	sigset_t set;
	sigemptyset(&set);
	for (int i = 0; i < n; i++)
		sigaddset(&set, sigs[i]);
	if (!l->mask_saved)
		sigemptyset(&l->handled);
	/* The signalfd's mask replaces the old one: keep earlier signals in it. */
	sigorset(&l->handled, &l->handled, &set);
	if (!l->mask_saved) {
		if (sigprocmask(SIG_BLOCK, &set, &l->original_mask) < 0)
			return -errno;
		l->mask_saved = true;
	} else if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	int fd = signalfd(l->sigfd >= 0 ? l->sigfd : -1, &l->handled, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (l->sigfd < 0) {
		l->sigfd = fd;
		l->signal_src = (struct loop_source){.loop = l, .kind = SOURCE_SIGNALFD, .fd = fd};
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->signal_src};
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -errno;
	}
	l->signal_fn = fn;
	l->signal_userdata = userdata;
	return 0;
}

const sigset_t *
loop_signal_mask_original(const struct loop *l)
{
	return l->mask_saved ? &l->original_mask : NULL;
}

static void
dispatch_signals(struct loop *l)
{
	struct signalfd_siginfo si;
	while (read(l->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (l->signal_fn)
			l->signal_fn(l, &si, l->signal_userdata);
}

int
loop_run(struct loop *l)
{
	struct epoll_event evs[16];

	while (!l->quit) {
		int n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		l->wakeups++;
		for (int i = 0; i < n && !l->quit; i++) {
			struct loop_source *s = evs[i].data.ptr;
			if (s->dead)
				continue;
			switch (s->kind) {
			case SOURCE_TIMERFD:
				dispatch_timers(l);
				break;
			case SOURCE_SIGNALFD:
				dispatch_signals(l);
				break;
			case SOURCE_IO:
				s->fn(l, s->fd, evs[i].events, s->userdata);
				break;
			}
		}
		reap_dead(l);
	}
	return l->quit_code;
}

void
loop_quit(struct loop *l, int code)
{
	l->quit = true;
	l->quit_code = code;
}

uint64_t
loop_wakeups(const struct loop *l)
{
	return l->wakeups;
}
