// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * threads: 8 threads, each with __thread variables (a pattern derived from its
 * index, a counter) and a name. Each counts in its TLS and publishes the count.
 * Each also blocks its own real-time signal SIGRTMIN+4+i, has one instance of it
 * pending (tgkill to itself), and its own sigaltstack. A ninth thread sleeps in
 * pthread_cond_wait (a futex wait) across the cut.
 * After go: every thread checks its own TLS pattern, tid, name, rseq
 * registration, blocked mask, pending set and sigaltstack; unblocking delivers
 * its signal once, to itself, on its alternate stack; its counter must still
 * advance; the waiter wakes on a signal of the condition; then all are joined
 * (which needs the kernel's clear_child_tid futex wake in the restored threads).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cr.h"

#define NR 8

static __thread uint64_t tls_pattern[64];
static __thread volatile uint64_t tls_count;
static __thread unsigned tls_index;

struct slot {
	volatile uint64_t published;
	volatile pid_t tid;
	volatile int phase;	/* 0 running, 1 go seen and checked, 2 post-check counting done */
	uint64_t count_at_go;
} __attribute__((aligned(64)));

static struct slot slots[NR];
static volatile int go_all;
static pthread_barrier_t started;
static volatile pid_t delivered_to[NR];
static volatile int delivered_count[NR];
static volatile int delivered_on_altstack[NR];
static unsigned char altstacks[NR][1 << 15];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int cond_flag, waiter_woke;
static volatile int waiter_waiting;

static void on_rt(int sig)
{
	unsigned i = (unsigned)(sig - SIGRTMIN - 4);
	unsigned char here;

	if (i < NR) {
		delivered_to[i] = (pid_t)syscall(SYS_gettid);
		delivered_count[i]++;
		delivered_on_altstack[i] = &here >= altstacks[i] && &here < altstacks[i] + sizeof(altstacks[i]);
	}
}

static void *waiter(void *arg)
{
	pthread_mutex_lock(&mu);
	waiter_waiting = 1;
	while (!cond_flag)
		pthread_cond_wait(&cond, &mu);
	waiter_woke = 1;
	pthread_mutex_unlock(&mu);
	return NULL;
}

static void *worker(void *arg)
{
	unsigned idx = (unsigned)(uintptr_t)arg;
	char name[16], got[16] = "";
	struct slot *s = &slots[idx];

	tls_index = idx;
	for (unsigned i = 0; i < 64; i++)
		tls_pattern[i] = cr_mix64(idx * 1000 + i);
	snprintf(name, sizeof(name), "crt-%u", idx);
	prctl(PR_SET_NAME, name);
	s->tid = (pid_t)syscall(SYS_gettid);
	{
		stack_t ss = { .ss_sp = altstacks[idx], .ss_size = sizeof(altstacks[idx]) };
		sigset_t m;

		sigaltstack(&ss, NULL);
		sigemptyset(&m);
		sigaddset(&m, SIGRTMIN + 4 + (int)idx);
		pthread_sigmask(SIG_BLOCK, &m, NULL);
		syscall(SYS_tgkill, getpid(), s->tid, SIGRTMIN + 4 + (int)idx);
	}
	pthread_barrier_wait(&started);
	while (!go_all) {
		tls_count++;
		s->published = tls_count;
		if ((tls_count & 0xffff) == 0)
			sched_yield();
	}
	/* Checks on this thread's own state. */
	cr_check(tls_index == idx, "thread %u: TLS index is %u", idx, tls_index);
	for (unsigned i = 0; i < 64; i++)
		if (tls_pattern[i] != cr_mix64(idx * 1000 + i)) {
			cr_check(false, "thread %u: TLS pattern word %u is %#llx", idx, i,
				 (unsigned long long)tls_pattern[i]);
			break;
		}
	cr_check(tls_count == s->published, "thread %u: TLS count %llu, published %llu", idx,
		 (unsigned long long)tls_count, (unsigned long long)s->published);
	cr_check(syscall(SYS_gettid) == s->tid, "thread %u: tid %ld, was %d", idx,
		 (long)syscall(SYS_gettid), (int)s->tid);
	prctl(PR_GET_NAME, got);
	cr_check(!strcmp(got, name), "thread %u: name \"%s\", was \"%s\"", idx, got, name);
	cr_check_rseq(name);
	cr_check(sched_getcpu() >= 0, "thread %u: sched_getcpu failed", idx);
	{
		stack_t ss;
		sigset_t m, p, own;

		sigaltstack(NULL, &ss);
		cr_check(ss.ss_sp == altstacks[idx] && ss.ss_size == sizeof(altstacks[idx]),
			 "thread %u: sigaltstack %p+%zu", idx, ss.ss_sp, ss.ss_size);
		pthread_sigmask(SIG_BLOCK, NULL, &m);
		sigpending(&p);
		for (unsigned j = 0; j < NR; j++) {
			int sig = SIGRTMIN + 4 + (int)j;

			cr_check(sigismember(&m, sig) == (j == idx), "thread %u: signal %d blocked: %d", idx,
				 sig, sigismember(&m, sig));
			cr_check(sigismember(&p, sig) == (j == idx), "thread %u: signal %d pending: %d", idx,
				 sig, sigismember(&p, sig));
		}
		cr_check(delivered_count[idx] == 0, "thread %u: its signal was delivered while blocked", idx);
		sigemptyset(&own);
		sigaddset(&own, SIGRTMIN + 4 + (int)idx);
		pthread_sigmask(SIG_UNBLOCK, &own, NULL);
		cr_check(delivered_count[idx] == 1 && delivered_to[idx] == s->tid,
			 "thread %u: its pending signal delivered %d times, to %d", idx,
			 delivered_count[idx], (int)delivered_to[idx]);
		cr_check(delivered_on_altstack[idx], "thread %u: handler not on its alternate stack", idx);
	}
	s->count_at_go = tls_count;
	s->phase = 1;
	/* Still counting: 200k more increments. */
	for (int i = 0; i < 200000; i++)
		s->published = ++tls_count;
	s->phase = 2;
	return (void *)(uintptr_t)(0x1000 + idx);
}

int main(int argc, char **argv)
{
	pthread_t th[NR], wt;
	uint64_t before[NR];
	pid_t main_tid = (pid_t)syscall(SYS_gettid);
	struct sigaction sa = { .sa_handler = on_rt, .sa_flags = SA_ONSTACK | SA_RESTART };

	cr_init(argc, argv);
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < NR; i++)
		sigaction(SIGRTMIN + 4 + i, &sa, NULL);
	pthread_barrier_init(&started, NULL, NR + 1);
	if (pthread_create(&wt, NULL, waiter, NULL))
		cr_fail("pthread_create waiter");
	for (unsigned i = 0; i < NR; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i))
			cr_fail("pthread_create %u", i);
	pthread_barrier_wait(&started);
	while (!waiter_waiting)
		cr_sleep_ms(1);
	cr_ready_tamper((const void *)&slots[3].tid, sizeof(pid_t));
	cr_wait();

	/* Every thread still advances its counter after go. The deadline is long:
	 * on a loaded machine (many copies of us spinning on 2 CPUs) a thread
	 * that just yielded may wait many time slices before it runs again. */
	for (unsigned i = 0; i < NR; i++)
		before[i] = slots[i].published;
	for (uint64_t t0 = cr_now_ns(); cr_now_ns() - t0 < 10000000000ULL;) {
		unsigned moved = 0;

		for (unsigned i = 0; i < NR; i++)
			moved += slots[i].published > before[i];
		if (moved == NR)
			break;
		cr_sleep_ms(1);
	}
	for (unsigned i = 0; i < NR; i++)
		cr_check(slots[i].published > before[i], "thread %u: counter stuck at %llu for 10 s after go",
			 i, (unsigned long long)before[i]);
	go_all = 1;
	for (unsigned i = 0; i < NR; i++) {
		void *ret = NULL;

		if (pthread_join(th[i], &ret))
			cr_fail("pthread_join %u", i);
		cr_check(ret == (void *)(uintptr_t)(0x1000 + i), "thread %u returned %p", i, ret);
		cr_check(slots[i].phase == 2, "thread %u did not finish its post-go count", i);
		cr_check(slots[i].published == slots[i].count_at_go + 200000,
			 "thread %u: counted %llu after go, expected 200000", i,
			 (unsigned long long)(slots[i].published - slots[i].count_at_go));
	}
	pthread_mutex_lock(&mu);
	cr_check(!waiter_woke, "the condition waiter woke before being signalled");
	cond_flag = 1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&mu);
	pthread_join(wt, NULL);
	cr_check(waiter_woke, "the condition waiter did not wake");
	cr_check(syscall(SYS_gettid) == main_tid, "main tid %ld, was %d",
		 (long)syscall(SYS_gettid), (int)main_tid);
	cr_check_ids();
	cr_check_rseq("main thread");
	cr_finish();
}
