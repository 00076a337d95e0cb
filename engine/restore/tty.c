// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Pseudo-terminals at restore (FD_PTY_SLAVE, FD_PTY_MASTER).
 * docs/engine-restore.md "Pseudo-terminals".
 *
 * The parent decides, per pty of the image (eng_tty.index):
 *   - its master is in the image (a terminal emulator, script): a new pty,
 *     both ends inherited by the processes, each dups what it holds;
 *   - else, with inherit_stdio: the caller's terminal (its first standard
 *     stream that is one); its fds 0-2 are the caller's streams anyway;
 *   - else, when the caller asked for one (eng_restore_opts.pty_master): a
 *     new pty whose master goes to the caller, which relays it;
 *   - else: fds 0-2 on it get the caller's streams (as FD_TTY), any other
 *     fd on it is refused before anything starts.
 * A new pty gets the saved termios and window size (and lock) before any
 * process exists. In each process a slave fd is a new open of the slave
 * (own file description, saved flags; dup'ed fds share one through
 * eng_fd.obj), a master fd a dup of the master. A session leader whose
 * controlling terminal was the pty makes the new one its controlling
 * terminal (TIOCSCTTY) and gives the foreground to the saved process group
 * once that exists.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "restore.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

static const EngFd *fd_by_num(const EngProcess *p, uint32_t fd)
{
	for (size_t i = 0; i < p->n_fds; i++)
		if (p->fds[i]->fd == fd)
			return p->fds[i];
	return NULL;
}

/* The saved state of pty @index: each holder has a copy; the one of its
 * session (which knows the foreground group) first. */
static const EngTty *saved_tty(const EngImage *img, uint32_t index)
{
	const EngTty *any = NULL;

	for (size_t k = 0; k < img->n_procs; k++) {
		for (size_t i = 0; i < img->procs[k]->n_ttys; i++) {
			const EngTty *t = img->procs[k]->ttys[i];

			if (t->index != index)
				continue;
			if (t->has_fg_pgrp)
				return t;
			if (!any)
				any = t;
		}
	}
	return any;
}

static struct eng_rst_tty *tty_of(const struct eng_rst_ttys *t, uint32_t index)
{
	for (size_t i = 0; t && i < t->nr; i++)
		if (t->v[i].index == index)
			return &t->v[i];
	return NULL;
}

static int set_termios(const EngTty *s, int fd)
{
	struct termios tio;

	if (!s || !s->has_termios)
		return 0;
	if (s->termios.len != sizeof(tio))
		return err_set(EBADMSG, "pty %u: saved termios of %zu bytes", s->index, s->termios.len);
	memcpy(&tio, s->termios.data, sizeof(tio));
	if (tcsetattr(fd, TCSADRAIN, &tio) < 0)
		return err_set(errno, "pty %u: cannot set its termios: %m", s->index);
	return 0;
}

static int new_pty(const EngTty *s, struct eng_rst_tty *out)
{
	struct winsize ws = {};
	int unlock = 0, n, r;

	out->master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (out->master < 0)
		return err_set(errno, "cannot open /dev/ptmx: %m");
	if (ioctl(out->master, TIOCSPTLCK, &unlock) < 0 || ioctl(out->master, TIOCGPTN, &n) < 0)
		return err_set(errno, "new pty: %m");
	out->new_index = (uint32_t)n;
	out->slave = ioctl(out->master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (out->slave < 0)
		return err_set(errno, "new pty: cannot open its slave: %m");
	r = set_termios(s, out->slave);
	if (r < 0)
		return r;
	if (s && s->has_rows) {
		ws.ws_row = (unsigned short)s->rows;
		ws.ws_col = (unsigned short)s->cols;
		ws.ws_xpixel = (unsigned short)s->xpixel;
		ws.ws_ypixel = (unsigned short)s->ypixel;
		if (ioctl(out->master, TIOCSWINSZ, &ws) < 0)
			return err_set(errno, "pty %u: cannot set its window size: %m", s->index);
	}
	if (s && s->has_locked && s->locked) {
		int lock = 1;

		ioctl(out->master, TIOCSPTLCK, &lock);
	}
	return 0;
}

int eng_restore_tty_create(const EngImage *img, const struct eng_restore_opts *o,
			   struct eng_rst_ttys *t)
{
	int r;

	for (size_t k = 0; k < img->n_procs; k++) {
		const EngProcess *p = img->procs[k];

		for (size_t i = 0; i < p->n_tty_fds; i++) {
			uint32_t index = p->tty_fds[i]->index;
			void *nv;

			if (tty_of(t, index))
				continue;
			nv = realloc(t->v, (t->nr + 1) * sizeof(*t->v));
			if (!nv)
				return -ENOMEM;
			t->v = nv;
			t->v[t->nr++] = (struct eng_rst_tty){ .index = index, .master = -1, .slave = -1 };
		}
	}
	for (size_t n = 0; n < t->nr; n++) {
		struct eng_rst_tty *e = &t->v[n];
		const EngFd *other = NULL;
		uint32_t other_pid = 0;

		/* Its master in the image? Any fd on it that is not 0-2? */
		for (size_t k = 0; k < img->n_procs; k++) {
			const EngProcess *p = img->procs[k];

			for (size_t i = 0; i < p->n_tty_fds; i++) {
				const EngFd *f = fd_by_num(p, p->tty_fds[i]->fd);

				if (p->tty_fds[i]->index != e->index || !f)
					continue;
				if (f->kind == ENG_FD_KIND__FD_PTY_MASTER)
					e->master_in_image = true;
				else if (f->fd > 2 && !other) {
					other = f;
					other_pid = p->pid;
				}
			}
		}
		if (e->master_in_image) {
			r = new_pty(saved_tty(img, e->index), e);
		} else if (o->inherit_stdio) {
			e->callers = true;
			for (int fd = 0; fd < 3 && e->slave < 0; fd++)
				if (isatty(fd))
					e->slave = fcntl(fd, F_DUPFD_CLOEXEC, 3);
			r = 0;
			if (e->slave < 0 && other)
				r = err_set(ENOTTY, "process %u fd %u is on a terminal, and our standard "
					    "streams are none", other_pid, other->fd);
			/* Its modes (raw, no echo...) on our terminal: the program
			 * expects them; not its size (ours is what is on screen). */
			if (r >= 0 && e->slave >= 0)
				r = set_termios(saved_tty(img, e->index), e->slave);
		} else if (o->pty_master) {
			if (t->relay) {
				r = err_set(EOPNOTSUPP, "the processes are on several terminals (ptys %u "
					    "and %u): only one can be relayed", t->relay->index, e->index);
			} else {
				t->relay = e;
				r = new_pty(saved_tty(img, e->index), e);
			}
		} else {
			e->outside = true;
			r = 0;
			if (other)
				r = err_set(EOPNOTSUPP, "process %u fd %u is on a terminal (pty %u): "
					    "restore it onto a new pty (warmfork restore) or ours "
					    "(--inherit-stdio)", other_pid, other->fd, e->index);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int eng_restore_tty_take_master(struct eng_rst_ttys *t)
{
	int m;

	if (!t->relay)
		return -1;
	m = t->relay->master;
	t->relay->master = -1;
	return m;
}

void eng_restore_tty_close(struct eng_rst_ttys *t)
{
	for (size_t i = 0; i < t->nr; i++) {
		if (t->v[i].master >= 0)
			close(t->v[i].master);
		if (t->v[i].slave >= 0)
			close(t->v[i].slave);
	}
	free(t->v);
	t->v = NULL;
	t->nr = 0;
	t->relay = NULL;
}

int eng_restore_fd_tty(struct eng_rst_ctx *ctx, size_t i, int *ret)
{
	const EngProcess *p = ctx->proc;
	const EngFd *f = p->fds[i];
	struct eng_rst_tty *e = NULL;
	char path[64];
	int fd;

	for (size_t k = 0; k < p->n_tty_fds && !e; k++)
		if (p->tty_fds[k]->fd == f->fd)
			e = tty_of(ctx->ttys, p->tty_fds[k]->index);
	if (!e)
		return err_set(EBADMSG, "fd %u: its terminal is not in the image", f->fd);
	if (f->kind == ENG_FD_KIND__FD_PTY_MASTER) {
		if (e->master < 0)
			return err_set(EBADMSG, "fd %u: no master made for pty %u", f->fd, e->index);
		fd = fcntl(e->master, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return err_set(errno, "fd %u: %m", f->fd);
		fcntl(fd, F_SETFL, (int)(f->flags & (O_NONBLOCK | O_APPEND | O_ASYNC)));
		*ret = fd;
		return 0;
	}
	if (e->outside) {
		*ret = (int)f->fd;	/* a standard stream: the caller's (as FD_TTY) */
		return 0;
	}
	if (e->slave < 0)
		return err_set(EBADMSG, "fd %u: no terminal for pty %u", f->fd, e->index);
	/* A new open of the slave: a description of its own, with its flags. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", e->slave);
	fd = open(path, (int)(f->flags & ~(uint32_t)(O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC)) |
		  O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "fd %u: cannot open its terminal: %m", f->fd);
	*ret = fd;
	return 0;
}

/* The process that took its controlling terminal (children inherit our
 * memory, not the deed). */
static pid_t ctty_taken_by;

/* The new pty of this session leader's saved controlling terminal, or NULL. */
static struct eng_rst_tty *ctty_of(struct eng_rst_ctx *ctx)
{
	const EngProcess *p = ctx->proc;
	struct eng_rst_tty *e;

	if (!p->has_ctty || ctx->inherit_session || getsid(0) != getpid())
		return NULL;
	e = tty_of(ctx->ttys, p->ctty);
	return e && !e->outside && !e->callers ? e : NULL;
}

static int take_ctty(struct eng_rst_ctx *ctx, struct eng_rst_tty *e, int fd)
{
	if (ctty_taken_by == getpid())
		return 0;
	if (ioctl(fd, TIOCSCTTY, 0) < 0)
		return err_set(errno, "cannot make pty %u its controlling terminal: %m", e->index);
	ctty_taken_by = getpid();
	return 0;
}

/*
 * On the caller's terminal in the caller's session (--shell-job): the
 * process that leads the saved foreground group, in a group of its own
 * here (a job's, not the caller's), takes the foreground of the caller's
 * terminal, as its shell gave it. Every signal is blocked here, so no
 * SIGTTOU stops the background caller.
 */
static int shell_job_fg(struct eng_rst_ctx *ctx)
{
	const EngProcess *p = ctx->proc;
	struct eng_rst_tty *e;
	const EngTty *s;

	if (!p->has_ctty || !ctx->inherit_session || getpgrp() != getpid())
		return 0;
	e = tty_of(ctx->ttys, p->ctty);
	s = saved_tty(ctx->img, p->ctty);
	if (!e || !e->callers || !s || !s->has_fg_pgrp || s->fg_pgrp != p->pid)
		return 0;
	for (int fd = 0; fd < 3; fd++)
		if (isatty(fd))
			return tcsetpgrp(fd, getpid()) < 0
				? err_set(errno, "cannot take the foreground of our terminal: %m") : 0;
	return 0;
}

int eng_restore_tty_ctty_early(struct eng_rst_ctx *ctx)
{
	struct eng_rst_tty *e = ctty_of(ctx);

	/* The parent's slave fd is still open here (fds come later). */
	return e && e->slave >= 0 ? take_ctty(ctx, e, e->slave) : 0;
}

int eng_restore_tty_ctty(struct eng_rst_ctx *ctx)
{
	const EngProcess *p = ctx->proc;
	struct eng_rst_tty *e = ctty_of(ctx);
	const EngTty *s;
	_cleanup_close_ int own = -1;
	int fd = -1, r;
	uint64_t deadline;

	if (!e)
		return shell_job_fg(ctx);
	for (size_t k = 0; k < p->n_tty_fds && fd < 0; k++) {
		const EngFd *f = fd_by_num(p, p->tty_fds[k]->fd);

		if (p->tty_fds[k]->index == p->ctty && f && f->kind == ENG_FD_KIND__FD_PTY_SLAVE)
			fd = (int)f->fd;
	}
	if (fd < 0) {
		char path[64];

		snprintf(path, sizeof(path), "/dev/pts/%u", e->new_index);
		own = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (own < 0)
			return err_set(errno, "cannot open its terminal %s: %m", path);
		fd = own;
	}
	r = take_ctty(ctx, e, fd);
	if (r < 0)
		return r;
	s = saved_tty(ctx->img, p->ctty);
	if (!s || !s->has_fg_pgrp || !s->fg_pgrp || (pid_t)s->fg_pgrp == getpgrp())
		return 0;
	/* The foreground group may be a child's, which sets it up at once
	 * after its creation (tree.c): wait for it. */
	deadline = now_ns() + 3000000000ull;
	while (tcsetpgrp(fd, (pid_t)s->fg_pgrp) < 0) {
		if (errno != EPERM || now_ns() > deadline)
			return err_set(errno, "cannot give the terminal's foreground to process "
				       "group %u: %m", s->fg_pgrp);
		usleep(500);
	}
	return 0;
}
