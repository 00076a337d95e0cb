// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The last step of a restore, in the parent: once every thread of the
 * restored process parked in the restorer (futex wait, all signals
 * blocked), take each over with PTRACE_SEIZE + PTRACE_INTERRUPT, then
 *   - leader: run munmap(region) at the blob's syscall instruction and stop
 *     at the syscall exit, so that nothing of ours remains mapped;
 *   - every thread: PTRACE_SETREGS (general registers, fs/gs base, with
 *     orig_rax = -1 so that the interrupted futex wait is not restarted),
 *     PTRACE_SETREGSET NT_X86_XSTATE (the saved xsave area as is: FPU, SSE,
 *     AVX, AVX-512...), PTRACE_SETSIGMASK;
 *   - detach: each thread continues exactly where it was checkpointed.
 * Why ptrace and not rt_sigreturn from the restorer: a process cannot unmap
 * the code it runs and then return to it, and no instruction of ours may
 * remain; the kernel's syscall-exit stop gives the one safe point. One
 * stop per thread, no per-page traffic.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>
#include <elf.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "restore.h"
#include "restorer/restorer-blob.h"

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE	0x202
#endif
#ifndef PTRACE_SETSIGMASK
#define PTRACE_SETSIGMASK 0x420b
#endif

struct rthread {
	pid_t tid;		/* in our pid namespace */
	const EngThread *t;
	bool seized;
};

static int wait_stop(pid_t tid, int *ret_status)
{
	int st;

	for (;;) {
		pid_t r = waitpid(tid, &st, __WALL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set(errno, "waitpid(%d): %m", tid);
		break;
	}
	if (!WIFSTOPPED(st))
		return err_set(ESRCH, "thread %d %s while being resumed", tid,
			       WIFSIGNALED(st) ? "was killed" : "exited");
	*ret_status = st;
	return 0;
}

int eng_restore_match_tids(pid_t pid, const EngProcess *proc, pid_t *tids)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	size_t n = 0;
	int r = 0;

	memset(tids, 0, proc->n_threads * sizeof(*tids));
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return err_set(errno, "cannot list the threads of %d: %m", pid);
	while ((de = readdir(d))) {
		_cleanup_free_ char *status = NULL;
		char sp[96];
		pid_t tid, inner;
		size_t k;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		tid = atoi(de->d_name);
		snprintf(sp, sizeof(sp), "/proc/%d/task/%d/status", pid, tid);
		r = read_file(sp, &status, NULL);
		if (r >= 0)
			r = eng_restore_parse_nspid(status, &inner);
		if (r < 0) {
			r = err_set(-r, "cannot read the pid of thread %d in its namespace", tid);
			break;
		}
		for (k = 0; k < proc->n_threads; k++)
			if (proc->threads[k]->tid == (uint32_t)inner)
				break;
		if (k == proc->n_threads || tids[k]) {
			r = err_set(EEXIST, "unexpected thread %d (%d in its namespace)", tid, inner);
			break;
		}
		tids[k] = tid;
		n++;
	}
	closedir(d);
	if (r < 0)
		return r;
	if (n != proc->n_threads)
		return err_set(ESRCH, "%zu of %zu threads found", n, proc->n_threads);
	return 0;
}

static int list_threads(pid_t pid, const EngProcess *proc, struct rthread *out)
{
	_cleanup_free_ pid_t *tids = calloc(proc->n_threads + 1, sizeof(*tids));
	int r;

	if (!tids)
		return -ENOMEM;
	r = eng_restore_match_tids(pid, proc, tids);
	if (r < 0)
		return r;
	for (size_t k = 0; k < proc->n_threads; k++) {
		out[k].tid = tids[k];
		out[k].t = proc->threads[k];
	}
	return 0;
}

static int load_thread(const struct rthread *rt)
{
	struct user_regs_struct regs;
	struct iovec iov = { rt->t->xsave.data, rt->t->xsave.len };
	uint64_t mask = rt->t->sigmask;

	memcpy(&regs, rt->t->regs.data, sizeof(regs));
	regs.orig_rax = (unsigned long long)-1;
	if (ptrace(PTRACE_SETREGS, rt->tid, NULL, &regs) < 0)
		return err_set(errno, "thread %u: cannot set its registers: %m", rt->t->tid);
	if (ptrace(PTRACE_SETREGSET, rt->tid, (void *)NT_X86_XSTATE, &iov) < 0)
		return err_set(errno, "thread %u: cannot set its xsave state (%zu bytes): %m",
			       rt->t->tid, rt->t->xsave.len);
	if (ptrace(PTRACE_SETSIGMASK, rt->tid, (void *)sizeof(mask), &mask) < 0)
		return err_set(errno, "thread %u: cannot set its signal mask: %m", rt->t->tid);
	return 0;
}

/* The leader runs munmap(region) at the blob's syscall instruction. */
static int unmap_region(const struct rthread *leader, const struct rst_report *rep)
{
	struct user_regs_struct regs;
	int st;

	if (ptrace(PTRACE_GETREGS, leader->tid, NULL, &regs) < 0)
		return err_set(errno, "cannot read the leader's registers: %m");
	regs.rip = rep->region_start + ENG_RESTORER_SYSCALL_OFF;
	regs.rax = SYS_munmap;
	regs.orig_rax = (unsigned long long)-1;
	regs.rdi = rep->region_start;
	regs.rsi = rep->region_len;
	if (ptrace(PTRACE_SETREGS, leader->tid, NULL, &regs) < 0)
		return err_set(errno, "cannot set the leader's registers: %m");
	for (int stop = 0; stop < 2; stop++) {
		if (ptrace(PTRACE_SYSCALL, leader->tid, NULL, NULL) < 0)
			return err_set(errno, "PTRACE_SYSCALL: %m");
		int r = wait_stop(leader->tid, &st);
		if (r < 0)
			return r;
		if (WSTOPSIG(st) != (SIGTRAP | 0x80))
			return err_set(EPROTO, "the leader stopped with signal %d instead of at "
				       "the munmap syscall", WSTOPSIG(st));
	}
	if (ptrace(PTRACE_GETREGS, leader->tid, NULL, &regs) < 0)
		return err_set(errno, "cannot read the leader's registers: %m");
	if ((long)regs.rax != 0)
		return err_set((int)-(long)regs.rax, "munmap of the restore region failed: %s",
			       strerror((int)-(long)regs.rax));
	return 0;
}

static int resume(pid_t pid, const EngProcess *proc, const struct rst_report *rep, bool stopped);

int eng_restore_resume(pid_t pid, const EngProcess *proc, const struct rst_report *rep)
{
	return resume(pid, proc, rep, false);
}

int eng_restore_resume_stopped(pid_t pid, const EngProcess *proc, const struct rst_report *rep)
{
	return resume(pid, proc, rep, true);
}

static int resume(pid_t pid, const EngProcess *proc, const struct rst_report *rep, bool stopped)
{
	_cleanup_free_ struct rthread *th = calloc(proc->n_threads, sizeof(*th));
	size_t leader = 0;
	int r, st;

	if (!th)
		return -ENOMEM;
	r = list_threads(pid, proc, th);
	if (r < 0)
		return r;
	for (size_t i = 0; i < proc->n_threads; i++)
		if (proc->threads[i]->tid == proc->pid)
			leader = i;
	for (size_t i = 0; i < proc->n_threads; i++) {
		if (proc->threads[i]->regs.len != sizeof(struct user_regs_struct))
			return err_set(EBADMSG, "thread %u: registers of %zu bytes",
				       proc->threads[i]->tid, proc->threads[i]->regs.len);
		if (ptrace(PTRACE_SEIZE, th[i].tid, NULL,
			   (void *)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)) < 0)
			return err_set(errno, "cannot seize thread %d: %m", th[i].tid);
		th[i].seized = true;
		if (ptrace(PTRACE_INTERRUPT, th[i].tid, NULL, NULL) < 0)
			return err_set(errno, "cannot interrupt thread %d: %m", th[i].tid);
	}
	for (size_t i = 0; i < proc->n_threads; i++) {
		r = wait_stop(th[i].tid, &st);
		if (r < 0)
			return r;
	}
	r = unmap_region(&th[leader], rep);
	if (r < 0)
		return r;
	for (size_t i = 0; i < proc->n_threads; i++) {
		r = load_thread(&th[i]);
		if (r < 0)
			return r;
	}
	/* Queued while every thread is in a ptrace stop: no tracer sees it,
	 * each thread enters the group stop as soon as it is detached. */
	if (stopped && kill(pid, SIGSTOP) < 0)
		return err_set(errno, "cannot stop process %d: %m", pid);
	/* The leader last: the others are already running its program. */
	for (size_t i = 0; i < proc->n_threads; i++) {
		if (i == leader)
			continue;
		if (ptrace(PTRACE_DETACH, th[i].tid, NULL, NULL) < 0)
			return err_set(errno, "cannot detach thread %d: %m", th[i].tid);
	}
	if (ptrace(PTRACE_DETACH, th[leader].tid, NULL, NULL) < 0)
		return err_set(errno, "cannot detach thread %d: %m", th[leader].tid);
	return 0;
}
