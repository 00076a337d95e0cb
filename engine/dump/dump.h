/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef ENG_DUMP_H
#define ENG_DUMP_H

/*
 * engine/dump internals: the freeze, the remote-syscall primitive, the
 * /proc parsers and the collectors that fill an eng_image.
 *
 * Phases of eng_checkpoint():
 *   1. freeze     seize + interrupt every thread (freeze.c)
 *   2. inspect    /proc only: vmas, fds, files, status; refuse what we cannot
 *                 capture before changing anything (proc.c, files.c, mem.c)
 *   3. collect    remote syscalls (batched) in each thread, then ptrace state
 *                 (thread.c, remote.c)
 *   4. memory     PAGEMAP_SCAN runs + process_vm_readv (reader thread) into
 *                 the sink (mem.c)
 *   5. commit     packed image as a blob, sink commit (dump.c)
 *   6. release    detach (leave running) or SIGKILL and wait for the ids
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "engine.h"
#include "image.pb-c.h"

/* ---------------------------------------------------------------- proc.c */

/* One line of /proc/PID/maps (or the header line of an smaps entry). */
struct eng_proc_map {
	uint64_t start, end;
	uint64_t pgoff;			/* bytes */
	uint32_t prot;			/* PROT_* */
	bool shared;
	unsigned dev_major, dev_minor;
	uint64_t ino;
	char *path;			/* owned; "" for anonymous; may end in " (deleted)" */
	uint64_t rss_kib, swap_kib;	/* smaps Rss, Swap (0 when read from maps) */
};

/* VmFlags bits beyond ENG_MADV_*, used to classify and refuse. */
#define ENG_VMF_HUGETLB		(1ull << 32)	/* ht */
#define ENG_VMF_PFNMAP		(1ull << 33)	/* pf */
#define ENG_VMF_IO		(1ull << 34)	/* io */
#define ENG_VMF_UFFD		(1ull << 35)	/* um, uw, ui */
#define ENG_VMF_MAYREAD		(1ull << 36)	/* mr */
#define ENG_VMF_SHARED		(1ull << 37)	/* sh */

/* Parse "start-end perms offset maj:min inode   path". -EINVAL if malformed.
 * ret->path is allocated: free it with eng_dump_map_fini(). */
int eng_dump_parse_maps_line(const char *line, struct eng_proc_map *ret);
void eng_dump_map_fini(struct eng_proc_map *m);
/* Parse the value of a "VmFlags:" line into ENG_MADV_* | ENG_VMF_* bits. */
uint64_t eng_dump_parse_vmflags(const char *flags);
/*
 * vmflags.c: the VmFlags of @maps (a frozen process's /proc/PID/maps, in
 * order) without /proc/PID/smaps, through a BPF vma iterator, as
 * eng_dump_parse_vmflags() of smaps would give them in the bits the dump
 * uses (the ENG_MADV_* bits, hugetlb, pfnmap, io, userfaultfd). Fills
 * @ret_vmflags[nr_maps]. -EOPNOTSUPP (with a detail) when it cannot vouch
 * for a vma (no BPF or BTF, a flag it has not learnt): read smaps then.
 */
int eng_dump_vmflags_fast(pid_t pid, const struct eng_proc_map *maps, size_t nr_maps,
			  uint64_t *ret_vmflags);

/* The fields of /proc/PID/stat the dump uses (numbering of proc(5)). */
struct eng_proc_stat {
	char state;			/* 3 */
	int ppid;			/* 4 */
	int pgrp, session;		/* 5, 6 */
	uint64_t start_code, end_code, start_stack;	/* 26, 27, 28 */
	uint64_t start_data, end_data, start_brk;	/* 45, 46, 47 */
	uint64_t arg_start, arg_end, env_start, env_end;	/* 48..51 */
	int exit_signal;		/* 38 */
};
int eng_dump_parse_stat(const char *buf, struct eng_proc_stat *ret);

/* The fields of /proc/PID/status the dump uses. */
struct eng_proc_status {
	char state;
	int tracer_pid;
	uint32_t uid[4], gid[4];	/* real, effective, saved, fs */
	uint32_t groups[256];
	size_t nr_groups;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	bool no_new_privs;
	int seccomp;			/* 0 none, 1 strict, 2 filter; -1 unknown */
	int umask;			/* -1 if not shown */
	uint64_t sig_ign, sig_cgt;	/* bit n-1 for signal n */
	int nr_threads;
	int thp_enabled;		/* "THP_enabled:", -1 if not shown */
	/* Last field of NSpid/NSpgid/NSsid: the ids in the process's own pid
	 * namespace; ns_depth = number of NSpid fields (1: same namespace as
	 * the reader of /proc). 0/0 if not shown. */
	int ns_pid, ns_pgid, ns_sid, ns_depth;
};
int eng_dump_parse_status(const char *buf, struct eng_proc_status *ret);

/* /proc/PID/fdinfo/N. */
struct eng_proc_fdinfo {
	uint64_t pos;
	uint32_t flags;			/* octal "flags:", includes O_CLOEXEC */
	int mnt_id;
	uint64_t ino;
};
int eng_dump_parse_fdinfo(const char *buf, struct eng_proc_fdinfo *ret);

/* limits.c: /proc/PID/limits text into @nr rlimits (RLIMIT_* order).
 * -EBADMSG if malformed or shorter. */
struct rlimit;
int eng_dump_parse_limits(const char *text, struct rlimit *ret, size_t nr);
int eng_dump_read_limits(int proc_fd, struct rlimit *ret, size_t nr);

/* ------------------------------------------------------------ freeze.c */

struct eng_dump_thread {
	pid_t tid;
	bool seized;			/* attached with PTRACE_SEIZE */
	bool stopped;			/* in a ptrace stop we know of */
	int stop_status;		/* wait status of that stop */
};

struct eng_dump_threads {
	pid_t pid;
	struct eng_dump_thread *v;	/* v[0] is the leader */
	size_t nr, cap;
};

/* Seize and interrupt every thread of @pid until the set is stable. On
 * failure every seized thread is detached again. */
int eng_dump_freeze(pid_t pid, struct eng_dump_threads *ret);
/* Detach every seized thread (they resume as before). Never fails. */
void eng_dump_thaw(struct eng_dump_threads *ts);
/* SIGKILL the process, collect the traced threads' exits, wait until the
 * pid is gone (reaping it if it is our child). -ETIMEDOUT if its parent
 * leaves it a zombie. */
int eng_dump_kill(struct eng_dump_threads *ts, unsigned timeout_ms);
void eng_dump_threads_fini(struct eng_dump_threads *ts);
/* Wait for the next ptrace stop of @tid. -ESRCH if it exited. */
int eng_dump_wait_stop(pid_t tid, int *ret_status);

/* ------------------------------------------------------- freeze.c: trees */

/* One process of a tree (checkpoint --tree): frozen, or a zombie. */
struct eng_dump_tree_proc {
	pid_t pid;			/* in our pid namespace */
	pid_t ppid;			/* its parent in the tree, 0 for the root */
	bool zombie;			/* not frozen: dead, not yet reaped */
	int exit_status;		/* zombie: wait status (/proc/PID/stat field 52) */
	struct eng_dump_threads threads;	/* live: every thread frozen */
};

/* v[0] is the root; a parent comes before its children. */
struct eng_dump_tree {
	struct eng_dump_tree_proc *v;
	size_t nr, cap;
};

/* Freeze @root and every descendant (re-scanning until no new child
 * appears). On failure everything frozen is thawed. */
int eng_dump_freeze_tree(pid_t root, struct eng_dump_tree *ret);
void eng_dump_thaw_tree(struct eng_dump_tree *tr);
/* SIGKILL every live process, then wait until each pid is free. -ETIMEDOUT
 * (and *ret_zombies) if some stay zombies nobody reaps. */
int eng_dump_kill_tree(struct eng_dump_tree *tr, unsigned timeout_ms, size_t *ret_zombies);
void eng_dump_tree_fini(struct eng_dump_tree *tr);

/* ------------------------------------------------------------ remote.c */

/*
 * Remote syscalls: run a syscall inside a stopped thread of the target.
 *
 * A session starts from a ptrace stop inside get_signal() (the interrupt
 * stop, or the SIGTRAP stop a batch ends in) and ends back in an interrupt
 * stop, with every register as it was:
 *
 *   interrupt-stop --SETREGS(rip=syscall insn, rax=nr, orig_rax=-1)-->
 *   PTRACE_SYSCALL --> entry-stop --> PTRACE_SYSCALL --> exit-stop (rax)
 *   ... (next syscall from the exit stop) ...
 *   SETREGS(saved) + PTRACE_INTERRUPT + PTRACE_CONT --> interrupt-stop
 *
 * orig_rax = -1 keeps the kernel's syscall-restart logic away from our
 * registers; once the saved registers are back and the thread is again in
 * its interrupt stop, detaching runs the restart logic on them exactly as if
 * we had never been there. No signal mask is changed: if a signal arrives
 * while the session runs, the session is abandoned (saved registers put
 * back, the signal delivered as it would have been, the thread interrupted
 * again) and -EINTR tells the caller to start the session over.
 *
 * Only queries (and the scratch page's mmap/munmap) are run this way.
 */
struct eng_remote {
	pid_t tid;
	uint64_t syscall_ip;		/* address of a "syscall" (0f 05) in the target */
	struct user_regs_struct saved;
	bool active;			/* regs changed, session not yet ended */
};

int eng_remote_begin(struct eng_remote *rs, pid_t tid, uint64_t syscall_ip);
/* Returns the syscall's return value (>= 0 or -errno) in *ret. The call
 * itself returns 0, or -EINTR (session abandoned, see above), or -errno. */
int eng_remote_syscall(struct eng_remote *rs, long nr, long *ret, unsigned long a1,
		       unsigned long a2, unsigned long a3, unsigned long a4,
		       unsigned long a5, unsigned long a6);
/* Put the saved registers back and return to an interrupt stop. */
int eng_remote_end(struct eng_remote *rs);

/*
 * Batches: many syscalls for one ptrace round trip. The code below (position
 * independent, eng_remote_blob) is copied once into the scratch page (which
 * is mapped PROT_EXEC too); a table of struct eng_remote_call follows it.
 * The thread runs with rip = code, rbx = table, r12 = count, executes each
 * call, stores rax in ->ret, and ends on an int3: a SIGTRAP signal-delivery
 * stop inside get_signal(). The saved registers are put back there; that
 * stop is as good as the interrupt stop (detaching discards the SIGTRAP and
 * runs the restart logic on the saved registers).
 *
 * int3 delivers SIGTRAP with force_sig(): if the thread blocks SIGTRAP or the
 * process ignores it, the kernel would unblock it / reset its handler. Use a
 * batch only when eng_remote_batch_ok() says neither is the case; otherwise
 * run the calls one by one with eng_remote_syscall().
 *
 *   blob:  1: test r12,r12 ; jz 2f
 *            rax,rdi,rsi,rdx,r10,r8,r9 <- [rbx+0..48] ; syscall ; [rbx+56] <- rax
 *            rbx += 64 ; r12-- ; jmp 1b
 *          2: int3
 */
struct eng_remote_call {
	uint64_t nr;
	uint64_t args[6];
	int64_t ret;			/* filled by the target */
};

extern const uint8_t eng_remote_blob[], eng_remote_blob_end[];

bool eng_remote_batch_ok(pid_t tid, uint64_t sig_ign);
/* @code: address of the blob in the target; @table: where to put @calls. */
int eng_remote_batch(struct eng_remote *rs, uint64_t code, uint64_t table,
		     struct eng_remote_call *calls, size_t nr);

/* Find the bytes 0f 05 in an executable mapping of @pid ([vdso] first). */
int eng_remote_find_syscall(pid_t pid, const struct eng_proc_map *maps, size_t nr_maps,
			    uint64_t *ret_ip);

/* ---------------------------------------------------------------- misc */

/* fd-file.c (files): per-process state of the file-object collectors. */
struct eng_dump_files {
	uint64_t max_unlinked_bytes;	/* content limit of an unlinked file */
	/* Every refused descriptor/mapping, one line each (may be NULL). */
	void (*report)(void *arg, const char *line);
	void *report_arg;
	bool dry_run;			/* stop after the inspect phase */
	unsigned nr_unsupported;
	int first_err;
	char first[512];		/* the first refusal's line */
	char (*fobj_src)[64];		/* per fobj: "fd/N" or "map_files/A-B" of /proc/PID */
};

/* The dump context, shared by the collectors. */
struct eng_dump_ctx {
	pid_t pid;
	int proc_fd;			/* /proc/PID */
	struct eng_dump_threads threads;
	struct eng_proc_map *maps;	/* from smaps, sorted */
	uint64_t *vmflags;		/* per map */
	/* Per map: pages to store in full (a private mapping of a deleted file,
	 * saved as anonymous memory: its file cannot be mapped again); 0 for
	 * the usual rules. */
	uint64_t *whole_pages;
	size_t nr_maps;
	struct eng_proc_stat stat;
	struct eng_proc_status status;
	uint64_t syscall_ip;
	uint64_t scratch;		/* remote scratch page, 0 if none */
	int mem_fd;			/* /proc/PID/mem, -1 until needed */
	bool no_batch;			/* scratch not executable: one-by-one calls */

	uint32_t area_base;		/* first store area index of this process (tree) */
	bool tree;			/* one process of a tree: whole-image checks wait */
	struct eng_dump_files files;	/* fd-file.c (files): objects, limits, report */

	EngImage *image;		/* everything below hangs from here */
	EngProcess *proc;
	struct eng_dump_stats *stats;
	/* tcp: established connections captured so far (sockets.c); NULL:
	 * they are refused (opts->tcp_established unset). */
	struct eng_dump_tcp *tcp;
	/* eng_dump_opts.no_anon_pages: anonymous private areas by kind alone
	 * (mem.c). */
	bool no_anon_pages;
};

/* files.c */
struct stat;
/* Index of the file @path in eng_process.files (added if new). @obj is the
 * stat of the object the process holds; @path must still name it. */
int eng_dump_file_id(struct eng_dump_ctx *ctx, const char *path, const struct stat *obj,
		     uint32_t *ret_idx);
int eng_dump_fds(struct eng_dump_ctx *ctx);

/* sockets.c */
/* Inspect socket @fd of the frozen process (pidfd_getfd): a TCP/UDP socket
 * without a peer gives *ret; anything else -EOPNOTSUPP with one line naming
 * pid, fd, what it is and @link. */
int eng_dump_socket(struct eng_dump_ctx *ctx, int fd, const char *link, EngSocket **ret);
/* "1.2.3.4:80" or "[::1]:80" of a sockaddr_in/in6 into @buf. */
const char *eng_dump_sockaddr_str(const void *sa, size_t len, char *buf, size_t size);

/*
 * tcp: established connections of a checkpoint. The inspect phase
 * (eng_dump_socket with ctx->tcp set) checks each and keeps our
 * pidfd_getfd() copy here; eng_dump_tcp_capture(), after the memory, locks
 * each (a drop-all filter, then TCP_REPAIR: both act on the process's
 * socket) and reads its state into its EngSocket. From the lock until the
 * release the connection neither sends nor accepts anything, so the state
 * in the image stays the connection's state; capturing last keeps what
 * arrives while the memory is copied (queued and acknowledged normally)
 * and makes that window short.
 */
struct eng_dump_tcp_conn {
	int fd;				/* our copy */
	pid_t pid;
	int fdnum;			/* in the process */
	EngSocket *sock;		/* in the image: gets peer and tcp */
	bool locked;
	bool win_closed;		/* the send window was closed: @win is the real one */
	uint32_t win[5];		/* struct tcp_repair_window as read */
};
struct eng_dump_tcp {
	struct eng_dump_tcp_conn *v;
	size_t nr, cap;
};
/* Lock and read every connection not captured yet. */
int eng_dump_tcp_capture(struct eng_dump_ctx *ctx);
/* Left running or failed: filter off, repair off (a window probe tells the
 * peer to resend what was dropped), copies closed. */
void eng_dump_tcp_unlock(struct eng_dump_tcp *t);
/* The process was killed: close the copies in repair mode (no FIN, no RST). */
void eng_dump_tcp_drop(struct eng_dump_tcp *t);

/* hold.c: move the frozen @threads and locked @tcp into a new held
 * process (opts->hold); both are left empty. */
int eng_dump_hold(struct eng_dump_threads *threads, struct eng_dump_tcp *tcp,
		  struct eng_held **ret);

/* fd-pipe.c, fd-anon.c (fdkinds): pipes, FIFOs, eventfd, signalfd, timerfd,
 * epoll, inotify. Each fills @e (kind, flags and path already set by
 * files.c) and sets e->obj (eng_dump_fd_obj). */
struct stat;
/* Set e->obj: the obj of an earlier fd of the same kind holding the same
 * open file description (kcmp), else (pid << 32 | fd). Returns 1 if shared. */
int eng_dump_fd_obj(struct eng_dump_ctx *ctx, int fd, EngFd *e);
/* FD_PIPE_END / FD_FIFO: e->pipe, and the eng_process.pipes record (size,
 * bytes in flight) the first time the pipe is seen. */
int eng_dump_fd_pipe(struct eng_dump_ctx *ctx, int fd, const char *link, const struct stat *st,
		     EngFd *e);
/* After every fd: -EOPNOTSUPP (one line) for a pipe with an end outside
 * the process; nothing with ctx->tree (the other end may come later). */
int eng_dump_pipes_check(struct eng_dump_ctx *ctx);
/* Tree: the same over every process of @img, once all are dumped. */
int eng_dump_pipes_check_image(const EngImage *img);
/* Tree (called by eng_dump_pipes_check_image): every epoll item a process
 * could not resolve is resolved by another holder of the instance. */
int eng_dump_epoll_check_image(const EngImage *img);
/* ENG_FD_KIND__FD_* of an anon_inode type ("eventfd", "eventpoll"...), or -1. */
int eng_dump_fd_anon_kind(const char *type);
/* FD_EVENTFD/SIGNALFD/TIMERFD/EPOLL/INOTIFY from the fdinfo text @info. */
int eng_dump_fd_anon(struct eng_dump_ctx *ctx, int fd, const char *info, EngFd *e);

/*
 * unix.c (unix): AF_UNIX sockets. Restore: engine/restore/unix.c.
 * For trees: eng_dump_unix_socket() saves each socket's queue once per
 * image (the first fd that holds it); eng_dump_unix_resolve() must run once
 * after every process of the image is dumped (a peer may be in a later one).
 */
#define ENG_UNIX_QUEUE_MAX	(64u << 20)	/* bytes queued on one socket */
/* Socket @fd (st: its fstat) of the frozen process: *ret = NULL if it is not
 * AF_UNIX; else the record (peer, listener queue, receive queue, options).
 * -EOPNOTSUPP with one line naming pid and fd for what cannot be saved. */
int eng_dump_unix_socket(struct eng_dump_ctx *ctx, int fd, const struct stat *st,
			 EngUnixSk **ret);
/* Whole image: every peer must be in the image, else -EOPNOTSUPP naming
 * pid, fd, the peer's inode and name, unless @opts marks it external (then
 * eng_unix_sk.external is set). */
int eng_dump_unix_resolve(EngImage *img, const struct eng_dump_opts *opts);

/* mem.c */
int eng_dump_vmas(struct eng_dump_ctx *ctx);
int eng_dump_pages(struct eng_dump_ctx *ctx, struct wc_sink *sink);
int eng_dump_vdso_hash(struct eng_dump_ctx *ctx);

/* thread.c */
int eng_dump_threads_alloc(struct eng_dump_ctx *ctx);
int eng_dump_remote_state(struct eng_dump_ctx *ctx);
/* Unmap the remote scratch page if one is mapped. */
int eng_dump_remote_cleanup(struct eng_dump_ctx *ctx);
int eng_dump_thread_state(struct eng_dump_ctx *ctx);
int eng_dump_process_state(struct eng_dump_ctx *ctx);

/* fd-file.c (files): memfd, /dev/shm, SysV shm and unlinked files
 * (eng_process.fobjs), locks, pidfds, the list of refusals. */
/* A refusal (-EOPNOTSUPP, -EFBIG) is reported and counted, and 0 returned so
 * that the inspection goes on; any other @r is returned as is. */
int eng_dump_unsupported(struct eng_dump_ctx *ctx, int r);
/* After the inspection: the first refusal (and how many more), or 0. */
int eng_dump_unsupported_end(struct eng_dump_ctx *ctx);
/* A shared mapping of this path is a file object (memfd, /SYSV, /dev/shm,
 * deleted file; not /dev/zero). */
bool eng_dump_fobj_path(const char *path);
/* Link the shared mapping @m (eng_dump_fobj_path) to its object: v->fobj. */
int eng_dump_fobj_vma(struct eng_dump_ctx *ctx, const struct eng_proc_map *m, EngVma *v);
/* ENG_FD_KIND__FD_FOBJ for a memfd, /dev/shm file or deleted file, or -1. */
int eng_dump_fd_fobj_kind(const char *link, const struct stat *st);
int eng_dump_fd_fobj(struct eng_dump_ctx *ctx, int fd, const char *link, const struct stat *st,
		     EngFd *e);
/* FD_PIDFD: a pidfd of the process itself (others refused). */
int eng_dump_fd_pidfd(struct eng_dump_ctx *ctx, int fd, const char *info, EngFd *e);
/* A tree, once every process is dumped: each pidfd's target (@host[k] is the
 * pid of img->procs[k] as we see it) to its pid in the image; a target not
 * in the tree: -EOPNOTSUPP, one line each (also to opts->report). */
int eng_dump_pidfds_resolve(EngImage *img, const pid_t *host, size_t nr,
			    const struct eng_dump_opts *opts);
/* The locks fdinfo @info shows for @fd into eng_process.locks. */
int eng_dump_fd_locks(struct eng_dump_ctx *ctx, int fd, const char *info);
/* After the memory areas: one store area per object with content. */
int eng_dump_fobj_content(struct eng_dump_ctx *ctx, struct wc_sink *sink);
/* ctx->files from @opts (limits, dry run, report), before the inspection. */
void eng_dump_files_init(struct eng_dump_ctx *ctx, const struct eng_dump_opts *opts);
void eng_dump_files_fini(struct eng_dump_ctx *ctx);

/* ns.c (ns): namespaces of the image, from inside (a forked child enters
 * them). @host[k] is img->procs[k]'s pid here (zombies skipped): each must
 * be in the root's namespaces. Sets img->ns when any differs from ours;
 * -EOPNOTSUPP with one line for what the restore would not re-create. */
int eng_dump_ns(EngImage *img, const pid_t *host);
/* IPC_STAT of SysV segment @id in @pid's IPC namespace (ours or its own). */
struct shmid_ds;
int eng_dump_ns_shm_stat(pid_t pid, int id, struct shmid_ds *ret);

/* tty.c (ns): pseudo-terminals. FD_PTY_SLAVE / FD_PTY_MASTER for a char
 * device @st, or -1; then eng_dump_fd_tty fills e->obj and the process's
 * ttys, tty_fds and ctty. */
int eng_dump_fd_tty_kind(const struct stat *st);
int eng_dump_fd_tty(struct eng_dump_ctx *ctx, int fd, const struct stat *st, EngFd *e);

#endif
