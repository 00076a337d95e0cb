// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The restorer: freestanding code that runs inside the process being
 * restored, after the child (engine/restore/child.c) premapped and filled
 * every area, prepared the descriptors and blocked every signal.
 *
 * It must not use libc, globals, or anything that needs a relocation: the
 * blob is copied to an address chosen at run time and entered at offset 0
 * (gen-blob.py refuses any relocation other than PC-relative ones).
 *
 * Sequence (leader = the thread that enters here, its tid is the pid):
 *   1. unmap everything but the kept ranges (region, [vvar]..[vdso]);
 *   2. move [vvar],[vvar_vclock],[vdso] by vdso_delta (via a scratch spot
 *      when the old and new places overlap);
 *   3. mremap every premapped area to its address, then mprotect it;
 *   4. PR_SET_MM_MAP (exe_fd included), rlimits, itimers, shared pending
 *      signals, clear PR_SET_PDEATHSIG;
 *   5. clone3(set_tid) every other thread onto its restorer stack;
 *   6. every thread sets its own sigaltstack, robust list, clear_child_tid,
 *      rseq, name, scheduling, pending signals and credentials, counts
 *      itself in args->arrived and parks on a futex that never changes;
 *   7. the leader, once all arrived, writes a struct rst_report to the
 *      status pipe, closes it and parks too.
 * The parent then takes every thread over with ptrace, loads its registers
 * and xsave state, unmaps the region and detaches (engine/restore/resume.c).
 */
#include "restorer.h"
#include "sys.h"

#pragma GCC visibility push(hidden)

#define PROT_NONE		0
#define MREMAP_MAYMOVE		1
#define MREMAP_FIXED		2
#define PR_SET_PDEATHSIG	1
#define PR_SET_DUMPABLE		4
#define PR_SET_KEEPCAPS		8
#define PR_SET_NAME		15
#define PR_CAPBSET_DROP		24
#define PR_SET_SECUREBITS	28
#define PR_SET_MM		35
#define PR_SET_MM_MAP		14
#define PR_SET_NO_NEW_PRIVS	38
#define PR_CAP_AMBIENT		47
#define PR_CAP_AMBIENT_RAISE	2
#define SS_ONSTACK		1
#define SS_DISABLE		2
#define FUTEX_WAIT_PRIVATE	128
#define FUTEX_WAKE_PRIVATE	129
#define CLONE_VM		0x00000100
#define CLONE_FS		0x00000200
#define CLONE_FILES		0x00000400
#define CLONE_SIGHAND		0x00000800
#define CLONE_THREAD		0x00010000
#define CLONE_SYSVSEM		0x00040000
#define LINUX_CAPABILITY_VERSION_3	0x20080522

struct k_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

struct k_stack {
	uint64_t ss_sp;
	int32_t ss_flags;
	int32_t pad;
	uint64_t ss_size;
};

struct k_itimerval {
	int64_t it_interval_sec, it_interval_usec;
	int64_t it_value_sec, it_value_usec;
};

struct k_cap_header {
	uint32_t version;
	int32_t pid;
};

struct k_cap_data {
	uint32_t effective, permitted, inheritable;
};

long rst_clone3(struct k_clone_args *cl, unsigned long size,
		void (*fn)(struct rst_args *, unsigned long), struct rst_args *a, unsigned long idx);
void rst_main(struct rst_args *args);

/*
 * Entry (offset 0 of the blob, see restorer.lds): %rdi = args, %rsp = the
 * leader's restorer stack. rst_clone3: the child starts on its new stack
 * with %r12 = fn, %r13/%r14 = its arguments (callee-saved registers are
 * copied by clone3).
 */
asm(".pushsection .text.entry, \"ax\"\n"
    ".globl rst_entry\n"
    ".hidden rst_entry\n"
    "rst_entry:\n"
    "	andq $-16, %rsp\n"
    "	xorl %ebp, %ebp\n"
    "	call rst_main\n"
    "	ud2\n"
    /* The one syscall instruction the parent points the leader at to
     * unmap the region under ptrace (ENG_RESTORER_SYSCALL_OFF). */
    ".globl rst_syscall_insn\n"
    ".hidden rst_syscall_insn\n"
    "rst_syscall_insn:\n"
    "	syscall\n"
    "	ud2\n"
    ".popsection\n"
    ".text\n"
    ".globl rst_clone3\n"
    ".hidden rst_clone3\n"
    "rst_clone3:\n"
    "	pushq %r12\n"
    "	pushq %r13\n"
    "	pushq %r14\n"
    "	movq %rdx, %r12\n"
    "	movq %rcx, %r13\n"
    "	movq %r8, %r14\n"
    "	movl $435, %eax\n"
    "	syscall\n"
    "	testq %rax, %rax\n"
    "	jz 1f\n"
    "	popq %r14\n"
    "	popq %r13\n"
    "	popq %r12\n"
    "	ret\n"
    "1:	xorl %ebp, %ebp\n"
    "	andq $-16, %rsp\n"
    "	movq %r13, %rdi\n"
    "	movq %r14, %rsi\n"
    "	call *%r12\n"
    "	ud2\n");

/* The compiler may emit calls to these for struct copies. */
void *memcpy(void *dst, const void *src, unsigned long n);
void *memset(void *dst, int c, unsigned long n);

void *memcpy(void *dst, const void *src, unsigned long n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	while (n--)
		*d++ = *s++;
	return dst;
}

void *memset(void *dst, int c, unsigned long n)
{
	unsigned char *d = dst;

	while (n--)
		*d++ = (unsigned char)c;
	return dst;
}

static inline void *at(struct rst_args *a, uint64_t off)
{
	return (char *)a + off;
}

static _Noreturn void rst_fail(struct rst_args *a, long err, uint32_t step, uint32_t sub,
			       uint64_t arg)
{
	struct rst_report rep;

	memset(&rep, 0, sizeof(rep));
	rep.err = (int32_t)err;
	rep.step = step;
	rep.sub = sub;
	rep.arg = arg;
	rep.pid = a->pid;
	SYS3(write, a->status_fd, &rep, sizeof(rep));
	for (;;)
		SYS1(exit_group, 1);
}

static void futex_wait(uint32_t *word, uint32_t val)
{
	SYS6(futex, word, FUTEX_WAIT_PRIVATE, val, 0, 0, 0);
}

static void futex_wake(uint32_t *word)
{
	SYS6(futex, word, FUTEX_WAKE_PRIVATE, 0x7fffffff, 0, 0, 0);
}

static _Noreturn void park(struct rst_args *a)
{
	for (;;)
		futex_wait(&a->park, 0);
}

/* Unmap every gap between the kept ranges (sorted, non-overlapping). */
/* Unmap everything but the keep ranges (region, vdso block) and the areas
 * the child mapped at their final addresses already (moves with src ==
 * dst, in increasing address order, as are the keep ranges). */
static void rst_unmap_old(struct rst_args *a)
{
	struct rst_move *mv = at(a, a->moves_off);
	uint64_t cur = 0;
	uint32_t k = 0, m = 0;
	long r;

	for (;;) {
		uint64_t start = a->task_size, len = 0;

		while (m < a->nr_moves && mv[m].src != mv[m].dst)
			m++;
		if (k < a->nr_keep && (m == a->nr_moves || a->keep[k].start <= mv[m].dst)) {
			start = a->keep[k].start;
			len = a->keep[k].len;
			k++;
		} else if (m < a->nr_moves) {
			start = mv[m].dst;
			len = mv[m].len;
			m++;
		}
		if (start > cur) {
			r = SYS2(munmap, cur, start - cur);
			if (r < 0)
				rst_fail(a, r, RST_STEP_UNMAP, 0, cur);
		}
		if (start + len > cur)
			cur = start + len;
		if (start >= a->task_size)
			break;
	}
}

static void rst_move_vdso(struct rst_args *a)
{
	uint64_t bstart, bend;
	int64_t delta = a->vdso_delta;
	long r;

	if (!a->nr_vdso)
		return;
	if (a->unmap_vdso) {
		for (uint32_t i = 0; i < a->nr_vdso; i++)
			SYS2(munmap, a->vdso[i].start, a->vdso[i].len);
		return;
	}
	if (!delta)
		return;
	bstart = a->vdso[0].start;
	bend = a->vdso[a->nr_vdso - 1].start + a->vdso[a->nr_vdso - 1].len;
	if (a->vdso_scratch && bstart + delta < bend && bend + delta > bstart) {
		/* Overlap: park the block on the scratch spot first. */
		for (uint32_t i = 0; i < a->nr_vdso; i++) {
			uint64_t to = a->vdso_scratch + (a->vdso[i].start - bstart);

			r = SYS5(mremap, a->vdso[i].start, a->vdso[i].len, a->vdso[i].len,
				 MREMAP_MAYMOVE | MREMAP_FIXED, to);
			if (r < 0)
				rst_fail(a, r, RST_STEP_VDSO, 0, a->vdso[i].start);
		}
		delta = (int64_t)(bstart + delta) - (int64_t)a->vdso_scratch;
		for (uint32_t i = 0; i < a->nr_vdso; i++)
			a->vdso[i].start = a->vdso_scratch + (a->vdso[i].start - bstart);
	}
	for (uint32_t i = 0; i < a->nr_vdso; i++) {
		r = SYS5(mremap, a->vdso[i].start, a->vdso[i].len, a->vdso[i].len,
			 MREMAP_MAYMOVE | MREMAP_FIXED, a->vdso[i].start + delta);
		if (r < 0)
			rst_fail(a, r, RST_STEP_VDSO, 1, a->vdso[i].start);
	}
}

static void rst_move_areas(struct rst_args *a)
{
	struct rst_move *mv = at(a, a->moves_off);
	long r;

	for (uint32_t i = 0; i < a->nr_moves; i++) {
		if (mv[i].src != mv[i].dst) {
			r = SYS5(mremap, mv[i].src, mv[i].len, mv[i].len,
				 MREMAP_MAYMOVE | MREMAP_FIXED, mv[i].dst);
			if (r < 0)
				rst_fail(a, r, RST_STEP_MOVE, 0, i);
		}
		if (mv[i].fix_prot) {
			r = SYS3(mprotect, mv[i].dst, mv[i].len, mv[i].prot);
			if (r < 0)
				rst_fail(a, r, RST_STEP_PROTECT, 0, i);
		}
	}
}

static void rst_process(struct rst_args *a)
{
	struct rst_rlimit *rl = at(a, a->rlimits_off);
	long r;

	if (a->set_mm) {
		a->mm.auxv = (uint64_t)(unsigned long)a->auxv;
		r = SYS5(prctl, PR_SET_MM, PR_SET_MM_MAP, &a->mm, sizeof(a->mm), 0);
		if (r < 0)
			rst_fail(a, r, RST_STEP_MM, 0, 0);
		SYS1(close, a->mm.exe_fd);
	}
	for (uint32_t i = 0; i < a->nr_rlimits; i++) {
		uint64_t lim[2] = { rl[i].cur, rl[i].max };

		r = SYS4(prlimit64, 0, rl[i].resource, lim, 0);
		if (r < 0)
			rst_fail(a, r, RST_STEP_RLIMIT, 0, rl[i].resource);
	}
	for (uint32_t i = 0; i < a->nr_itimers; i++) {
		struct k_itimerval v = {
			.it_interval_sec = (int64_t)(a->itimers[i].interval_us / 1000000),
			.it_interval_usec = (int64_t)(a->itimers[i].interval_us % 1000000),
			.it_value_sec = (int64_t)(a->itimers[i].value_us / 1000000),
			.it_value_usec = (int64_t)(a->itimers[i].value_us % 1000000),
		};

		r = SYS3(setitimer, a->itimers[i].which, &v, 0);
		if (r < 0)
			rst_fail(a, r, RST_STEP_ITIMER, 0, a->itimers[i].which);
	}
	for (uint32_t i = 0; i < a->nr_shared_pending; i++) {
		int32_t *info = at(a, a->shared_pending_off + (uint64_t)i * RST_SIGINFO_SIZE);

		r = SYS3(rt_sigqueueinfo, a->pid, info[0], info);
		if (r < 0)
			rst_fail(a, r, RST_STEP_SIGQUEUE, 0, a->pid);
	}
	SYS2(prctl, PR_SET_PDEATHSIG, 0);
}

static long rst_creds(struct rst_args *a)
{
	struct rst_creds *c = &a->creds;
	long r;

	if (c->change_ids) {
		r = SYS2(prctl, PR_SET_KEEPCAPS, 1);
		if (r < 0)
			return r;
		r = SYS2(setgroups, c->nr_groups, at(a, c->groups_off));
		if (r < 0)
			return r;
		r = SYS3(setresgid, c->gid, c->egid, c->sgid);
		if (r < 0)
			return r;
		r = SYS3(setresuid, c->uid, c->euid, c->suid);
		if (r < 0)
			return r;
		SYS1(setfsgid, c->fsgid);
		SYS1(setfsuid, c->fsuid);
	}
	if (c->set_caps) {
		struct k_cap_header hdr = { LINUX_CAPABILITY_VERSION_3, 0 };
		struct k_cap_data data[2] = {
			{ (uint32_t)c->cap_eff, (uint32_t)c->cap_prm, (uint32_t)c->cap_inh },
			{ (uint32_t)(c->cap_eff >> 32), (uint32_t)(c->cap_prm >> 32),
			  (uint32_t)(c->cap_inh >> 32) },
		};
		struct k_cap_data cur[2];

		/* A change of ids emptied the effective set (what is permitted
		 * stays: KEEPCAPS): take it back for the privileged steps below
		 * (bounding set, securebits need CAP_SETPCAP). */
		r = SYS2(capget, &hdr, cur);
		if (r < 0)
			return r;
		cur[0].effective = cur[0].permitted;
		cur[1].effective = cur[1].permitted;
		hdr.version = LINUX_CAPABILITY_VERSION_3;
		hdr.pid = 0;
		r = SYS2(capset, &hdr, cur);
		if (r < 0)
			return r;
		for (uint32_t cap = 0; cap <= c->cap_last && cap < 64; cap++) {
			if (!(c->cap_bnd & (1ull << cap))) {
				r = SYS2(prctl, PR_CAPBSET_DROP, cap);
				if (r < 0)
					return r;
			}
		}
		r = SYS2(prctl, PR_SET_SECUREBITS, c->securebits);
		if (r < 0)
			return r;
		r = SYS2(capset, &hdr, data);
		if (r < 0)
			return r;
		for (uint32_t cap = 0; cap <= c->cap_last && cap < 64; cap++) {
			if (c->cap_amb & (1ull << cap)) {
				r = SYS5(prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
				if (r < 0)
					return r;
			}
		}
	}
	if (c->no_new_privs) {
		r = SYS5(prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

static void thread_error(struct rst_args *a, long err, uint32_t step, uint32_t sub, uint64_t arg)
{
	if (__atomic_compare_exchange_n(&a->thread_err, &(int32_t){ 0 }, (int32_t)err, 0,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
		a->thread_step = step;
		a->thread_sub = sub;
		a->thread_arg = arg;
	}
}

/* Per-thread state; returns 0 or records the failure in args. */
static void rst_thread_setup(struct rst_args *a, struct rst_thread *t)
{
	long r = 0;
	uint32_t sub = RST_SUB_NONE;

	if (t->flags & RST_TF_ALTSTACK) {
		struct k_stack ss = {
			.ss_sp = t->ss_sp,
			.ss_flags = (int32_t)(t->ss_flags & ~(uint32_t)SS_ONSTACK),
			.ss_size = t->ss_size,
		};

		sub = RST_SUB_ALTSTACK;
		r = SYS2(sigaltstack, &ss, 0);
		if (r < 0)
			goto fail;
	}
	if (t->flags & RST_TF_ROBUST) {
		sub = RST_SUB_ROBUST;
		r = SYS2(set_robust_list, t->robust_list, t->robust_len);
		if (r < 0)
			goto fail;
	}
	if (t->flags & RST_TF_TIDADDR)
		SYS1(set_tid_address, t->clear_child_tid);
	if (t->flags & RST_TF_RSEQ) {
		sub = RST_SUB_RSEQ;
		r = SYS4(rseq, t->rseq_addr, t->rseq_len, 0, t->rseq_sig);
		if (r < 0)
			goto fail;
	}
	if (t->flags & RST_TF_COMM) {
		sub = RST_SUB_NAME;
		r = SYS2(prctl, PR_SET_NAME, t->comm);
		if (r < 0)
			goto fail;
	}
	if (t->flags & RST_TF_SCHED) {
		int32_t prio = t->sched_prio;

		sub = RST_SUB_SCHED;
		r = SYS3(sched_setscheduler, 0, t->sched_policy, &prio);
		if (r < 0)
			goto fail;
	}
	if (t->flags & RST_TF_NICE) {
		sub = RST_SUB_NICE;
		r = SYS3(setpriority, 0, 0, t->nice);
		if (r < 0)
			goto fail;
	}
	for (uint32_t i = 0; i < t->nr_pending; i++) {
		int32_t *info = at(a, t->pending_off + (uint64_t)i * RST_SIGINFO_SIZE);

		r = SYS4(rt_tgsigqueueinfo, a->pid, t->tid, info[0], info);
		if (r < 0) {
			thread_error(a, r, RST_STEP_SIGQUEUE, 0, t->tid);
			return;
		}
	}
	if (a->has_creds) {
		r = rst_creds(a);
		if (r < 0) {
			thread_error(a, r, RST_STEP_CREDS, 0, t->tid);
			return;
		}
	}
	return;
fail:
	thread_error(a, r, RST_STEP_THREAD, sub, t->tid);
}

static void rst_arrive(struct rst_args *a)
{
	__atomic_add_fetch(&a->arrived, 1, __ATOMIC_SEQ_CST);
	futex_wake(&a->arrived);
}

static void rst_thread_main(struct rst_args *a, unsigned long idx)
{
	struct rst_thread *t = (struct rst_thread *)at(a, a->threads_off) + idx;

	rst_thread_setup(a, t);
	/* Spawn: born under its leader's SCHED_FIFO (spawn.h, rst_spawn_boost),
	 * the thread keeps it while parked, so that the start's ptrace
	 * interrupt stops it at once; the caller sets SCHED_OTHER back before
	 * it runs the program (engine/restore/spawn.c, drop_boost). */
	rst_arrive(a);
	park(a);
}

static _Noreturn void rst_finish(struct rst_args *a);

/* Spawn: the template's command loop and each instance's init (spawn.h). */
#include "spawn.h"

void rst_main(struct rst_args *a)
{
	if (a->magic != RST_MAGIC || a->version != RST_VERSION)
		rst_fail(a, -22, RST_STEP_CHECK, 0, a->magic);

	rst_unmap_old(a);
	rst_move_vdso(a);
	rst_move_areas(a);
	if (a->spawn)
		rst_spawn_template(a);	/* never returns; instances run rst_finish */
	rst_finish(a);
}

/* Process-wide state, threads, report, park (a spawned instance starts here). */
static _Noreturn void rst_finish(struct rst_args *a)
{
	struct rst_thread *th = at(a, a->threads_off);
	struct rst_report rep;
	uint32_t n;
	long r;

	rst_process(a);

	for (uint32_t i = 1; i < a->nr_threads; i++) {
		uint64_t tid = th[i].tid;
		struct k_clone_args cl = {
			.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
				 CLONE_THREAD | CLONE_SYSVSEM,
			.stack = th[i].stack_top - RST_STACK_SIZE,
			.stack_size = RST_STACK_SIZE,
			.set_tid = (uint64_t)(unsigned long)&tid,
			.set_tid_size = 1,
		};

		r = rst_clone3(&cl, sizeof(cl), rst_thread_main, a, i);
		if (r < 0)
			rst_fail(a, r, RST_STEP_CLONE, 0, tid);
	}
	rst_thread_setup(a, &th[0]);
	rst_arrive(a);

	while ((n = __atomic_load_n(&a->arrived, __ATOMIC_SEQ_CST)) < a->nr_threads)
		futex_wait(&a->arrived, n);
	if (a->thread_err)
		rst_fail(a, a->thread_err, a->thread_step, a->thread_sub, a->thread_arg);
	if (a->set_dumpable) {
		r = SYS2(prctl, PR_SET_DUMPABLE, a->dumpable);
		if (r < 0)
			rst_fail(a, r, RST_STEP_CREDS, 0, a->pid);
	}

	memset(&rep, 0, sizeof(rep));
	rep.region_start = a->region_start;
	rep.region_len = a->region_len;
	rep.premap_ns = a->premap_ns;
	rep.fill_ns = a->fill_ns;
	rep.prepare_ns = a->prepare_ns;
	rep.pid = a->pid;
	if (a->spawn)
		rst_spawn_park(a, &rep);	/* spawn.h: report, descriptors, park */
	SYS3(write, a->status_fd, &rep, sizeof(rep));
	SYS1(close, a->status_fd);
	park(a);
}
