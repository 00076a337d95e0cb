/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef ENGINE_RESTORER_H
#define ENGINE_RESTORER_H

/*
 * The ABI between engine/restore (the child, with libc) and the restorer
 * blob (freestanding, engine/restorer/restorer.c). Both sides include this
 * file; it uses only fixed-size integer types so that its layout is the same
 * with and without libc. Every pointer is an absolute address in the
 * restored process; arrays live in the same mapping as struct rst_args and
 * are reached through byte offsets from the start of struct rst_args.
 *
 * The restorer is entered at offset 0 of the blob with %rdi = struct rst_args *
 * and %rsp at the top of the leader's restorer stack, every signal blocked.
 */

#include <stdint.h>

#define RST_MAGIC		0x57465253u	/* "SRFW" */
#define RST_VERSION		1
#define RST_MAX_KEEP		8
#define RST_AUXV_MAX		512		/* bytes; the kernel keeps 46 pairs */
#define RST_SIGINFO_SIZE	128
#define RST_STACK_SIZE		(16u * 1024)	/* per thread, in the region */
#define RST_SPAWN_MAX_SHARED	16		/* spawn: shared anonymous areas */
#define RST_SPAWN_MAX_LOCKED	32		/* spawn: mlock'd areas */

/* Steps reported by the restorer when it fails (rst_report.step). */
enum rst_step {
	RST_STEP_NONE = 0,
	RST_STEP_CHECK,		/* bad magic/version */
	RST_STEP_UNMAP,		/* munmap of the old address space */
	RST_STEP_VDSO,		/* mremap of [vvar]/[vdso] */
	RST_STEP_MOVE,		/* mremap of an area to its address (arg: index) */
	RST_STEP_PROTECT,	/* mprotect of an area (arg: index) */
	RST_STEP_MM,		/* prctl(PR_SET_MM_MAP) */
	RST_STEP_RLIMIT,	/* prlimit64 (arg: resource) */
	RST_STEP_ITIMER,	/* setitimer (arg: which) */
	RST_STEP_CLONE,		/* clone3 of a thread (arg: tid) */
	RST_STEP_THREAD,	/* per-thread state (arg: tid; detail in .sub) */
	RST_STEP_SIGQUEUE,	/* re-queueing a pending signal (arg: tid) */
	RST_STEP_CREDS,		/* credentials (arg: tid) */
	RST_STEP_CHILD,		/* the child before the restorer (detail text) */
	RST_STEP_SPAWN,		/* spawn: template window / instance clone3 (arg: pid) */
	RST_STEP__COUNT
};

/* Sub-steps of RST_STEP_THREAD. */
enum rst_sub {
	RST_SUB_NONE = 0,
	RST_SUB_ALTSTACK,
	RST_SUB_ROBUST,
	RST_SUB_TIDADDR,
	RST_SUB_RSEQ,
	RST_SUB_NAME,
	RST_SUB_SCHED,
	RST_SUB_NICE,
};

/* Written once into the status pipe: by the child or the restorer. */
struct rst_report {
	int32_t err;		/* 0 = every thread is ready, else -errno */
	uint32_t step;		/* enum rst_step */
	uint32_t sub;		/* enum rst_sub */
	uint32_t pid;		/* the reporting process, in its pid namespace */
	uint64_t arg;
	/* On success, copied from struct rst_args: */
	uint64_t region_start;	/* everything of ours left in the process */
	uint64_t region_len;
	uint64_t premap_ns;	/* child: reserve + map every area + populate */
	uint64_t fill_ns;	/* child: wc_snapshot_fill */
	uint64_t prepare_ns;	/* child: descriptors, sigactions, args */
	char detail[192];	/* NUL-terminated text (child failures) */
};

struct rst_range {
	uint64_t start;
	uint64_t len;
};

/* One area: premapped at src, moved to dst, then given its final prot. */
struct rst_move {
	uint64_t src;
	uint64_t dst;
	uint64_t len;
	uint32_t prot;		/* final PROT_* */
	uint32_t fix_prot;	/* 1: mprotect(dst, len, prot) after the move */
};

struct rst_thread {
	uint32_t tid;		/* in the restored process's pid namespace */
	uint32_t flags;		/* RST_TF_* */
	uint64_t stack_top;	/* restorer stack of this thread (16-aligned) */
	uint64_t ss_sp;
	uint64_t ss_size;
	uint32_t ss_flags;
	uint32_t rseq_len;
	uint64_t rseq_addr;
	uint32_t rseq_sig;
	int32_t sched_policy;
	int32_t sched_prio;
	int32_t nice;
	uint64_t robust_list;
	uint64_t robust_len;
	uint64_t clear_child_tid;
	char comm[16];
	uint32_t nr_pending;	/* siginfos at pending_off */
	uint32_t pad;
	uint64_t pending_off;	/* offset from struct rst_args, RST_SIGINFO_SIZE each */
};

#define RST_TF_ALTSTACK		(1u << 0)
#define RST_TF_ROBUST		(1u << 1)
#define RST_TF_TIDADDR		(1u << 2)
#define RST_TF_RSEQ		(1u << 3)
#define RST_TF_COMM		(1u << 4)
#define RST_TF_SCHED		(1u << 5)
#define RST_TF_NICE		(1u << 6)

/* struct prctl_mm_map of <linux/prctl.h> (PR_SET_MM_MAP_SIZE = 104). */
struct rst_mm_map {
	uint64_t start_code;
	uint64_t end_code;
	uint64_t start_data;
	uint64_t end_data;
	uint64_t start_brk;
	uint64_t brk;
	uint64_t start_stack;
	uint64_t arg_start;
	uint64_t arg_end;
	uint64_t env_start;
	uint64_t env_end;
	uint64_t auxv;		/* pointer to args->auxv */
	uint32_t auxv_size;
	uint32_t exe_fd;
};

struct rst_rlimit {
	uint32_t resource;
	uint32_t pad;
	uint64_t cur;
	uint64_t max;
};

struct rst_itimer {
	uint32_t which;
	uint32_t pad;
	uint64_t interval_us;
	uint64_t value_us;
};

struct rst_creds {
	uint32_t uid, euid, suid, fsuid;
	uint32_t gid, egid, sgid, fsgid;
	uint32_t nr_groups;
	uint32_t securebits;
	uint64_t groups_off;	/* offset from struct rst_args, uint32_t each */
	uint64_t cap_eff, cap_prm, cap_inh, cap_bnd, cap_amb;
	uint32_t change_ids;	/* 1: ids differ from root's, set them */
	uint32_t no_new_privs;
	uint32_t set_caps;	/* 1: capset + bounding + ambient */
	uint32_t cap_last;	/* highest capability number of this kernel */
};

struct rst_args {
	uint32_t magic;
	uint32_t version;
	uint64_t total_len;		/* bytes of this struct plus its arrays */

	/* Mappings that survive the unmap: region, [vvar]..[vdso], ... */
	uint32_t nr_keep;
	uint32_t status_fd;		/* write end of the status pipe */
	struct rst_range keep[RST_MAX_KEEP];
	uint64_t task_size;		/* end of the user address space */
	uint64_t region_start;		/* reported back to the parent */
	uint64_t region_len;
	uint64_t premap_ns, fill_ns, prepare_ns;

	/* The running kernel's [vvar],[vvar_vclock],[vdso] (each a VMA),
	 * moved by vdso_delta bytes; vdso_scratch is a free spot of the
	 * block's size for overlapping moves (0 if none needed). */
	uint32_t nr_vdso;
	uint32_t unmap_vdso;		/* 1: the image has no vdso, unmap ours */
	struct rst_range vdso[3];
	int64_t vdso_delta;
	uint64_t vdso_scratch;

	uint32_t nr_moves;
	uint32_t nr_rlimits;
	uint64_t moves_off;		/* struct rst_move[] */
	uint64_t rlimits_off;		/* struct rst_rlimit[] */

	struct rst_mm_map mm;
	uint32_t set_mm;		/* 1: PR_SET_MM_MAP with mm */
	uint32_t nr_itimers;
	struct rst_itimer itimers[3];
	uint8_t auxv[RST_AUXV_MAX];

	uint32_t nr_shared_pending;
	uint32_t nr_threads;
	uint64_t shared_pending_off;	/* siginfos, RST_SIGINFO_SIZE each */
	uint64_t threads_off;		/* struct rst_thread[], [0] = leader */
	uint32_t pid;			/* tgid in its namespace */
	uint32_t has_creds;
	struct rst_creds creds;

	uint32_t set_dumpable;		/* 1: PR_SET_DUMPABLE(dumpable) once all threads
					 * changed credentials (that resets it) */
	uint32_t dumpable;

	/* Futex words, written by the restorer. */
	uint32_t arrived;		/* threads that finished their setup */
	uint32_t park;			/* threads wait on it forever (never changes) */
	int32_t thread_err;		/* first per-thread failure */
	uint32_t thread_step;
	uint32_t thread_sub;
	uint32_t pad2;
	uint64_t thread_arg;

	/* Spawn (engine/restore/spawn.c, engine/restorer/spawn.h): with spawn
	 * = 1 the leader becomes a template once the areas are in place; it
	 * serves spawn_ctl_fd and each instance runs the rest (rst_finish).
	 * spawn_window is set by the template (its init stacks, see spawn.h). */
	uint32_t spawn;
	uint32_t spawn_ctl_fd;
	uint64_t spawn_window;
	uint64_t spawn_window_len;
	/* Shared anonymous areas (final address, length, prot): each instance
	 * replaces them by a private copy of its own before anything runs. */
	uint32_t nr_spawn_shared;
	uint32_t spawn_lead;		/* 1: setsid, 2: setpgid(0, 0) in each instance */
	struct rst_move spawn_shared[RST_SPAWN_MAX_SHARED];	/* src unused */
	/* Locked areas (a fork does not inherit mlock): each instance locks
	 * them again; prot holds the mlock2 flags (MLOCK_ONFAULT or 0). */
	uint32_t nr_spawn_locked;
	uint32_t spawn_boost;		/* instance: its leader runs SCHED_FIFO while parked */
	struct rst_move spawn_locked[RST_SPAWN_MAX_LOCKED];	/* src unused */
};

#endif
