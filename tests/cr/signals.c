// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * signals: handlers, blocked and pending signals across the cut.
 * Before: handlers with distinct flags and masks; SIGPIPE ignored; an
 * alternate signal stack; SIGUSR2, SIGRTMIN+2 and SIGRTMIN+3 blocked; SIGUSR2
 * sent to the process (shared pending), SIGRTMIN+2 queued twice with values 111
 * and 222 (shared, queued in order), SIGRTMIN+3 sent to the thread (private).
 * After go: the same dispositions, flags, masks, blocked set, altstack and
 * pending set; after unblocking, each pending signal is delivered exactly once
 * (the RT one twice, values in order, si_code SI_QUEUE from our own pid) and the
 * SA_ONSTACK handler runs on the alternate stack.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cr.h"

#ifndef SA_RESTORER
#define SA_RESTORER 0x04000000
#endif

static volatile int usr2_count, rt2_count, rt3_count, rt3_on_altstack;
static volatile int rt2_values[4], rt2_codes[4], rt2_pids[4];
static unsigned char altstack[1 << 16];

static void on_usr2(int sig)
{
	usr2_count++;
}

static void on_rt2(int sig, siginfo_t *si, void *uc)
{
	if (rt2_count < 4) {
		rt2_values[rt2_count] = si->si_value.sival_int;
		rt2_codes[rt2_count] = si->si_code;
		rt2_pids[rt2_count] = si->si_pid;
	}
	rt2_count++;
}

static void on_rt3(int sig, siginfo_t *si, void *uc)
{
	unsigned char here;

	rt3_on_altstack = &here >= altstack && &here < altstack + sizeof(altstack);
	rt3_count++;
}

struct want {
	int sig;
	void *handler;
	int flags;	/* the flags we set (the kernel adds SA_RESTORER) */
	int mask_sig;	/* one signal in sa_mask, 0 none */
};

int main(int argc, char **argv)
{
	const int rt2 = SIGRTMIN + 2, rt3 = SIGRTMIN + 3;
	struct want wants[] = {
		{ SIGUSR2, (void *)on_usr2, SA_RESTART, SIGHUP },
		{ rt2, (void *)on_rt2, SA_SIGINFO | SA_RESTART, 0 },
		{ rt3, (void *)on_rt3, SA_SIGINFO | SA_ONSTACK | SA_RESETHAND, SIGWINCH },
	};
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) }, ss_now;
	sigset_t block, now, pend;
	union sigval v;

	cr_init(argc, argv);
	for (unsigned i = 0; i < 3; i++) {
		struct sigaction sa = { .sa_flags = wants[i].flags };

		if (wants[i].flags & SA_SIGINFO)
			sa.sa_sigaction = wants[i].handler;
		else
			sa.sa_handler = wants[i].handler;
		sigemptyset(&sa.sa_mask);
		if (wants[i].mask_sig)
			sigaddset(&sa.sa_mask, wants[i].mask_sig);
		if (sigaction(wants[i].sig, &sa, NULL) < 0)
			cr_fail("sigaction %d: %m", wants[i].sig);
	}
	signal(SIGPIPE, SIG_IGN);
	if (sigaltstack(&ss, NULL) < 0)
		cr_fail("sigaltstack: %m");
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, rt2);
	sigaddset(&block, rt3);
	sigprocmask(SIG_BLOCK, &block, NULL);
	kill(getpid(), SIGUSR2);
	v.sival_int = 111;
	sigqueue(getpid(), rt2, v);
	v.sival_int = 222;
	sigqueue(getpid(), rt2, v);
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), rt3);
	cr_ready_tamper((const void *)&rt2_count, sizeof(rt2_count));
	cr_wait();

	/* Nothing was delivered while blocked. */
	cr_check(usr2_count == 0 && rt2_count == 0 && rt3_count == 0,
		 "handlers ran while blocked: usr2 %d rt2 %d rt3 %d", usr2_count, rt2_count, rt3_count);
	for (unsigned i = 0; i < 3; i++) {
		struct sigaction sa;
		void *h;

		sigaction(wants[i].sig, NULL, &sa);
		h = (wants[i].flags & SA_SIGINFO) ? (void *)sa.sa_sigaction : (void *)sa.sa_handler;
		cr_check(h == wants[i].handler, "signal %d: handler %p, expected %p", wants[i].sig, h,
			 wants[i].handler);
		cr_check((sa.sa_flags & ~SA_RESTORER) == wants[i].flags,
			 "signal %d: flags %#x, expected %#x", wants[i].sig,
			 sa.sa_flags & ~SA_RESTORER, wants[i].flags);
		for (int s = 1; s < 32; s++)
			cr_check(sigismember(&sa.sa_mask, s) == (s == wants[i].mask_sig),
				 "signal %d: sa_mask has %d = %d", wants[i].sig, s,
				 sigismember(&sa.sa_mask, s));
	}
	{
		struct sigaction sa;

		sigaction(SIGPIPE, NULL, &sa);
		cr_check(sa.sa_handler == SIG_IGN, "SIGPIPE no longer ignored");
		sigaction(SIGINT, NULL, &sa);
		cr_check(sa.sa_handler == SIG_DFL, "SIGINT no longer default");
	}
	sigprocmask(SIG_BLOCK, NULL, &now);
	for (int s = 1; s < SIGRTMAX; s++)
		cr_check(sigismember(&now, s) == sigismember(&block, s),
			 "blocked mask: signal %d is %d", s, sigismember(&now, s));
	sigpending(&pend);
	cr_check(sigismember(&pend, SIGUSR2) == 1, "SIGUSR2 not pending");
	cr_check(sigismember(&pend, rt2) == 1, "SIGRTMIN+2 not pending");
	cr_check(sigismember(&pend, rt3) == 1, "SIGRTMIN+3 not pending");
	sigaltstack(NULL, &ss_now);
	cr_check(ss_now.ss_sp == altstack && ss_now.ss_size == sizeof(altstack) &&
		 !(ss_now.ss_flags & SS_DISABLE),
		 "sigaltstack is %p+%zu flags %#x", ss_now.ss_sp, ss_now.ss_size, ss_now.ss_flags);

	sigprocmask(SIG_UNBLOCK, &block, NULL);
	cr_check(usr2_count == 1, "SIGUSR2 delivered %d times after unblocking", usr2_count);
	cr_check(rt2_count == 2, "SIGRTMIN+2 delivered %d times after unblocking", rt2_count);
	cr_check(rt2_values[0] == 111 && rt2_values[1] == 222,
		 "SIGRTMIN+2 values %d, %d; expected 111, 222", rt2_values[0], rt2_values[1]);
	for (int i = 0; i < 2 && i < rt2_count; i++)
		cr_check(rt2_codes[i] == SI_QUEUE && rt2_pids[i] == getpid(),
			 "SIGRTMIN+2 #%d: si_code %d si_pid %d", i, rt2_codes[i], rt2_pids[i]);
	cr_check(rt3_count == 1, "SIGRTMIN+3 delivered %d times after unblocking", rt3_count);
	cr_check(rt3_on_altstack, "SA_ONSTACK handler did not run on the alternate stack");
	{
		struct sigaction sa;

		/* SA_RESETHAND: the disposition went back to default on delivery. */
		sigaction(rt3, NULL, &sa);
		cr_check(sa.sa_handler == SIG_DFL, "SA_RESETHAND did not reset SIGRTMIN+3");
	}
	sigpending(&pend);
	for (int s = 1; s < SIGRTMAX; s++)
		cr_check(!sigismember(&pend, s), "signal %d still pending", s);
	/* Handlers still work for new signals. */
	raise(SIGUSR2);
	cr_check(usr2_count == 2, "a new SIGUSR2 was delivered %d times", usr2_count - 1);
	cr_check_ids();
	cr_finish();
}
