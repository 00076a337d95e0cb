// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Pipes and FIFOs in the restore child (dump side: engine/dump/fd-pipe.c).
 *
 * Each pipe (eng_process.pipes, by id) is created once: pipe2() for a pipe,
 * an O_RDWR open of the path for a FIFO (it never blocks and keeps the FIFO
 * alive while its ends are opened); it is sized (F_SETPIPE_SZ, checked: the
 * limit fs.pipe-max-size is 1 MiB here) and its bytes in flight are written
 * back. Each open file description (eng_fd.obj, kept by fds.c) then gets
 * the end its access mode names: the pipe2() end for the first one, a
 * reopen through /proc/self/fd for any other; a FIFO end is opened by path.
 *
 * A FIFO that already holds bytes at restore is still held open by someone
 * outside (the pipe outlived the process): its bytes are the ones saved,
 * they are not written twice.
 *
 * Everything created here stays open until fds.c closes the child's
 * descriptors (close_range): an end nobody holds (a writer that was closed
 * everywhere) disappears then, so its reader sees EOF after the bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "restore.h"

/* What F_SETFL can set on a pipe end (O_DIRECT: packet mode, allowed on
 * pipes whatever the filesystem; also chosen at pipe2 time for the data). */
#define PIPE_SETFL (O_APPEND | O_NONBLOCK | O_ASYNC | O_NOATIME | O_DIRECT)

struct rst_pipe {
	uint64_t id;
	int rd, wr;		/* pipe2 ends; a FIFO: wr = rd = the O_RDWR holder */
	bool rd_used, wr_used;
};

static struct rst_pipe *pipes;
static size_t nr_pipes;

void eng_restore_fd_pipes_reset(void)
{
	free(pipes);
	pipes = NULL;
	nr_pipes = 0;
}

static const EngPipe *pipe_rec(const EngProcess *p, uint64_t id)
{
	for (size_t i = 0; i < p->n_pipes; i++)
		if (p->pipes[i]->id == id)
			return p->pipes[i];
	return NULL;
}

static int fill(const EngFd *f, const EngPipe *pp, int wr)
{
	int sz, fl;

	sz = fcntl(wr, F_GETPIPE_SZ);
	if (sz < 0)
		return err_set(errno, "fd %u: F_GETPIPE_SZ: %m", f->fd);
	if ((uint32_t)sz != pp->size) {
		sz = fcntl(wr, F_SETPIPE_SZ, (int)pp->size);
		if (sz < (int)pp->size)
			return err_set(sz < 0 ? errno : ENOSPC, "fd %u: cannot size the pipe to %u "
				       "bytes (fs.pipe-max-size?): %m", f->fd, pp->size);
	}
	if (!pp->has_data || !pp->data.len)
		return 0;
	if (pp->data.len > pp->size)
		return err_set(EBADMSG, "fd %u: %zu bytes in flight in a pipe of %u", f->fd,
			       pp->data.len, pp->size);
	if (pp->fifo) {
		int avail = 0;

		if (ioctl(wr, FIONREAD, &avail) < 0)
			return err_set(errno, "fd %u: FIONREAD: %m", f->fd);
		if (avail > 0)
			return 0;	/* still there: held open outside */
	}
	/* Never block: the bytes fit, anything else is an error. Packets
	 * need a packetized write end (O_DIRECT is a write-end flag). */
	fl = fcntl(wr, F_GETFL);
	if (fl < 0 || fcntl(wr, F_SETFL, fl | O_NONBLOCK | (pp->n_packets ? O_DIRECT : 0)) < 0)
		return err_set(errno, "fd %u: F_SETFL: %m", f->fd);
	if (pp->n_packets) {
		/* Packet mode: one write per packet (each at most a page). */
		size_t off = 0;

		for (size_t i = 0; i < pp->n_packets; i++) {
			if (pp->packets[i] > pp->data.len - off || pp->packets[i] > 4096)
				return err_set(EBADMSG, "fd %u: pipe packet %zu out of range", f->fd, i);
			if (write(wr, pp->data.data + off, pp->packets[i]) != (ssize_t)pp->packets[i])
				return err_set(errno, "fd %u: cannot write packet %zu back: %m", f->fd, i);
			off += pp->packets[i];
		}
		if (off != pp->data.len)
			return err_set(EBADMSG, "fd %u: pipe packets cover %zu of %zu bytes", f->fd,
				       off, pp->data.len);
	} else if (write_full(wr, pp->data.data, pp->data.len) < 0) {
		return err_set(errno, "fd %u: cannot write %zu bytes back into the pipe: %m", f->fd,
			       pp->data.len);
	}
	if (fcntl(wr, F_SETFL, fl) < 0)
		return err_set(errno, "fd %u: F_SETFL: %m", f->fd);
	return 0;
}

static int pipe_create(const EngProcess *p, const EngFd *f, struct rst_pipe **ret)
{
	const EngPipe *pp = pipe_rec(p, f->pipe);
	struct rst_pipe *nv, *rp;
	int r;

	if (!pp)
		return err_set(EBADMSG, "fd %u: pipe %llu has no record", f->fd,
			       (unsigned long long)f->pipe);
	nv = realloc(pipes, (nr_pipes + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	pipes = nv;
	rp = &pipes[nr_pipes];
	*rp = (struct rst_pipe){ .id = f->pipe, .rd = -1, .wr = -1 };
	if (pp->fifo) {
		struct stat st;

		if (!f->path || f->path[0] != '/')
			return err_set(EBADMSG, "fd %u: FIFO without a path", f->fd);
		rp->rd = rp->wr = open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (rp->rd < 0)
			return err_set(errno, "fd %u: cannot open FIFO \"%s\": %m", f->fd, f->path);
		if (fstat(rp->rd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
			close(rp->rd);
			return err_set(ENOENT, "fd %u: \"%s\" is no longer a FIFO", f->fd, f->path);
		}
	} else {
		int fds[2];

		if (pipe2(fds, O_CLOEXEC | (int)(f->flags & O_DIRECT)) < 0)
			return err_set(errno, "fd %u: pipe2: %m", f->fd);
		rp->rd = fds[0];
		rp->wr = fds[1];
	}
	nr_pipes++;
	r = fill(f, pp, rp->wr);
	if (r < 0)
		return r;
	*ret = rp;
	return 0;
}

int eng_restore_fd_pipe(const EngProcess *p, const EngFd *f, int *ret)
{
	struct rst_pipe *rp = NULL;
	int acc = (int)(f->flags & O_ACCMODE);
	int fd, r;

	if (!f->has_pipe)
		return err_set(EBADMSG, "fd %u: pipe end without a pipe", f->fd);
	for (size_t i = 0; i < nr_pipes; i++)
		if (pipes[i].id == f->pipe)
			rp = &pipes[i];
	if (!rp) {
		r = pipe_create(p, f, &rp);
		if (r < 0)
			return r;
	}
	if (f->kind == ENG_FD_KIND__FD_FIFO) {
		/* The holder keeps both sides open: no open blocks or fails. */
		fd = open(f->path, acc | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return err_set(errno, "fd %u: cannot open FIFO \"%s\": %m", f->fd, f->path);
	} else if (acc != O_RDWR && !(acc == O_RDONLY ? rp->rd_used : rp->wr_used)) {
		fd = acc == O_RDONLY ? rp->rd : rp->wr;
		if (acc == O_RDONLY)
			rp->rd_used = true;
		else
			rp->wr_used = true;
	} else {
		/* Another open file description of the same end (or one open
		 * for both: a pipe reopened O_RDWR through /proc). */
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", acc == O_RDONLY ? rp->rd : rp->wr);
		fd = open(path, acc | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return err_set(errno, "fd %u: cannot reopen the pipe: %m", f->fd);
	}
	if (fcntl(fd, F_SETFL, (int)(f->flags & PIPE_SETFL)) < 0)
		return err_set(errno, "fd %u: F_SETFL: %m", f->fd);
	*ret = fd;
	return 0;
}
