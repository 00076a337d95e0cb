// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Would copies of a snapshot be independent of each other?
 *
 * Instances of a template (spawn.c) share what the template holds, as
 * forked processes share what their parent had: every open file
 * description and every kernel object a descriptor names. Two instances
 * sharing a pipe, an eventfd, an epoll or a socket see each other's bytes
 * and wake-ups: a pool of such instances (warmd) or the copies warm-exec
 * hands out would be coupled behind their users' backs. Regular files and
 * devices are fine (programs that keep files open once ready read them
 * with pread or mmap, like the JVM's jars); the standard streams are
 * replaced per instance anyway. Shared anonymous memory is not a coupling:
 * each instance gets its own copy before it runs (rst_spawn_unshare).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "engine.h"
#include "image.pb-c.h"

static const char *fd_kind_name(EngFdKind k)
{
	switch (k) {
	case ENG_FD_KIND__FD_TTY:
	case ENG_FD_KIND__FD_PTY_SLAVE:
	case ENG_FD_KIND__FD_PTY_MASTER:
		return "terminal";
	case ENG_FD_KIND__FD_PIPE:
	case ENG_FD_KIND__FD_PIPE_END:
	case ENG_FD_KIND__FD_FIFO:
		return "pipe";
	case ENG_FD_KIND__FD_SOCKET:
	case ENG_FD_KIND__FD_INET_SOCKET:
	case ENG_FD_KIND__FD_UNIX_SOCKET:
	case ENG_FD_KIND__FD_TCP_ESTABLISHED:
		return "socket";
	case ENG_FD_KIND__FD_EVENTFD:
		return "eventfd";
	case ENG_FD_KIND__FD_SIGNALFD:
		return "signalfd";
	case ENG_FD_KIND__FD_TIMERFD:
		return "timerfd";
	case ENG_FD_KIND__FD_EPOLL:
		return "epoll";
	case ENG_FD_KIND__FD_INOTIFY:
		return "inotify";
	case ENG_FD_KIND__FD_PIDFD:
		return "pidfd";
	default:
		return "shared file object";
	}
}

static int image_independent(const EngImage *img, char *why, size_t size)
{
	if (img->n_procs != 1) {
		snprintf(why, size, "a process tree of %zu processes", img->n_procs);
		return 0;
	}
	for (size_t p = 0; p < img->n_procs; p++) {
		const EngProcess *proc = img->procs[p];

		for (size_t i = 0; i < proc->n_fds; i++) {
			const EngFd *f = proc->fds[i];

			switch (f->kind) {
			case ENG_FD_KIND__FD_REG:
			case ENG_FD_KIND__FD_DEV_NULL:
			case ENG_FD_KIND__FD_DEV_ZERO:
			case ENG_FD_KIND__FD_DEV_URANDOM:
			case ENG_FD_KIND__FD_DEV_RANDOM:
				continue;
			case ENG_FD_KIND__FD_STDIO:
			case ENG_FD_KIND__FD_TTY:
			case ENG_FD_KIND__FD_PIPE:
			case ENG_FD_KIND__FD_PIPE_END:
			case ENG_FD_KIND__FD_SOCKET:
			case ENG_FD_KIND__FD_UNIX_SOCKET:
			case ENG_FD_KIND__FD_PTY_SLAVE:
				if (f->fd <= 2)
					continue;	/* replaced per instance */
				break;
			default:
				break;
			}
			snprintf(why, size, "fd %u holds a %s%s%s%s that every copy would share", f->fd,
				 fd_kind_name(f->kind), f->path ? " (" : "", f->path ? f->path : "",
				 f->path ? ")" : "");
			return 0;
		}
	}
	return 1;
}

int eng_snapshot_independent(struct wc_store *store, const char *snap, char *why, size_t size)
{
	struct wc_snapshot *s = NULL;
	EngImage *img = NULL;
	const void *data;
	size_t len;
	int r;

	if (size)
		why[0] = '\0';
	r = wc_snapshot_open(store, snap, &s);
	if (r < 0)
		return err_wrap(r, "snapshot %s", snap);
	r = wc_snapshot_blob(s, ENG_IMAGE_BLOB, &data, &len);
	if (r >= 0) {
		img = eng_image__unpack(NULL, len, data);
		r = img ? 0 : err_set(EBADMSG, "snapshot %s: its image does not parse", snap);
	} else {
		r = err_wrap(r, "snapshot %s: no image", snap);
	}
	wc_snapshot_close(s);
	if (r < 0)
		return r;
	r = image_independent(img, why, size);
	eng_image__free_unpacked(img, NULL);
	return r;
}
