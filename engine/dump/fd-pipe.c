// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Pipes and FIFOs (any fd but the standard streams, which stay the caller's
 * streams). One eng_process.pipes record per pipe object (its inode), with
 * its size and its bytes in flight; one eng_fd per descriptor naming it.
 *
 * The bytes are read without consuming them: the pipe is opened from our
 * side (pidfd_getfd of a read end, or /proc/PID/fd/N opened O_RDONLY for a
 * write end), tee(2) duplicates its buffers into a pipe of ours of the same
 * size, and we read ours. The process's pipe is unchanged.
 *
 * A pipe must be restorable as a whole: an end the process lacks must be
 * closed everywhere (the kernel says so: POLLHUP on a read end means no
 * writer, POLLERR on a write end no reader); otherwise the other end lives
 * outside the process and the dump refuses (eng_dump_pipes_check). A FIFO
 * is exempt: its path is the rendezvous, other ends open it again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "dump.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

static EngPipe *find_pipe(EngProcess *proc, uint64_t id)
{
	for (size_t i = 0; i < proc->n_pipes; i++)
		if (proc->pipes[i]->id == id)
			return proc->pipes[i];
	return NULL;
}

/* Our own copy of the process's fd (same open file description). */
static int getfd(struct eng_dump_ctx *ctx, int fd)
{
	_cleanup_close_ int pidfd = -1;
	int r;

	pidfd = (int)syscall(SYS_pidfd_open, ctx->pid, 0);
	if (pidfd < 0)
		return err_wrap(-errno, "process %d: pidfd_open", ctx->pid);
	r = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (r < 0)
		return err_wrap(-errno, "process %d fd %d: pidfd_getfd", ctx->pid, fd);
	return r;
}

/* Copy the bytes in flight of the pipe readable through @src into @pp. */
/*
 * Copy the bytes in flight of the pipe readable through @src into @pp.
 * Each read asks for everything left: it returns it all, unless the pipe
 * holds packets (written in O_DIRECT mode: tee keeps the buffer flag), when
 * every read stops at the end of one packet. More than one read: packets,
 * whose lengths are recorded.
 */
static int peek_pipe(struct eng_dump_ctx *ctx, int fd, int src, EngPipe *pp)
{
	_cleanup_free_ uint32_t *lens = NULL;
	size_t nr_lens = 0;
	_cleanup_close_ int ours_r = -1, ours_w = -1;
	int p[2], avail = 0, sz;
	ssize_t n;

	if (ioctl(src, FIONREAD, &avail) < 0)
		return err_set(errno, "process %d fd %d: FIONREAD: %m", ctx->pid, fd);
	if (avail <= 0)
		return 0;
	if (avail > (int)pp->size)
		return err_set(EBADMSG, "process %d fd %d: %d bytes in a pipe of %u", ctx->pid, fd,
			       avail, pp->size);
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return err_set(errno, "pipe2: %m");
	ours_r = p[0];
	ours_w = p[1];
	/* As many slots as the source: tee copies buffer references. */
	sz = fcntl(ours_w, F_SETPIPE_SZ, (int)pp->size);
	if (sz < (int)pp->size)
		return err_set(sz < 0 ? errno : ENOSPC, "process %d fd %d: cannot size a pipe to "
			       "%u bytes to copy it", ctx->pid, fd, pp->size);
	n = tee(src, ours_w, (size_t)avail, SPLICE_F_NONBLOCK);
	if (n != avail)
		return err_set(n < 0 ? errno : EIO, "process %d fd %d: tee copied %zd of %d bytes "
			       "in flight", ctx->pid, fd, n, avail);
	pp->data.data = malloc((size_t)avail);
	if (!pp->data.data)
		return -ENOMEM;
	pp->data.len = 0;
	pp->has_data = true;
	while (pp->data.len < (size_t)avail) {
		n = read(ours_r, pp->data.data + pp->data.len, (size_t)avail - pp->data.len);
		if (n <= 0)
			return err_set(n < 0 ? errno : EIO, "process %d fd %d: reading the pipe copy",
				       ctx->pid, fd);
		pp->data.len += (size_t)n;
		{
			uint32_t *nv = realloc(lens, (nr_lens + 1) * sizeof(*nv));

			if (!nv)
				return -ENOMEM;
			lens = nv;
			lens[nr_lens++] = (uint32_t)n;
		}
	}
	if (nr_lens > 1) {
		pp->packets = TAKE_PTR(lens);
		pp->n_packets = nr_lens;
	}
	return 0;
}

static int new_pipe(struct eng_dump_ctx *ctx, int fd, const struct stat *st, bool fifo,
		    EngPipe **ret)
{
	EngProcess *proc = ctx->proc;
	EngPipe *pp, **nv;

	nv = realloc(proc->pipes, (proc->n_pipes + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	proc->pipes = nv;
	pp = malloc(sizeof(*pp));
	if (!pp)
		return -ENOMEM;
	eng_pipe__init(pp);
	pp->id = st->st_ino;
	pp->has_fifo = true;
	pp->fifo = fifo;
	pp->has_readers = pp->has_writers = true;
	proc->pipes[proc->n_pipes++] = pp;
	(void)fd;
	*ret = pp;
	return 0;
}

static int dump_pipe(struct eng_dump_ctx *ctx, int fd, const char *link, const struct stat *st,
		     EngFd *e)
{
	_cleanup_close_ int copy = -1, rd = -1;
	int acc = (int)(e->flags & O_ACCMODE);
	struct pollfd pfd;
	EngPipe *pp;
	bool fifo = e->kind == ENG_FD_KIND__FD_FIFO;
	bool first = false;
	int r, sz;

	if (fifo) {
		struct stat now;

		/* Restore reopens it by path: it must still be this FIFO. */
		if (link[0] != '/' || stat(link, &now) < 0 || now.st_dev != st->st_dev ||
		    now.st_ino != st->st_ino)
			return err_set(EOPNOTSUPP, "process %d fd %d: FIFO \"%s\" was removed or "
				       "replaced since it was opened", ctx->pid, fd, link);
	}
	e->has_pipe = true;
	e->pipe = st->st_ino;
	r = eng_dump_fd_obj(ctx, fd, e);
	if (r < 0)
		return r;
	pp = find_pipe(ctx->proc, st->st_ino);
	if (!pp) {
		r = new_pipe(ctx, fd, st, fifo, &pp);
		if (r < 0)
			return r;
		pp->readers = pp->writers = false;
		first = true;
	}

	copy = getfd(ctx, fd);
	if (copy < 0)
		return copy;
	/* Who else is there: the kernel's view through this end. */
	pfd = (struct pollfd){ .fd = copy, .events = acc == O_WRONLY ? POLLOUT : POLLIN };
	if (poll(&pfd, 1, 0) < 0)
		return err_set(errno, "process %d fd %d: poll: %m", ctx->pid, fd);
	if (acc == O_RDWR) {
		pp->readers = pp->writers = true;
	} else if (acc == O_RDONLY) {
		pp->readers = true;
		if (!(pfd.revents & POLLHUP))
			pp->writers = true;
	} else {
		pp->writers = true;
		if (!(pfd.revents & POLLERR))
			pp->readers = true;
	}
	if (!first)
		return 0;

	sz = fcntl(copy, F_GETPIPE_SZ);
	if (sz <= 0)
		return err_set(errno, "process %d fd %d: F_GETPIPE_SZ: %m", ctx->pid, fd);
	pp->size = (uint32_t)sz;
	if (acc == O_WRONLY) {
		/* A readable file of the same pipe, without blocking for a writer. */
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", ctx->pid, fd);
		rd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (rd < 0)
			return err_set(errno, "process %d fd %d: cannot open the pipe for reading: %m",
				       ctx->pid, fd);
	}
	return peek_pipe(ctx, fd, rd >= 0 ? rd : copy, pp);
}

int eng_dump_fd_pipe(struct eng_dump_ctx *ctx, int fd, const char *link, const struct stat *st,
		     EngFd *e)
{
	int r = dump_pipe(ctx, fd, link, st, e);

	/* A standard stream stays the caller's stream whatever happens here;
	 * it only becomes a pipe end of ours if its pipe is whole. */
	if (r < 0 && e->kind == ENG_FD_KIND__FD_PIPE) {
		e->has_pipe = e->has_obj = false;
		err_clear();
		return 0;
	}
	return r;
}

/*
 * Every pipe must be whole in @procs: an end that some process still holds
 * (the kernel saw it) must be among their fds. One line for the first pipe
 * that is not.
 */
/* A pipe only standard streams refer to stays theirs: its bytes (the
 * caller's, unread) are not kept in the image. */
static void drop_data(EngProcess *const *procs, size_t nr_procs, uint64_t id)
{
	for (size_t pk = 0; pk < nr_procs; pk++)
		for (size_t k = 0; k < procs[pk]->n_pipes; k++) {
			EngPipe *q = procs[pk]->pipes[k];

			if (q->id != id || !q->has_data)
				continue;
			free(q->data.data);
			q->data.data = NULL;
			q->data.len = 0;
			q->has_data = false;
		}
}

static int pipes_check(EngProcess *const *procs, size_t nr_procs, int pid)
{
	for (size_t pi = 0; pi < nr_procs; pi++) {
		for (size_t i = 0; i < procs[pi]->n_pipes; i++) {
			const EngPipe *pp = procs[pi]->pipes[i];
			bool rd = false, wr = false, readers = false, writers = false;
			size_t nr_ends = 0;
			int any = -1;

			/* A FIFO's path is its rendezvous: other ends open it again. */
			if (pp->fifo)
				continue;
			for (size_t pk = 0; pk < nr_procs; pk++) {
				const EngProcess *q = procs[pk];

				for (size_t k = 0; k < q->n_pipes; k++) {
					if (q->pipes[k]->id != pp->id)
						continue;
					readers |= q->pipes[k]->readers;
					writers |= q->pipes[k]->writers;
				}
				for (size_t k = 0; k < q->n_fds; k++) {
					const EngFd *f = q->fds[k];
					int acc = (int)(f->flags & O_ACCMODE);

					if (!f->has_pipe || f->pipe != pp->id)
						continue;
					if (pk == pi && (any < 0 || f->kind == ENG_FD_KIND__FD_PIPE_END))
						any = (int)f->fd;
					nr_ends += f->kind == ENG_FD_KIND__FD_PIPE_END;
					rd |= acc == O_RDONLY || acc == O_RDWR;
					wr |= acc == O_WRONLY || acc == O_RDWR;
				}
			}
			if ((readers && !rd) || (writers && !wr)) {
				/* Not whole: standard streams stay the caller's. */
				if (!nr_ends) {
					drop_data(procs, nr_procs, pp->id);
					continue;
				}
				return err_set(EOPNOTSUPP, "process %u fd %d: pipe %llu has its %s end "
					       "outside the %s", pid ? (unsigned)pid : procs[pi]->pid, any,
					       (unsigned long long)pp->id, rd ? "write" : "read",
					       nr_procs > 1 ? "tree" : "process");
			}
			/* Whole: a standard stream on it is one of its ends (a pipe
			 * the process made for itself, a pipeline inside the tree). A
			 * stream whose other end is merely closed stays the caller's. */
			if (!nr_ends && !(rd && wr)) {
				drop_data(procs, nr_procs, pp->id);
				continue;
			}
			for (size_t pk = 0; pk < nr_procs; pk++)
				for (size_t k = 0; k < procs[pk]->n_fds; k++) {
					EngFd *f = procs[pk]->fds[k];

					if (f->has_pipe && f->pipe == pp->id &&
					    f->kind == ENG_FD_KIND__FD_PIPE)
						f->kind = ENG_FD_KIND__FD_PIPE_END;
				}
		}
	}
	return 0;
}

int eng_dump_pipes_check(struct eng_dump_ctx *ctx)
{
	if (ctx->tree)
		return 0;	/* the tree's ends come later: eng_dump_pipes_check_image */
	/* The image's pid is not filled yet: name ours. */
	return pipes_check(&ctx->proc, 1, ctx->pid);
}

int eng_dump_pipes_check_image(const EngImage *img)
{
	int r = pipes_check(img->procs, img->n_procs, 0);

	return r < 0 ? r : eng_dump_epoll_check_image(img);
}
