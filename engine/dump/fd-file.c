// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * File objects whose content the image holds (eng_process.fobjs), the
 * locks a process holds, pidfds, and the list of what cannot be captured.
 *
 *   FOBJ_MEMFD     memfd_create(): name, size, seals, content
 *   FOBJ_SHM       a file under /dev/shm (tmpfs: gone with a reboot)
 *   FOBJ_UNLINKED  a deleted regular file (content up to a size limit)
 *   FOBJ_SYSV      a SysV shared memory segment (key, id, size, mode)
 *
 * One object per (st_dev, st_ino), whatever the number of descriptors and
 * shared mappings of it: a memfd held as fd 5 and mapped twice is one
 * eng_fobj; the vmas name it (eng_vma.fobj) and store no pages of their
 * own; its content is one store area (eng_fobj.area), written after the
 * memory areas by eng_dump_fobj_content(). Everything here reads from
 * outside: /proc/PID/fd/N and /proc/PID/map_files/A-B are opened (read
 * only) to read content and seals, and the process is not changed.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "dump.h"

#ifndef F_GET_SEALS
#define F_GET_SEALS		1034
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC		0x01021994
#endif
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC		0x958458f6
#endif
#ifndef SYS_kcmp
#define SYS_kcmp		312
#endif
#define KCMP_FILE_		0

#define FOBJ_CHUNK_PAGES	256u	/* 1 MiB per put_pages */

static bool str_starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool path_deleted(const char *path)
{
	size_t n = strlen(path);

	return n >= 10 && strcmp(path + n - 10, " (deleted)") == 0;
}

/* @path without " (deleted)", allocated. */
static char *path_live(const char *path)
{
	size_t n = strlen(path);

	if (path_deleted(path))
		n -= 10;
	return strndup(path, n);
}

/* ------------------------------------------------------------- unsupported */

int eng_dump_unsupported(struct eng_dump_ctx *ctx, int r)
{
	struct eng_dump_files *fs = &ctx->files;
	const char *d;

	if (r != -EOPNOTSUPP && r != -EFBIG)
		return r;
	d = err_detail();
	if (!d || !d[0])
		d = strerror(-r);
	if (fs->report)
		fs->report(fs->report_arg, d);
	if (!fs->nr_unsupported++) {
		snprintf(fs->first, sizeof(fs->first), "%s", d);
		fs->first_err = r;
	}
	err_clear();
	return 0;
}

int eng_dump_unsupported_end(struct eng_dump_ctx *ctx)
{
	struct eng_dump_files *fs = &ctx->files;

	if (!fs->nr_unsupported)
		return 0;
	if (fs->nr_unsupported == 1)
		return err_set(fs->first_err, "%s", fs->first);
	return err_set(fs->first_err, "%s (and %u more unsupported descriptors or mappings)",
		       fs->first, fs->nr_unsupported - 1);
}

/* ----------------------------------------------------------------- objects */

/* The object of @st, or a new one of @kind. *ret_new: just added. */
static int fobj_get(struct eng_dump_ctx *ctx, EngFobjKind kind, const struct stat *st,
		    const char *src, uint32_t *ret_idx, bool *ret_new)
{
	EngProcess *proc = ctx->proc;
	struct eng_dump_files *fs = &ctx->files;
	EngFobj *o, **nv;
	char (*ns)[64];

	for (size_t i = 0; i < proc->n_fobjs; i++) {
		if (proc->fobjs[i]->dev == (uint64_t)st->st_dev &&
		    proc->fobjs[i]->ino == (uint64_t)st->st_ino) {
			*ret_idx = (uint32_t)i;
			*ret_new = false;
			return 0;
		}
	}
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	eng_fobj__init(o);
	nv = realloc(proc->fobjs, (proc->n_fobjs + 1) * sizeof(*nv));
	ns = realloc(fs->fobj_src, (proc->n_fobjs + 1) * sizeof(*ns));
	if (nv)
		proc->fobjs = nv;
	if (ns)
		fs->fobj_src = ns;
	if (!nv || !ns) {
		free(o);
		return -ENOMEM;
	}
	o->kind = kind;
	o->dev = st->st_dev;
	o->ino = st->st_ino;
	o->size = (uint64_t)st->st_size;
	o->has_mode = o->has_uid = o->has_gid = true;
	o->mode = st->st_mode & 07777;
	o->uid = st->st_uid;
	o->gid = st->st_gid;
	snprintf(fs->fobj_src[proc->n_fobjs], sizeof(fs->fobj_src[0]), "%s", src);
	proc->fobjs[proc->n_fobjs] = o;
	*ret_idx = (uint32_t)proc->n_fobjs++;
	*ret_new = true;
	return 0;
}

/* Name, seals (memfd) or path of a new object from its path as /proc shows it. */
static int fobj_describe(struct eng_dump_ctx *ctx, EngFobj *o, const char *link, int fd)
{
	if (o->kind == ENG_FOBJ_KIND__FOBJ_MEMFD) {
		/* "/memfd:NAME (deleted)" */
		o->name = path_live(link + strlen("/memfd:"));
		if (!o->name)
			return -ENOMEM;
		if (fd >= 0) {
			int seals = fcntl(fd, F_GET_SEALS);

			if (seals < 0)
				return err_set(errno, "process %d: memfd \"%s\": F_GET_SEALS: %m",
					       ctx->pid, link);
			o->has_seals = true;
			o->seals = (uint32_t)seals;
		}
	} else {
		o->name = path_live(link);
		if (!o->name)
			return -ENOMEM;
	}
	return 0;
}

static int same_ipc_ns(struct eng_dump_ctx *ctx)
{
	struct stat a, b;

	if (fstatat(ctx->proc_fd, "ns/ipc", &a, 0) < 0 || stat("/proc/self/ns/ipc", &b) < 0)
		return -errno;
	return a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

/* SysV facts of segment @id (the inode number of its mapping). */
static int sysv_describe(struct eng_dump_ctx *ctx, EngFobj *o, const char *path)
{
	struct shmid_ds ds;
	int r = same_ipc_ns(ctx);

	if (r < 0)
		return err_set(-r, "process %d: cannot compare IPC namespaces: %s", ctx->pid,
			       strerror(-r));
	/* ns: a private IPC namespace is read from inside (ns.c); restore
	 * re-creates the segment in the new one. */
	r = r ? (shmctl((int)o->ino, IPC_STAT, &ds) < 0 ? -errno : 0)
	      : eng_dump_ns_shm_stat(ctx->pid, (int)o->ino, &ds);
	if (r < 0)
		return err_set(-r, "process %d: SysV segment %llu (\"%s\"): IPC_STAT: %s",
			       ctx->pid, (unsigned long long)o->ino, path, strerror(-r));
	o->has_sysv_key = o->has_sysv_id = o->has_sysv_dest = true;
	o->sysv_key = ds.shm_perm.__key;
	o->sysv_id = (uint32_t)o->ino;
	o->sysv_dest = (ds.shm_perm.mode & SHM_DEST) != 0;
	o->mode = ds.shm_perm.mode & 0777;
	o->uid = ds.shm_perm.uid;
	o->gid = ds.shm_perm.gid;
	o->size = ds.shm_segsz;
	o->has_sysv_ctime = o->has_sysv_cpid = true;
	o->sysv_ctime = ds.shm_ctime;
	o->sysv_cpid = (uint32_t)ds.shm_cpid;
	o->name = path_live(path);
	return o->name ? 0 : -ENOMEM;
}

/* Is /proc/PID/@rel (a magic link) a file on tmpfs? Its content is memory
 * then (a deleted /dev/shm file): no size limit, like a memfd. */
static bool on_tmpfs(int proc_fd, const char *rel)
{
	_cleanup_close_ int fd = openat(proc_fd, rel, O_PATH | O_CLOEXEC);
	struct statfs sfs;

	return fd >= 0 && fstatfs(fd, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC;
}

bool eng_dump_fobj_path(const char *path)
{
	if (str_starts(path, "/dev/zero"))
		return false;		/* MAP_SHARED|MAP_ANONYMOUS */
	return str_starts(path, "/memfd:") || str_starts(path, "/SYSV") ||
	       str_starts(path, "/dev/shm/") || (path[0] == '/' && path_deleted(path));
}

int eng_dump_fobj_vma(struct eng_dump_ctx *ctx, const struct eng_proc_map *m, EngVma *v)
{
	char rel[96];
	struct stat st;
	EngFobjKind kind;
	uint32_t idx;
	bool is_new;
	int r;

	snprintf(rel, sizeof(rel), "map_files/%llx-%llx", (unsigned long long)m->start,
		 (unsigned long long)m->end);
	if (fstatat(ctx->proc_fd, rel, &st, 0) < 0)
		return err_set(EOPNOTSUPP, "process %d: shared mapping %llx-%llx of \"%s\" cannot "
				 "be read (%s)", ctx->pid, (unsigned long long)m->start,
				 (unsigned long long)m->end, m->path, strerror(errno));
	if (str_starts(m->path, "/SYSV"))
		kind = ENG_FOBJ_KIND__FOBJ_SYSV;
	else if (str_starts(m->path, "/memfd:"))
		kind = ENG_FOBJ_KIND__FOBJ_MEMFD;
	else if (path_deleted(m->path))
		kind = ENG_FOBJ_KIND__FOBJ_UNLINKED;
	else
		kind = ENG_FOBJ_KIND__FOBJ_SHM;
	if (kind == ENG_FOBJ_KIND__FOBJ_SHM) {
		struct stat now;

		/* Restore opens it by path: the path must still name it. */
		if (stat(m->path, &now) < 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev)
			return err_set(EOPNOTSUPP, "process %d: mapping %llx-%llx: \"%s\" was replaced "
					 "or removed since it was mapped", ctx->pid,
					 (unsigned long long)m->start, (unsigned long long)m->end,
					 m->path);
	}
	r = fobj_get(ctx, kind, &st, rel, &idx, &is_new);
	if (r < 0)
		return r;
	if (is_new) {
		EngFobj *o = ctx->proc->fobjs[idx];

		if (kind == ENG_FOBJ_KIND__FOBJ_SYSV) {
			r = sysv_describe(ctx, o, m->path);
		} else {
			_cleanup_close_ int fd = -1;

			if (kind == ENG_FOBJ_KIND__FOBJ_MEMFD)
				fd = openat(ctx->proc_fd, rel, O_RDONLY | O_CLOEXEC);
			r = fobj_describe(ctx, o, m->path, fd);
		}
		if (r < 0)
			return r;
		if (kind == ENG_FOBJ_KIND__FOBJ_UNLINKED && !on_tmpfs(ctx->proc_fd, rel) &&
		    o->size > ctx->files.max_unlinked_bytes)
			return err_set(EFBIG, "process %d: mapping %llx-%llx of unlinked file \"%s\" "
				       "holds %llu bytes, above the limit of %llu "
				       "(checkpoint --max-unlinked-size)", ctx->pid,
				       (unsigned long long)m->start, (unsigned long long)m->end,
				       m->path, (unsigned long long)o->size,
				       (unsigned long long)ctx->files.max_unlinked_bytes);
	}
	if (kind == ENG_FOBJ_KIND__FOBJ_SYSV && v->map_flags & MAP_PRIVATE)
		return err_set(EOPNOTSUPP, "process %d: private SysV mapping", ctx->pid);
	v->has_fobj = true;
	v->fobj = idx;
	/* Not anonymous shared memory: the tree restore's shared memory (by
	 * shmid, tree.c) must leave it to its object. */
	v->has_shmid = false;
	return 0;
}

/* The obj of an earlier FD_FOBJ fd holding the same open file description. */
static void fd_obj(struct eng_dump_ctx *ctx, int fd, EngFd *e)
{
	const EngProcess *proc = ctx->proc;

	e->has_obj = true;
	e->obj = (uint64_t)(uint32_t)ctx->pid << 32 | (uint32_t)fd;
	for (size_t i = 0; i < proc->n_fds; i++) {
		const EngFd *g = proc->fds[i];

		if (g->kind != e->kind || !g->has_obj || g->fobj != e->fobj)
			continue;
		if (syscall(SYS_kcmp, ctx->pid, ctx->pid, KCMP_FILE_, (unsigned long)fd,
			    (unsigned long)g->fd) == 0) {
			e->obj = g->obj;
			return;
		}
	}
}

int eng_dump_fd_fobj_kind(const char *link, const struct stat *st)
{
	if (!S_ISREG(st->st_mode) || link[0] != '/')
		return -1;
	if (str_starts(link, "/memfd:") || str_starts(link, "/dev/shm/") || path_deleted(link))
		return ENG_FD_KIND__FD_FOBJ;
	return -1;
}

int eng_dump_fd_fobj(struct eng_dump_ctx *ctx, int fd, const char *link, const struct stat *st,
		     EngFd *e)
{
	EngFobjKind kind;
	char rel[64];
	struct statfs sfs;
	uint32_t idx;
	bool is_new;
	int r;

	snprintf(rel, sizeof(rel), "fd/%d", fd);
	if (str_starts(link, "/memfd:"))
		kind = ENG_FOBJ_KIND__FOBJ_MEMFD;
	else if (path_deleted(link))
		kind = ENG_FOBJ_KIND__FOBJ_UNLINKED;
	else
		kind = ENG_FOBJ_KIND__FOBJ_SHM;
	if (kind == ENG_FOBJ_KIND__FOBJ_SHM) {
		struct stat now;

		/* Restore opens it by path: the path must still name it. */
		if (stat(link, &now) < 0 || now.st_ino != st->st_ino || now.st_dev != st->st_dev)
			return err_set(EOPNOTSUPP, "process %d fd %d: \"%s\" was replaced or removed "
					 "since it was opened", ctx->pid, fd, link);
	}
	r = fobj_get(ctx, kind, st, rel, &idx, &is_new);
	if (r < 0)
		return r;
	if (is_new) {
		EngFobj *o = ctx->proc->fobjs[idx];
		_cleanup_close_ int ofd = openat(ctx->proc_fd, rel, O_RDONLY | O_CLOEXEC);

		if (ofd < 0)
			return err_set(errno, "process %d fd %d: cannot open \"%s\": %m", ctx->pid,
				       fd, link);
		if (fstatfs(ofd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC)
			return err_set(EOPNOTSUPP, "process %d fd %d: unsupported descriptor "
					 "(hugetlb memfd) \"%s\"", ctx->pid, fd, link);
		r = fobj_describe(ctx, o, link, kind == ENG_FOBJ_KIND__FOBJ_MEMFD ? ofd : -1);
		if (r < 0)
			return r;
		if (kind == ENG_FOBJ_KIND__FOBJ_UNLINKED && !on_tmpfs(ctx->proc_fd, rel) &&
		    o->size > ctx->files.max_unlinked_bytes)
			return err_set(EFBIG, "process %d fd %d: unlinked file \"%s\" holds %llu "
				       "bytes, above the limit of %llu (checkpoint "
				       "--max-unlinked-size)", ctx->pid, fd, link,
				       (unsigned long long)o->size,
				       (unsigned long long)ctx->files.max_unlinked_bytes);
	}
	e->has_fobj = true;
	e->fobj = idx;
	fd_obj(ctx, fd, e);
	return 0;
}

/* ------------------------------------------------------------------- pidfd */

int eng_dump_fd_pidfd(struct eng_dump_ctx *ctx, int fd, const char *info, EngFd *e)
{
	const char *p = strstr(info, "\nPid:");
	int pid;

	if (!p || sscanf(p + 5, "%d", &pid) != 1)
		return err_set(EOPNOTSUPP, "process %d fd %d: unsupported descriptor (pidfd) "
				 "\"anon_inode:[pidfd]\": no Pid in its fdinfo", ctx->pid, fd);
	if (pid <= 0)
		return err_set(EOPNOTSUPP, "process %d fd %d: unsupported descriptor (pidfd) "
				 "\"anon_inode:[pidfd]\" of a process that has exited", ctx->pid, fd);
	/* A tree: any process of it, resolved once all are dumped
	 * (eng_dump_pidfds_resolve). Otherwise the process itself only. */
	if (ctx->tree) {
		e->has_pidfd_host = true;
		e->pidfd_host = (uint32_t)pid;
		return 0;
	}
	if (pid != ctx->pid)
		return err_set(EOPNOTSUPP, "process %d fd %d: unsupported descriptor (pidfd) "
				 "\"anon_inode:[pidfd]\" of process %d, which is not checkpointed "
				 "with it", ctx->pid, fd, pid);
	e->has_pidfd_pid = true;
	e->pidfd_pid = (uint32_t)(ctx->status.ns_depth > 0 ? ctx->status.ns_pid : ctx->pid);
	return 0;
}

int eng_dump_pidfds_resolve(EngImage *img, const pid_t *host, size_t nr,
			    const struct eng_dump_opts *opts)
{
	int r = 0;

	for (size_t k = 0; k < img->n_procs && k < nr; k++) {
		const EngProcess *p = img->procs[k];

		for (size_t i = 0; i < p->n_fds; i++) {
			EngFd *f = p->fds[i];
			size_t t;

			if (f->kind != ENG_FD_KIND__FD_PIDFD || f->has_pidfd_pid || !f->has_pidfd_host)
				continue;
			for (t = 0; t < nr && t < img->n_procs; t++)
				if (host[t] == (pid_t)f->pidfd_host)
					break;
			if (t < nr && t < img->n_procs) {
				f->has_pidfd_pid = true;
				f->pidfd_pid = img->procs[t]->pid;
				continue;
			}
			{
				int e = err_set(EOPNOTSUPP, "process %d fd %u: unsupported descriptor "
						"(pidfd) \"anon_inode:[pidfd]\" of process %u, which is "
						"not in the tree", (int)host[k], f->fd, f->pidfd_host);

				if (opts && opts->sz >= offsetof(struct eng_dump_opts, report_arg) +
							sizeof(opts->report_arg) && opts->report)
					opts->report(opts->report_arg, err_detail());
				if (!r)
					r = e;
			}
		}
	}
	return r;
}

/* ------------------------------------------------------------------- locks */

/*
 * fdinfo "lock:" lines (fs/locks.c lock_get_status), one per lock that this
 * open file holds (flock, OFD) or that this process holds through it (POSIX):
 *
 *   lock:\t1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF
 *   lock:\t1: POSIX  ADVISORY  READ  1234 fe:00:5678 10 29
 *   lock:\t1: -> POSIX ...      (a waiter: the syscall restarts, not saved)
 */
int eng_dump_fd_locks(struct eng_dump_ctx *ctx, int fd, const char *info)
{
	EngProcess *proc = ctx->proc;

	for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		char cls[16], mand[16], type[16], end[32];
		unsigned long long start;
		int n, lpid;
		EngLock *l, **nv;

		if (!str_starts(p, "lock:"))
			continue;
		if (strstr(p, "->") && strstr(p, "->") < strchr(p, '\n'))
			continue;
		if (sscanf(p, "lock: %d: %15s %15s %15s %d %*s %llu %31s", &n, cls, mand, type, &lpid,
			   &start, end) != 7)
			return err_set(EBADMSG, "process %d fd %d: cannot parse lock line \"%.80s\"",
				       ctx->pid, fd, p);
		if (strcmp(mand, "ADVISORY") != 0 ||
		    (strcmp(cls, "FLOCK") && strcmp(cls, "POSIX") && strcmp(cls, "OFDLCK")))
			return err_set(EOPNOTSUPP, "process %d fd %d: unsupported lock (%s %s)",
				       ctx->pid, fd, cls, mand);
		if (strcmp(type, "READ") && strcmp(type, "WRITE"))
			return err_set(EOPNOTSUPP, "process %d fd %d: unsupported lock (%s %s)",
				       ctx->pid, fd, cls, type);
		l = calloc(1, sizeof(*l));
		if (!l)
			return -ENOMEM;
		eng_lock__init(l);
		l->kind = !strcmp(cls, "FLOCK") ? ENG_LOCK_KIND__LOCK_FLOCK :
			  !strcmp(cls, "POSIX") ? ENG_LOCK_KIND__LOCK_POSIX : ENG_LOCK_KIND__LOCK_OFD;
		l->fd = (uint32_t)fd;
		l->write = !strcmp(type, "WRITE");
		if (l->kind != ENG_LOCK_KIND__LOCK_FLOCK) {
			l->has_start = l->has_len = true;
			l->start = start;
			l->len = !strcmp(end, "EOF") ? 0 : strtoull(end, NULL, 10) - start + 1;
		}
		nv = realloc(proc->locks, (proc->n_locks + 1) * sizeof(*nv));
		if (!nv) {
			free(l);
			return -ENOMEM;
		}
		proc->locks = nv;
		proc->locks[proc->n_locks++] = l;
	}
	return 0;
}

/* ----------------------------------------------------------------- content */

/* Store the content of @o (read through @fd) as a new area. */
static int fobj_store(struct eng_dump_ctx *ctx, struct wc_sink *sink, EngFobj *o, int fd,
		      uint8_t *buf, uint8_t *kinds)
{
	uint64_t nr = DIV_ROUND_UP(o->size, WC_PAGE_SIZE);
	bool any = false;
	off_t d;
	int r;

	if (!nr)
		return 0;
	d = lseek(fd, 0, SEEK_DATA);
	if (d < 0 && errno == ENXIO)
		return 0;			/* all holes: nothing to store */
	if (d >= 0 && (uint64_t)d >= o->size)
		return 0;
	(void)any;
	{
		struct wc_area_desc desc = {
			.start = 0, .nr_pages = nr, .prot = 3, .flags = 1, .name = o->name,
		};

		r = sink->ops->begin_area(sink, &desc);
		if (r < 0)
			return err_wrap(r, "cannot start the store area of \"%s\"", o->name);
	}
	o->area = (int32_t)ctx->stats->nr_areas++;
	o->has_area = true;
	for (uint64_t c = 0; c < nr; c += FOBJ_CHUNK_PAGES) {
		uint64_t n = MIN((uint64_t)FOBJ_CHUNK_PAGES, nr - c);
		off_t pos = (off_t)(c * WC_PAGE_SIZE), end = (off_t)((c + n) * WC_PAGE_SIZE);

		memset(kinds, WC_PAGE_ABSENT, n);
		while (pos < end) {
			off_t h;
			uint64_t a, b;

			d = lseek(fd, pos, SEEK_DATA);
			if (d < 0) {
				if (errno == ENXIO)
					break;
				return err_set(errno, "\"%s\": SEEK_DATA: %m", o->name);
			}
			if (d >= end)
				break;
			h = lseek(fd, d, SEEK_HOLE);
			if (h < 0)
				return err_set(errno, "\"%s\": SEEK_HOLE: %m", o->name);
			h = MIN(h, end);
			a = (uint64_t)d / WC_PAGE_SIZE;
			b = DIV_ROUND_UP((uint64_t)h, WC_PAGE_SIZE);
			/* One read per run of data pages; a short read (the
			 * file's end in its last page) leaves zeros. */
			{
				size_t off = (a - c) * WC_PAGE_SIZE, len = (b - a) * WC_PAGE_SIZE;
				ssize_t got = pread(fd, buf + off, len, (off_t)(a * WC_PAGE_SIZE));

				if (got < 0)
					return err_set(errno, "cannot read \"%s\": %m", o->name);
				memset(buf + off + got, 0, len - (size_t)got);
				memset(kinds + (a - c), WC_PAGE_DATA, b - a);
			}
			pos = h;
		}
		r = sink->ops->put_pages(sink, buf, kinds, n);
		if (r < 0)
			return err_wrap(r, "cannot store the content of \"%s\"", o->name);
	}
	return 0;
}

int eng_dump_fobj_content(struct eng_dump_ctx *ctx, struct wc_sink *sink)
{
	EngProcess *proc = ctx->proc;
	_cleanup_free_ uint8_t *buf = NULL;
	uint8_t kinds[FOBJ_CHUNK_PAGES];
	int r = 0;

	if (!proc->n_fobjs)
		return 0;
	buf = malloc((size_t)FOBJ_CHUNK_PAGES * WC_PAGE_SIZE);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < proc->n_fobjs && r >= 0; i++) {
		EngFobj *o = proc->fobjs[i];
		_cleanup_close_ int fd = openat(ctx->proc_fd, ctx->files.fobj_src[i],
						O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			return err_set(errno, "process %d: cannot open /proc/%d/%s (\"%s\"): %m",
				       ctx->pid, ctx->pid, ctx->files.fobj_src[i], o->name);
		r = fobj_store(ctx, sink, o, fd, buf, kinds);
	}
	return r;
}

void eng_dump_files_fini(struct eng_dump_ctx *ctx)
{
	free(ctx->files.fobj_src);
	ctx->files.fobj_src = NULL;
}

void eng_dump_files_init(struct eng_dump_ctx *ctx, const struct eng_dump_opts *opts)
{
	struct eng_dump_files *fs = &ctx->files;

#define HAS(f) (opts && opts->sz >= offsetof(struct eng_dump_opts, f) + sizeof(opts->f))
	fs->max_unlinked_bytes = HAS(max_unlinked_bytes) && opts->max_unlinked_bytes ?
				 opts->max_unlinked_bytes : ENG_DUMP_MAX_UNLINKED_DEFAULT;
	fs->dry_run = HAS(dry_run) && opts->dry_run;
	if (HAS(report_arg)) {
		fs->report = opts->report;
		fs->report_arg = opts->report_arg;
	}
#undef HAS
}
