// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * File objects (eng_process.fobjs), pidfds and locks, in the restore child.
 *
 * Order in the child (child.c):
 *   1. eng_restore_fobjs_prepare   every object created (or found) and, if
 *                                  new, filled from its store area through a
 *                                  temporary shared mapping
 *   2. premap                      a vma of an object maps it
 *                                  (eng_restore_fobj_premap)
 *   3. eng_restore_fobjs_mapped    memfd seals added, SysV segments that
 *                                  were marked for removal removed
 *   4. descriptors (fds.c)         FD_FOBJ reopens its object with the fd's
 *                                  flags and offset, once per open file
 *                                  description; FD_PIDFD: pidfd_open
 *   5. eng_restore_locks           flock/POSIX/OFD locks, once every fd is
 *                                  at its number (closing any fd of a file
 *                                  drops the POSIX locks on it)
 *
 * Objects that outlive processes (a /dev/shm file, a SysV segment with a
 * key) are used as they are when they still exist at restore: they are
 * shared state other processes may use and update (the process was killed,
 * its last writes are in them). Only a missing one is created again, with
 * the saved content, mode and owner. A SysV segment created again gets a
 * new id from the kernel (shmget cannot choose it): a process that kept the
 * old id in memory and calls shmctl/shmat with it fails (docs).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "restore.h"

#ifndef F_ADD_SEALS
#define F_ADD_SEALS		1033
#endif
#ifndef F_GET_SEALS
#define F_GET_SEALS		1034
#endif
#ifndef F_SEAL_WRITE
#define F_SEAL_WRITE		0x0008
#endif
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE	0x0010
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING	2u
#endif
#ifndef F_OFD_SETLK
#define F_OFD_SETLK		37
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434
#endif
#ifndef SHM_EXEC
#define SHM_EXEC		0100000
#endif

/* Per process: its objects, by eng_process.fobjs index. */
struct eng_rst_files {
	size_t nr;
	int *fd;		/* its fd (SysV: its shmid) */
};

/*
 * Every object made so far in this process, by its identity at dump. A
 * tree restore makes every object of the image in its first process (the
 * root), before any other is forked from it: the others inherit this table
 * and the descriptors, so an object several processes held is one object
 * again. Static on purpose: it lives in the restore child only.
 */
struct fobj_made {
	EngFobjKind kind;
	uint64_t dev, ino;	/* at dump */
	int fd;			/* SysV: shmid */
	dev_t st_dev;		/* of what we made (checked before reuse) */
	ino_t st_ino;
};
static struct fobj_made *made;
static size_t nr_made, cap_made;

static uint64_t seg_len(const EngFobj *o)
{
	return ALIGN_UP(o->size, RST_PAGE);
}

/* Best effort: write kernel.shm_next_id (-1: unset). */
static void next_id_set(int id)
{
	char buf[16];
	int fd = open("/proc/sys/kernel/shm_next_id", O_WRONLY | O_CLOEXEC);
	int n;

	if (fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%d", id);
	(void)!write(fd, buf, (size_t)n);
	close(fd);
}

static int sysv_open(const EngFobj *o, bool *ret_fresh)
{
	struct shmid_ds ds;
	int id;

	*ret_fresh = false;
	if (o->sysv_key != IPC_PRIVATE) {
		id = shmget(o->sysv_key, 0, 0);
		if (id >= 0) {
			if (shmctl(id, IPC_STAT, &ds) < 0)
				return err_set(errno, "SysV segment of key 0x%x: IPC_STAT: %m",
					       (unsigned)o->sysv_key);
			if (ds.shm_segsz != o->size)
				return err_set(EEXIST, "SysV segment of key 0x%x exists with %zu "
					       "bytes, the process had %" PRIu64,
					       (unsigned)o->sysv_key, (size_t)ds.shm_segsz, o->size);
			return id;
		}
		if (errno != ENOENT)
			return err_set(errno, "SysV segment of key 0x%x: %m", (unsigned)o->sysv_key);
	} else if (o->has_sysv_id && shmctl((int)o->sysv_id, IPC_STAT, &ds) == 0 &&
		   ds.shm_perm.__key == IPC_PRIVATE && ds.shm_segsz == o->size &&
		   o->has_sysv_ctime && ds.shm_ctime == o->sysv_ctime &&
		   (!ds.shm_cpid || (uint32_t)ds.shm_cpid == o->sysv_cpid)) {
		/* The very segment, still there (an id is never reused with the
		 * same ctime: it carries a sequence number). The creator's pid
		 * reads 0 from another pid namespace (--pidns=new). */
		return (int)o->sysv_id;
	}
	/* The saved id if the kernel lets us choose (kernel.shm_next_id, needs
	 * CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN; consumed by the next shmget
	 * of this IPC namespace): a program that kept the id finds its segment.
	 * Otherwise (or if another segment took the id first) the kernel picks. */
	if (o->has_sysv_id)
		next_id_set((int)o->sysv_id);
	id = shmget(o->sysv_key, o->size, IPC_CREAT | IPC_EXCL | (int)(o->mode & 0777));
	next_id_set(-1);
	if (id < 0)
		return err_set(errno, "cannot create SysV segment (key 0x%x, %" PRIu64 " bytes): %m",
			       (unsigned)o->sysv_key, o->size);
	if (o->has_uid && shmctl(id, IPC_STAT, &ds) == 0 &&
	    (ds.shm_perm.uid != o->uid || ds.shm_perm.gid != o->gid)) {
		ds.shm_perm.uid = o->uid;
		ds.shm_perm.gid = o->gid;
		(void)shmctl(id, IPC_SET, &ds);
	}
	*ret_fresh = true;
	return id;
}

/*
 * A new unlinked file in the directory of @path, under its name when that
 * name is free (/proc/PID/fd shows "PATH (deleted)" again): O_TMPFILE,
 * linked to @path and unlinked at once; a taken name leaves it nameless
 * ("#INO (deleted)"). Without O_TMPFILE: create @path (or a temporary
 * name), then unlink it.
 */
static int unlinked_open(const char *path, mode_t mode)
{
	_cleanup_free_ char *dup = strdup(path), *tmpl = NULL;
	char self[64];
	const char *dir;
	int fd;

	if (!dup)
		return -ENOMEM;
	dir = dirname(dup);
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	if (fd >= 0) {
		snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
		/* The name is that of the dentry the fd was opened through: open
		 * the linked name, then unlink it. */
		if (linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0) {
			int named = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
			struct stat a, b;

			if (named >= 0 && fstat(named, &a) == 0 && fstat(fd, &b) == 0 &&
			    a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
				close(fd);
				fd = named;
			} else if (named >= 0) {
				close(named);
			}
			unlink(path);
		}
		return fd;
	}
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return err_set(errno, "cannot create an unlinked file in \"%s\" for \"%s\": %m",
			       dir, path);
	/* No O_TMPFILE on this file system: create, then unlink. */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd >= 0) {
		unlink(path);
		return fd;
	}
	if (asprintf(&tmpl, "%s/.warmfork-XXXXXX", dir) < 0)
		return -ENOMEM;
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "cannot create a file in \"%s\" for \"%s\": %m", dir, path);
	unlink(tmpl);
	(void)fchmod(fd, mode);
	return fd;
}

static int fobj_open(const EngFobj *o, bool *ret_fresh)
{
	mode_t mode = o->has_mode ? (mode_t)(o->mode & 07777) : 0600;
	int fd;

	*ret_fresh = true;
	switch (o->kind) {
	case ENG_FOBJ_KIND__FOBJ_MEMFD: {
		char name[250];

		snprintf(name, sizeof(name), "%s", o->name ? o->name : "");
		fd = (int)syscall(SYS_memfd_create, name, MFD_ALLOW_SEALING | MFD_CLOEXEC);
		if (fd < 0)
			return err_set(errno, "cannot create memfd \"%s\": %m", name);
		if (o->has_mode && (o->mode & 0777) != 0777)
			(void)fchmod(fd, mode);
		break;
	}
	case ENG_FOBJ_KIND__FOBJ_SHM:
		if (!o->name || o->name[0] != '/')
			return err_set(EBADMSG, "shared memory object without a path");
		fd = open(o->name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			*ret_fresh = false;	/* still there: used as it is */
			return fd;
		}
		if (errno != ENOENT)
			return err_set(errno, "cannot open \"%s\": %m", o->name);
		fd = open(o->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
		if (fd < 0)
			return err_set(errno, "cannot create \"%s\": %m", o->name);
		break;
	case ENG_FOBJ_KIND__FOBJ_UNLINKED:
		if (!o->name || o->name[0] != '/')
			return err_set(EBADMSG, "unlinked file without a path");
		fd = unlinked_open(o->name, mode);
		if (fd < 0)
			return fd;
		break;
	case ENG_FOBJ_KIND__FOBJ_SYSV:
		return sysv_open(o, ret_fresh);
	default:
		return err_set(EBADMSG, "file object of unknown kind %d", o->kind);
	}
	if (o->has_uid && (getuid() != o->uid || getgid() != o->gid))
		(void)fchown(fd, o->uid, o->gid);
	if (ftruncate(fd, (off_t)o->size) < 0) {
		int e = errno;

		close(fd);
		return err_set(e, "cannot size \"%s\" to %" PRIu64 " bytes: %m",
			       o->name ? o->name : "", o->size);
	}
	return fd;
}

/* Fill the new object @o (fd or shmid @fd) from its store area. */
static int fobj_fill(struct eng_rst_ctx *ctx, const EngFobj *o, int fd)
{
	struct wc_source *src = NULL;
	struct wc_fill_target tg;
	const struct wc_area *a;
	void *m;
	int r;

	if (!o->has_area || o->area < 0)
		return 0;		/* all holes */
	a = wc_snapshot_area(ctx->snap, (size_t)o->area);
	if (!a || a->nr_pages * RST_PAGE != seg_len(o))
		return err_set(EBADMSG, "store area %d does not match \"%s\" (%" PRIu64 " bytes)",
			       o->area, o->name ? o->name : "", o->size);
	if (!a->nr_data)
		return 0;
	if (o->kind == ENG_FOBJ_KIND__FOBJ_SYSV)
		m = shmat(fd, NULL, 0);
	else
		m = mmap(NULL, seg_len(o), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED || m == (void *)-1)
		return err_set(errno, "cannot map \"%s\" to fill it: %m", o->name ? o->name : "");
	tg = (struct wc_fill_target){ (size_t)o->area, m };
	r = wc_store_source_new(ctx->store, &src);
	if (r >= 0) {
		r = wc_snapshot_fill(ctx->snap, src, &tg, 1);
		wc_source_free(src);
	}
	if (o->kind == ENG_FOBJ_KIND__FOBJ_SYSV)
		shmdt(m);
	else
		munmap(m, seg_len(o));
	return r < 0 ? err_wrap(r, "cannot fill \"%s\"", o->name ? o->name : "") : 0;
}

/* The object @o: made here or by an ancestor (tree), else created (and, if
 * new, filled) now. *ret: its fd (SysV: shmid), owned by the table. */
static int fobj_get(struct eng_rst_ctx *ctx, const EngFobj *o, int *ret)
{
	struct fobj_made *m;
	struct stat st = {};
	bool fresh;
	int fd, r;

	for (size_t i = 0; i < nr_made; i++) {
		m = &made[i];
		if (m->kind != o->kind || m->dev != o->dev || m->ino != o->ino)
			continue;
		if (o->kind == ENG_FOBJ_KIND__FOBJ_SYSV) {
			struct shmid_ds ds;

			if (shmctl(m->fd, IPC_STAT, &ds) < 0)
				return err_set(errno, "SysV segment %d made for key 0x%x is gone: %m",
					       m->fd, (unsigned)o->sysv_key);
		} else if (fstat(m->fd, &st) < 0 || st.st_dev != m->st_dev || st.st_ino != m->st_ino) {
			return err_set(EBADF, "file object \"%s\" made by a parent process is no "
				       "longer open", o->name ? o->name : "");
		}
		*ret = m->fd;
		return 0;
	}
	if (nr_made == cap_made) {
		size_t nc = cap_made ? cap_made * 2 : 16;
		struct fobj_made *nv = realloc(made, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		made = nv;
		cap_made = nc;
	}
	fd = fobj_open(o, &fresh);
	if (fd < 0)
		return fd;
	if (fresh) {
		r = fobj_fill(ctx, o, fd);
		if (r < 0)
			return r;
	}
	if (o->kind != ENG_FOBJ_KIND__FOBJ_SYSV && fstat(fd, &st) < 0)
		return err_set(errno, "fstat of \"%s\": %m", o->name ? o->name : "");
	made[nr_made++] = (struct fobj_made){
		.kind = o->kind, .dev = o->dev, .ino = o->ino, .fd = fd,
		.st_dev = st.st_dev, .st_ino = st.st_ino,
	};
	*ret = fd;
	return 0;
}

int eng_restore_fobjs_prepare(struct eng_rst_ctx *ctx)
{
	const EngProcess *p = ctx->proc;
	struct eng_rst_files *fs;
	int r;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	ctx->files = fs;
	fs->nr = p->n_fobjs;
	fs->fd = malloc((p->n_fobjs + 1) * sizeof(*fs->fd));
	if (!fs->fd)
		return -ENOMEM;
	/* A tree: every object of the image, here in its first process. */
	if (ctx->img && ctx->img->n_procs > 1) {
		for (size_t k = 0; k < ctx->img->n_procs; k++) {
			const EngProcess *q = ctx->img->procs[k];

			for (size_t i = 0; i < q->n_fobjs; i++) {
				int fd;

				r = fobj_get(ctx, q->fobjs[i], &fd);
				if (r < 0)
					return q == p ? r : err_wrap(r, "process %u", q->pid);
			}
		}
	}
	for (size_t i = 0; i < p->n_fobjs; i++) {
		r = fobj_get(ctx, p->fobjs[i], &fs->fd[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

void *eng_restore_fobj_premap(const struct eng_rst_ctx *ctx, const EngVma *v, uint64_t addr,
			      int prot, int flags)
{
	const EngProcess *p = ctx->proc;
	const struct eng_rst_files *fs = ctx->files;
	uint64_t len = v->end - v->start, pgoff = v->has_pgoff ? v->pgoff : 0;
	const EngFobj *o;
	void *m;
	int fd;

	if (!fs || v->fobj >= p->n_fobjs || fs->fd[v->fobj] < 0) {
		err_set(EBADMSG, "mapping 0x%" PRIx64 ": no file object %u", v->start, v->fobj);
		errno = EBADMSG;
		return MAP_FAILED;
	}
	o = p->fobjs[v->fobj];
	if (o->kind == ENG_FOBJ_KIND__FOBJ_SYSV) {
		/* A real attach (shmdt works, nattch counts it): shmat anywhere,
		 * then move the piece this vma covers to @addr. */
		int shmflg = (prot & PROT_WRITE ? 0 : SHM_RDONLY) | (prot & PROT_EXEC ? SHM_EXEC : 0);
		uint64_t sl = seg_len(o);
		char *t;

		if (pgoff + len > sl) {
			err_set(EBADMSG, "mapping 0x%" PRIx64 " beyond its SysV segment", v->start);
			errno = EBADMSG;
			return MAP_FAILED;
		}
		t = shmat(fs->fd[v->fobj], NULL, shmflg);
		if (t == (void *)-1) {
			err_set(errno, "cannot attach SysV segment (key 0x%x): %m",
				(unsigned)o->sysv_key);
			return MAP_FAILED;
		}
		m = mremap(t + pgoff, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)addr);
		if (m == MAP_FAILED) {
			err_set(errno, "cannot move SysV segment (key 0x%x): %m", (unsigned)o->sysv_key);
			shmdt(t);
			return MAP_FAILED;
		}
		if (pgoff)
			munmap(t, pgoff);
		if (pgoff + len < sl)
			munmap(t + pgoff + len, sl - pgoff - len);
		return m;
	}
	fd = fs->fd[v->fobj];
	/* A read-only mapping of a write-sealed memfd must not count as a
	 * writable one (the seal is added after the premap): map it from a
	 * read-only open, as the kernel's own such mappings are. */
	if (!(prot & PROT_WRITE) && o->has_seals &&
	    (o->seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))) {
		char path[64];
		int ro;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ro = open(path, O_RDONLY | O_CLOEXEC);
		if (ro < 0) {
			err_set(errno, "cannot reopen memfd \"%s\": %m", o->name ? o->name : "");
			return MAP_FAILED;
		}
		m = mmap((void *)addr, len, prot, (flags & ~MAP_ANONYMOUS) | MAP_SHARED | MAP_FIXED,
			 ro, (off_t)pgoff);
		close(ro);
	} else {
		m = mmap((void *)addr, len, prot, (flags & ~MAP_ANONYMOUS) | MAP_SHARED | MAP_FIXED,
			 fd, (off_t)pgoff);
	}
	if (m == MAP_FAILED)
		err_set(errno, "cannot map \"%s\" at 0x%" PRIx64 ": %m", o->name ? o->name : "",
			v->start);
	return m;
}

int eng_restore_fobjs_mapped(struct eng_rst_ctx *ctx)
{
	const EngProcess *p = ctx->proc;
	struct eng_rst_files *fs = ctx->files;

	for (size_t i = 0; fs && i < p->n_fobjs; i++) {
		const EngFobj *o = p->fobjs[i];

		/* (Already done by another process of a tree: F_SEAL_SEAL would
		 * refuse adding them again.) */
		if (o->kind == ENG_FOBJ_KIND__FOBJ_MEMFD && o->has_seals && o->seals &&
		    ((unsigned)fcntl(fs->fd[i], F_GET_SEALS) & o->seals) != o->seals &&
		    fcntl(fs->fd[i], F_ADD_SEALS, (int)o->seals) < 0)
			return err_set(errno, "memfd \"%s\": cannot add seals %#x: %m",
				       o->name ? o->name : "", o->seals);
		if (o->kind == ENG_FOBJ_KIND__FOBJ_SYSV && o->has_sysv_dest && o->sysv_dest) {
			struct shmid_ds ds;

			if (shmctl(fs->fd[i], IPC_STAT, &ds) == 0 && (ds.shm_perm.mode & SHM_DEST))
				continue;
			if (shmctl(fs->fd[i], IPC_RMID, NULL) < 0)
				return err_set(errno, "SysV segment (key 0x%x): IPC_RMID: %m",
					       (unsigned)o->sysv_key);
		}
	}
	return 0;
}

int eng_restore_fd_fobj(struct eng_rst_ctx *ctx, size_t i, int *ret)
{
	const EngProcess *p = ctx->proc;
	const EngFd *f = p->fds[i];
	const EngFobj *o;
	char path[64];
	int fd, obj, flags, r;

	if (!f->has_fobj || f->fobj >= p->n_fobjs)
		return err_set(EBADMSG, "fd %u: no file object", f->fd);
	o = p->fobjs[f->fobj];
	if (o->kind == ENG_FOBJ_KIND__FOBJ_SYSV)
		return err_set(EBADMSG, "fd %u: a SysV segment is no descriptor", f->fd);
	/* (A tree makes shared descriptions before the premap: made on demand.) */
	r = fobj_get(ctx, o, &obj);
	if (r < 0)
		return r;
	/* One open file description per eng_fd.obj: fds.c and tree.c share it. */
	flags = (int)(f->flags & ~(uint32_t)(O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", obj);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "fd %u: cannot open \"%s\" again: %m", f->fd,
			       o->name ? o->name : "");
	if (f->has_pos && f->pos && lseek(fd, (off_t)f->pos, SEEK_SET) < 0) {
		int e = errno;

		close(fd);
		return err_set(e, "fd %u: cannot seek \"%s\": %m", f->fd, o->name ? o->name : "");
	}
	*ret = fd;	/* kept open until the child's descriptors are closed */
	return 0;
}

int eng_restore_fd_pidfd(struct eng_rst_ctx *ctx, size_t i, int *ret)
{
	const EngFd *f = ctx->proc->fds[i];
	int fd;

	if (!f->has_pidfd_pid)
		return err_set(EBADMSG, "fd %u: pidfd without a pid", f->fd);
	/* In a tree the target may be a process not created yet (a sibling
	 * forked after us): it comes within moments. */
	for (int tries = 0;; tries++) {
		fd = (int)syscall(SYS_pidfd_open, (pid_t)f->pidfd_pid, f->flags & O_NONBLOCK);
		if (fd >= 0 || errno != ESRCH || !ctx->img || ctx->img->n_procs < 2 || tries >= 500)
			break;
		usleep(10000);
	}
	if (fd < 0)
		return err_set(errno, "fd %u: pidfd_open(%u): %m", f->fd, f->pidfd_pid);
	*ret = fd;
	return 0;
}

static const char *fd_path(const EngProcess *p, uint32_t fd)
{
	for (size_t i = 0; i < p->n_fds; i++)
		if (p->fds[i]->fd == fd)
			return p->fds[i]->path ? p->fds[i]->path : "";
	return "";
}

int eng_restore_locks(struct eng_rst_ctx *ctx)
{
	const EngProcess *p = ctx->proc;

	for (size_t i = 0; i < p->n_locks; i++) {
		const EngLock *l = p->locks[i];
		const char *what;
		int r;

		if (l->kind == ENG_LOCK_KIND__LOCK_FLOCK) {
			what = "flock";
			r = flock((int)l->fd, (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB);
		} else {
			struct flock fl = {
				.l_type = l->write ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET,
				.l_start = (off_t)l->start, .l_len = (off_t)l->len,
			};

			what = l->kind == ENG_LOCK_KIND__LOCK_POSIX ? "POSIX" : "OFD";
			r = fcntl((int)l->fd, l->kind == ENG_LOCK_KIND__LOCK_POSIX ? F_SETLK : F_OFD_SETLK,
				  &fl);
		}
		if (r < 0 && (errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK))
			return err_set(EBUSY, "fd %u: another process holds a conflicting lock on "
				       "\"%s\" now (the process held a %s %s lock)", l->fd,
				       fd_path(p, l->fd), what,
				       l->kind == ENG_LOCK_KIND__LOCK_FLOCK ?
				       (l->write ? "exclusive" : "shared") : (l->write ? "write" : "read"));
		if (r < 0)
			return err_set(errno, "fd %u: cannot take the %s lock on \"%s\": %m", l->fd,
				       what, fd_path(p, l->fd));
	}
	return 0;
}
