// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Files and descriptors. A file is recorded once (eng_process.files, keyed
 * by device and inode) with what restore validates: size, mtime and, for
 * ELF files, the build-id. Descriptors this version cannot recreate fail
 * the dump during the inspect phase, before anything in the process changed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/elf.h"
#include "common/err.h"
#include "common/util.h"
#include "dump.h"

static bool path_deleted(const char *path)
{
	size_t n = strlen(path);

	return n >= 10 && strcmp(path + n - 10, " (deleted)") == 0;
}

int eng_dump_file_id(struct eng_dump_ctx *ctx, const char *path, const struct stat *obj,
		     uint32_t *ret_idx)
{
	EngProcess *proc = ctx->proc;
	struct stat st;
	uint8_t bid[ELF_BUILD_ID_MAX];
	EngFileId *f, **nv;
	int n;

	for (size_t i = 0; i < proc->n_files; i++) {
		if (proc->files[i]->dev == (uint64_t)obj->st_dev &&
		    proc->files[i]->ino == (uint64_t)obj->st_ino &&
		    strcmp(proc->files[i]->path, path) == 0) {
			*ret_idx = (uint32_t)i;
			return 0;
		}
	}
	if (path[0] != '/' || path_deleted(path))
		return err_set(EOPNOTSUPP, "process %d: file \"%s\" is deleted or has no path",
			       ctx->pid, path);
	/* The path must still name the object the process holds: restore opens
	 * it by path. */
	if (stat(path, &st) < 0 || st.st_dev != obj->st_dev || st.st_ino != obj->st_ino)
		return err_set(EOPNOTSUPP, "process %d: \"%s\" was replaced or removed since it "
				 "was opened", ctx->pid, path);

	f = malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	eng_file_id__init(f);
	f->path = strdup(path);
	if (!f->path) {
		free(f);
		return -ENOMEM;
	}
	f->has_dev = f->has_ino = f->has_size = f->has_mtime_ns = true;
	f->dev = obj->st_dev;
	f->ino = obj->st_ino;
	f->size = obj->st_size;
	f->mtime_ns = (int64_t)obj->st_mtim.tv_sec * 1000000000ll + obj->st_mtim.tv_nsec;
	if (S_ISREG(obj->st_mode)) {
		n = elf_build_id(path, bid, sizeof(bid));
		if (n > 0) {
			f->build_id.data = malloc(n);
			if (!f->build_id.data) {
				eng_file_id__free_unpacked(f, NULL);
				return -ENOMEM;
			}
			memcpy(f->build_id.data, bid, n);
			f->build_id.len = n;
			f->has_build_id = true;
		}
	}
	nv = realloc(proc->files, (proc->n_files + 1) * sizeof(*nv));
	if (!nv) {
		eng_file_id__free_unpacked(f, NULL);
		return -ENOMEM;
	}
	proc->files = nv;
	proc->files[proc->n_files] = f;
	*ret_idx = (uint32_t)proc->n_files++;
	return 0;
}

static const char *anon_type(const char *link, char *buf, size_t len)
{
	const char *p = link + strlen("anon_inode:");
	size_t n;

	if (*p == '[')
		p++;
	n = strcspn(p, "]");
	snprintf(buf, len, "%.*s", (int)n, p);
	return buf;
}

static int dump_one_fd(struct eng_dump_ctx *ctx, int fd, EngFd **ret)
{
	char rel[64], link[4096], tbuf[64];
	_cleanup_free_ char *info = NULL;
	struct eng_proc_fdinfo fi;
	EngSocket *sk = NULL;
	EngUnixSk *us = NULL;		/* unix: unix.c */
	const char *type = NULL;
	struct stat st;
	ssize_t n;
	EngFd *e;
	int kind = -1, r;

	snprintf(rel, sizeof(rel), "fd/%d", fd);
	n = readlinkat(ctx->proc_fd, rel, link, sizeof(link) - 1);
	if (n < 0)
		return err_wrap(-errno, "cannot read /proc/%d/fd/%d", ctx->pid, fd);
	link[n] = '\0';
	if (fstatat(ctx->proc_fd, rel, &st, 0) < 0)
		return err_wrap(-errno, "cannot stat /proc/%d/fd/%d", ctx->pid, fd);
	snprintf(rel, sizeof(rel), "fdinfo/%d", fd);
	r = read_file_at(ctx->proc_fd, rel, &info, NULL);
	if (r < 0)
		return err_wrap(r, "cannot read /proc/%d/fdinfo/%d", ctx->pid, fd);
	r = eng_dump_parse_fdinfo(info, &fi);
	if (r < 0)
		return err_set(r, "cannot parse /proc/%d/fdinfo/%d", ctx->pid, fd);

	if (strncmp(link, "anon_inode:", 11) == 0) {
		type = anon_type(link, tbuf, sizeof(tbuf));
		kind = eng_dump_fd_anon_kind(type);	/* fdkinds: fd-anon.c */
		if (kind < 0 && strcmp(type, "pidfd") == 0)
			kind = ENG_FD_KIND__FD_PIDFD;	/* files: fd-file.c */
	} else if (S_ISREG(st.st_mode)) {
		/* files (fd-file.c): memfd, /dev/shm file, deleted file. */
		kind = eng_dump_fd_fobj_kind(link, &st);
		if (kind < 0 && (path_deleted(link) || link[0] != '/'))
			type = "deleted or unnamed file";
		else if (kind < 0)
			kind = ENG_FD_KIND__FD_REG;
	} else if (S_ISCHR(st.st_mode)) {
		unsigned ma = major(st.st_rdev), mi = minor(st.st_rdev);

		if (ma == 1 && mi == 3)
			kind = ENG_FD_KIND__FD_DEV_NULL;
		else if (ma == 1 && mi == 5)
			kind = ENG_FD_KIND__FD_DEV_ZERO;
		else if (ma == 1 && mi == 8)
			kind = ENG_FD_KIND__FD_DEV_RANDOM;
		else if (ma == 1 && mi == 9)
			kind = ENG_FD_KIND__FD_DEV_URANDOM;
		else if (eng_dump_fd_tty_kind(&st) >= 0)	/* ns: pseudo-terminals (tty.c) */
			kind = eng_dump_fd_tty_kind(&st);
		else if (fd <= 2)
			kind = ENG_FD_KIND__FD_TTY;
		else
			type = "character device";
	} else if (S_ISFIFO(st.st_mode)) {
		if (fd <= 2)
			kind = ENG_FD_KIND__FD_PIPE;
		else if (link[0] == '/')
			kind = ENG_FD_KIND__FD_FIFO;	/* fdkinds: fd-pipe.c */
		else
			kind = ENG_FD_KIND__FD_PIPE_END;
	} else if (S_ISSOCK(st.st_mode)) {
		if (fd <= 2) {
			kind = ENG_FD_KIND__FD_SOCKET;
			/* unix: a unix standard stream keeps its record; it becomes
			 * FD_UNIX_SOCKET if its peer is in the image (resolve),
			 * else stays the caller's stream, as anything refused. */
			if (eng_dump_unix_socket(ctx, fd, &st, &us) < 0) {
				us = NULL;
				err_clear();
			}
		} else if ((r = eng_dump_unix_socket(ctx, fd, &st, &us)) < 0) {
			return r;
		} else if (us) {
			kind = ENG_FD_KIND__FD_UNIX_SOCKET;	/* unix: unix.c */
		} else {
			/* TCP/UDP without a peer (sockets.c); anything else refused. */
			r = eng_dump_socket(ctx, fd, link, &sk);
			if (r < 0)
				return r;
			/* tcp: an established connection (ctx->tcp) has a peer. */
			kind = sk->has_peer ? ENG_FD_KIND__FD_TCP_ESTABLISHED
					    : ENG_FD_KIND__FD_INET_SOCKET;
		}
	} else if (S_ISDIR(st.st_mode)) {
		type = "directory";
	} else if (S_ISBLK(st.st_mode)) {
		type = "block device";
	} else {
		type = "unknown type";
	}
	/* Standard streams of any other type: restore gives the caller's. */
	if (kind < 0 && fd <= 2)
		kind = ENG_FD_KIND__FD_STDIO;
	if (kind < 0)
		return err_set(EOPNOTSUPP, "process %d fd %d: unsupported descriptor (%s) \"%s\"",
			       ctx->pid, fd, type, link);

	e = malloc(sizeof(*e));
	if (!e) {
		if (sk)
			eng_socket__free_unpacked(sk, NULL);
		if (us)
			eng_unix_sk__free_unpacked(us, NULL);
		return -ENOMEM;
	}
	eng_fd__init(e);
	e->sock = sk;
	e->unix_sk = us;
	e->fd = fd;
	e->kind = kind;
	e->flags = fi.flags & ~(uint32_t)O_CLOEXEC;
	e->has_cloexec = true;
	e->cloexec = (fi.flags & O_CLOEXEC) != 0;
	e->has_pos = true;
	e->pos = fi.pos;
	e->path = strdup(link);
	if (!e->path) {
		eng_fd__free_unpacked(e, NULL);	/* frees e->sock too */
		return -ENOMEM;
	}
	if (kind == ENG_FD_KIND__FD_REG) {
		uint32_t idx;

		r = eng_dump_file_id(ctx, link, &st, &idx);
		if (r < 0) {
			eng_fd__free_unpacked(e, NULL);
			return err_wrap(r, "fd %d", fd);
		}
		e->has_file = true;
		e->file = idx;
	}
	/* fdkinds: pipes/FIFOs (fd-pipe.c), anon inodes (fd-anon.c). */
	r = 0;
	if (kind == ENG_FD_KIND__FD_PIPE_END || kind == ENG_FD_KIND__FD_FIFO ||
	    (kind == ENG_FD_KIND__FD_PIPE && link[0] != '/'))
		r = eng_dump_fd_pipe(ctx, fd, link, &st, e);
	else if (kind >= ENG_FD_KIND__FD_EVENTFD && kind <= ENG_FD_KIND__FD_INOTIFY)
		r = eng_dump_fd_anon(ctx, fd, info, e);
	else if (kind == ENG_FD_KIND__FD_FOBJ)	/* files: fd-file.c */
		r = eng_dump_fd_fobj(ctx, fd, link, &st, e);
	else if (kind == ENG_FD_KIND__FD_PIDFD)
		r = eng_dump_fd_pidfd(ctx, fd, info, e);
	else if (kind == ENG_FD_KIND__FD_PTY_SLAVE || kind == ENG_FD_KIND__FD_PTY_MASTER)
		r = eng_dump_fd_tty(ctx, fd, &st, e);	/* ns: tty.c */
	if (r >= 0)
		r = eng_dump_fd_locks(ctx, fd, info);	/* files: flock/POSIX/OFD locks */
	if (r < 0) {
		eng_fd__free_unpacked(e, NULL);
		return r;
	}
	*ret = e;
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

int eng_dump_fds(struct eng_dump_ctx *ctx)
{
	EngProcess *proc = ctx->proc;
	_cleanup_free_ int *fds = NULL;
	size_t nr = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int dfd, r;

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

		if (de->d_name[0] == '.')
			continue;
		if (parse_int(de->d_name, &fd) < 0 || fd < 0)
			continue;
		if (nr == cap) {
			size_t nc = cap ? cap * 2 : 64;
			int *nv = realloc(fds, nc * sizeof(*nv));

			if (!nv) {
				closedir(d);
				return -ENOMEM;
			}
			fds = nv;
			cap = nc;
		}
		fds[nr++] = fd;
	}
	closedir(d);
	qsort(fds, nr, sizeof(*fds), cmp_int);

	proc->fds = calloc(nr ? nr : 1, sizeof(*proc->fds));
	if (!proc->fds)
		return -ENOMEM;
	for (size_t i = 0; i < nr; i++) {
		/* files: a refused fd is reported and the others still inspected. */
		r = eng_dump_unsupported(ctx, dump_one_fd(ctx, fds[i], &proc->fds[proc->n_fds]));
		if (r < 0)
			return r;
		if (proc->fds[proc->n_fds])
			proc->n_fds++;
	}
	r = eng_dump_unsupported(ctx, eng_dump_pipes_check(ctx));	/* fdkinds */
	if (r < 0)
		return r;
	if (ctx->stats)
		ctx->stats->nr_fds = nr;
	return 0;
}
