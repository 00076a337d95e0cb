// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Per-thread state (ptrace from outside, plus sigaltstack and
 * clear_child_tid by remote syscall) and the process-wide state only a
 * syscall inside the process can read (sigactions, itimers, brk, a few
 * prctl values).
 *
 * The dump maps a 12 KiB scratch area (rwx, anonymous) in the target for
 * the duration of phase 3 and unmaps it after; its layout:
 *
 *   0     ..  255   eng_remote_blob (code run by batches, see dump.h)
 *   256   .. 8191   struct eng_remote_call[], the batch's table
 *   8192  results written by the kernel:
 *     +0    .. 2047   struct kernel_sigaction[64] (32 bytes, signal n at n-1)
 *     +2048 .. 2143   struct itimerval[3]
 *     +2200 .. 2223   stack_t (sigaltstack)
 *     +2240 .. 2247   clear_child_tid (PR_GET_TID_ADDRESS)
 *     +2256 .. 2259   PR_GET_CHILD_SUBREAPER
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <elf.h>
#include <linux/ptrace.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "dump.h"

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION	0x420f
#endif
#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE	0x202
#endif

/* Kernel-internal restart codes (include/linux/errno.h), never seen by
 * user space except in a stopped thread's rax. */
#define ERESTARTSYS		512
#define ERESTARTNOINTR		513
#define ERESTARTNOHAND		514
#define ERESTART_RESTARTBLOCK	516

#define SCRATCH_CODE		0		/* eng_remote_blob */
#define SCRATCH_TABLE		256		/* struct eng_remote_call[] */
#define SCRATCH_MAX_CALLS	((8192 - SCRATCH_TABLE) / 64)
#define SCRATCH_RES		8192		/* results page: */
#define SCRATCH_SIGACT		(SCRATCH_RES + 0)
#define SCRATCH_ITIMER		(SCRATCH_RES + 2048)
#define SCRATCH_SIGALTSTACK	(SCRATCH_RES + 2200)
#define SCRATCH_TIDADDR		(SCRATCH_RES + 2240)
#define SCRATCH_SUBREAPER	(SCRATCH_RES + 2256)
#define SCRATCH_SIZE		12288

#define REMOTE_RETRIES		8

struct rseq_config {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

struct kernel_sigaction_raw {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

static int scratch_read(struct eng_dump_ctx *ctx, void *buf)
{
	struct iovec local = { buf, 4096 };
	struct iovec remote = { (void *)(uintptr_t)(ctx->scratch + SCRATCH_RES), 4096 };

	if (process_vm_readv(ctx->pid, &local, 1, &remote, 1, 0) != 4096)
		return err_wrap(-errno ?: -EIO, "cannot read the scratch page of process %d",
				ctx->pid);
	return 0;
}

/* A remote syscall whose failure fails the dump. */
static int rsys(struct eng_remote *rs, long nr, long *ret, unsigned long a1, unsigned long a2,
		unsigned long a3, unsigned long a4, unsigned long a5, unsigned long a6,
		const char *what)
{
	long v;
	int r = eng_remote_syscall(rs, nr, &v, a1, a2, a3, a4, a5, a6);

	if (r < 0)
		return r;
	if (v < 0 && v > -4096)
		return err_set((int)-v, "remote %s in thread %d failed: %s", what, rs->tid,
			       strerror((int)-v));
	if (ret)
		*ret = v;
	return 0;
}

/* A list of remote calls, run as one batch or one by one. */
struct call_list {
	struct eng_remote_call v[SCRATCH_MAX_CALLS];
	const char *what[SCRATCH_MAX_CALLS];
	size_t n;
};

static void cl_add(struct call_list *cl, const char *what, long nr, uint64_t a1, uint64_t a2,
		   uint64_t a3, uint64_t a4)
{
	struct eng_remote_call *c = &cl->v[cl->n];

	*c = (struct eng_remote_call){ .nr = nr, .args = { a1, a2, a3, a4 } };
	cl->what[cl->n++] = what;
}

static int cl_run(struct eng_dump_ctx *ctx, struct eng_remote *rs, struct call_list *cl,
		  bool batch)
{
	int r;

	if (batch) {
		r = eng_remote_batch(rs, ctx->scratch + SCRATCH_CODE, ctx->scratch + SCRATCH_TABLE,
				     cl->v, cl->n);
		if (r < 0)
			return r;
	} else {
		for (size_t i = 0; i < cl->n; i++) {
			const uint64_t *a = cl->v[i].args;
			long v;

			r = eng_remote_syscall(rs, (long)cl->v[i].nr, &v, a[0], a[1], a[2], a[3], a[4],
					       a[5]);
			if (r < 0)
				return r;
			cl->v[i].ret = v;
		}
	}
	for (size_t i = 0; i < cl->n; i++) {
		int64_t v = cl->v[i].ret;

		if (v < 0 && v > -4096)
			return err_set((int)-v, "remote %s in thread %d failed: %s", cl->what[i],
				       rs->tid, strerror((int)-v));
	}
	return 0;
}

/* Per-thread: sigaltstack and clear_child_tid, results in the scratch page. */
static void thread_queries(struct eng_dump_ctx *ctx, struct call_list *cl)
{
	cl_add(cl, "sigaltstack", SYS_sigaltstack, 0, ctx->scratch + SCRATCH_SIGALTSTACK, 0, 0);
	cl_add(cl, "prctl(PR_GET_TID_ADDRESS)", SYS_prctl, PR_GET_TID_ADDRESS,
	       ctx->scratch + SCRATCH_TIDADDR, 0, 0);
}

static void thread_take_queries(EngThread *th, const uint8_t *page)
{
	uint64_t sp, size, tidaddr;
	int32_t flags;

	memcpy(&sp, page + SCRATCH_SIGALTSTACK - SCRATCH_RES, 8);
	memcpy(&flags, page + SCRATCH_SIGALTSTACK - SCRATCH_RES + 8, 4);
	memcpy(&size, page + SCRATCH_SIGALTSTACK - SCRATCH_RES + 16, 8);
	memcpy(&tidaddr, page + SCRATCH_TIDADDR - SCRATCH_RES, 8);
	th->has_ss_sp = th->has_ss_size = th->has_ss_flags = true;
	th->ss_sp = sp;
	th->ss_size = size;
	th->ss_flags = (uint32_t)flags;
	th->has_clear_child_tid = true;
	th->clear_child_tid = tidaddr;
}

struct leader_results {
	long brk, dumpable, thp_disable, securebits;
	uint64_t sigs;			/* bit n-1: sigaction of n queried */
};

/* The leader's session: scratch page, process-wide and its own queries. */
static int remote_leader(struct eng_dump_ctx *ctx, struct leader_results *res)
{
	_cleanup_free_ struct call_list *cl = calloc(1, sizeof(*cl));
	struct eng_remote rs;
	size_t i_brk, i_dump, i_thp, i_sec;
	bool batch;
	int r;

	if (!cl)
		return -ENOMEM;
	r = eng_remote_begin(&rs, ctx->pid, ctx->syscall_ip);
	if (r < 0)
		return r;
	if (!ctx->scratch) {
		size_t len = eng_remote_blob_end - eng_remote_blob;
		struct iovec local = { (void *)eng_remote_blob, len }, remote;
		long v;

		r = eng_remote_syscall(&rs, SYS_mmap, &v, 0, SCRATCH_SIZE,
				       PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
				       (unsigned long)-1, 0);
		if (r < 0)
			goto out;
		/* W^X enforced (PR_SET_MDWE): no batches, data pages only. */
		if (v == -EACCES || v == -EPERM) {
			ctx->no_batch = true;
			r = eng_remote_syscall(&rs, SYS_mmap, &v, 0, SCRATCH_SIZE,
					       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
					       (unsigned long)-1, 0);
			if (r < 0)
				goto out;
		}
		if (v < 0 && v > -4096) {
			r = err_set((int)-v, "remote mmap in process %d failed: %s", ctx->pid,
				    strerror((int)-v));
			goto out;
		}
		ctx->scratch = (uint64_t)v;
		remote = (struct iovec){ (void *)(uintptr_t)ctx->scratch, len };
		if (process_vm_writev(ctx->pid, &local, 1, &remote, 1, 0) != (ssize_t)len) {
			r = err_wrap(-errno ?: -EIO, "cannot write into process %d", ctx->pid);
			goto out;
		}
	}
	for (int sig = 1; sig <= 64; sig++)
		if (res->sigs & (1ull << (sig - 1)))
			cl_add(cl, "rt_sigaction", SYS_rt_sigaction, sig, 0,
			       ctx->scratch + SCRATCH_SIGACT + (sig - 1) * 32, 8);
	for (int which = 0; which < 3; which++)
		cl_add(cl, "getitimer", SYS_getitimer, which,
		       ctx->scratch + SCRATCH_ITIMER + which * 32, 0, 0);
	i_brk = cl->n;
	cl_add(cl, "brk", SYS_brk, 0, 0, 0, 0);
	i_dump = cl->n;
	cl_add(cl, "prctl(PR_GET_DUMPABLE)", SYS_prctl, PR_GET_DUMPABLE, 0, 0, 0);
	i_thp = cl->n;
	cl_add(cl, "prctl(PR_GET_THP_DISABLE)", SYS_prctl, PR_GET_THP_DISABLE, 0, 0, 0);
	i_sec = cl->n;
	cl_add(cl, "prctl(PR_GET_SECUREBITS)", SYS_prctl, PR_GET_SECUREBITS, 0, 0, 0);
	cl_add(cl, "prctl(PR_GET_CHILD_SUBREAPER)", SYS_prctl, PR_GET_CHILD_SUBREAPER,
	       ctx->scratch + SCRATCH_SUBREAPER, 0, 0);
	thread_queries(ctx, cl);
	batch = !ctx->no_batch && eng_remote_batch_ok(ctx->pid, ctx->status.sig_ign);
	r = cl_run(ctx, &rs, cl, batch);
	if (r >= 0) {
		res->brk = cl->v[i_brk].ret;
		res->dumpable = cl->v[i_dump].ret;
		res->thp_disable = cl->v[i_thp].ret;
		res->securebits = cl->v[i_sec].ret;
	}
out:
	if (rs.active) {
		int r2 = eng_remote_end(&rs);

		if (r >= 0)
			r = r2;
	}
	return r;
}

static int remote_thread(struct eng_dump_ctx *ctx, pid_t tid)
{
	struct call_list cl = { .n = 0 };
	struct eng_remote rs;
	int r, r2;

	r = eng_remote_begin(&rs, tid, ctx->syscall_ip);
	if (r < 0)
		return r;
	thread_queries(ctx, &cl);
	r = cl_run(ctx, &rs, &cl, !ctx->no_batch && eng_remote_batch_ok(tid, ctx->status.sig_ign));
	r2 = eng_remote_end(&rs);
	return r < 0 ? r : r2;
}

/* Unmap the scratch page (also on failure paths). */
int eng_dump_remote_cleanup(struct eng_dump_ctx *ctx)
{
	int r = 0;

	for (int i = 0; ctx->scratch && i < REMOTE_RETRIES; i++) {
		struct eng_remote rs;
		int r2;

		r = eng_remote_begin(&rs, ctx->pid, ctx->syscall_ip);
		if (r < 0)
			return r;
		r = rsys(&rs, SYS_munmap, NULL, ctx->scratch, SCRATCH_SIZE, 0, 0, 0, 0, "munmap");
		r2 = eng_remote_end(&rs);
		if (r == -EINTR)
			continue;
		if (r >= 0)
			r = r2;
		if (r >= 0)
			ctx->scratch = 0;
		break;
	}
	return r;
}

int eng_dump_remote_state(struct eng_dump_ctx *ctx)
{
	struct leader_results res = {};
	EngProcess *proc = ctx->proc;
	_cleanup_free_ uint8_t *page = malloc(4096);
	int r = 0;

	if (!page)
		return -ENOMEM;
	/* Signals not SIG_DFL, and SIGCHLD whose flags matter even when SIG_DFL. */
	res.sigs = ctx->status.sig_cgt | ctx->status.sig_ign | (1ull << (SIGCHLD - 1));
	res.sigs &= ~((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)));

	for (int i = 0; i < REMOTE_RETRIES; i++) {
		r = remote_leader(ctx, &res);
		if (r != -EINTR)
			break;
		if (ctx->stats)
			ctx->stats->remote_retries++;
	}
	if (r < 0)
		return r == -EINTR ? err_set(EAGAIN, "process %d kept receiving signals", ctx->pid)
				   : r;
	r = scratch_read(ctx, page);
	if (r < 0)
		return r;
	thread_take_queries(proc->threads[0], page);

	/* Process-wide results. */
	proc->sigactions = calloc(64, sizeof(*proc->sigactions));
	if (!proc->sigactions)
		return -ENOMEM;
	for (int sig = 1; sig <= 64; sig++) {
		struct kernel_sigaction_raw ka;
		EngSigaction *sa;

		if (!(res.sigs & (1ull << (sig - 1))))
			continue;
		memcpy(&ka, page + SCRATCH_SIGACT - SCRATCH_RES + (sig - 1) * 32, sizeof(ka));
		sa = malloc(sizeof(*sa));
		if (!sa)
			return -ENOMEM;
		eng_sigaction__init(sa);
		sa->sig = sig;
		sa->handler = ka.handler;
		sa->flags = ka.flags;
		sa->restorer = ka.restorer;
		sa->mask = ka.mask;
		proc->sigactions[proc->n_sigactions++] = sa;
	}
	proc->itimers = calloc(3, sizeof(*proc->itimers));
	if (!proc->itimers)
		return -ENOMEM;
	for (int which = 0; which < 3; which++) {
		int64_t tv[4];
		EngItimer *it;

		memcpy(tv, page + SCRATCH_ITIMER - SCRATCH_RES + which * 32, sizeof(tv));
		it = malloc(sizeof(*it));
		if (!it)
			return -ENOMEM;
		eng_itimer__init(it);
		it->which = which;
		it->interval_us = (uint64_t)tv[0] * 1000000ull + (uint64_t)tv[1];
		it->value_us = (uint64_t)tv[2] * 1000000ull + (uint64_t)tv[3];
		proc->itimers[proc->n_itimers++] = it;
	}
	proc->mm->brk = (uint64_t)res.brk;
	proc->mm->has_dumpable = true;
	proc->mm->dumpable = res.dumpable != 0;
	proc->mm->has_thp_disable = true;
	proc->mm->thp_disable = res.thp_disable != 0;
	proc->creds->has_securebits = true;
	proc->creds->securebits = (uint32_t)res.securebits;
	{
		int32_t reaper;

		memcpy(&reaper, page + SCRATCH_SUBREAPER - SCRATCH_RES, sizeof(reaper));
		proc->has_child_subreaper = true;
		proc->child_subreaper = reaper != 0;
	}

	for (size_t t = 1; t < ctx->threads.nr; t++) {
		for (int i = 0; i < REMOTE_RETRIES; i++) {
			r = remote_thread(ctx, ctx->threads.v[t].tid);
			if (r != -EINTR)
				break;
			if (ctx->stats)
				ctx->stats->remote_retries++;
		}
		if (r < 0)
			return r == -EINTR ? err_set(EAGAIN, "thread %d kept receiving signals",
						     ctx->threads.v[t].tid)
					   : r;
		r = scratch_read(ctx, page);
		if (r < 0)
			return r;
		thread_take_queries(proc->threads[t], page);
	}
	return eng_dump_remote_cleanup(ctx);
}

static size_t xsave_buf_size(void)
{
	unsigned a, b, c, d;

	/* CPUID 0xd.0 ECX: XSAVE area size for every supported component. */
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(0));
	return MAX((size_t)c, (size_t)4096);
}

/*
 * A thread frozen in an interrupted syscall is rewound so that it simply
 * re-executes it: rax = orig_rax, rip back over the 2-byte syscall insn.
 * -ERESTART_RESTARTBLOCK is rewound to the ORIGINAL syscall too (its
 * argument registers are intact), not to restart_syscall: a restored
 * thread has no restart_block, so restart_syscall would return -EINTR.
 */
static bool regs_rewind(struct user_regs_struct *regs)
{
	long ax = (long)regs->rax;

	if ((long)regs->orig_rax < 0)
		return false;
	switch (-ax) {
	case ERESTARTSYS:
	case ERESTARTNOINTR:
	case ERESTARTNOHAND:
	case ERESTART_RESTARTBLOCK:
		regs->rax = regs->orig_rax;
		regs->rip -= 2;
		regs->orig_rax = (unsigned long long)-1;
		return true;
	default:
		return false;
	}
}

static int thread_pending(pid_t tid, bool shared, EngSiginfo ***ret_v, size_t *ret_n)
{
	struct ptrace_peeksiginfo_args args = {
		.off = 0, .flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0, .nr = 32,
	};
	uint8_t si[32][128];
	EngSiginfo **v = NULL;
	size_t n = 0;

	for (;;) {
		long got = ptrace(PTRACE_PEEKSIGINFO, tid, &args, si);

		if (got < 0) {
			int r = -errno;

			for (size_t i = 0; i < n; i++)
				eng_siginfo__free_unpacked(v[i], NULL);
			free(v);
			return err_wrap(r, "cannot read the pending signals of thread %d", tid);
		}
		if (got == 0)
			break;
		EngSiginfo **nv = realloc(v, (n + got) * sizeof(*v));

		if (!nv)
			goto nomem;
		v = nv;
		for (long i = 0; i < got; i++) {
			EngSiginfo *s = malloc(sizeof(*s));
			void *raw = malloc(128);

			if (!s || !raw) {
				free(s);
				free(raw);
				goto nomem;
			}
			eng_siginfo__init(s);
			memcpy(raw, si[i], 128);
			s->raw.data = raw;
			s->raw.len = 128;
			v[n++] = s;
		}
		args.off += got;
		if (args.off > (1u << 20)) {	/* far above any RLIMIT_SIGPENDING */
			for (size_t i = 0; i < n; i++)
				eng_siginfo__free_unpacked(v[i], NULL);
			free(v);
			return err_set(E2BIG, "thread %d has more than %u pending signals", tid,
				       1u << 20);
		}
	}
	*ret_v = v;
	*ret_n = n;
	return 0;
nomem:
	for (size_t i = 0; i < n; i++)
		eng_siginfo__free_unpacked(v[i], NULL);
	free(v);
	return -ENOMEM;
}

static int thread_state(struct eng_dump_ctx *ctx, pid_t tid, EngThread *th, void *xbuf,
			size_t xlen)
{
	struct user_regs_struct regs;
	struct rseq_config rseq = {};
	struct iovec iov = { xbuf, xlen };
	struct sched_param sp;
	uint64_t mask;
	void *head;
	size_t len;
	char path[96];
	_cleanup_free_ char *comm = NULL;
	int r, prio;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &regs) < 0)
		return err_wrap(-errno, "cannot read the registers of thread %d", tid);
	th->has_in_syscall = true;
	th->in_syscall = regs_rewind(&regs);
	th->regs.data = malloc(sizeof(regs));
	if (!th->regs.data)
		return -ENOMEM;
	memcpy(th->regs.data, &regs, sizeof(regs));
	th->regs.len = sizeof(regs);

	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_X86_XSTATE, &iov) < 0)
		return err_wrap(-errno, "cannot read the xsave state of thread %d", tid);
	if (iov.iov_len < 576)
		return err_set(EIO, "xsave state of thread %d is too short (%zu)", tid,
			       iov.iov_len);
	th->xsave.data = malloc(iov.iov_len);
	if (!th->xsave.data)
		return -ENOMEM;
	memcpy(th->xsave.data, xbuf, iov.iov_len);
	th->xsave.len = iov.iov_len;
	th->has_xfeatures = true;
	memcpy(&th->xfeatures, (uint8_t *)xbuf + 512, 8);	/* XSTATE_BV */
	if (!ctx->image->has_xsave_size || ctx->image->xsave_size < iov.iov_len) {
		ctx->image->has_xsave_size = true;
		ctx->image->xsave_size = iov.iov_len;
	}

	if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(mask), &mask) < 0)
		return err_wrap(-errno, "cannot read the signal mask of thread %d", tid);
	th->sigmask = mask;

	r = thread_pending(tid, false, &th->pending, &th->n_pending);
	if (r < 0)
		return r;

	r = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, (void *)sizeof(rseq), &rseq);
	if (r < 0 && errno != EIO && errno != EINVAL)
		return err_wrap(-errno, "cannot read the rseq registration of thread %d", tid);
	if (r > 0 && rseq.rseq_abi_pointer) {
		th->has_rseq_addr = th->has_rseq_len = th->has_rseq_sig = true;
		th->rseq_addr = rseq.rseq_abi_pointer;
		th->rseq_len = rseq.rseq_abi_size;
		th->rseq_sig = rseq.signature;
	}

	if (syscall(SYS_get_robust_list, tid, &head, &len) < 0)
		return err_wrap(-errno, "cannot read the robust list of thread %d", tid);
	th->has_robust_list = th->has_robust_len = true;
	th->robust_list = (uint64_t)(uintptr_t)head;
	th->robust_len = len;

	snprintf(path, sizeof(path), "task/%d/comm", tid);
	r = read_file_at(ctx->proc_fd, path, &comm, NULL);
	if (r < 0)
		return err_wrap(r, "cannot read /proc/%d/%s", ctx->pid, path);
	comm[strcspn(comm, "\n")] = '\0';
	th->comm = TAKE_PTR(comm);

	r = sched_getscheduler(tid);
	if (r < 0)
		return err_wrap(-errno, "cannot read the scheduling policy of thread %d", tid);
	th->has_sched_policy = true;
	th->sched_policy = r;
	if (sched_getparam(tid, &sp) < 0)
		return err_wrap(-errno, "cannot read the scheduling parameters of thread %d", tid);
	th->has_sched_prio = true;
	th->sched_prio = sp.sched_priority;
	{
		cpu_set_t set;
		int n = (int)syscall(SYS_sched_getaffinity, tid, sizeof(set), &set);

		/* The raw syscall returns the kernel's mask size in bytes. */
		if (n > 0) {
			th->cpu_affinity.data = malloc(n);
			if (!th->cpu_affinity.data)
				return -ENOMEM;
			memcpy(th->cpu_affinity.data, &set, n);
			th->cpu_affinity.len = n;
			th->has_cpu_affinity = true;
		}
	}
	errno = 0;
	prio = getpriority(PRIO_PROCESS, tid);
	if (prio == -1 && errno)
		return err_wrap(-errno, "cannot read the nice value of thread %d", tid);
	th->has_nice = true;
	th->nice = prio;
	return 0;
}

int eng_dump_thread_state(struct eng_dump_ctx *ctx)
{
	size_t xlen = xsave_buf_size();
	_cleanup_free_ void *xbuf = malloc(xlen);
	int r;

	if (!xbuf)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->threads.nr; i++) {
		r = thread_state(ctx, ctx->threads.v[i].tid, ctx->proc->threads[i], xbuf, xlen);
		if (r < 0)
			return r;
	}
	return thread_pending(ctx->pid, true, &ctx->proc->shared_pending,
			      &ctx->proc->n_shared_pending);
}

/* Allocate proc->threads[] with their tids (filled by the collectors). */
int eng_dump_threads_alloc(struct eng_dump_ctx *ctx)
{
	EngProcess *proc = ctx->proc;

	proc->threads = calloc(ctx->threads.nr, sizeof(*proc->threads));
	if (!proc->threads)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->threads.nr; i++) {
		EngThread *th = malloc(sizeof(*th));

		if (!th)
			return -ENOMEM;
		eng_thread__init(th);
		th->tid = ctx->threads.v[i].tid;
		proc->threads[proc->n_threads++] = th;
		/* In a nested pid namespace the image holds the inner tids. */
		if (ctx->status.ns_depth > 1) {
			_cleanup_free_ char *buf = NULL;
			struct eng_proc_status *st;
			char rel[64];
			int r;

			snprintf(rel, sizeof(rel), "task/%d/status", ctx->threads.v[i].tid);
			r = read_file_at(ctx->proc_fd, rel, &buf, NULL);
			if (r < 0)
				return err_wrap(r, "cannot read /proc/%d/%s", ctx->pid, rel);
			st = malloc(sizeof(*st));
			if (!st)
				return -ENOMEM;
			r = eng_dump_parse_status(buf, st);
			if (r == 0 && st->ns_depth == ctx->status.ns_depth)
				th->tid = st->ns_pid;
			else
				r = err_set(EINVAL, "cannot find the namespace tid of thread %d",
					    ctx->threads.v[i].tid);
			free(st);
			if (r < 0)
				return r;
		}
	}
	return 0;
}
