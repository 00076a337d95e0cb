// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Descriptors of the restore child, prepared before it jumps to the
 * restorer: every saved fd is opened (or created) at a temporary number,
 * then everything else is closed and each is moved to its saved number.
 *
 * Kinds beyond files, devices, standard streams and inet sockets are
 * created by their own module through fd_create(): it returns an fd the
 * caller owns no reference to (a module keeps its objects open until the
 * child execs the restorer: the temporaries are dup'ed from it and the
 * child's own descriptors are closed with close_range anyway).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "restore.h"

int eng_restore_fds_validate(const EngProcess *p)
{
	_cleanup_free_ char *max_text = NULL;
	uint64_t max = 0;

	if (read_file("/proc/sys/fs/pipe-max-size", &max_text, NULL) >= 0)
		(void)parse_u64(max_text, 10, &max);
	for (size_t i = 0; i < p->n_pipes; i++) {
		const EngPipe *pp = p->pipes[i];

		/* Unprivileged F_SETPIPE_SZ stops at fs.pipe-max-size. */
		if (max && pp->size > max && pp->size > 65536)
			return err_set(ENOSPC, "pipe %llu of %u bytes: above fs.pipe-max-size (%llu)",
				       (unsigned long long)pp->id, pp->size, (unsigned long long)max);
	}
	for (size_t i = 0; i < p->n_fds; i++) {
		const EngFd *f = p->fds[i];
		struct stat st;

		if (f->kind == ENG_FD_KIND__FD_FIFO &&
		    (!f->path || stat(f->path, &st) < 0 || !S_ISFIFO(st.st_mode)))
			return err_set(ESTALE, "fd %u: FIFO \"%s\" is gone", f->fd,
				       f->path ? f->path : "");
		if (f->kind != ENG_FD_KIND__FD_INOTIFY || !f->inotify)
			continue;
		for (size_t k = 0; k < f->inotify->n_watches; k++) {
			const EngInotifyWatch *w = f->inotify->watches[k];

			if (lstat(w->path, &st) < 0 || (w->has_ino && st.st_ino != w->ino) ||
			    (w->has_dev && st.st_dev != w->dev))
				return err_set(ESTALE, "fd %u: inotify wd %u: \"%s\" is no longer the "
					       "watched file", f->fd, w->wd, w->path);
		}
	}
	return 0;
}

/*
 * Objects created by fd_create, one per open file description (eng_fd.obj):
 * fds that shared one (dup) share it again. Valid until the child's
 * descriptors below base are closed.
 */
struct fd_obj {
	uint64_t obj;
	int fd;
};

static struct fd_obj *objs;
static size_t nr_objs;

static void objs_reset(void)
{
	free(objs);
	objs = NULL;
	nr_objs = 0;
	eng_restore_fd_pipes_reset();
}

/*
 * Create the object of p->fds[@i] for a kind no case of
 * eng_restore_prepare_fds handles. *ret: an fd that stays open until the
 * child's descriptors are closed (the caller dups it).
 */
static int fd_create(struct eng_rst_ctx *ctx, size_t i, int *ret)
{
	const EngProcess *p = ctx->proc;
	const EngFd *f = p->fds[i];
	struct fd_obj *nv;
	int fd = -1, r;

	if (f->has_obj) {
		for (size_t k = 0; k < nr_objs; k++) {
			if (objs[k].obj == f->obj) {
				*ret = objs[k].fd;
				return 0;
			}
		}
	}
	switch (f->kind) {
	case ENG_FD_KIND__FD_PIPE_END:
	case ENG_FD_KIND__FD_FIFO:
		r = eng_restore_fd_pipe(p, f, &fd);
		break;
	case ENG_FD_KIND__FD_EVENTFD:
	case ENG_FD_KIND__FD_SIGNALFD:
	case ENG_FD_KIND__FD_TIMERFD:
	case ENG_FD_KIND__FD_EPOLL:
	case ENG_FD_KIND__FD_INOTIFY:
		r = eng_restore_fd_anon(p, f, &fd);
		break;
	case ENG_FD_KIND__FD_FOBJ:	/* files: fd-file.c */
		r = eng_restore_fd_fobj(ctx, i, &fd);
		break;
	case ENG_FD_KIND__FD_PIDFD:	/* files: fd-file.c */
		r = eng_restore_fd_pidfd(ctx, i, &fd);
		break;
	case ENG_FD_KIND__FD_UNIX_SOCKET:	/* unix: unix.c */
		r = eng_restore_unix_fd(ctx, i, &fd);
		break;
	case ENG_FD_KIND__FD_PTY_SLAVE:		/* ns: tty.c */
	case ENG_FD_KIND__FD_PTY_MASTER:
		r = eng_restore_fd_tty(ctx, i, &fd);
		break;
	default:
		return err_set(EBADMSG, "fd %u of unknown kind %d", f->fd, f->kind);
	}
	if (r < 0)
		return r;
	if (f->has_obj) {
		nv = realloc(objs, (nr_objs + 1) * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		objs = nv;
		objs[nr_objs++] = (struct fd_obj){ .obj = f->obj, .fd = fd };
	}
	*ret = fd;
	return 0;
}

int eng_restore_fd_create(struct eng_rst_ctx *ctx, size_t i, int *ret)
{
	return fd_create(ctx, i, ret);
}

/*
 * Second pass, every descriptor at its temporary number: @tmp[i] for
 * p->fds[i] (-1 for inherited standard streams).
 */
static int fds_complete(struct eng_rst_ctx *ctx, const int *tmp)
{
	(void)tmp;
	return eng_restore_unix_complete(ctx);	/* unix: queues, shutdown, options */
}

/*
 * Last pass, every descriptor at its final number (the temporaries and
 * @keep still open at or above @base): epoll interest lists, which are
 * keyed by fd number. Once per epoll object.
 */
static int fds_finish(struct eng_rst_ctx *ctx, int base)
{
	const EngProcess *p = ctx->proc;
	int r;

	for (size_t i = 0; i < p->n_fds; i++) {
		const EngFd *f = p->fds[i];
		size_t k;

		if (f->kind != ENG_FD_KIND__FD_EPOLL)
			continue;
		for (k = 0; k < i; k++)
			if (p->fds[k]->kind == f->kind && p->fds[k]->has_obj && f->has_obj &&
			    p->fds[k]->obj == f->obj)
				break;
		if (k < i)
			continue;
		r = eng_restore_fd_epoll_items(f, base);
		if (r < 0)
			return r;
	}
	return 0;
}

const char *eng_restore_dev_path(int kind)
{
	switch (kind) {
	case ENG_FD_KIND__FD_DEV_NULL:
		return "/dev/null";
	case ENG_FD_KIND__FD_DEV_ZERO:
		return "/dev/zero";
	case ENG_FD_KIND__FD_DEV_URANDOM:
		return "/dev/urandom";
	case ENG_FD_KIND__FD_DEV_RANDOM:
		return "/dev/random";
	default:
		return NULL;
	}
}

/*
 * Descriptors: every saved fd opened first at a temporary number above
 * @base, then everything else closed, then each moved to its number.
 */
int eng_restore_prepare_fds(struct eng_rst_ctx *ctx, int base, int *keep, int nr_keep)
{
	const EngProcess *p = ctx->proc;
	_cleanup_free_ int *tmp = calloc(p->n_fds + 3, sizeof(int));
	int ntmp = 0, top, r;

	if (!tmp)
		return -ENOMEM;
	objs_reset();
	/* Our own descriptors worth keeping move above base first. */
	top = base;
	for (int i = 0; i < nr_keep; i++) {
		int fd = fcntl(keep[i], F_DUPFD_CLOEXEC, top);

		if (fd < 0)
			return err_set(errno, "cannot move descriptor %d: %m", keep[i]);
		keep[i] = fd;
		top = fd + 1;
	}
	for (size_t i = 0; i < p->n_fds; i++) {
		const EngFd *f = p->fds[i];
		const char *path = NULL;
		int sock = -1;
		int fd, t, oflags = (int)(f->flags & ~(uint32_t)(O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC));

		if (ctx->inherit_stdio && f->fd <= 2) {
			tmp[ntmp++] = -1;	/* handled below */
			continue;
		}
		/* tree.c: an object of several processes, made once, inherited. */
		sock = ctx->tree ? eng_restore_tree_fd(ctx, i) : -1;
		switch (sock >= 0 ? -1 : (int)f->kind) {
		case -1:
			break;
		case ENG_FD_KIND__FD_REG:
			if (!f->has_file || f->file >= p->n_files)
				return err_set(EBADMSG, "fd %u has no file", f->fd);
			path = p->files[f->file]->path;
			break;
		case ENG_FD_KIND__FD_DEV_NULL:
		case ENG_FD_KIND__FD_DEV_ZERO:
		case ENG_FD_KIND__FD_DEV_URANDOM:
		case ENG_FD_KIND__FD_DEV_RANDOM:
			path = eng_restore_dev_path(f->kind);
			break;
		case ENG_FD_KIND__FD_TTY:
		case ENG_FD_KIND__FD_PIPE:
		case ENG_FD_KIND__FD_SOCKET:
			if (f->fd > 2)
				return err_set(EOPNOTSUPP, "fd %u: a terminal/pipe/socket that is not "
					       "a standard stream", f->fd);
			break;
		case ENG_FD_KIND__FD_INET_SOCKET:
		case ENG_FD_KIND__FD_TCP_ESTABLISHED:	/* tcp */
			/* Re-created by the parent (sockets.c), inherited. */
			if (!ctx->sock_fds || ctx->sock_fds[i] < 0)
				return err_set(EBADMSG, "fd %u: socket not re-created", f->fd);
			sock = ctx->sock_fds[i];
			break;
		default:
			/* Kinds created by their own module (fd_create below). */
			r = fd_create(ctx, i, &sock);
			if (r < 0)
				return r;
			break;
		}
		/* Descriptors of the same file, flags and offset most likely share
		 * one open file description (2>&1): share it again, so that their
		 * writes do not overwrite each other. */
		if (f->kind == ENG_FD_KIND__FD_REG) {
			size_t k;

			for (k = 0; k < i; k++) {
				const EngFd *g = p->fds[k];

				if (tmp[k] >= 0 && g->kind == f->kind && g->file == f->file &&
				    g->flags == f->flags && g->pos == f->pos)
					break;
			}
			if (k < i) {
				t = fcntl(tmp[k], F_DUPFD_CLOEXEC, top);
				if (t < 0)
					return err_set(errno, "fd %u: %m", f->fd);
				top = t + 1;
				tmp[ntmp++] = t;
				continue;
			}
		}
		if (path) {
			fd = open(path, oflags | O_CLOEXEC);
			if (fd < 0)
				return err_set(errno, "fd %u: cannot open \"%s\": %m", f->fd, path);
			if (f->kind == ENG_FD_KIND__FD_REG && f->has_pos &&
			    lseek(fd, (off_t)f->pos, SEEK_SET) < 0) {
				close(fd);
				return err_set(errno, "fd %u: cannot seek \"%s\": %m", f->fd, path);
			}
		} else {
			/* The re-created socket, or the caller's stream of the same number. */
			fd = sock >= 0 ? sock : (int)f->fd;
		}
		t = fcntl(fd, F_DUPFD_CLOEXEC, top);
		if (path)
			close(fd);
		if (t < 0)
			return err_set(errno, "fd %u: %m", f->fd);
		top = t + 1;
		tmp[ntmp++] = t;
	}
	/* Kinds whose state refers to other descriptors (epoll's interest
	 * list) are completed once every descriptor has its temporary number. */
	r = fds_complete(ctx, tmp);
	if (r < 0)
		return r;
	int stdio_tmp[3] = { -1, -1, -1 };
	if (ctx->inherit_stdio) {
		for (int i = 0; i < 3; i++) {
			stdio_tmp[i] = fcntl(i, F_DUPFD_CLOEXEC, top);
			if (stdio_tmp[i] >= 0)
				top = stdio_tmp[i] + 1;
		}
	}
	/* Close everything below base (ours and inherited). */
	if (syscall(SYS_close_range, 0u, (unsigned)base - 1, 0u) < 0)
		return err_set(errno, "close_range: %m");
	for (size_t i = 0; i < p->n_fds; i++) {
		const EngFd *f = p->fds[i];
		int flags = f->has_cloexec && f->cloexec ? O_CLOEXEC : 0;

		if (tmp[i] < 0)
			continue;
		if (dup3(tmp[i], (int)f->fd, flags) < 0)
			return err_set(errno, "fd %u: dup3: %m", f->fd);
	}
	for (int i = 0; i < 3; i++) {
		if (stdio_tmp[i] >= 0 && dup3(stdio_tmp[i], i, 0) < 0)
			return err_set(errno, "fd %d: dup3: %m", i);
	}
	r = fds_finish(ctx, base);
	objs_reset();
	if (r < 0)
		return r;
	/* Close the temporaries and every other descriptor at or above base
	 * (the store's, the pipe's read end): only the kept ones survive. */
	{
		unsigned lo = (unsigned)base;

		for (int i = 0; i <= nr_keep; i++) {
			unsigned hi = i < nr_keep ? (unsigned)keep[i] : ~0u;

			if (hi > lo && syscall(SYS_close_range, lo, i < nr_keep ? hi - 1 : hi, 0u) < 0)
				return err_set(errno, "close_range: %m");
			if (i < nr_keep)
				lo = (unsigned)keep[i] + 1;
		}
	}
	return 0;
}
