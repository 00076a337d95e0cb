// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Restore of a process tree (checkpoint --tree): see restore.h for the
 * object model. The parent validates the shape and creates the inet
 * sockets; the root's new process creates the shared memory and the shared
 * descriptions, then every other process of the tree, each with its pid:
 *
 *   root child: setsid/setpgid, shared objects
 *     clone3(set_tid) child A: setsid/setpgid, then its own children...
 *     clone3(set_tid) zombie Z: exits at once with its saved status
 *       (waited for with WNOWAIT: stays a zombie; its SIGCHLD is consumed)
 *   then each live process restores itself (child.c) and reports.
 *
 * A process is created by its saved parent, so that getppid(), wait() and
 * SIGCHLD work as before; children that lead a process group are created
 * before their siblings, which may join that group.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/futex.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "restore.h"

struct tree_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

static ssize_t proc_index(const EngImage *img, uint32_t pid)
{
	for (size_t k = 0; k < img->n_procs; k++)
		if (img->procs[k]->pid == pid)
			return (ssize_t)k;
	return -1;
}

int eng_restore_tree_check(const EngImage *img)
{
	const EngProcess *root = img->procs[0];

	if (root->zombie)
		return err_set(EBADMSG, "the root of the tree (%u) is a zombie", root->pid);
	for (size_t k = 0; k < img->n_procs; k++) {
		const EngProcess *p = img->procs[k];
		const EngProcess *pp;
		ssize_t j;

		if (!p->zombie && (!p->creds || !p->mm || !p->n_threads))
			return err_set(EBADMSG, "process %u of the tree is incomplete", p->pid);
		if (proc_index(img, p->pid) != (ssize_t)k)
			return err_set(EBADMSG, "pid %u appears twice in the tree", p->pid);
		if (k == 0)
			continue;
		j = proc_index(img, p->ppid);
		if (j < 0 || (size_t)j >= k || img->procs[j]->zombie)
			return err_set(EBADMSG, "process %u: its parent %u is not before it in the "
				       "tree", p->pid, p->ppid);
		pp = img->procs[j];
		if (p->sid != p->pid && p->sid != pp->sid)
			return err_set(EOPNOTSUPP, "process %u is in session %u, neither its own nor "
				       "its parent's (%u): not supported", p->pid, p->sid, pp->sid);
		if (p->pgid != p->pid && p->pgid != pp->pgid && p->pgid != root->pgid) {
			ssize_t l = proc_index(img, p->pgid);

			if (l < 0 || img->procs[l]->sid != p->sid)
				return err_set(EOPNOTSUPP, "process %u is in process group %u whose "
					       "leader is not in the tree: not supported", p->pid,
					       p->pgid);
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- sockets */

/* An fd's object id; the dump's scheme for an fd without one. */
static uint64_t fd_key(const EngProcess *p, const EngFd *f)
{
	return f->has_obj ? f->obj : (uint64_t)p->pid << 32 | f->fd;
}

int eng_restore_tree_sockets_open(struct eng_rst_tree *t)
{
	const EngImage *img = t->img;
	struct eng_rst_tree_obj *made = NULL;
	size_t nr_made = 0;
	int r = 0;

	t->sock_fds = calloc(img->n_procs, sizeof(*t->sock_fds));
	if (!t->sock_fds)
		return -ENOMEM;
	for (size_t k = 0; k < img->n_procs; k++) {
		const EngProcess *p = img->procs[k];
		_cleanup_free_ EngFd **todo = calloc(p->n_fds + 1, sizeof(*todo));
		EngProcess tmp = *p;
		int *fds = NULL;
		size_t nt = 0, have = 0;

		if (!todo) {
			r = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < p->n_fds; i++) {
			const EngFd *f = p->fds[i];
			size_t m;

			if (f->kind != ENG_FD_KIND__FD_INET_SOCKET &&
			    f->kind != ENG_FD_KIND__FD_TCP_ESTABLISHED)	/* tcp */
				continue;
			have++;
			for (m = 0; m < nr_made; m++)
				if (made[m].obj == fd_key(p, f))
					break;
			for (size_t q = 0; q < nt && m == nr_made; q++)
				if (fd_key(p, todo[q]) == fd_key(p, f))
					m = nr_made + 1;
			if (m == nr_made)
				todo[nt++] = p->fds[i];
		}
		if (!have)
			continue;
		/* The sockets of this process not made yet: created as for a
		 * process of its own (sockets.c), once per object. */
		tmp.fds = todo;
		tmp.n_fds = nt;
		if (nt) {
			struct eng_rst_tree_obj *nv;

			r = eng_restore_sockets_open(&tmp, &fds);
			if (r < 0)
				goto fail;
			nv = realloc(made, (nr_made + nt) * sizeof(*nv));
			if (!nv) {
				eng_restore_sockets_close(&tmp, fds);
				r = -ENOMEM;
				goto fail;
			}
			made = nv;
			for (size_t i = 0; i < nt; i++)
				made[nr_made++] = (struct eng_rst_tree_obj){
					.obj = fd_key(p, todo[i]), .fd = fds[i],
				};
			free(fds);	/* the descriptors belong to made[] now */
		}
		t->sock_fds[k] = malloc(p->n_fds * sizeof(int));
		if (!t->sock_fds[k]) {
			r = -ENOMEM;
			goto fail;
		}
		for (size_t i = 0; i < p->n_fds; i++) {
			const EngFd *f = p->fds[i];

			t->sock_fds[k][i] = -1;
			if (f->kind != ENG_FD_KIND__FD_INET_SOCKET &&
			    f->kind != ENG_FD_KIND__FD_TCP_ESTABLISHED)	/* tcp */
				continue;
			for (size_t m = 0; m < nr_made; m++)
				if (made[m].obj == fd_key(p, f))
					t->sock_fds[k][i] = made[m].fd;
		}
	}
	t->objs = made;
	t->nr_objs = nr_made;
	return 0;
fail:
	for (size_t m = 0; m < nr_made; m++)
		close(made[m].fd);
	free(made);
	for (size_t k = 0; k < img->n_procs; k++)
		free(t->sock_fds[k]);
	free(t->sock_fds);
	t->sock_fds = NULL;
	return r;
}

void eng_restore_tree_sockets_close(struct eng_rst_tree *t)
{
	for (size_t m = 0; m < t->nr_objs; m++)
		if (t->objs[m].fd >= 0)
			close(t->objs[m].fd);
	free(t->objs);
	t->objs = NULL;
	t->nr_objs = 0;
	if (t->sock_fds) {
		for (size_t k = 0; k < t->img->n_procs; k++)
			free(t->sock_fds[k]);
		free(t->sock_fds);
		t->sock_fds = NULL;
	}
}

/* ---------------------------------------------------------- shared memory */

/* One MAP_SHARED mapping per shmid, filled once from the first vma of
 * each stretch of it. */
static int tree_shared_memory(struct eng_rst_ctx *ctx)
{
	struct eng_rst_tree *t = ctx->tree;
	const EngImage *img = t->img;
	_cleanup_free_ struct wc_fill_target *targets = NULL;
	_cleanup_free_ const EngVma **filled = NULL;
	size_t nr_targets = 0, nr_filled = 0, nv = 0;
	struct wc_source *src = NULL;
	int r;

	for (size_t k = 0; k < img->n_procs; k++)
		nv += img->procs[k]->n_vmas;
	t->shm = calloc(nv + 1, sizeof(*t->shm));
	targets = calloc(nv + 1, sizeof(*targets));
	filled = calloc(nv + 1, sizeof(*filled));
	if (!t->shm || !targets || !filled)
		return -ENOMEM;
	for (size_t k = 0; k < img->n_procs; k++) {
		const EngProcess *p = img->procs[k];

		for (size_t i = 0; i < p->n_vmas; i++) {
			const EngVma *v = p->vmas[i];
			uint64_t end = (v->has_pgoff ? v->pgoff : 0) + (v->end - v->start);
			size_t s;

			if (v->kind != ENG_VMA_KIND__VMA_ANON_SHARED || !v->has_shmid)
				continue;
			for (s = 0; s < t->nr_shm; s++)
				if (t->shm[s].shmid == v->shmid)
					break;
			if (s == t->nr_shm)
				t->shm[t->nr_shm++] = (struct eng_rst_tree_shm){ .shmid = v->shmid };
			if (end > t->shm[s].size)
				t->shm[s].size = end;
		}
	}
	for (size_t s = 0; s < t->nr_shm; s++) {
		void *m = mmap(NULL, t->shm[s].size, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED)
			return err_set(errno, "cannot map shared memory of %" PRIu64 " bytes: %m",
				       t->shm[s].size);
		t->shm[s].addr = (uint64_t)m;
	}
	for (size_t k = 0; k < img->n_procs; k++) {
		const EngProcess *p = img->procs[k];

		for (size_t i = 0; i < p->n_vmas; i++) {
			const EngVma *v = p->vmas[i];
			uint64_t off = v->has_pgoff ? v->pgoff : 0, len = v->end - v->start;
			const struct wc_area *a;
			bool covered = false;
			size_t s;

			if (v->kind != ENG_VMA_KIND__VMA_ANON_SHARED || !v->has_shmid ||
			    !v->has_area || v->area < 0)
				continue;
			for (size_t q = 0; q < nr_filled && !covered; q++) {
				const EngVma *w = filled[q];
				uint64_t wo = w->has_pgoff ? w->pgoff : 0;

				covered = w->shmid == v->shmid && wo <= off &&
					  off + len <= wo + (w->end - w->start);
			}
			if (covered)
				continue;
			a = wc_snapshot_area(ctx->snap, (size_t)v->area);
			if (!a || a->nr_pages * RST_PAGE != len)
				return err_set(EBADMSG, "area %d does not match shared mapping 0x%"
					       PRIx64, v->area, v->start);
			for (s = 0; s < t->nr_shm; s++)
				if (t->shm[s].shmid == v->shmid)
					break;
			filled[nr_filled++] = v;
			if (a->nr_data)
				targets[nr_targets++] = (struct wc_fill_target){
					(size_t)v->area, (void *)(t->shm[s].addr + off),
				};
		}
	}
	if (!nr_targets)
		return 0;
	r = wc_store_source_new(ctx->store, &src);
	if (r < 0)
		return err_wrap(r, "cannot read the store");
	r = wc_snapshot_fill(ctx->snap, src, targets, nr_targets);
	wc_source_free(src);
	return r;
}

uint64_t eng_restore_tree_shm(const struct eng_rst_ctx *ctx, const EngVma *v)
{
	const struct eng_rst_tree *t = ctx->tree;

	if (!t || v->kind != ENG_VMA_KIND__VMA_ANON_SHARED || !v->has_shmid)
		return 0;
	for (size_t s = 0; s < t->nr_shm; s++)
		if (t->shm[s].shmid == v->shmid && t->shm[s].addr)
			return t->shm[s].addr + (v->has_pgoff ? v->pgoff : 0);
	return 0;
}

/* ------------------------------------------------------------ descriptors */

static bool fd_is_callers(const EngFd *f)
{
	return f->kind == ENG_FD_KIND__FD_TTY || f->kind == ENG_FD_KIND__FD_PIPE ||
	       f->kind == ENG_FD_KIND__FD_SOCKET || f->kind == ENG_FD_KIND__FD_STDIO;
}

static int obj_add(struct eng_rst_tree *t, size_t *cap, uint64_t obj, int fd)
{
	if (t->nr_objs == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct eng_rst_tree_obj *nv = realloc(t->objs, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		t->objs = nv;
		*cap = nc;
	}
	t->objs[t->nr_objs++] = (struct eng_rst_tree_obj){ .obj = obj, .fd = fd };
	return 0;
}

static bool obj_known(const struct eng_rst_tree *t, uint64_t obj)
{
	for (size_t m = 0; m < t->nr_objs; m++)
		if (t->objs[m].obj == obj)
			return true;
	return false;
}

/* Is description @obj held by a process other than procs[@k]? */
static bool obj_elsewhere(const EngImage *img, size_t k, uint64_t obj)
{
	for (size_t q = 0; q < img->n_procs; q++) {
		const EngProcess *p = img->procs[q];

		if (q == k)
			continue;
		for (size_t i = 0; i < p->n_fds; i++)
			if (p->fds[i]->has_obj && p->fds[i]->obj == obj)
				return true;
	}
	return false;
}

/* Every description several processes hold (and every peer kind), once. */
static int tree_shared_fds(struct eng_rst_ctx *ctx)
{
	struct eng_rst_tree *t = ctx->tree;
	const EngImage *img = t->img;
	const EngProcess *saved = ctx->proc;
	size_t cap = t->nr_objs;	/* the inet sockets are in already */
	int r = 0;

	for (size_t k = 0; k < img->n_procs && r >= 0; k++) {
		const EngProcess *p = img->procs[k];

		for (size_t i = 0; i < p->n_fds; i++) {
			const EngFd *f = p->fds[i];
			const char *path = NULL;
			int fd = -1;

			if (!f->has_obj || f->kind == ENG_FD_KIND__FD_INET_SOCKET || fd_is_callers(f) ||
			    (ctx->inherit_stdio && f->fd <= 2) || obj_known(t, f->obj))
				continue;
			if (!ENG_RST_TREE_PEER_KIND(f->kind) && !obj_elsewhere(img, k, f->obj))
				continue;
			switch (f->kind) {
			case ENG_FD_KIND__FD_REG:
				if (!f->has_file || f->file >= p->n_files) {
					r = err_set(EBADMSG, "process %u fd %u has no file", p->pid, f->fd);
					break;
				}
				path = p->files[f->file]->path;
				break;
			case ENG_FD_KIND__FD_DEV_NULL:
			case ENG_FD_KIND__FD_DEV_ZERO:
			case ENG_FD_KIND__FD_DEV_URANDOM:
			case ENG_FD_KIND__FD_DEV_RANDOM:
				path = eng_restore_dev_path(f->kind);
				break;
			default: {
				int mod = -1;

				/* The kind's own module, as if in this process. */
				ctx->proc = p;
				r = eng_restore_fd_create(ctx, i, &mod);
				ctx->proc = saved;
				if (r < 0) {
					r = err_wrap(r, "process %u", p->pid);
					break;
				}
				fd = fcntl(mod, F_DUPFD_CLOEXEC, 3);
				if (fd < 0)
					r = err_set(errno, "process %u fd %u: %m", p->pid, f->fd);
				break;
			}
			}
			if (r < 0)
				break;
			if (path) {
				int oflags = (int)(f->flags & ~(uint32_t)(O_CREAT | O_TRUNC | O_EXCL |
									  O_CLOEXEC));

				fd = open(path, oflags | O_CLOEXEC);
				if (fd < 0) {
					r = err_set(errno, "process %u fd %u: cannot open \"%s\": %m",
						    p->pid, f->fd, path);
					break;
				}
				if (f->kind == ENG_FD_KIND__FD_REG && f->has_pos &&
				    lseek(fd, (off_t)f->pos, SEEK_SET) < 0) {
					r = err_set(errno, "process %u fd %u: cannot seek \"%s\": %m",
						    p->pid, f->fd, path);
					close(fd);
					break;
				}
			}
			r = obj_add(t, &cap, f->obj, fd);
			if (r < 0) {
				close(fd);
				break;
			}
		}
	}
	return r;
}

int eng_restore_tree_fd(const struct eng_rst_ctx *ctx, size_t i)
{
	const struct eng_rst_tree *t = ctx->tree;
	const EngFd *f = ctx->proc->fds[i];

	if (!t || !f->has_obj || f->kind == ENG_FD_KIND__FD_INET_SOCKET)
		return -1;
	for (size_t m = 0; m < t->nr_objs; m++)
		if (t->objs[m].obj == f->obj)
			return t->objs[m].fd;
	return -1;
}

/* ------------------------------------------------ shared descriptor tables */

/*
 * One page shared (MAP_SHARED) by a process and its children created with
 * CLONE_FILES, made before they are: each child sets its slot's ready once
 * its memory is complete and it holds no temporary descriptor any more
 * (failed: it failed before that); the parent, its table final, puts a
 * duplicate of the status pipe in each slot and sets go. Futex words.
 */
#define TREE_FILES_MAX	64

struct tree_files_sync {
	uint32_t go;
	uint32_t nr;
	struct {
		uint32_t ready;		/* 1 ready, 2 failed */
		int32_t pid;
		int32_t status_fd;
	} slot[TREE_FILES_MAX];
};

/* This process as a parent (its sharing children), and as such a child. */
static struct tree_files_sync *files_mine;
static struct tree_files_sync *files_parent;
static uint32_t files_slot;

static void futex_wait(uint32_t *word, uint32_t val, long timeout_ms)
{
	struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000 };

	syscall(SYS_futex, word, FUTEX_WAIT, val, timeout_ms >= 0 ? &ts : NULL, NULL, 0);
}

static void futex_wake(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

static void files_set_ready(uint32_t state)
{
	if (!files_parent)
		return;
	__atomic_store_n(&files_parent->slot[files_slot].ready, state, __ATOMIC_RELEASE);
	futex_wake(&files_parent->slot[files_slot].ready);
}

int eng_restore_tree_files_join(struct eng_rst_ctx *ctx)
{
	struct tree_files_sync *fs = files_parent;

	(void)ctx;
	if (!fs)
		return err_set(EINVAL, "no parent to share a descriptor table with");
	files_set_ready(1);
	/* The parent dies on failure, and this process with it (PDEATHSIG). */
	while (!__atomic_load_n(&fs->go, __ATOMIC_ACQUIRE))
		futex_wait(&fs->go, 0, -1);
	return fs->slot[files_slot].status_fd;
}

int eng_restore_tree_files_wait(struct eng_rst_ctx *ctx)
{
	struct tree_files_sync *fs = files_mine;

	if (!fs)
		return 0;
	for (uint32_t i = 0; i < fs->nr; i++) {
		uint32_t st;

		while (!(st = __atomic_load_n(&fs->slot[i].ready, __ATOMIC_ACQUIRE))) {
			siginfo_t si = {};

			/* Killed before it could say so: it reports nothing. */
			if (waitid(P_PID, (id_t)fs->slot[i].pid, &si,
				   WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid)
				st = 2;
			if (st)
				break;
			futex_wait(&fs->slot[i].ready, 0, 100);
		}
		if (st != 1)
			return err_set(ECHILD, "process %d, sharing the descriptor table of %u, "
				       "failed", fs->slot[i].pid, ctx->proc->pid);
	}
	return 0;
}

int eng_restore_tree_files_go(struct eng_rst_ctx *ctx)
{
	struct tree_files_sync *fs = files_mine;

	if (!fs)
		return 0;
	for (uint32_t i = 0; i < fs->nr; i++) {
		/* Each its own: every restorer closes its status pipe. */
		int fd = fcntl(ctx->status_fd, F_DUPFD_CLOEXEC, ctx->status_fd);

		if (fd < 0)
			return err_set(errno, "cannot duplicate the status pipe: %m");
		fs->slot[i].status_fd = fd;
	}
	__atomic_store_n(&fs->go, 1, __ATOMIC_RELEASE);
	futex_wake(&fs->go);
	/* Unmapped with the rest by the restorer; the children keep theirs. */
	files_mine = NULL;
	return 0;
}

/* -------------------------------------------------------------- processes */

/* Session and process group of procs[@k], in the new process itself. */
static int tree_set_ids(struct eng_rst_ctx *ctx, size_t k)
{
	struct eng_rst_tree *t = ctx->tree;
	const EngImage *img = t->img;
	const EngProcess *p = img->procs[k], *pp, *root = img->procs[0];
	ssize_t j;

	if (k == 0) {
		/* As for a single process: lead what it led, else stay in the
		 * caller's session and group. */
		if (ctx->inherit_session) {
		} else if (p->has_sid && p->sid == p->pid) {
			if (setsid() < 0)
				return err_set(errno, "cannot start a session: %m");
		} else if (p->has_pgid && p->pgid == p->pid) {
			if (setpgid(0, 0) < 0)
				return err_set(errno, "cannot lead a process group: %m");
		}
		t->root_pgid = getpgid(0);
		return 0;
	}
	j = proc_index(img, p->ppid);
	pp = img->procs[j];
	if (p->sid == p->pid) {
		if (setsid() < 0)
			return err_set(errno, "process %u: cannot start a session: %m", p->pid);
		return 0;
	}
	if (p->pgid == p->pid) {
		if (setpgid(0, 0) < 0)
			return err_set(errno, "process %u: cannot lead a process group: %m", p->pid);
	} else if (p->pgid != pp->pgid) {
		pid_t g = (pid_t)p->pgid;

		if (p->pgid == root->pgid && root->pgid != root->pid)
			g = t->root_pgid;
		if (g > 0 && setpgid(0, g) < 0)
			return err_set(errno, "process %u: cannot join process group %d: %m", p->pid,
				       (int)g);
	}
	return 0;
}

static _noreturn_ void tree_become_zombie(const EngProcess *p)
{
	int st = p->exit_status;

	if (p->comm)
		prctl(PR_SET_NAME, p->comm, 0, 0, 0);
	if (WIFSIGNALED(st)) {
		struct rlimit no_core = {};
		sigset_t one;
		int sig = WTERMSIG(st);

		setrlimit(RLIMIT_CORE, &no_core);
		signal(sig, SIG_DFL);
		sigemptyset(&one);
		sigaddset(&one, sig);
		kill(getpid(), sig);
		sigprocmask(SIG_UNBLOCK, &one, NULL);
		_exit(127);
	}
	_exit(WEXITSTATUS(st));
}

/* Does procs[@k] lead a group a sibling may join? Those are made first. */
static bool tree_leads_group(const EngProcess *p)
{
	return p->pgid == p->pid || p->sid == p->pid;
}

int eng_restore_tree_start(struct eng_rst_ctx *ctx)
{
	struct eng_rst_tree *t = ctx->tree;
	sigset_t all;
	int r;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	t->me = 0;
	r = tree_set_ids(ctx, 0);
	if (r < 0)
		return r;
	r = tree_shared_memory(ctx);
	if (r < 0)
		return r;
	return tree_shared_fds(ctx);
}

/* ------------------------------------------------------ inherited memory */

/*
 * A child is forked once its parent's memory is complete (premapped and
 * filled, still in the parent's premap region): its own private anonymous
 * vmas that the parent has too (same range) start as the parent's copy,
 * moved into the child's premap region, so that every page both hold with
 * the same content stays one page, copy-on-write, as after the original
 * fork (a page with the same content in both is shared even if it was not
 * before: invisible to the processes, like KSM). Only the pages that differ
 * are then read (child's data) or dropped (MADV_DONTNEED: the child's page
 * reads zero where the parent has data).
 */

/* The parent's vma of the same range as @v, eligible, and its premap address. */
static const EngVma *inherit_source(const struct eng_rst_tree *t, const EngVma *v,
				    uint64_t *ret_src)
{
	const EngProcess *pp = t->parent;

	if (!pp || v->kind != ENG_VMA_KIND__VMA_ANON_PRIVATE || !v->has_area || v->area < 0)
		return NULL;
	for (size_t i = 0, k = 0; i < pp->n_vmas; i++) {
		const EngVma *w = pp->vmas[i];

		if (w->kind >= ENG_VMA_KIND__VMA_VDSO)
			continue;	/* not premapped */
		if (w->start == v->start && w->end == v->end && w->kind == v->kind &&
		    w->has_area && w->area >= 0 && k < t->nr_parent_src && t->parent_src[k] &&
		    !(w->has_madv && (w->madv & (ENG_MADV_DONTFORK | ENG_MADV_WIPEONFORK)))) {
			*ret_src = t->parent_src[k];
			return w;
		}
		k++;
	}
	return NULL;
}

static int req_add(struct eng_rst_tree *t, const struct wc_key *key, void *dst)
{
	if (t->nr_reqs == t->cap_reqs) {
		size_t nc = t->cap_reqs ? t->cap_reqs * 2 : 256;
		struct wc_page_req *nv = realloc(t->reqs, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		t->reqs = nv;
		t->cap_reqs = nc;
	}
	t->reqs[t->nr_reqs++] = (struct wc_page_req){ .key = *key, .dst = dst };
	return 0;
}

int eng_restore_tree_inherit(const struct eng_rst_ctx *ctx, const EngVma *v, uint64_t cur)
{
	struct eng_rst_tree *t = ctx->tree;
	const struct wc_area *a, *pa;
	const EngVma *w;
	uint64_t src = 0, len = v->end - v->start, dc = 0, dp = 0, run = 0, nrun = 0;
	int r;

	if (!t || !(w = inherit_source(t, v, &src)))
		return 0;
	a = wc_snapshot_area(ctx->snap, (size_t)v->area);
	pa = wc_snapshot_area(ctx->snap, (size_t)w->area);
	if (!a || !pa || a->nr_pages * RST_PAGE != len || pa->nr_pages != a->nr_pages)
		return 0;	/* the usual way reports it */
	if (mremap((void *)src, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)cur) !=
	    (void *)cur)
		return err_set(errno, "cannot take the parent's copy of 0x%" PRIx64 "-0x%" PRIx64
			       ": %m", v->start, v->end);
	for (uint64_t i = 0; i <= a->nr_pages; i++) {
		bool mine = i < a->nr_pages && a->kinds[i] == WC_PAGE_DATA;
		bool theirs = i < a->nr_pages && pa->kinds[i] == WC_PAGE_DATA;
		const struct wc_key *kc = mine ? &a->keys[dc++] : NULL;
		const struct wc_key *kp = theirs ? &pa->keys[dp++] : NULL;
		bool drop = i < a->nr_pages && !mine && theirs;

		/* Runs of pages to drop, one madvise each. */
		if (drop) {
			if (!nrun)
				run = i;
			nrun++;
			continue;
		}
		if (nrun && madvise((void *)(cur + run * RST_PAGE), nrun * RST_PAGE,
				    MADV_DONTNEED) < 0)
			return err_set(errno, "madvise(DONTNEED) of 0x%" PRIx64 ": %m",
				       v->start + run * RST_PAGE);
		nrun = 0;
		if (mine && (!theirs || memcmp(kc, kp, sizeof(*kc)) != 0)) {
			r = req_add(t, kc, (void *)(cur + i * RST_PAGE));
			if (r < 0)
				return r;
		}
	}
	return 1;
}

int eng_restore_tree_fill(struct eng_rst_ctx *ctx)
{
	struct eng_rst_tree *t = ctx->tree;
	struct wc_source *src = NULL;
	int r;

	if (!t || !t->nr_reqs)
		return 0;
	r = wc_store_source_new(ctx->store, &src);
	if (r < 0)
		return err_wrap(r, "cannot read the store");
	r = src->ops->read_pages(src, t->reqs, t->nr_reqs);
	wc_source_free(src);
	free(t->reqs);
	t->reqs = NULL;
	t->nr_reqs = t->cap_reqs = 0;
	return r < 0 ? err_wrap(r, "pages that differ from the parent's") : 0;
}

/* -------------------------------------------------------------- processes */

int eng_restore_tree_fork(struct eng_rst_ctx *ctx, const struct rst_move *moves, size_t nr_moves)
{
	struct eng_rst_tree *t = ctx->tree;
	const EngImage *img = t->img;
	const EngProcess *me = img->procs[t->me];
	_cleanup_free_ uint64_t *srcs = NULL;
	int r;

	if (!t)
		return 0;
	srcs = malloc((nr_moves + 1) * sizeof(*srcs));
	if (!srcs)
		return -ENOMEM;
	for (size_t k = 1; k < img->n_procs && !files_mine; k++) {
		const EngProcess *c = img->procs[k];
		void *page;

		if (c->ppid != me->pid || !c->shares_files || c->zombie)
			continue;
		page = mmap(NULL, sizeof(*files_mine), PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (page == MAP_FAILED)
			return err_set(errno, "cannot map a shared page: %m");
		files_mine = page;
	}
	for (size_t k = 0; k < nr_moves; k++)
		srcs[k] = moves[k].src;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 1; k < img->n_procs; k++) {
			const EngProcess *c = img->procs[k];
			uint32_t want = c->pid;
			struct tree_clone_args ca = {
				/* One fs struct (cwd, root, umask) with its parent. */
				.flags = (c->shares_fs ? CLONE_FS : 0) |
					 (c->shares_files && !c->zombie ? CLONE_FILES : 0),
				.exit_signal = c->has_exit_signal && c->exit_signal < 65 ?
					       c->exit_signal : SIGCHLD,
				.set_tid = (uint64_t)(uintptr_t)&want, .set_tid_size = 1,
			};
			uint32_t slot = files_mine ? files_mine->nr : 0;
			pid_t pid;

			if (c->ppid != me->pid || tree_leads_group(c) != (pass == 0))
				continue;
			if ((ca.flags & CLONE_FILES) && slot == TREE_FILES_MAX)
				return err_set(EOPNOTSUPP, "process %u: more than %d children share "
					       "its descriptor table", me->pid, TREE_FILES_MAX);
			pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
			if (pid < 0)
				return err_set(errno, "cannot create process %u (child of %u): %m",
					       c->pid, c->ppid);
			if (pid == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				files_parent = (ca.flags & CLONE_FILES) ? files_mine : NULL;
				files_slot = slot;
				files_mine = NULL;	/* its own children make theirs */
				r = tree_set_ids(ctx, k);
				if (r >= 0 && c->zombie)
					tree_become_zombie(c);
				/* This process restores itself from the start, its
				 * parent's memory at hand. */
				t->me = k;
				t->parent = me;
				t->parent_src = TAKE_PTR(srcs);
				t->nr_parent_src = nr_moves;
				ctx->proc = c;
				ctx->sock_fds = t->sock_fds ? t->sock_fds[k] : NULL;
				if (r >= 0)
					r = eng_restore_child(ctx);
				eng_restore_report_fail(ctx->status_fd, r, err_str(r));
				files_set_ready(2);
				_exit(1);
			}
			if (ca.flags & CLONE_FILES) {
				files_mine->slot[slot].pid = pid;
				files_mine->nr = slot + 1;
			}
			if (c->zombie) {
				siginfo_t si;
				struct timespec zero = {};
				sigset_t chld;

				/* Dead but not reaped, and its exit signal taken
				 * back: the restorer re-queues the saved pending
				 * signals, the process never saw this one. */
				while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0)
					if (errno != EINTR)
						return err_set(errno, "zombie %u: waitid: %m", c->pid);
				sigemptyset(&chld);
				sigaddset(&chld, (int)ca.exit_signal);
				while (sigtimedwait(&chld, NULL, &zero) > 0)
					;
			}
		}
	}
	/* What this process inherited from its own parent is not needed any
	 * more (the restorer unmaps that memory anyway). */
	free(t->parent_src);
	t->parent_src = NULL;
	t->nr_parent_src = 0;
	t->parent = NULL;
	return 0;
}
