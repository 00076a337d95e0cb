// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * eventfd, signalfd, timerfd, epoll and inotify in the restore child
 * (dump side: engine/dump/fd-anon.c). Each object is created once per
 * eng_fd.obj (fds.c keeps the table) with O_CLOEXEC, then given the status
 * flags the fd had (O_NONBLOCK...).
 *
 * epoll: the instance is created empty; its interest list is added by
 * eng_restore_fd_epoll_items() once every descriptor has its final number,
 * because an item is keyed by (file, fd number) and the program will
 * EPOLL_CTL_MOD/DEL it by that number.
 *
 * timerfd: relative timers get their remaining time again; ABSTIME timers
 * their absolute deadline, so that a periodic one keeps its phase. A
 * deadline already past is accounted here (one tick, plus one per period
 * missed, the next deadline in the future), then the unread ticks are set
 * with TFD_IOC_SET_TICKS (settime resets them).
 *
 * inotify: watches are re-added in wd order; inotify numbers them with a
 * cyclic counter from 1, so dummy watches (added and removed at once, their
 * IN_IGNORED events drained) advance it to each saved wd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "restore.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif
#define NSEC_PER_SEC 1000000000ll
/* The status flags F_SETFL may set on these. */
#define ANON_SETFL (O_NONBLOCK | O_ASYNC)

static int set_flags(const EngFd *f, int fd)
{
	if (fcntl(fd, F_SETFL, (int)(f->flags & ANON_SETFL)) < 0)
		return err_set(errno, "fd %u: F_SETFL: %m", f->fd);
	return 0;
}

static int make_eventfd(const EngFd *f, int *ret)
{
	const EngEventfd *e = f->eventfd;
	_cleanup_close_ int fd = -1;
	int r;

	if (!e)
		return err_set(EBADMSG, "fd %u: eventfd without its state", f->fd);
	if (e->count == UINT64_MAX)
		return err_set(EBADMSG, "fd %u: eventfd count out of range", f->fd);
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | (e->semaphore ? EFD_SEMAPHORE : 0));
	if (fd < 0)
		return err_set(errno, "fd %u: eventfd: %m", f->fd);
	/* The initial value of eventfd() is 32 bits; the counter is 64. */
	if (e->count && write(fd, &e->count, sizeof(e->count)) != sizeof(e->count))
		return err_set(errno, "fd %u: cannot set the eventfd count: %m", f->fd);
	r = set_flags(f, fd);
	if (r < 0)
		return r;
	*ret = TAKE_FD(fd);
	return 0;
}

static int make_signalfd(const EngFd *f, int *ret)
{
	_cleanup_close_ int fd = -1;
	uint64_t mask;
	int r;

	if (!f->signalfd)
		return err_set(EBADMSG, "fd %u: signalfd without its state", f->fd);
	mask = f->signalfd->sigmask;
	/* The kernel's sigset: 8 bytes, bit n-1 for signal n. */
	fd = (int)syscall(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "fd %u: signalfd: %m", f->fd);
	r = set_flags(f, fd);
	if (r < 0)
		return r;
	*ret = TAKE_FD(fd);
	return 0;
}

static struct timespec ns_ts(int64_t ns)
{
	return (struct timespec){ .tv_sec = ns / NSEC_PER_SEC, .tv_nsec = ns % NSEC_PER_SEC };
}

static int make_timerfd(const EngFd *f, int *ret)
{
	const EngTimerfd *t = f->timerfd;
	_cleanup_close_ int fd = -1;
	struct itimerspec its = {};
	uint64_t ticks;
	int flags, r;

	if (!t)
		return err_set(EBADMSG, "fd %u: timerfd without its state", f->fd);
	if (t->value_ns > (uint64_t)INT64_MAX || t->interval_ns > (uint64_t)INT64_MAX)
		return err_set(EBADMSG, "fd %u: timerfd time out of range", f->fd);
	ticks = t->has_ticks ? t->ticks : 0;
	flags = (int)(t->settime_flags & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET));
	/* Nonblocking until the end (set_flags): the read below must not wait. */
	fd = timerfd_create(t->clockid, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return err_set(errno, "fd %u: timerfd_create(clock %d): %m", f->fd, t->clockid);
	its.it_interval = ns_ts((int64_t)t->interval_ns);
	if (t->value_ns && (flags & TFD_TIMER_ABSTIME)) {
		struct timespec now;
		int64_t dl, now_ns, iv = (int64_t)t->interval_ns;

		if (!t->has_deadline_ns)
			return err_set(EBADMSG, "fd %u: absolute timerfd without its deadline", f->fd);
		if (clock_gettime(t->clockid, &now) < 0)
			return err_set(errno, "fd %u: clock %d: %m", f->fd, t->clockid);
		now_ns = (int64_t)now.tv_sec * NSEC_PER_SEC + now.tv_nsec;
		dl = t->deadline_ns;
		if (dl <= now_ns) {
			/* Expired while the process was away: count it (and the
			 * periods missed) as the kernel would have. */
			if (iv > 0) {
				int64_t missed = (now_ns - dl) / iv + 1;

				ticks += (uint64_t)missed;
				dl += missed * iv;
			} else {
				ticks++;
				dl = 0;
			}
		}
		if (dl) {
			its.it_value = ns_ts(dl);
			if (timerfd_settime(fd, flags, &its, NULL) < 0)
				return err_set(errno, "fd %u: timerfd_settime: %m", f->fd);
		}
	} else if (t->value_ns) {
		its.it_value = ns_ts((int64_t)t->value_ns);
		if (timerfd_settime(fd, flags & ~TFD_TIMER_ABSTIME, &its, NULL) < 0)
			return err_set(errno, "fd %u: timerfd_settime: %m", f->fd);
	}
	if (ticks) {
		uint64_t fired = 0;

		/* An expiration since settime would be overwritten by
		 * SET_TICKS: take it into the count first. */
		if (read(fd, &fired, sizeof(fired)) == sizeof(fired))
			ticks += fired;
	}
	/* ECANCELED: a CANCEL_ON_SET timer whose clock was set meanwhile; the
	 * program gets ECANCELED from its next read, as it would have. */
	if (ticks && ioctl(fd, TFD_IOC_SET_TICKS, &ticks) < 0 && errno != ECANCELED)
		return err_set(errno, "fd %u: cannot restore %llu timerfd ticks: %m", f->fd,
			       (unsigned long long)ticks);
	r = set_flags(f, fd);
	if (r < 0)
		return r;
	*ret = TAKE_FD(fd);
	return 0;
}

static int drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return errno == EAGAIN ? 0 : -errno;
}

static int make_inotify(const EngFd *f, int *ret)
{
	const EngInotify *in = f->inotify;
	_cleanup_close_ int fd = -1;
	int r;

	if (!in)
		return err_set(EBADMSG, "fd %u: inotify without its state", f->fd);
	fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0)
		return err_set(errno, "fd %u: inotify_init1: %m", f->fd);
	for (size_t i = 0; i < in->n_watches; i++) {
		const EngInotifyWatch *w = in->watches[i];
		/* The path names the watched inode itself, never what it points to. */
		uint32_t mask = w->mask | IN_DONT_FOLLOW;
		struct stat st;
		int wd;

		if (lstat(w->path, &st) < 0 || (w->has_ino && st.st_ino != w->ino) ||
		    (w->has_dev && st.st_dev != w->dev))
			return err_set(ENOENT, "fd %u: inotify wd %u: \"%s\" is no longer the watched "
				       "file", f->fd, w->wd, w->path);
		for (;;) {
			wd = inotify_add_watch(fd, w->path, mask);
			if (wd < 0)
				return err_set(errno, "fd %u: inotify watch \"%s\": %m", f->fd, w->path);
			if ((uint32_t)wd >= w->wd)
				break;
			/* A dummy: drop it (and its IN_IGNORED event). */
			if (inotify_rm_watch(fd, wd) < 0 || drain(fd) < 0)
				return err_set(errno, "fd %u: inotify_rm_watch: %m", f->fd);
		}
		if ((uint32_t)wd != w->wd)
			return err_set(EEXIST, "fd %u: inotify watch \"%s\" got wd %d instead of %u",
				       f->fd, w->path, wd, w->wd);
	}
	r = set_flags(f, fd);
	if (r < 0)
		return r;
	*ret = TAKE_FD(fd);
	return 0;
}

int eng_restore_fd_anon(const EngProcess *p, const EngFd *f, int *ret)
{
	(void)p;
	switch (f->kind) {
	case ENG_FD_KIND__FD_EVENTFD:
		return make_eventfd(f, ret);
	case ENG_FD_KIND__FD_SIGNALFD:
		return make_signalfd(f, ret);
	case ENG_FD_KIND__FD_TIMERFD:
		return make_timerfd(f, ret);
	case ENG_FD_KIND__FD_EPOLL: {
		int fd = epoll_create1(EPOLL_CLOEXEC);

		if (fd < 0)
			return err_set(errno, "fd %u: epoll_create1: %m", f->fd);
		int r = set_flags(f, fd);

		if (r < 0) {
			close(fd);
			return r;
		}
		*ret = fd;
		return 0;
	}
	case ENG_FD_KIND__FD_INOTIFY:
		return make_inotify(f, ret);
	default:
		return err_set(EINVAL, "fd %u: kind %d is not an anon kind", f->fd, f->kind);
	}
}

/*
 * Add the interest list of the epoll fd @f, every descriptor of the process
 * at its final number. An item whose target moved to another fd (the one
 * it was added with was closed or reused) is added through a temporary
 * dup of the target at the original number, whatever held that number is
 * put back afterwards. @scratch: lowest number free for such temporaries.
 */
int eng_restore_fd_epoll_items(const EngFd *f, int scratch)
{
	const EngEpoll *ep = f->epoll;
	int efd = (int)f->fd;

	if (!ep)
		return err_set(EBADMSG, "fd %u: epoll without its state", f->fd);
	for (size_t i = 0; i < ep->n_items; i++) {
		const EngEpollItem *it = ep->items[i];
		struct epoll_event ev = { .events = it->events, .data.u64 = it->data };
		int tfd = (int)it->tfd, saved = -1, saved_fl = 0, r = 0;

		/* Added by another process of the tree holding this instance. */
		if (it->elsewhere)
			continue;

		if (it->has_target_fd && it->target_fd != it->tfd) {
			saved_fl = fcntl(tfd, F_GETFD);
			if (saved_fl >= 0) {
				saved = fcntl(tfd, F_DUPFD_CLOEXEC, scratch);
				if (saved < 0)
					return err_set(errno, "fd %u: %m", f->fd);
			}
			if (dup2((int)it->target_fd, tfd) < 0) {
				r = err_set(errno, "fd %u: epoll target %u: dup2: %m", f->fd, it->tfd);
				goto put_back;
			}
		}
		/* EEXIST: an instance shared by several processes of a tree,
		 * its items added by another holder already. EPERM on a standard
		 * stream: the caller's stream replaced the saved one (a pipe)
		 * and cannot be polled (a regular file): nothing to watch. */
		if (epoll_ctl(efd, EPOLL_CTL_ADD, tfd, &ev) < 0 && errno != EEXIST &&
		    !(errno == EPERM && tfd <= 2))
			r = err_set(errno, "fd %u: epoll target fd %u: EPOLL_CTL_ADD: %m", f->fd,
				    it->tfd);
put_back:
		if (it->has_target_fd && it->target_fd != it->tfd) {
			if (saved >= 0) {
				if (dup3(saved, tfd, saved_fl & FD_CLOEXEC ? O_CLOEXEC : 0) < 0 && !r)
					r = err_set(errno, "fd %u: dup3: %m", f->fd);
				close(saved);
			} else {
				close(tfd);
			}
		}
		if (r < 0)
			return r;
	}
	return 0;
}
