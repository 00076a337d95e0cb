/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef ENGINE_RESTORE_H
#define ENGINE_RESTORE_H

/* engine/restore internals: shared by restore.c, child.c, resume.c, layout.c. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"
#include "image.pb-c.h"
#include "../restorer/restorer.h"

#define RST_PAGE		((uint64_t)4096)
/* User address space end with 4-level paging (47 bits), minus the guard page. */
#define RST_TASK_SIZE		((uint64_t)0x7ffffffff000)
#define RST_PMD_SIZE		((uint64_t)2 << 20)
/* Keep this much free space around the region (stack guard gaps, growth). */
#define RST_REGION_GAP		((uint64_t)16 << 20)

/* ------------------------------------------------------------------ layout */

struct eng_range {
	uint64_t start;
	uint64_t end;		/* exclusive */
};

/*
 * Sort @r by start and merge overlapping or touching ranges, in place.
 * Returns the new count.
 */
size_t eng_restore_ranges_merge(struct eng_range *r, size_t nr);

/*
 * The highest address A, aligned to @align, such that [A - gap, A + size + gap)
 * lies inside [lo, hi) and overlaps no range of @busy (sorted and merged).
 * Returns 0 and *ret, or -ENOMEM if there is no such hole.
 */
int eng_restore_find_hole(const struct eng_range *busy, size_t nr, uint64_t size, uint64_t gap,
			  uint64_t align, uint64_t lo, uint64_t hi, uint64_t *ret);

/* The [vvar],[vvar_vclock],[vdso] block of a process (up to 3 VMAs). */
struct eng_vdso_block {
	size_t nr;
	struct eng_range vma[3];
	int kind[3];		/* ENG_VMA_KIND__VMA_VVAR... */
};

/*
 * Parse /proc/PID/maps text: every mapping into @ret_ranges (malloc'd), and
 * the vdso block into @ret_vdso. Returns 0 or -errno (-EBADMSG unparsable).
 */
int eng_restore_parse_maps(const char *text, struct eng_range **ret_ranges, size_t *ret_nr,
			   struct eng_vdso_block *ret_vdso);

/*
 * Check that the image's vdso block has the same shape (kinds, sizes,
 * relative offsets) as @cur, and compute the move: *ret_delta = image start
 * - current start. Returns 0, or -ENOENT if the image has no vdso block
 * (*ret_delta untouched), or -EXDEV on a different shape (detail set).
 */
int eng_restore_vdso_delta(const EngProcess *proc, const struct eng_vdso_block *cur,
			   int64_t *ret_delta);

/* ------------------------------------------------------------------ child */

/* Everything the child needs, prepared by the parent before clone3. */
struct eng_rst_ctx {
	struct wc_store *store;
	struct wc_snapshot *snap;
	const EngImage *img;
	const EngProcess *proc;
	bool inherit_stdio;
	bool inherit_session;
	int resume_signal;
	int status_fd;		/* write end of the status pipe */
	int *sock_fds;		/* per eng_process.fds: the re-created socket, -1; or NULL */
	bool spawn;		/* spawn.c: become a template serving spawn_ctl_fd */
	int spawn_ctl_fd;
	const uint64_t *lazy_areas;	/* eng_restore_opts: lazy restore, or NULL */
	size_t nr_lazy_areas;
	int lazy_sock;
	bool postcopy;		/* the lazy areas are postcopy.c's: the child leaves
				 * them empty and sends their premap addresses */
	struct eng_rst_tree *tree;	/* tree.c: a tree restore (several processes), or NULL */
	struct eng_rst_files *files;	/* fd-file.c: made by eng_restore_fobjs_prepare */
	const struct eng_rst_ns *ns;	/* ns.c: namespaces to enter, or NULL */
	struct eng_rst_ttys *ttys;	/* tty.c: the ptys made by the parent, or NULL */
};

/*
 * In the freshly created process: premap, fill, prepare descriptors and
 * process state, then jump to the restorer. Returns only on failure (-errno,
 * detail recorded), after which the caller reports on ctx->status_fd (it
 * may have been moved) and exits.
 */
int eng_restore_child(struct eng_rst_ctx *ctx);

/*
 * postcopy.c: post-copy restore of a single process. Before the spawn,
 * eng_postcopy_start() picks the lazy areas (none: *ret stays NULL);
 * eng_postcopy_areas() gives their starts (ctx->lazy_areas). Right after
 * the spawn (a thread of ours must not exist at the clone: spawn()),
 * eng_postcopy_run() starts the thread that verifies their pages and, once
 * the child hands them over through *ret_child_sock (ctx->lazy_sock),
 * places them. Before the process may run (after the child's report):
 * eng_postcopy_ready() waits for the verification and the hand-over (their
 * error, detail set). On a failed restore: eng_postcopy_abort(). Otherwise the caller
 * gets it: eng_postcopy_finish() (engine.h).
 */
int eng_postcopy_start(struct wc_store *store, struct wc_snapshot *snap, const EngProcess *p,
		       struct eng_postcopy **ret, int *ret_child_sock);
int eng_postcopy_run(struct eng_postcopy *pc);
size_t eng_postcopy_areas(const struct eng_postcopy *pc, const uint64_t **ret);
int eng_postcopy_ready(struct eng_postcopy *pc);
void eng_postcopy_abort(struct eng_postcopy *pc);

/*
 * fds.c: open every saved descriptor at its number (above @base first),
 * close the child's others; @keep (nr_keep fds of ours) move above @base
 * and survive, updated in place. Returns 0 or -errno with detail.
 */
int eng_restore_prepare_fds(struct eng_rst_ctx *ctx, int base, int *keep, int nr_keep);
/* fds.c: the path a device descriptor kind opens again (/dev/null, zero,
 * urandom, random), or NULL. */
const char *eng_restore_dev_path(int kind);

/*
 * fd-pipe.c, fd-anon.c (fdkinds), called by fds.c in the child. Each
 * creates the object of descriptor @f (once per eng_fd.obj: fds.c keeps the
 * table) and returns in *ret an fd that stays open until the child's
 * descriptors are closed.
 */
int eng_restore_fd_pipe(const EngProcess *p, const EngFd *f, int *ret);
/* Forget the pipes created so far (their fds are closed by the caller). */
void eng_restore_fd_pipes_reset(void);
int eng_restore_fd_anon(const EngProcess *p, const EngFd *f, int *ret);
/* The interest list of epoll fd @f, every fd at its final number; @scratch:
 * lowest number free for temporaries. */
int eng_restore_fd_epoll_items(const EngFd *f, int scratch);
/* Parent, before anything starts (restore.c check_files): FIFO paths,
 * inotify watch paths, pipe sizes the kernel allows. -ESTALE/-ENOSPC with
 * one line. */
int eng_restore_fds_validate(const EngProcess *p);

/* ------------------------------------------------------------------ files */
/*
 * fd-file.c (files), in the child, in this order: create (or find) every
 * eng_process.fobjs object and fill the new ones; premap maps a vma with
 * v->fobj through eng_restore_fobj_premap() (returns the mapping at @addr or
 * MAP_FAILED with detail); then seals and pending SysV removals; FD_FOBJ
 * and FD_PIDFD through fds.c's fd_create; the locks once every fd is at its
 * number. Each returns 0 or -errno with detail.
 */
struct eng_rst_files;
int eng_restore_fobjs_prepare(struct eng_rst_ctx *ctx);
void *eng_restore_fobj_premap(const struct eng_rst_ctx *ctx, const EngVma *v, uint64_t addr,
			      int prot, int flags);
int eng_restore_fobjs_mapped(struct eng_rst_ctx *ctx);
int eng_restore_fd_fobj(struct eng_rst_ctx *ctx, size_t i, int *ret);
int eng_restore_fd_pidfd(struct eng_rst_ctx *ctx, size_t i, int *ret);
int eng_restore_locks(struct eng_rst_ctx *ctx);

/* ------------------------------------------------------------------- unix */
/*
 * unix.c (unix): AF_UNIX sockets, created once per socket inode as a group
 * (a connected pair: one socketpair; a listener: with the clients of its
 * queued connections), then finished (queues refilled, shutdown, options).
 *
 * fds.c: eng_restore_unix_fd() for each FD_UNIX_SOCKET (the set of the
 * whole ctx->img is made on first use, kept for the life of the process:
 * a tree's root makes every socket before it forks, the children inherit
 * the set and the descriptors); eng_restore_unix_complete() in the
 * completion pass finishes the sockets whose first record (the one with
 * the queue) belongs to ctx->proc, so each socket is finished once, by one
 * process, while every process still holds the inherited descriptors.
 *
 * For other callers (a tree that creates objects elsewhere):
 *   eng_restore_unix_new(img, NULL, &u)     records of every process
 *   eng_restore_unix_get(u, ino, &fd)       fd owned by u, created once
 *   eng_restore_unix_finish(u, owner)       owner NULL: all sockets
 *   eng_restore_unix_free(u)                closes u's descriptors
 * Each returns 0 or -errno with one line (EADDRINUSE: a name in use).
 */
struct eng_rst_unix;
int eng_restore_unix_new(const EngImage *img, const EngProcess *only, struct eng_rst_unix **ret);
int eng_restore_unix_get(struct eng_rst_unix *u, uint64_t ino, int *ret_fd);
int eng_restore_unix_finish(struct eng_rst_unix *u, const EngProcess *owner);
void eng_restore_unix_free(struct eng_rst_unix *u);
int eng_restore_unix_fd(struct eng_rst_ctx *ctx, size_t i, int *ret);
int eng_restore_unix_complete(struct eng_rst_ctx *ctx);
/* Whether @p holds a unix socket that is connected or has queued data:
 * something instances forked from one template cannot each own (spawn). */
bool eng_restore_unix_have_connected(const EngProcess *p);

/* Write a failure report for a child-side error to @fd (best effort). */
void eng_restore_report_fail(int fd, int err, const char *detail);

/* ------------------------------------------------------------------ spawn */

/*
 * For spawn.c: everything eng_restore validates for a new pid namespace
 * (image, cpu, vdso, files, page keys) on an open snapshot. *ret_img is
 * the unpacked image (eng_image__free_unpacked). Returns 0 or -errno with
 * detail.
 */
int eng_restore_validate(struct wc_store *store, struct wc_snapshot *snap, EngImage **ret_img);

/* The detail line for a failure report of the child or the restorer. */
int eng_restore_report_error(const EngProcess *p, const struct rst_report *rep);

/* ------------------------------------------------------------------ sockets */

/*
 * Re-create every FD_INET_SOCKET of @p (options, bind, listen) in the
 * caller; *ret_fds gets one entry per eng_process.fds (-1 for others), or
 * NULL if there is none. An address in use is -EADDRINUSE with one line.
 */
int eng_restore_sockets_open(const EngProcess *p, int **ret_fds);
void eng_restore_sockets_close(const EngProcess *p, int *fds);
/*
 * tcp: established connections (FD_TCP_ESTABLISHED) are opened above in
 * repair mode: silent, and closed silently if the restore fails. Call this
 * when the process is ready, just before it resumes: they leave repair
 * mode and their never-sent bytes go out. -errno with one line.
 */
int eng_restore_sockets_live(const EngProcess *p, const int *fds);
/* tcp: whether @p holds an established connection (spawn refuses those). */
bool eng_restore_sockets_have_tcp(const EngProcess *p);

/* ------------------------------------------------------------------ tree */

/*
 * A tree restore (eng_image with several procs, procs[0] the root; see
 * tree.c). Objects held by several processes are created ONCE, before any
 * process of the tree is forked, and inherited through fork by every
 * process, which dups them to its fd numbers (and unmaps/closes what it does
 * not hold: the restorer keeps only its region, prepare_fds closes every
 * other fd):
 *   - shared anonymous memory (eng_vma.shmid): one MAP_SHARED mapping per
 *     object, filled once; each process mremaps (old size 0: same pages) its
 *     vmas of it into its premap region;
 *   - FD_INET_SOCKET: created by the parent (sockets.c), once per eng_fd.obj;
 *   - any other description held by several processes (same eng_fd.obj), and
 *     every object of a kind whose peers may sit in another process (pipe
 *     ends, unix sockets: ENG_RST_TREE_PEER_KIND): created by the root child
 *     with eng_restore_fd_create() (fds.c's per-kind hook) for its first
 *     holder. A kind module must therefore key what it caches (a pipe's
 *     other end, a socketpair's peer) by an image-global id (eng_fd.obj,
 *     pipe id, inode), never by fd index or ctx->proc: the root creates the
 *     objects of several processes in a row, and the children inherit its
 *     memory and descriptors.
 * In each process, eng_restore_tree_fd() gives the inherited fd of p->fds[i]
 * (-1 if it was not created in advance: then create it as usual).
 */
struct eng_rst_tree_shm {
	uint32_t shmid;
	uint64_t size;
	uint64_t addr;		/* in the root child and its descendants */
};

struct eng_rst_tree_obj {
	uint64_t obj;		/* eng_fd.obj */
	int fd;			/* inherited, -1 none */
};

struct eng_rst_tree {
	const EngImage *img;
	int **sock_fds;		/* per proc: sockets.c's array (per fd), or NULL */
	struct eng_rst_tree_shm *shm;
	size_t nr_shm;
	struct eng_rst_tree_obj *objs;
	size_t nr_objs;
	pid_t root_pgid;	/* the root's process group once it is set up */
	size_t me;		/* index of this process in img->procs */
	/* In a child, until it forked its own: its parent's premap addresses
	 * (per non-special vma of the parent, in order) and pages to read. */
	const EngProcess *parent;
	uint64_t *parent_src;
	size_t nr_parent_src;
	struct wc_page_req *reqs;
	size_t nr_reqs, cap_reqs;
};

/* Kinds whose object may have its other end in another process. */
#define ENG_RST_TREE_PEER_KIND(k) \
	((k) == ENG_FD_KIND__FD_PIPE_END || ((k) >= 20 && (k) <= 29))

/* Parent: shape of the tree (parents first, sessions, groups, zombies). */
int eng_restore_tree_check(const EngImage *img);
/* Parent: inet sockets of every process, once per eng_fd.obj. */
int eng_restore_tree_sockets_open(struct eng_rst_tree *t);
void eng_restore_tree_sockets_close(struct eng_rst_tree *t);
/*
 * In the root's new process: its session/group, then the shared objects.
 * Returns 0 or -errno with detail.
 */
int eng_restore_tree_start(struct eng_rst_ctx *ctx);
/*
 * child.c, once this process's memory is complete (premapped, filled) and
 * before anything else: create its children (clone3 set_tid, group leaders
 * first; sessions and groups; zombies exit at once with their status and
 * stay unreaped). Each child restores itself (eng_restore_child) with the
 * parent's premap addresses @moves at hand and never returns here.
 */
int eng_restore_tree_fork(struct eng_rst_ctx *ctx, const struct rst_move *moves, size_t nr_moves);
/*
 * A child sharing its parent's descriptor table (eng_process.shares_files)
 * is created with CLONE_FILES by eng_restore_tree_fork and restores its
 * memory while the table still holds what both need (store, status pipe);
 * then: files_join (child) says so and waits until the parent's table is
 * final, returning the child's own duplicate of the status pipe;
 * files_wait (parent, before eng_restore_prepare_fds) waits for every such
 * child; files_go (parent, once its descriptors are final) releases them.
 * 0 (join: the fd) or -errno with detail; no-ops where nothing is shared.
 */
int eng_restore_tree_files_join(struct eng_rst_ctx *ctx);
int eng_restore_tree_files_wait(struct eng_rst_ctx *ctx);
int eng_restore_tree_files_go(struct eng_rst_ctx *ctx);
/*
 * child.c premap, in a child: take the parent's copy of private anonymous
 * vma @v (same range) to @cur, drop the pages the child does not have,
 * queue the pages whose content differs. 1 done, 0 not applicable (map it
 * as usual), -errno with detail.
 */
int eng_restore_tree_inherit(const struct eng_rst_ctx *ctx, const EngVma *v, uint64_t cur);
/* child.c, after the fill: read the queued pages. */
int eng_restore_tree_fill(struct eng_rst_ctx *ctx);
/* The inherited fd for ctx->proc->fds[@i], or -1. */
int eng_restore_tree_fd(const struct eng_rst_ctx *ctx, size_t i);
/* The inherited shared mapping of @v (VMA_ANON_SHARED), or 0. */
uint64_t eng_restore_tree_shm(const struct eng_rst_ctx *ctx, const EngVma *v);
/* fds.c: create the object of ctx->proc->fds[@i] (kinds of fd_create()). */
int eng_restore_fd_create(struct eng_rst_ctx *ctx, size_t i, int *ret);

/* ------------------------------------------------------------------ resume */

/*
 * Take every thread of the restored process @pid (in our pid namespace)
 * over with ptrace once the restorer reported ready: unmap the region
 * through the leader, load each thread's registers, xsave state and
 * blocked mask, detach. Returns 0 or -errno with detail.
 */
int eng_restore_resume(pid_t pid, const EngProcess *proc, const struct rst_report *rep);
/* The same, but the process is left stopped (SIGSTOP queued before the
 * threads are detached: they enter the group stop at once); SIGCONT
 * continues it (eng_restore_opts.leave_stopped). */
int eng_restore_resume_stopped(pid_t pid, const EngProcess *proc, const struct rst_report *rep);

/* Last field of the "NSpid:" line of /proc/PID/task/TID/status text. */
int eng_restore_parse_nspid(const char *status, pid_t *ret);
/* resume.c: the threads of @pid in our namespace, in @proc's order (matched
 * by their pids in theirs): tids[k] for proc->threads[k]. Every one must be
 * there, and no other. */
int eng_restore_match_tids(pid_t pid, const EngProcess *proc, pid_t *tids);

/*
 * ns.c (ns): namespaces of the image (eng_image.ns). The parent creates
 * and sets them up before anything else (eng_restore_ns_create: a forked
 * helper unshares, sets the host name, lo, the tmpfs mounts; the calling
 * thread is left in the new network namespace so that the sockets the
 * parent makes are made there, until eng_restore_ns_net_leave). The new
 * process (or the pid namespace's init) enters them first thing
 * (eng_restore_ns_enter); its children inherit them.
 */
#define ENG_RST_NR_NS 4		/* uts, ipc, net, mnt */
struct eng_rst_ns {
	int fd[ENG_RST_NR_NS];	/* the new namespaces, -1 for ours */
	int self_net;		/* the calling thread's own netns while it is in the new one */
};
#define ENG_RST_NS_INIT { .fd = { -1, -1, -1, -1 }, .self_net = -1 }
int eng_restore_ns_create(const EngImage *img, struct eng_rst_ns *ns);
void eng_restore_ns_net_leave(struct eng_rst_ns *ns);
void eng_restore_ns_close(struct eng_rst_ns *ns);
int eng_restore_ns_enter(const struct eng_rst_ns *ns);

/*
 * tty.c (ns): pseudo-terminals. The parent makes the ptys before any
 * process (eng_restore_tty_create: new pairs with the saved termios and
 * window size, or the caller's terminal); processes inherit them; fds.c's
 * fd_create calls eng_restore_fd_tty for FD_PTY_*; a session leader takes
 * its controlling terminal back after its session is set up
 * (eng_restore_tty_ctty, child.c).
 */
struct eng_rst_tty {
	uint32_t index;		/* eng_tty.index */
	int master, slave;	/* ours, inherited by the processes; -1 */
	uint32_t new_index;	/* N of the new /dev/pts/N */
	bool master_in_image;	/* a process holds its master */
	bool callers;		/* the caller's terminal (slave: a dup of it, or -1) */
	bool outside;		/* no pty: fds 0-2 on it are the caller's streams */
};
struct eng_rst_ttys {
	struct eng_rst_tty *v;
	size_t nr;
	struct eng_rst_tty *relay;	/* the one whose master goes to the caller */
};
int eng_restore_tty_create(const EngImage *img, const struct eng_restore_opts *o,
			   struct eng_rst_ttys *t);
/* The relayed pty's master (the caller owns it now), or -1. */
int eng_restore_tty_take_master(struct eng_rst_ttys *t);
void eng_restore_tty_close(struct eng_rst_ttys *t);
int eng_restore_fd_tty(struct eng_rst_ctx *ctx, size_t i, int *ret);
int eng_restore_tty_ctty(struct eng_rst_ctx *ctx);
/* A tree's session leader, before it creates its children (so that they
 * inherit the controlling terminal); the foreground group comes later. */
int eng_restore_tty_ctty_early(struct eng_rst_ctx *ctx);

#endif
