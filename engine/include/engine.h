/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef ENGINE_H
#define ENGINE_H

/*
 * The checkpoint/restore engine's public API. Same conventions as
 * warmcache.h: -errno returns, detail via common/err.h, never prints.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "warmcache.h"

/* ------------------------------------------------------------ features */
/* (engine/probe) */

/*
 * Kernel and CPU features the engine relies on, probed at run time (each by
 * using it, never inferred from a kernel version). Probes that need another
 * process fork a child and always reap it; no descriptor or mapping leaks.
 *
 * Use eng_features_get() to consult the features (probed once per process,
 * thread-safe); eng_probe_features() probes afresh (warmfork check, tests).
 * The caller must not reap children it did not create (waitpid(-1) from a
 * SIGCHLD handler) nor set SIGCHLD to SIG_IGN while probing: the probes
 * wait for their own children.
 */
enum eng_feature {
	ENG_FEAT_PTRACE_SEIZE,		/* PTRACE_SEIZE + PTRACE_INTERRUPT on a child */
	ENG_FEAT_PTRACE_RSEQ,		/* PTRACE_GET_RSEQ_CONFIGURATION */
	ENG_FEAT_CLONE3_SET_TID,	/* clone3 set_tid in a new pid namespace */
	ENG_FEAT_PR_SET_MM_MAP,		/* prctl(PR_SET_MM, PR_SET_MM_MAP) */
	ENG_FEAT_MAP_FILES,		/* /proc/PID/map_files opens a mapped file */
	ENG_FEAT_PROCESS_VM_READV,	/* process_vm_readv from a child */
	ENG_FEAT_PIDFD,			/* pidfd_open + pidfd_getfd + pidfd_send_signal */
	ENG_FEAT_VDSO_REMAP,		/* mremap of [vvar]..[vdso], vdso usable after */
	ENG_FEAT_MEMFD,			/* memfd_create */
	ENG_FEAT_IO_URING,		/* io_uring_setup + a read through the ring */
	ENG_FEAT_IO_URING_OPS,		/* every opcode in eng_io_uring_ops_used[] */
	ENG_FEAT_CAPS,			/* CAP_CHECKPOINT_RESTORE, SYS_ADMIN, SYS_PTRACE */
	ENG_FEAT_XSAVE,			/* CPU XSAVE enabled by the OS (XCR0 readable) */
	ENG_FEAT_MADV_POPULATE_WRITE,	/* madvise(MADV_POPULATE_WRITE) */
	ENG_FEAT_USERFAULTFD,		/* userfaultfd(2) + UFFDIO_API handshake */
	ENG_FEAT_USERFAULTFD_DEV,	/* /dev/userfaultfd + USERFAULTFD_IOC_NEW */
	ENG_FEAT_PAGEMAP_SCAN,		/* PAGEMAP_SCAN ioctl on /proc/self/pagemap */
	ENG_FEAT_DIRTY_TRACKING,	/* uffd WP_ASYNC + PAGEMAP_SCAN finds written pages */
	ENG_FEAT_SOFT_DIRTY,		/* clear_refs 4 + pagemap bit 55 */
	ENG_FEAT_TCP_REPAIR,		/* TCP_REPAIR on a socket in a new netns */
	ENG_FEAT_CAP_SYS_RESOURCE,	/* CAP_SYS_RESOURCE (optional) */
	ENG_FEAT__COUNT
};

#define ENG_FEATURE_DETAIL_MAX	256

struct eng_feature_desc {
	const char *name;		/* short stable id, e.g. "clone3-set-tid" */
	const char *purpose;		/* what the engine uses it for, one phrase */
	bool required;			/* the engine cannot work without it */
};

struct eng_feature_state {
	bool supported;
	int err;			/* -errno of the failed step when !supported, else 0 */
	char detail[ENG_FEATURE_DETAIL_MAX];	/* what the probe saw; may be "" */
};

struct eng_features {
	struct eng_feature_state state[ENG_FEAT__COUNT];
	/* Values the rest of the engine consults (0 / -1 when not probed). */
	uint32_t pid_max;		/* /proc/sys/kernel/pid_max (set_tid must be below) */
	int io_uring_disabled;		/* sysctl kernel.io_uring_disabled, -1 if absent */
	uint64_t io_uring_ops[4];	/* bit n: IORING_OP n supported (256 bits) */
	uint64_t uffd_features;		/* UFFD_FEATURE_* offered by UFFDIO_API */
	uint64_t uffd_ioctls;		/* _UFFDIO_* bits offered by UFFDIO_API */
	uint32_t mm_map_size;		/* PR_SET_MM_MAP_SIZE */
	uint64_t rseq_sig;		/* rseq signature seen by ptrace (glibc: 0x53053053) */
	uint64_t xcr0;			/* xgetbv(0): user state components enabled */
	uint32_t xsave_size;		/* CPUID 0xd.0 EBX: XSAVE area for the XCR0 set */
	uint32_t xsave_max_size;	/* CPUID 0xd.0 ECX: for all supported components */
	uint32_t xsave_ext;		/* CPUID 0xd.1 EAX: XSAVEOPT/XSAVEC/XGETBV1/XSAVES */
	uint32_t xstate_regset_size;	/* NT_X86_XSTATE size via PTRACE_GETREGSET */
	uint64_t vdso_block_size;	/* bytes of [vvar]..[vdso] moved as one block */
};

/* The io_uring opcodes the store and transfer use (IORING_OP_*), and their count. */
extern const uint8_t eng_io_uring_ops_used[];
extern const size_t eng_io_uring_ops_used_count;

/* Static description of @feat; NULL if out of range. */
const struct eng_feature_desc *eng_feature_desc(enum eng_feature feat);

/*
 * Probe every feature into *ret (always fully written, also on failure).
 * Returns 0 when every required feature is supported, else -EOPNOTSUPP with
 * err detail "missing required: a, b". Not async-signal-safe; forks.
 */
int eng_probe_features(struct eng_features *ret);

/* The features of this process, probed on first call (thread-safe). */
const struct eng_features *eng_features_get(void);

static inline bool eng_feature_has(const struct eng_features *f, enum eng_feature feat)
{
	return (unsigned)feat < ENG_FEAT__COUNT && f->state[feat].supported;
}

/* Bit n of f->io_uring_ops. */
static inline bool eng_io_uring_op_supported(const struct eng_features *f, unsigned op)
{
	return op < 256 && (f->io_uring_ops[op / 64] >> (op % 64)) & 1;
}

/* ---------------------------------------------------------- checkpoint */
/* (engine/dump) */

/* VM flags kept in eng_vma.madv, read from /proc/PID/smaps "VmFlags". */
#define ENG_MADV_GROWSDOWN	(1u << 0)	/* gd: MAP_GROWSDOWN */
#define ENG_MADV_DONTFORK	(1u << 1)	/* dc: MADV_DONTFORK */
#define ENG_MADV_HUGEPAGE	(1u << 2)	/* hg: MADV_HUGEPAGE */
#define ENG_MADV_NOHUGEPAGE	(1u << 3)	/* nh: MADV_NOHUGEPAGE */
#define ENG_MADV_DONTDUMP	(1u << 4)	/* dd: MADV_DONTDUMP */
#define ENG_MADV_WIPEONFORK	(1u << 5)	/* wf: MADV_WIPEONFORK */
#define ENG_MADV_MERGEABLE	(1u << 6)	/* mg: MADV_MERGEABLE (KSM) */
#define ENG_MADV_LOCKED		(1u << 7)	/* lo: mlock */
#define ENG_MADV_LOCKONFAULT	(1u << 8)	/* lf: mlock2(MLOCK_ONFAULT) */
#define ENG_MADV_RANDOM		(1u << 9)	/* rr: MADV_RANDOM */
#define ENG_MADV_SEQUENTIAL	(1u << 10)	/* sr: MADV_SEQUENTIAL */
#define ENG_MADV_SEALED		(1u << 11)	/* sl: mseal */

/* The blob of a snapshot holding the packed eng_image (proto/image.proto). */
#define ENG_IMAGE_BLOB		"engine.image"
#define ENG_IMAGE_VERSION	1

/*
 * eng_image.vdso_hash is XXH3-128 of the [vdso] bytes, stored as the 16
 * bytes of XXH128_canonical_t (big-endian, XXH128_canonicalFromHash).
 */

struct eng_dump_stats {
	uint64_t nr_threads;
	uint64_t nr_vmas;
	uint64_t nr_areas;		/* store areas written */
	uint64_t nr_fds;
	uint64_t pages_read;		/* pages copied out of the process */
	uint64_t image_bytes;		/* packed eng_image */
	uint64_t frozen_ns;		/* from the first seize to detach/kill */
	uint64_t freeze_ns;		/* seize + interrupt of every thread */
	uint64_t collect_ns;		/* /proc, ptrace and remote-syscall state */
	uint64_t memory_ns;		/* pagemap + process_vm_readv + sink */
	uint64_t commit_ns;		/* sink commit */
	uint64_t release_ns;		/* detach, or kill until the ids are free */
	uint64_t remote_retries;	/* remote sessions restarted after a signal */
	bool zombie;			/* killed, but its parent has not reaped it */
	bool vmflags_fast;		/* no_anon_pages: VmFlags without smaps (vmflags.c) */
};

struct eng_dump_opts {
	size_t sz;			/* sizeof(struct eng_dump_opts) */
	bool leave_running;		/* detach after the commit instead of killing */
	struct eng_dump_stats *stats;	/* optional, filled on success */
	bool tree;			/* @pid and all its descendants (zombies
					 * included): one image, procs[0] = @pid;
					 * stats are summed over the processes */
	/* files: inspect only (freeze, /proc, thaw; nothing stored or
	 * changed). Returns 0 if the process can be checkpointed, else the
	 * first refusal; every refusal goes to @report either way. */
	bool dry_run;
	/* files: called once per refused descriptor or mapping, one line
	 * naming pid, fd (or addresses), kind and path (dry run or not). */
	void (*report)(void *arg, const char *line);
	void *report_arg;
	/* files: largest unlinked-but-open file whose content is saved
	 * (0: ENG_DUMP_MAX_UNLINKED_DEFAULT); above it: -EFBIG. */
	uint64_t max_unlinked_bytes;
	/* unix: sockets (by inode: the socket's own or its peer's, as the
	 * refusal names it) whose peer outside the image is accepted. Restore
	 * connects such a socket to its peer's name again (a peer without a
	 * name, or unread data on the socket, is still refused). */
	const uint64_t *unix_external;
	size_t nr_unix_external;
	/* unix: the same by the peer's name: a path, or "@name" (abstract). */
	const char *const *unix_external_names;
	size_t nr_unix_external_names;
	/* Capture established TCP connections (TCP_REPAIR, IPv4/IPv6) instead
	 * of refusing them. While the process is frozen its connections are
	 * in repair mode with a drop-all socket filter (nothing is sent to or
	 * accepted from the peer); killed, they are closed silently (no FIN,
	 * no RST); left running or on failure, the filter goes and repair mode
	 * is turned off. Restoring them needs the peer to reach this host's
	 * address: see docs/engine-dump.md "Established TCP". */
	bool tcp_established;
	/* If set (single process only, not with @tree): on success the process
	 * is neither thawed nor killed: it stays frozen, its connections in
	 * repair mode, and *@hold receives it; eng_held_release() ends that
	 * (rfork --move: the original is killed only once its twin runs). The
	 * thread that called eng_checkpoint() is the tracer: release from it. */
	struct eng_held **hold;
	/* No memory phase for anonymous private memory (rfork --lazy): its
	 * pages are neither read nor hashed; each such area goes to the sink
	 * by page kind alone, put_pages(sink, NULL, kinds, n) with
	 * WC_PAGE_DATA for every page the store rules keep (present or
	 * swapped, every page up to EOF for a deleted file) and WC_PAGE_ABSENT
	 * for the others. Only a sink that reads those pages itself later
	 * (from the still frozen process) accepts that: the store's does not.
	 * Other areas (file private, shared) are read as usual. Single
	 * process only (ignored with @tree). */
	bool no_anon_pages;
};

#define ENG_DUMP_MAX_UNLINKED_DEFAULT	(64ull << 20)

struct eng_held;

/*
 * Release a process kept frozen by eng_checkpoint(..., opts->hold): @kill
 * SIGKILLs it and closes its TCP connections silently (returns once every
 * thread is dead; the pid is left for its parent to reap); otherwise
 * they leave repair mode and the process resumes exactly as before.
 * Frees @h (NULL is a no-op).
 */
int eng_held_release(struct eng_held *h, bool kill);

/*
 * Checkpoint the process @pid (every thread) into @sink and commit it.
 *
 * The process is frozen with ptrace for the whole call. On success the
 * snapshot id is in @ret_id and the process was either detached, running
 * exactly as before (@opts->leave_running), or killed with SIGKILL; the
 * call then returns once the pid and every tid are free (or the leader is
 * a zombie its parent does not reap: stats->zombie). On failure nothing is
 * committed, the process is detached unchanged, and the detail (naming the
 * pid and the object) is in err_detail().
 *
 * Errors: -ESRCH no such process (or a zombie), -EBUSY already traced,
 * -EOPNOTSUPP a descriptor or mapping this version cannot capture,
 * -EAGAIN the process kept changing (threads, signals) while freezing, or
 * is stopped (SIGSTOP), -ETIMEDOUT a thread did not stop within 10 s
 * (uninterruptible sleep), -EPERM not allowed to trace it, or what the sink
 * returned.
 */
int eng_checkpoint(pid_t pid, struct wc_sink *sink, const struct eng_dump_opts *opts,
		   char ret_id[WC_ID_LEN + 1]);

/* ------------------------------------------------------------- restore */
/* (engine/restore) */

struct eng_restore_stats {
	uint64_t nr_threads;
	uint64_t nr_vmas;
	uint64_t validate_ns;		/* open, unpack, keys, files, cpu, vdso, pids */
	uint64_t spawn_ns;		/* clone3 of the process (and its init) */
	uint64_t premap_ns;		/* child: reserve, map and populate the areas */
	uint64_t fill_ns;		/* child: wc_snapshot_fill */
	uint64_t prepare_ns;		/* child: descriptors, creds, restorer args */
	uint64_t ready_ns;		/* from clone3 until every thread parked */
	uint64_t resume_ns;		/* ptrace: unmap, registers, detach */
	uint64_t total_ns;		/* eng_restore from entry to return */
};

struct eng_postcopy;
struct eng_postcopy_stats {
	uint64_t pages;			/* placed, in every address space */
	uint64_t faults;		/* faults served */
	uint64_t fault_pages;		/* pages placed on a fault */
	uint64_t zero_faults;		/* faults on pages without data */
	uint64_t unknown_faults;	/* at addresses not followed (zeroed) */
	uint64_t forks;			/* children forked while pages were missing */
	uint64_t fill_ns;		/* from the handover to the last page */
};
/*
 * Wait until every page of a post-copy restore is in place, in the process
 * and in any child it forked meanwhile (or they are gone), then free @pc
 * (NULL: 0). Returns 0, or -errno with detail if a page could not be
 * placed (the process was then killed).
 */
int eng_postcopy_finish(struct eng_postcopy *pc, struct eng_postcopy_stats *st);

struct eng_restore_opts {
	size_t sz;			/* sizeof(struct eng_restore_opts) */
	bool new_pidns;			/* restore into a fresh pid namespace */
	bool inherit_stdio;		/* fds 0, 1, 2 are the caller's */
	bool inherit_session;		/* stay in the caller's session and process
					 * group (restoring onto the caller's terminal:
					 * its keys then reach the process) */
	int resume_signal;		/* if > 0: pending (SI_USER) when the process
					 * resumes, so it is handled before any of the
					 * process's own code runs (warm-exec's
					 * restore notification) */
	struct eng_restore_stats *stats;	/* optional, filled on success */
	/*
	 * Lazy restore (rforkd --lazy): the areas starting at these addresses
	 * (sorted, @nr_lazy_areas) must be anonymous private mappings, not
	 * locked; after the fill they are registered with a new userfaultfd
	 * (UFFDIO_REGISTER_MODE_MISSING, features EVENT_REMAP | EVENT_REMOVE),
	 * so every page the store did not fill faults to its holder. The
	 * child sends that uffd and a pidfd of itself over the unix socket
	 * @lazy_sock (SCM_RIGHTS, one byte of data) before it jumps to the
	 * restorer, then closes its copies. The receiver must serve the uffd
	 * (the restorer's mremaps of those areas wait for their REMAP events)
	 * from another thread while eng_restore runs.
	 */
	const uint64_t *lazy_areas;
	size_t nr_lazy_areas;
	int lazy_sock;
	/*
	 * Post-copy (single process; ignored with a tree or @lazy_areas): the
	 * big private anonymous areas are left empty and registered with a
	 * userfaultfd; the process runs at once while a thread of the caller
	 * places their pages (each verified against the store before the
	 * process runs), a page the process touches first ahead of the others.
	 * On success *@postcopy receives that thread's handle (NULL if no area
	 * qualified): the caller must call eng_postcopy_finish() before it
	 * exits, since until then the process depends on it.
	 */
	bool postcopy;
	struct eng_postcopy **postcopy_ret;
	/* Leave the restored process stopped (group stop, as by SIGSTOP)
	 * instead of running; the caller continues it with SIGCONT (rforkd:
	 * once the twin holds every page). Not with a tree. */
	bool leave_stopped;
	/*
	 * Pseudo-terminals (ns): a process on a pty whose master is not in the
	 * image gets a NEW pty (saved termios and window size) when this is
	 * set, and *pty_master receives its master (the caller relays it and
	 * closes it; -1 when none was made). Without it, and without
	 * inherit_stdio, fds 0-2 on such a pty are the caller's streams and
	 * any other fd on it fails the restore. A pty whose master is in the
	 * image is always made again, as a connected pair.
	 */
	int *pty_master;
};

struct eng_restored {
	pid_t pid;			/* the restored process, in the caller's namespace */
	pid_t ns_pid;			/* its pid in its own namespace (the saved pid) */
	pid_t child;			/* the caller's child to wait for: pid itself, or
					 * the init of the new namespace (which exits with
					 * the restored process's status, 128+sig if killed) */
};

/*
 * Restore snapshot @snap (full id or unique prefix) of @store as a running
 * process, a child of the caller (directly, or through the init of a new
 * pid namespace). The snapshot is never consumed.
 *
 * Everything is validated before anything is started: the image, the
 * presence of every page in the store, the files (size, mtime, build-id),
 * the CPU's xsave features, the vdso, the pids. On success every thread
 * runs from where it was checkpointed; on failure nothing is left running
 * and the detail (naming the snapshot and the step) is in err_detail().
 *
 * A multi-threaded caller costs one more fork (the process is created
 * with a raw clone3 to get its pid, from a single-threaded copy).
 *
 * Errors: -ENOENT no such snapshot, -EBADMSG corrupt image or page,
 * -EEXIST a pid/tid is taken (use new_pidns), -EXDEV different kernel vdso
 * or CPU features, -ESTALE a file changed since the checkpoint,
 * -EOPNOTSUPP something this version cannot restore.
 */
int eng_restore(struct wc_store *store, const char *snap, const struct eng_restore_opts *opts,
		struct eng_restored *ret);

/* --------------------------------------------------------------- spawn */
/* (engine/restore/spawn.c, engine/restorer/spawn.h) */

/*
 * A spawn template: snapshot @snap restored ONCE into a process that never
 * runs the program's code (the template: the caller's child, a forked copy
 * of the caller running the restorer with every area at its address and no
 * thread but one). Each instance is a fork-like copy of it (every
 * unmodified page shared copy-on-write, exact anonymous-memory semantics),
 * in its own pid namespace with its saved pid and tids, its threads
 * re-created. The template serves any number of spawns until
 * eng_template_close().
 *
 * Process tree and who reaps whom:
 *
 *   caller ─┬─ template            (child of the caller; eng_template_close reaps it)
 *           └─ init (pid 1 of ns)  (created by the template with CLONE_PARENT:
 *                │                  a CHILD OF THE CALLER; the caller reaps it)
 *                └─ instance       (the program; reaped by its init)
 *
 * The init shares the template's memory (CLONE_VM, no copy), holds no
 * descriptor, forwards SIGTERM, SIGINT and SIGHUP to the instance, reaps
 * everything in its namespace and exits with the instance's status (its
 * exit code, or 128+signal if killed). If the saved pid is 1 the instance
 * is the namespace's first process itself and init == pid. Killing the
 * init (SIGKILL) kills the whole namespace. So the caller must reap the
 * inits (waitpid(init), or waitid(P_PIDFD, init_pidfd)); it should be a
 * child subreaper (PR_SET_CHILD_SUBREAPER) if it lets any template or
 * init outlive it. A caller that reaps with waitpid(-1) must leave the
 * template's pid (eng_template_pid) to eng_template_close.
 *
 * Not thread-safe per template or per instance: serialise the calls on
 * one template; different templates are independent. eng_instance_start
 * traces the instance's threads (ptrace) and waits for their stops with
 * waitpid(tid): while it runs, no other thread of the caller (nor a
 * SIGCHLD handler) may call waitpid(-1) or wait(), which could
 * take those stops. Reap inits by pid or pidfd.
 */
struct eng_template;

struct eng_template_opts {
	size_t sz;			/* sizeof(struct eng_template_opts) */
	bool null_stdio;		/* fds 0, 1, 2 of every instance are /dev/null
					 * (unless eng_instance_start passes others),
					 * else the caller's at open time */
	uint64_t *ret_open_ns;		/* optional: validate + restore of the template */
};

/*
 * Open a template of @snap (full id or unique prefix of @store): validate
 * as eng_restore does, restore it once, wait until the template is ready.
 * Every saved descriptor is opened once by the template and shared by all
 * instances (same open file description, like a fork). The template dies
 * with the calling THREAD (PR_SET_PDEATHSIG): open it from a thread that
 * lives as long as it must serve. On failure nothing is left running.
 * Errors as eng_restore, plus -EOPNOTSUPP for a snapshot an instance
 * cannot copy (dontfork or wipeonfork areas, more than 16 shared anonymous
 * or 32 locked areas, established TCP connections, a process tree).
 */
int eng_template_open(struct wc_store *store, const char *snap, const struct eng_template_opts *opts,
		      struct eng_template **ret);

/*
 * Whether instances (or restores run side by side) of @snap would be
 * independent of each other: 1 yes, 0 no, with the first reason in @why
 * ("fd 5 holds a pipe that every copy would share"), or -errno (snapshot
 * missing or corrupt; detail in err_str). Not independent: a process tree,
 * or any descriptor above 2 naming a kernel object (pipe, socket, eventfd,
 * epoll, memfd, ...; regular files and devices are fine). Shared anonymous
 * memory is copied per instance, so it does not count. Such a snapshot
 * still restores, and spawns with instances sharing those objects as
 * forked children would; warm-exec keeps, warmd pools and `warmfork spawn`
 * (without --shared) take only independent ones.
 */
int eng_snapshot_independent(struct wc_store *store, const char *snap, char *why, size_t size);

/* The template process (the caller's child), and the snapshot's full id. */
pid_t eng_template_pid(const struct eng_template *tpl);
const char *eng_template_snapshot(const struct eng_template *tpl);
/* Threads of every instance (as saved). */
unsigned int eng_template_nr_threads(const struct eng_template *tpl);

/*
 * Stop serving: the template process exits (and is reaped here); running
 * instances and their inits are not affected (the inits keep the shared
 * memory alive). Parked instances of this template can still be started
 * or released afterwards (the image stays until the last one is). NULL is
 * a no-op.
 */
void eng_template_close(struct eng_template *tpl);

struct eng_instance_opts {
	size_t sz;			/* sizeof(struct eng_instance_opts) */
	bool parked;			/* true: return it parked (see below);
					 * false: started at once, no descriptor
					 * passed (= eng_instance_start(.., 0)) */
	bool pretrace;			/* parked: take over every thread but the
					 * leader with ptrace now (stopped, registers
					 * loaded), so that the start only resumes them:
					 * a multi-threaded instance's start then costs
					 * what a single-threaded one's does. The
					 * calling THREAD becomes their tracer: start and
					 * release the instance from it (if it exits,
					 * the instance is killed) */
};

/* Most descriptors eng_instance_start installs in one call. */
#define ENG_INSTANCE_MAX_FDS	64

struct eng_instance {
	pid_t pid;			/* the instance, in the caller's pid namespace */
	pid_t ns_pid;			/* its pid in its own namespace (the saved one) */
	pid_t init;			/* its namespace's init: the CALLER'S CHILD, to
					 * reap; exits with the instance's status
					 * (= pid when ns_pid is 1) */
	int pidfd;			/* pidfd of @pid (O_CLOEXEC): signal it
					 * (pidfd_send_signal), poll it (readable once it
					 * exited) */
	int init_pidfd;			/* pidfd of @init (O_CLOEXEC): waitid(P_PIDFD) */
	bool parked;			/* created, not started yet */
	/* Private to the engine. */
	int ctl_fd;			/* parked: our end of the instance's socket */
	struct eng_template *tpl;	/* parked: holds a reference */
	pid_t *tids;			/* parked: its threads in our namespace, in the
					 * image's order */
	bool traced;			/* parked with opts->pretrace */
};

/*
 * Create one instance from @tpl into *@ret (the caller's memory; the
 * descriptors in it are the caller's, see eng_instance_release).
 *
 * Parked (opts->parked): the instance exists with all its threads
 * re-created and their per-thread state set (sigaltstack, robust list,
 * rseq, names, pending signals, credentials), every thread waiting inside
 * the restorer with every signal blocked: no instruction of the program
 * runs and none of its memory changes until eng_instance_start(). What
 * is left for the start is what a pool acquire costs: installing the
 * descriptors and resuming the threads. A parked instance whose controller
 * goes away (ctl_fd closed without a start) exits by itself.
 *
 * Returns 0, or -EAGAIN (too many instances alive at once: 4095 per
 * template), -EIO (the template is gone), -ETIMEDOUT (no report within
 * 30 s), or the instance's failure (detail in err_str; nothing is left
 * running then, though its init may still need reaping: ret->init is set
 * to it, or -1).
 */
int eng_template_spawn(struct eng_template *tpl, const struct eng_instance_opts *opts,
		       struct eng_instance *ret);

/*
 * @nr spawns at once (several under way together: faster than one after
 * the other, e.g. to fill a pool): ret[0..nr) as eng_template_spawn would
 * give them, in order. Returns 0 with *@ret_done = @nr, or -errno with
 * detail: then ret[0..*ret_done) are valid instances (the caller's), and
 * the failed one and those after it were killed and reaped here (their
 * entries reset).
 */
int eng_template_spawn_many(struct eng_template *tpl, const struct eng_instance_opts *opts,
			    size_t nr, struct eng_instance *ret, size_t *ret_done);

/*
 * Start a parked instance: descriptor @fds[i] is installed at number
 * @fd_nums[i] in the instance (0, 1, 2 for its stdio; any other number for
 * extra ones, replacing whatever the instance had there; never close-on-
 * exec), @nr <= ENG_INSTANCE_MAX_FDS. They are sent over the instance's
 * socket (SCM_RIGHTS) and dup3'd by the restorer code in the instance; the
 * caller keeps its own copies. Then every thread resumes exactly where
 * it was checkpointed (ptrace, from the calling thread, which must not be
 * tracing the instance already; a pretraced instance: only from the thread
 * that spawned it). Returns 0, -EINVAL (not parked, bad numbers), or
 * -errno with detail; on failure the instance is killed.
 */
int eng_instance_start(struct eng_instance *inst, const int *fds, const int *fd_nums, size_t nr);

/*
 * Close the descriptors *@inst holds (pidfd, init_pidfd, socket) and drop
 * its template reference. A parked instance is killed (SIGKILL to its
 * init). A started one keeps running. Reaps nothing: the init is still
 * the caller's child to reap. Fields become -1. NULL is a no-op.
 */
void eng_instance_release(struct eng_instance *inst);

/* ------------------------------------------------------- spawn, batch */

struct eng_spawn_opts {
	size_t sz;			/* sizeof(struct eng_spawn_opts) */
	bool null_stdio;		/* fds 0, 1, 2 are /dev/null, else the caller's */
	uint64_t *ret_template_ns;	/* optional: validate + restore of the template */
	uint64_t *ret_instances_ns;	/* optional: creating and resuming all instances */
};

struct eng_spawned {
	pid_t pid;			/* the instance, in the caller's pid namespace */
	pid_t init;			/* its namespace's init (the caller's child; = pid
					 * if the saved pid is 1): exits with the
					 * instance's status */
};

/*
 * Start @nr running instances of snapshot @snap: eng_template_open,
 * eng_template_spawn_many (started at once), eng_template_close. The
 * template exits before this returns; the instances' inits are the
 * caller's children (a caller that exits leaves them to its nearest child
 * subreaper: be one, and reap them). Each instance has the caller's fds
 * 0-2 (or /dev/null) and its other saved descriptors reopened once for
 * all.
 *
 * @ret gets @nr entries, in creation order. On failure nothing is left
 * running (detail in err_str). Errors as eng_template_open and
 * eng_template_spawn.
 */
int eng_spawn(struct wc_store *store, const char *snap, unsigned int nr,
	      const struct eng_spawn_opts *opts, struct eng_spawned *ret);

#endif
