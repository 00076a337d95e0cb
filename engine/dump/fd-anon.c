// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Anonymous-inode descriptors: eventfd, signalfd, timerfd, epoll, inotify.
 * Their state comes from /proc/PID/fdinfo/N (read-only, the process is
 * frozen); epoll targets are identified with kcmp(KCMP_EPOLL_TFD) and
 * inotify watches are resolved to a path through their file handle. Nothing
 * in the process changes. Restore: engine/restore/fd-anon.c.
 *
 * Every fd gets eng_fd.obj, the identity of its open file description
 * (kcmp(KCMP_FILE) against the earlier fds of the same kind): restore
 * creates each object once and dups it to every fd that held it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "dump.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd		438
#endif

#define NSEC_PER_SEC 1000000000ull
/* Beyond this a restore would spend too long reaching the watch numbers. */
#define INOTIFY_WD_MAX 65536

static int kcmp(pid_t p1, pid_t p2, int type, unsigned long i1, unsigned long i2)
{
	return (int)syscall(SYS_kcmp, p1, p2, type, i1, i2);
}

int eng_dump_fd_obj(struct eng_dump_ctx *ctx, int fd, EngFd *e)
{
	const EngProcess *proc = ctx->proc;

	for (size_t i = 0; i < proc->n_fds; i++) {
		const EngFd *g = proc->fds[i];

		/* Pipe ends: those of the same pipe, any kind (a standard stream
		 * may become one); others: the same kind. */
		if (!g->has_obj || (e->has_pipe ? !g->has_pipe || g->pipe != e->pipe
						: g->kind != e->kind))
			continue;
		if (kcmp(ctx->pid, ctx->pid, KCMP_FILE, (unsigned long)fd, g->fd) == 0) {
			e->has_obj = true;
			e->obj = g->obj;
			return 1;
		}
	}
	e->has_obj = true;
	e->obj = (uint64_t)(uint32_t)ctx->pid << 32 | (uint32_t)fd;
	return 0;
}

/* The value after "key" at the start of a line (key includes the ':'). */
static const char *field(const char *buf, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, n) == 0) {
			p += n;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
	}
	return NULL;
}

static int dump_eventfd(struct eng_dump_ctx *ctx, int fd, const char *info, EngFd *e)
{
	const char *p = field(info, "eventfd-count:");
	unsigned long long cnt;
	int sem = 0;
	EngEventfd *ev;

	if (!p || sscanf(p, "%llx", &cnt) != 1)
		return err_set(EBADMSG, "process %d fd %d: no eventfd-count in fdinfo", ctx->pid, fd);
	p = field(info, "eventfd-semaphore:");
	if (p && sscanf(p, "%d", &sem) != 1)
		return err_set(EBADMSG, "process %d fd %d: bad eventfd-semaphore", ctx->pid, fd);
	ev = malloc(sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	eng_eventfd__init(ev);
	ev->count = cnt;
	ev->has_semaphore = true;
	ev->semaphore = sem != 0;
	e->eventfd = ev;
	return 0;
}

static int dump_signalfd(struct eng_dump_ctx *ctx, int fd, const char *info, EngFd *e)
{
	const char *p = field(info, "sigmask:");
	unsigned long long mask;
	EngSignalfd *s;

	if (!p || sscanf(p, "%llx", &mask) != 1)
		return err_set(EBADMSG, "process %d fd %d: no sigmask in fdinfo", ctx->pid, fd);
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	eng_signalfd__init(s);
	s->sigmask = mask;
	e->signalfd = s;
	return 0;
}

/*
 * timerfd fdinfo:
 *   clockid: 1
 *   ticks: 0
 *   settime flags: 01
 *   it_value: (1, 989875199)        remaining time, relative
 *   it_interval: (0, 100000000)
 */
static int dump_timerfd(struct eng_dump_ctx *ctx, int fd, const char *info, EngFd *e)
{
	unsigned long long vs, vn, is, in, ticks;
	_cleanup_free_ char *fresh = NULL;
	unsigned flags;
	const char *p;
	int clockid;
	EngTimerfd *t;

	/*
	 * A periodic timer that expired and has not been read since is not
	 * running: the kernel forwards it only on read or timerfd_gettime, and
	 * until then fdinfo shows it_value (0, 0) (it would pass for a
	 * disarmed one). timerfd_gettime on our copy of the description
	 * forwards it as a read would, without taking the ticks (the missed
	 * periods are added to them), so fdinfo then shows the next deadline.
	 */
	if ((p = field(info, "it_value:")) && sscanf(p, "(%llu, %llu)", &vs, &vn) == 2 &&
	    !vs && !vn && (p = field(info, "it_interval:")) &&
	    sscanf(p, "(%llu, %llu)", &is, &in) == 2 && (is || in)) {
		struct itimerspec cur;
		char rel[64];
		int pidfd = (int)syscall(SYS_pidfd_open, ctx->pid, 0), copy, r;

		if (pidfd < 0)
			return err_wrap(-errno, "process %d: pidfd_open", ctx->pid);
		copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
		r = -errno;
		close(pidfd);
		if (copy < 0)
			return err_wrap(r, "process %d fd %d: pidfd_getfd", ctx->pid, fd);
		r = timerfd_gettime(copy, &cur) < 0 ? -errno : 0;
		close(copy);
		if (r < 0)
			return err_wrap(r, "process %d fd %d: timerfd_gettime", ctx->pid, fd);
		snprintf(rel, sizeof(rel), "fdinfo/%d", fd);
		r = read_file_at(ctx->proc_fd, rel, &fresh, NULL);
		if (r < 0)
			return err_wrap(r, "cannot read /proc/%d/fdinfo/%d", ctx->pid, fd);
		info = fresh;
	}
	if (!(p = field(info, "clockid:")) || sscanf(p, "%d", &clockid) != 1 ||
	    !(p = field(info, "ticks:")) || sscanf(p, "%llu", &ticks) != 1 ||
	    !(p = field(info, "settime flags:")) || sscanf(p, "%o", &flags) != 1 ||
	    !(p = field(info, "it_value:")) || sscanf(p, "(%llu, %llu)", &vs, &vn) != 2 ||
	    !(p = field(info, "it_interval:")) || sscanf(p, "(%llu, %llu)", &is, &in) != 2)
		return err_set(EBADMSG, "process %d fd %d: unparsable timerfd fdinfo", ctx->pid, fd);
	t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	eng_timerfd__init(t);
	t->clockid = clockid;
	t->settime_flags = flags;
	t->value_ns = vs * NSEC_PER_SEC + vn;
	t->interval_ns = is * NSEC_PER_SEC + in;
	t->has_ticks = true;
	t->ticks = ticks;
	if ((flags & 1 /* TFD_TIMER_ABSTIME */) && t->value_ns) {
		struct timespec now;

		if (clock_gettime(clockid, &now) < 0) {
			free(t);
			return err_set(errno, "process %d fd %d: timerfd clock %d: %m", ctx->pid, fd,
				       clockid);
		}
		t->has_deadline_ns = true;
		t->deadline_ns = (int64_t)now.tv_sec * (int64_t)NSEC_PER_SEC + now.tv_nsec +
				 (int64_t)t->value_ns;
	}
	e->timerfd = t;
	return 0;
}

/* Every fd number of the process, for the epoll target search. */
static int list_fds(struct eng_dump_ctx *ctx, int **ret, size_t *ret_nr)
{
	struct dirent *de;
	int *v = NULL;
	size_t nr = 0, cap = 0;
	int dfd;
	DIR *d;

	dfd = openat(ctx->proc_fd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return err_wrap(-errno, "cannot open /proc/%d/fd", ctx->pid);
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		int fd;

		if (parse_int(de->d_name, &fd) < 0 || fd < 0)
			continue;
		if (nr == cap) {
			size_t nc = cap ? cap * 2 : 64;
			int *nv = realloc(v, nc * sizeof(*nv));

			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
			cap = nc;
		}
		v[nr++] = fd;
	}
	closedir(d);
	*ret = v;
	*ret_nr = nr;
	return 0;
}

/*
 * epoll fdinfo, one line per item:
 *   tfd:        7 events: 80000019 data:             1234  pos:0 ino:177c20 sdev:f
 * The item is keyed by (file, tfd): if fd tfd of the process no longer holds
 * that file (closed or reused), another fd that holds it is searched with
 * kcmp(KCMP_EPOLL_TFD); none: refused.
 */
static int dump_epoll(struct eng_dump_ctx *ctx, int fd, const char *info, EngFd *e)
{
	_cleanup_free_ int *fds = NULL;
	size_t nr_fds = 0;
	EngEpoll *ep;
	int r = 0;

	ep = malloc(sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	eng_epoll__init(ep);
	e->epoll = ep;	/* freed with e */
	for (const char *p = field(info, "tfd:"); p; p = strstr(p, "\ntfd:"), p = p ? p + 5 : NULL) {
		unsigned tfd, events;
		unsigned long long data;
		struct kcmp_epoll_slot slot;
		EngEpollItem *it, **nv;
		unsigned toff = 0;
		int target = -1;

		if (sscanf(p, "%u events: %x data: %llx", &tfd, &events, &data) != 3)
			return err_set(EBADMSG, "process %d fd %d: unparsable epoll item", ctx->pid, fd);
		for (size_t i = 0; i < ep->n_items; i++)
			if (ep->items[i]->tfd == tfd)
				toff++;
		slot = (struct kcmp_epoll_slot){ .efd = (uint32_t)fd, .tfd = tfd, .toff = toff };
		if (kcmp(ctx->pid, ctx->pid, KCMP_EPOLL_TFD, tfd, (unsigned long)&slot) == 0) {
			target = (int)tfd;
		} else {
			if (!fds) {
				r = list_fds(ctx, &fds, &nr_fds);
				if (r < 0)
					return r;
			}
			for (size_t i = 0; i < nr_fds && target < 0; i++)
				if (kcmp(ctx->pid, ctx->pid, KCMP_EPOLL_TFD, (unsigned long)fds[i],
					 (unsigned long)&slot) == 0)
					target = fds[i];
			/* In a tree, another holder of this instance may hold it
			 * (eng_dump_epoll_check_image decides). */
			if (target < 0 && !ctx->tree)
				return err_set(EOPNOTSUPP, "process %d fd %d: epoll target added as fd %u "
					       "is held by no descriptor of the process any more",
					       ctx->pid, fd, tfd);
		}
		it = malloc(sizeof(*it));
		if (!it)
			return -ENOMEM;
		eng_epoll_item__init(it);
		it->tfd = tfd;
		it->events = events;
		it->data = data;
		if (target < 0) {
			it->has_elsewhere = true;
			it->elsewhere = true;
		} else if (target != (int)tfd) {
			it->has_target_fd = true;
			it->target_fd = (uint32_t)target;
		}
		nv = realloc(ep->items, (ep->n_items + 1) * sizeof(*nv));
		if (!nv) {
			free(it);
			return -ENOMEM;
		}
		ep->items = nv;
		ep->items[ep->n_items++] = it;
	}
	return 0;
}

/* A directory of the target's mount namespace on the filesystem @dev
 * (userspace dev_t), from /proc/PID/mountinfo. */
static int open_mount_of(struct eng_dump_ctx *ctx, dev_t dev)
{
	_cleanup_free_ char *mi = NULL;
	char path[4200];
	int r;

	r = read_file_at(ctx->proc_fd, "mountinfo", &mi, NULL);
	if (r < 0)
		return r;
	for (char *l = mi; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		unsigned ma, mi_;
		char mnt[4096];
		int fd;

		/* id parent maj:min root mountpoint ... */
		if (sscanf(l, "%*d %*d %u:%u %*s %4095s", &ma, &mi_, mnt) != 3)
			continue;
		if (makedev(ma, mi_) != dev)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/root%s", ctx->pid, mnt);
		/* open_by_handle_at wants a real file, not O_PATH. */
		fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0)
			return fd;
	}
	return -ENOENT;
}

/*
 * inotify fdinfo, one line per watch:
 *   inotify wd:2 ino:35d sdev:fe00000 mask:80000002 ignored_mask:0 fhandle-bytes:8
 *   fhandle-type:1 f_handle:5d03000000000000
 * sdev is the kernel's dev_t (major << 20 | minor). The path is found by
 * opening the handle (CAP_DAC_READ_SEARCH) on the filesystem's mount.
 */
static int dump_inotify(struct eng_dump_ctx *ctx, int fd, const char *info, EngFd *e)
{
	EngInotify *in;

	in = malloc(sizeof(*in));
	if (!in)
		return -ENOMEM;
	eng_inotify__init(in);
	e->inotify = in;	/* freed with e */
	for (const char *p = strstr(info, "inotify wd:"); p; p = strstr(p + 1, "inotify wd:")) {
		unsigned wd, sdev, mask, hbytes;
		int htype;
		unsigned long long ino;
		char hex[2 * 128 + 1], link[4096], rel[64];
		struct {
			struct file_handle fh;
			unsigned char buf[128];
		} h;
		_cleanup_close_ int mfd = -1, ofd = -1;
		EngInotifyWatch *w, **nv;
		struct stat st;
		dev_t dev;
		ssize_t n;

		if (sscanf(p, "inotify wd:%x ino:%llx sdev:%x mask:%x ignored_mask:%*x "
			   "fhandle-bytes:%x fhandle-type:%x f_handle:%256s", &wd, &ino, &sdev, &mask,
			   &hbytes, &htype, hex) != 7 || hbytes > sizeof(h.buf) ||
		    strlen(hex) != 2 * hbytes)
			return err_set(EOPNOTSUPP, "process %d fd %d: inotify watch without a file "
				       "handle", ctx->pid, fd);
		if (wd > INOTIFY_WD_MAX)
			return err_set(EOPNOTSUPP, "process %d fd %d: inotify watch number %u is above "
				       "%u", ctx->pid, fd, wd, INOTIFY_WD_MAX);
		dev = makedev(sdev >> 20, sdev & 0xfffff);
		h.fh.handle_bytes = hbytes;
		h.fh.handle_type = htype;
		if (hex_decode(hex, h.fh.f_handle, hbytes) < 0)
			return err_set(EBADMSG, "process %d fd %d: bad inotify f_handle", ctx->pid, fd);
		mfd = open_mount_of(ctx, dev);
		if (mfd < 0)
			return err_set(EOPNOTSUPP, "process %d fd %d: inotify wd %u: no mount of device "
				       "%u:%u", ctx->pid, fd, wd, major(dev), minor(dev));
		ofd = open_by_handle_at(mfd, &h.fh, O_PATH | O_CLOEXEC);
		if (ofd < 0)
			return err_set(EOPNOTSUPP, "process %d fd %d: inotify wd %u (inode %llu on "
				       "%u:%u): cannot open its file handle: %m", ctx->pid, fd, wd,
				       ino, major(dev), minor(dev));
		snprintf(rel, sizeof(rel), "/proc/self/fd/%d", ofd);
		n = readlink(rel, link, sizeof(link) - 1);
		if (n <= 0)
			return err_set(errno, "process %d fd %d: inotify wd %u: readlink: %m", ctx->pid,
				       fd, wd);
		link[n] = '\0';
		if (link[0] != '/' || lstat(link, &st) < 0 || st.st_dev != dev ||
		    st.st_ino != (ino_t)ino)
			return err_set(EOPNOTSUPP, "process %d fd %d: inotify wd %u: the watched inode "
				       "%llu has no path (\"%s\")", ctx->pid, fd, wd, ino, link);
		nv = realloc(in->watches, (in->n_watches + 1) * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		in->watches = nv;
		w = malloc(sizeof(*w));
		if (!w)
			return -ENOMEM;
		eng_inotify_watch__init(w);
		w->wd = wd;
		w->mask = mask;
		w->path = strdup(link);
		w->has_ino = w->has_dev = true;
		w->ino = ino;
		w->dev = dev;
		if (!w->path) {
			free(w);
			return -ENOMEM;
		}
		in->watches[in->n_watches++] = w;
	}
	/* Restore re-adds them in wd order (inotify numbers them increasingly). */
	for (size_t i = 1; i < in->n_watches; i++)
		for (size_t j = i; j > 0 && in->watches[j - 1]->wd > in->watches[j]->wd; j--) {
			EngInotifyWatch *t = in->watches[j];

			in->watches[j] = in->watches[j - 1];
			in->watches[j - 1] = t;
		}
	return 0;
}

/*
 * Tree: every epoll item some process could not resolve (elsewhere) must be
 * resolved by another process holding the same instance: the n-th item with
 * the same tfd, events and data in that process's record.
 */
int eng_dump_epoll_check_image(const EngImage *img)
{
	for (size_t pi = 0; pi < img->n_procs; pi++) {
		const EngProcess *p = img->procs[pi];

		for (size_t i = 0; i < p->n_fds; i++) {
			const EngFd *f = p->fds[i];

			if (f->kind != ENG_FD_KIND__FD_EPOLL || !f->epoll)
				continue;
			for (size_t k = 0; k < f->epoll->n_items; k++) {
				const EngEpollItem *it = f->epoll->items[k];
				bool found = false;

				if (!it->elsewhere)
					continue;
				for (size_t qi = 0; qi < img->n_procs && !found; qi++)
					for (size_t j = 0; j < img->procs[qi]->n_fds && !found; j++) {
						const EngFd *g = img->procs[qi]->fds[j];

						if (g->kind != f->kind || !g->epoll || !g->has_obj ||
						    !f->has_obj || g->obj != f->obj ||
						    g->epoll->n_items != f->epoll->n_items)
							continue;
						found = !g->epoll->items[k]->elsewhere &&
							g->epoll->items[k]->tfd == it->tfd;
					}
				if (!found)
					return err_set(EOPNOTSUPP, "process %u fd %u: epoll target added as "
						       "fd %u is held by no process of the tree any more",
						       p->pid, f->fd, it->tfd);
			}
		}
	}
	return 0;
}

int eng_dump_fd_anon_kind(const char *type)
{
	if (strcmp(type, "eventfd") == 0)
		return ENG_FD_KIND__FD_EVENTFD;
	if (strcmp(type, "signalfd") == 0)
		return ENG_FD_KIND__FD_SIGNALFD;
	if (strcmp(type, "timerfd") == 0)
		return ENG_FD_KIND__FD_TIMERFD;
	if (strcmp(type, "eventpoll") == 0)
		return ENG_FD_KIND__FD_EPOLL;
	if (strcmp(type, "inotify") == 0)
		return ENG_FD_KIND__FD_INOTIFY;
	return -1;
}

int eng_dump_fd_anon(struct eng_dump_ctx *ctx, int fd, const char *info, EngFd *e)
{
	int r;

	r = eng_dump_fd_obj(ctx, fd, e);
	if (r < 0)
		return r;
	switch (e->kind) {
	case ENG_FD_KIND__FD_EVENTFD:
		return dump_eventfd(ctx, fd, info, e);
	case ENG_FD_KIND__FD_SIGNALFD:
		return dump_signalfd(ctx, fd, info, e);
	case ENG_FD_KIND__FD_TIMERFD:
		return dump_timerfd(ctx, fd, info, e);
	case ENG_FD_KIND__FD_EPOLL:
		return dump_epoll(ctx, fd, info, e);
	case ENG_FD_KIND__FD_INOTIFY:
		return dump_inotify(ctx, fd, info, e);
	default:
		return err_set(EINVAL, "process %d fd %d: not an anon kind", ctx->pid, fd);
	}
}
