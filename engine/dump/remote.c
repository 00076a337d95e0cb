// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Remote syscalls in a ptrace-stopped thread (the protocol is described
 * above struct eng_remote in dump.h).
 *
 * Why PTRACE_SYSCALL and not code injection: nothing is written into the
 * target (no breakpoint, no blob, no signal mask change), the syscall
 * instruction is borrowed from the [vdso] (or any executable mapping) and
 * only the registers are changed, then put back. Why end in a fresh
 * interrupt stop: a thread frozen inside an interrupted syscall holds
 * rax = -ERESTART* and orig_rax = nr; the kernel rewinds it only when it
 * leaves get_signal() without a signal to deliver. Ending the session in
 * get_signal() again, with those registers, keeps that path intact.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "common/compiler.h"
#include "common/err.h"
#include "dump.h"

#define SYSCALL_STOP	(SIGTRAP | 0x80)	/* PTRACE_O_TRACESYSGOOD */

int eng_remote_begin(struct eng_remote *rs, pid_t tid, uint64_t syscall_ip)
{
	memset(rs, 0, sizeof(*rs));
	rs->tid = tid;
	rs->syscall_ip = syscall_ip;
	if (ptrace(PTRACE_GETREGS, tid, NULL, &rs->saved) < 0)
		return err_wrap(-errno, "cannot read the registers of thread %d", tid);
	return 0;
}

/* Back to an interrupt stop with the saved registers, letting any signal
 * that shows up on the way be delivered (with the saved registers, so the
 * kernel's restart rules apply to the original syscall). */
static int remote_reinterrupt(struct eng_remote *rs, int sig)
{
	int st, r;

	if (ptrace(PTRACE_SETREGS, rs->tid, NULL, &rs->saved) < 0)
		return -errno;
	if (ptrace(PTRACE_INTERRUPT, rs->tid, NULL, NULL) < 0)
		return -errno;
	if (ptrace(PTRACE_CONT, rs->tid, NULL, (void *)(long)sig) < 0)
		return -errno;
	for (int n = 0; n < 64; n++) {
		r = eng_dump_wait_stop(rs->tid, &st);
		if (r < 0)
			return r;
		if ((st >> 16) == PTRACE_EVENT_STOP)
			return 0;
		/* Not ours to consume: deliver it, the interrupt is still pending. */
		if (ptrace(PTRACE_CONT, rs->tid, NULL,
			   (void *)(long)((st >> 16) || WSTOPSIG(st) == SYSCALL_STOP ? 0
									  : WSTOPSIG(st))) < 0)
			return -errno;
	}
	return -EAGAIN;
}

/* The thread stopped for something else than our syscall: give up the
 * session without losing the event. */
static int remote_abandon(struct eng_remote *rs, int st)
{
	int r;

	rs->active = false;
	if ((st >> 16) == PTRACE_EVENT_STOP) {
		/* Group stop or interrupt: already inside get_signal(). */
		if (ptrace(PTRACE_SETREGS, rs->tid, NULL, &rs->saved) < 0)
			return err_wrap(-errno, "cannot restore the registers of thread %d",
					rs->tid);
		return -EINTR;
	}
	r = remote_reinterrupt(rs, (st >> 16) ? 0 : WSTOPSIG(st));
	if (r < 0)
		return err_wrap(r, "cannot restore thread %d after a signal", rs->tid);
	return -EINTR;
}

static int remote_step(struct eng_remote *rs)
{
	int st, r;

	if (ptrace(PTRACE_SYSCALL, rs->tid, NULL, NULL) < 0)
		return err_wrap(-errno, "cannot resume thread %d", rs->tid);
	r = eng_dump_wait_stop(rs->tid, &st);
	if (r < 0) {
		rs->active = false;
		return err_set(r, "thread %d exited during a remote syscall", rs->tid);
	}
	if (WSTOPSIG(st) != SYSCALL_STOP || (st >> 16))
		return remote_abandon(rs, st);
	return 0;
}

int eng_remote_syscall(struct eng_remote *rs, long nr, long *ret, unsigned long a1,
		       unsigned long a2, unsigned long a3, unsigned long a4,
		       unsigned long a5, unsigned long a6)
{
	struct user_regs_struct regs = rs->saved;
	int r;

	regs.rip = rs->syscall_ip;
	regs.rax = nr;
	regs.orig_rax = -1;	/* no syscall restart on our registers */
	regs.rdi = a1;
	regs.rsi = a2;
	regs.rdx = a3;
	regs.r10 = a4;
	regs.r8 = a5;
	regs.r9 = a6;
	if (ptrace(PTRACE_SETREGS, rs->tid, NULL, &regs) < 0)
		return err_wrap(-errno, "cannot set the registers of thread %d", rs->tid);
	rs->active = true;

	r = remote_step(rs);		/* to the syscall-entry stop */
	if (r < 0)
		return r;
	r = remote_step(rs);		/* to the syscall-exit stop */
	if (r < 0)
		return r;
	if (ptrace(PTRACE_GETREGS, rs->tid, NULL, &regs) < 0)
		return err_wrap(-errno, "cannot read the registers of thread %d", rs->tid);
	*ret = (long)regs.rax;
	return 0;
}

int eng_remote_end(struct eng_remote *rs)
{
	int r;

	if (!rs->active)
		return 0;
	rs->active = false;
	r = remote_reinterrupt(rs, 0);
	if (r < 0)
		return err_wrap(r, "cannot restore thread %d", rs->tid);
	return 0;
}

__asm__(".pushsection .rodata\n"
	".globl eng_remote_blob\n"
	"eng_remote_blob:\n"
	"1:	test %r12, %r12\n"
	"	jz 2f\n"
	"	mov 0(%rbx), %rax\n"
	"	mov 8(%rbx), %rdi\n"
	"	mov 16(%rbx), %rsi\n"
	"	mov 24(%rbx), %rdx\n"
	"	mov 32(%rbx), %r10\n"
	"	mov 40(%rbx), %r8\n"
	"	mov 48(%rbx), %r9\n"
	"	syscall\n"
	"	mov %rax, 56(%rbx)\n"
	"	add $64, %rbx\n"
	"	dec %r12\n"
	"	jmp 1b\n"
	"2:	int3\n"
	"	jmp 2b\n"
	".globl eng_remote_blob_end\n"
	"eng_remote_blob_end:\n"
	".popsection\n");

bool eng_remote_batch_ok(pid_t tid, uint64_t sig_ign)
{
	uint64_t mask;
	const uint64_t trap = 1ull << (SIGTRAP - 1);

	if (sig_ign & trap)
		return false;
	if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(mask), &mask) < 0)
		return false;
	return !(mask & trap);
}

int eng_remote_batch(struct eng_remote *rs, uint64_t code, uint64_t table,
		     struct eng_remote_call *calls, size_t nr)
{
	/* rip after the int3 that ends the blob */
	const uint64_t end_ip = code + (uint64_t)(eng_remote_blob_end - eng_remote_blob) - 2;
	struct user_regs_struct regs = rs->saved;
	size_t len = nr * sizeof(*calls);
	struct iovec local = { calls, len }, remote = { (void *)(uintptr_t)table, len };
	int st, r;

	if (process_vm_writev(rs->tid, &local, 1, &remote, 1, 0) != (ssize_t)len)
		return err_wrap(-errno ?: -EIO, "cannot write the call table into thread %d",
				rs->tid);
	regs.rip = code;
	regs.rbx = table;
	regs.r12 = nr;
	regs.orig_rax = -1;	/* no syscall restart on our registers */
	if (ptrace(PTRACE_SETREGS, rs->tid, NULL, &regs) < 0)
		return err_wrap(-errno, "cannot set the registers of thread %d", rs->tid);
	rs->active = true;
	if (ptrace(PTRACE_CONT, rs->tid, NULL, NULL) < 0)
		return err_wrap(-errno, "cannot resume thread %d", rs->tid);
	r = eng_dump_wait_stop(rs->tid, &st);
	if (r < 0) {
		rs->active = false;
		return err_set(r, "thread %d exited during remote syscalls", rs->tid);
	}
	if ((st >> 16) || WSTOPSIG(st) != SIGTRAP ||
	    ptrace(PTRACE_GETREGS, rs->tid, NULL, &regs) < 0 || regs.rip != end_ip)
		return remote_abandon(rs, st);
	/* Our int3: back to the saved registers, staying in this stop. */
	if (ptrace(PTRACE_SETREGS, rs->tid, NULL, &rs->saved) < 0)
		return err_wrap(-errno, "cannot restore the registers of thread %d", rs->tid);
	rs->active = false;
	if (process_vm_readv(rs->tid, &local, 1, &remote, 1, 0) != (ssize_t)len)
		return err_wrap(-errno ?: -EIO, "cannot read the call table of thread %d", rs->tid);
	return 0;
}

static int find_in(pid_t pid, uint64_t start, uint64_t end, uint64_t *ret_ip)
{
	size_t len = MIN(end - start, (uint64_t)(4u << 20));
	_cleanup_free_ uint8_t *buf = malloc(len);
	struct iovec local = { buf, len }, remote = { (void *)start, len };
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (n < 2)
		return -ENOENT;
	for (ssize_t i = 0; i + 1 < n; i++) {
		if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
			*ret_ip = start + i;
			return 0;
		}
	}
	return -ENOENT;
}

int eng_remote_find_syscall(pid_t pid, const struct eng_proc_map *maps, size_t nr_maps,
			    uint64_t *ret_ip)
{
	for (size_t i = 0; i < nr_maps; i++)
		if (strcmp(maps[i].path, "[vdso]") == 0 && find_in(pid, maps[i].start, maps[i].end,
								   ret_ip) == 0)
			return 0;
	for (size_t i = 0; i < nr_maps; i++) {
		if ((maps[i].prot & (PROT_READ | PROT_EXEC)) != (PROT_READ | PROT_EXEC) ||
		    maps[i].path[0] == '[')
			continue;
		if (find_in(pid, maps[i].start, maps[i].end, ret_ip) == 0)
			return 0;
	}
	return err_set(ENOENT, "no syscall instruction found in process %d", pid);
}
