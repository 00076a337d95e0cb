// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Pseudo-terminals: descriptors on /dev/pts/N (FD_PTY_SLAVE) and on
 * /dev/ptmx (FD_PTY_MASTER). docs/engine-dump.md "Pseudo-terminals".
 *
 * Per process: eng_process.tty_fds says which pty each such fd is on (its
 * index N), eng_process.ttys holds each pty's state once (termios and
 * window size through our pidfd_getfd copy of the fd; a master's lock),
 * eng_process.ctty the pty that is its controlling terminal (field 7 of
 * /proc/PID/stat), with the session and foreground process group
 * (/proc/PID/stat field 8, translated to the process's pid namespace).
 * Bytes in flight in the pty's buffers are not kept (docs).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "dump.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_kcmp
#define SYS_kcmp 312
#endif
#define TTY_KCMP_FILE 0

/* Unix98 pty slaves: majors 136-143 (UNIX98_PTY_SLAVE_MAJOR ...). */
static bool is_pts(dev_t rdev)
{
	return major(rdev) >= 136 && major(rdev) <= 143;
}

static uint32_t pts_index(dev_t rdev)
{
	return (major(rdev) - 136) * 256 + minor(rdev);
}

int eng_dump_fd_tty_kind(const struct stat *st)
{
	if (!S_ISCHR(st->st_mode))
		return -1;
	if (is_pts(st->st_rdev))
		return ENG_FD_KIND__FD_PTY_SLAVE;
	if (major(st->st_rdev) == 5 && minor(st->st_rdev) == 2)
		return ENG_FD_KIND__FD_PTY_MASTER;
	return -1;
}

/* Our copy of the frozen process's fd @fd. */
static int grab_fd(pid_t pid, int fd)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), c;

	if (pfd < 0)
		return -errno;
	c = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
	if (c < 0)
		c = -errno;
	close(pfd);
	if (c >= 0)
		fcntl(c, F_SETFD, FD_CLOEXEC);
	return c;
}

/* The pid of @host_pid (ours) in the innermost pid namespace it is in, or 0. */
static uint32_t ns_pid(pid_t host_pid)
{
	_cleanup_free_ char *st = NULL;
	char path[64], *l;
	uint32_t last = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", host_pid);
	if (read_file(path, &st, NULL) < 0 || !(l = strstr(st, "\nNSpid:")))
		return 0;
	for (char *p = l + 7, *e; *p && *p != '\n'; p = e) {
		long v = strtol(p, &e, 10);

		if (e == p)
			break;
		last = (uint32_t)v;
	}
	return last;
}

static EngTty *tty_find(EngProcess *p, uint32_t index)
{
	for (size_t i = 0; i < p->n_ttys; i++)
		if (p->ttys[i]->index == index)
			return p->ttys[i];
	return NULL;
}

static int tty_add(EngProcess *p, uint32_t index, EngTty **ret)
{
	EngTty *t = calloc(1, sizeof(*t));
	void *nv = realloc(p->ttys, (p->n_ttys + 1) * sizeof(*p->ttys));

	if (nv)
		p->ttys = nv;
	if (!t || !nv) {
		free(t);
		return -ENOMEM;
	}
	eng_tty__init(t);
	t->index = index;
	p->ttys[p->n_ttys++] = t;
	*ret = t;
	return 0;
}

/* termios, window size (and a master's lock) of the pty through @c. */
static int tty_state(struct eng_dump_ctx *ctx, int fd, int c, bool master, EngTty *t)
{
	struct termios tio;
	struct winsize ws;

	if (tcgetattr(c, &tio) < 0)
		return err_set(errno, "process %d fd %d: terminal: tcgetattr: %m", ctx->pid, fd);
	if (ioctl(c, TIOCGWINSZ, &ws) < 0)
		return err_set(errno, "process %d fd %d: terminal: TIOCGWINSZ: %m", ctx->pid, fd);
	t->termios.data = malloc(sizeof(tio));
	if (!t->termios.data)
		return -ENOMEM;
	memcpy(t->termios.data, &tio, sizeof(tio));
	t->termios.len = sizeof(tio);
	t->has_termios = true;
	t->has_rows = t->has_cols = t->has_xpixel = t->has_ypixel = true;
	t->rows = ws.ws_row;
	t->cols = ws.ws_col;
	t->xpixel = ws.ws_xpixel;
	t->ypixel = ws.ws_ypixel;
	if (master) {
		int lock = 0;

		if (ioctl(c, TIOCGPTLCK, &lock) == 0) {
			t->has_locked = true;
			t->locked = lock != 0;
		}
	}
	return 0;
}

/* Field @n (1-based, >= 3) of /proc/PID/stat. */
static int stat_field(struct eng_dump_ctx *ctx, int n, long long *ret)
{
	_cleanup_free_ char *buf = NULL;
	char *p;
	int r = read_file_at(ctx->proc_fd, "stat", &buf, NULL);

	if (r < 0)
		return r;
	p = strrchr(buf, ')');
	if (!p)
		return -EBADMSG;
	p += 2;	/* field 3 */
	for (int k = 3; k < n; k++) {
		p = strchr(p, ' ');
		if (!p)
			return -EBADMSG;
		p++;
	}
	*ret = strtoll(p, NULL, 10);
	return 0;
}

int eng_dump_fd_tty(struct eng_dump_ctx *ctx, int fd, const struct stat *st, EngFd *e)
{
	EngProcess *p = ctx->proc;
	bool master = e->kind == ENG_FD_KIND__FD_PTY_MASTER;
	_cleanup_close_ int c = grab_fd(ctx->pid, fd);
	EngTtyFd *tf;
	EngTty *t;
	uint32_t index;
	void *nv;
	int r;

	if (c < 0)
		return err_set(-c, "process %d fd %d: cannot take a copy of the terminal: %s", ctx->pid,
			       fd, strerror(-c));
	if (master) {
		int n;

		if (ioctl(c, TIOCGPTN, &n) < 0)
			return err_set(errno == ENOTTY ? EOPNOTSUPP : errno, "process %d fd %d: a "
				       "/dev/ptmx that is not a pty master (%m)", ctx->pid, fd);
		index = (uint32_t)n;
	} else {
		index = pts_index(st->st_rdev);
	}

	/* One description shared by several fds (dup): one obj, as files do. */
	e->has_obj = true;
	e->obj = (uint64_t)(uint32_t)ctx->pid << 32 | (uint32_t)fd;
	for (size_t i = 0; i < p->n_tty_fds; i++) {
		if (p->tty_fds[i]->index == index &&
		    syscall(SYS_kcmp, ctx->pid, ctx->pid, TTY_KCMP_FILE, (int)p->tty_fds[i]->fd,
			    fd) == 0) {
			for (size_t k = 0; k < p->n_fds; k++)
				if (p->fds[k] && p->fds[k]->fd == p->tty_fds[i]->fd && p->fds[k]->has_obj)
					e->obj = p->fds[k]->obj;
			break;
		}
	}

	tf = calloc(1, sizeof(*tf));
	nv = realloc(p->tty_fds, (p->n_tty_fds + 1) * sizeof(*p->tty_fds));
	if (nv)
		p->tty_fds = nv;
	if (!tf || !nv) {
		free(tf);
		return -ENOMEM;
	}
	eng_tty_fd__init(tf);
	tf->fd = (uint32_t)fd;
	tf->index = index;
	p->tty_fds[p->n_tty_fds++] = tf;

	t = tty_find(p, index);
	if (!t) {
		r = tty_add(p, index, &t);
		if (r >= 0)
			r = tty_state(ctx, fd, c, master, t);
		if (r < 0)
			return r;
	} else if (master && !t->has_locked) {
		int lock = 0;

		if (ioctl(c, TIOCGPTLCK, &lock) == 0) {
			t->has_locked = true;
			t->locked = lock != 0;
		}
	}

	/* Its controlling terminal, once per process (stat: tty_nr, tpgid). */
	if (!p->has_ctty) {
		long long tty_nr = 0, tpgid = 0, sid = 0;

		if (stat_field(ctx, 7, &tty_nr) == 0 && tty_nr > 0 &&
		    is_pts(makedev(((unsigned long long)tty_nr >> 8) & 0xfff,
				   (tty_nr & 0xff) | (((unsigned long long)tty_nr >> 12) & 0xfff00)))) {
			dev_t d = makedev(((unsigned long long)tty_nr >> 8) & 0xfff,
					  (tty_nr & 0xff) | (((unsigned long long)tty_nr >> 12) & 0xfff00));
			EngTty *ct;

			p->has_ctty = true;
			p->ctty = pts_index(d);
			ct = tty_find(p, p->ctty);
			if (ct && stat_field(ctx, 8, &tpgid) == 0 && stat_field(ctx, 6, &sid) == 0) {
				ct->has_fg_pgrp = ct->has_sid = true;
				ct->fg_pgrp = tpgid > 0 ? ns_pid((pid_t)tpgid) : 0;
				ct->sid = sid > 0 ? ns_pid((pid_t)sid) : 0;
			}
		}
	}
	return 0;
}
