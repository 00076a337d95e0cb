/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef ENGINE_RESTORER_SYS_H
#define ENGINE_RESTORER_SYS_H

/*
 * The restorer's own syscall layer: x86-64 `syscall` in inline asm, no libc,
 * no errno. Every wrapper returns the raw kernel value (-errno on failure).
 */

#include <stdint.h>

#define __NR_read		0
#define __NR_write		1
#define __NR_close		3
#define __NR_mprotect		10
#define __NR_munmap		11
#define __NR_rt_sigaction	13
#define __NR_rt_sigprocmask	14
#define __NR_mremap		25
#define __NR_madvise		28
#define __NR_setitimer		38
#define __NR_getpid		39
#define __NR_exit		60
#define __NR_setresuid		117
#define __NR_setresgid		119
#define __NR_setfsuid		122
#define __NR_setfsgid		123
#define __NR_setgroups		116
#define __NR_capget		125
#define __NR_capset		126
#define __NR_rt_sigqueueinfo	129
#define __NR_sigaltstack	131
#define __NR_setpriority	141
#define __NR_sched_setscheduler	144
#define __NR_prctl		157
#define __NR_gettid		186
#define __NR_futex		202
#define __NR_set_tid_address	218
#define __NR_exit_group		231
#define __NR_rt_tgsigqueueinfo	297
#define __NR_prlimit64		302
#define __NR_set_robust_list	273
#define __NR_rseq		334
#define __NR_clone3		435

static inline long sys_call0(long nr)
{
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr) : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call1(long nr, long a1)
{
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1) : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call2(long nr, long a1, long a2)
{
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2)
		     : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call3(long nr, long a1, long a2, long a3)
{
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3)
		     : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call4(long nr, long a1, long a2, long a3, long a4)
{
	register long r10 asm("r10") = a4;
	long ret;

	asm volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
		     : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call5(long nr, long a1, long a2, long a3, long a4, long a5)
{
	register long r10 asm("r10") = a4;
	register long r8 asm("r8") = a5;
	long ret;

	asm volatile("syscall" : "=a"(ret)
		     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8)
		     : "rcx", "r11", "memory");
	return ret;
}

static inline long sys_call6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	register long r10 asm("r10") = a4;
	register long r8 asm("r8") = a5;
	register long r9 asm("r9") = a6;
	long ret;

	asm volatile("syscall" : "=a"(ret)
		     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
		     : "rcx", "r11", "memory");
	return ret;
}

#define SYS0(n)				sys_call0(__NR_##n)
#define SYS1(n, a)			sys_call1(__NR_##n, (long)(a))
#define SYS2(n, a, b)			sys_call2(__NR_##n, (long)(a), (long)(b))
#define SYS3(n, a, b, c)		sys_call3(__NR_##n, (long)(a), (long)(b), (long)(c))
#define SYS4(n, a, b, c, d)		sys_call4(__NR_##n, (long)(a), (long)(b), (long)(c), (long)(d))
#define SYS5(n, a, b, c, d, e)		sys_call5(__NR_##n, (long)(a), (long)(b), (long)(c), \
						  (long)(d), (long)(e))
#define SYS6(n, a, b, c, d, e, f)	sys_call6(__NR_##n, (long)(a), (long)(b), (long)(c), \
						  (long)(d), (long)(e), (long)(f))

#endif
