// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * timer: sleeping timers that must still fire after the cut. Armed when ready,
 * 3 s ahead (the cut comes well before): an ITIMER_REAL one-shot (SIGALRM), a
 * thread in a relative nanosleep() with the usual EINTR-retry loop, and a thread
 * in an absolute clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) that must
 * return 0 at or after its deadline. After go: all three complete within 10 s;
 * SIGALRM fires exactly once; if the heartbeat saw a cut, none of them had
 * completed at that moment (they really slept across it).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "cr.h"

#define DELAY_NS 3000000000ULL

static volatile int alarms, rel_done, abs_done, abs_ret = -1;
static uint64_t deadline_ns;

static void on_alarm(int sig)
{
	alarms++;
}

static void *rel_sleeper(void *arg)
{
	struct timespec ts = { DELAY_NS / 1000000000ULL, 0 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	rel_done = 1;
	return NULL;
}

static void *abs_sleeper(void *arg)
{
	struct timespec ts = { (time_t)(deadline_ns / 1000000000ULL), (long)(deadline_ns % 1000000000ULL) };

	abs_ret = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	abs_done = cr_now_ns() >= deadline_ns ? 1 : 2;
	return NULL;
}

int main(int argc, char **argv)
{
	struct itimerval it = { .it_value = { DELAY_NS / 1000000000ULL, 0 } }, now;
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	sigset_t s;
	pthread_t t1, t2;
	int fired_before_cut = -1;
	unsigned seen = 0;
	uint64_t t0;

	cr_init(argc, argv);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	/* Signals for the main thread only. */
	sigemptyset(&s);
	sigaddset(&s, SIGALRM);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	deadline_ns = cr_now_ns() + DELAY_NS;
	pthread_create(&t1, NULL, rel_sleeper, NULL);
	pthread_create(&t2, NULL, abs_sleeper, NULL);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	cr_ready_tamper((const void *)&alarms, sizeof(alarms));
	while (!cr_poll()) {
		if (cr_restored_seen() != seen) {
			seen = cr_restored_seen();
			if (fired_before_cut < 0)
				fired_before_cut = alarms + rel_done + abs_done;
		}
		cr_sleep_ms(1);
	}
	cr_check(fired_before_cut <= 0, "timers had already fired when the process came back (%d)",
		 fired_before_cut);
	getitimer(ITIMER_REAL, &now);
	cr_check(alarms == 1 || now.it_value.tv_sec > 0 || now.it_value.tv_usec > 0,
		 "ITIMER_REAL neither pending nor fired");
	cr_check(now.it_value.tv_sec <= 3, "ITIMER_REAL remaining %ld s, more than armed",
		 (long)now.it_value.tv_sec);
	t0 = cr_now_ns();
	while ((!alarms || !rel_done || !abs_done) && cr_now_ns() - t0 < 10000000000ULL)
		cr_sleep_ms(5);
	cr_check(alarms == 1, "SIGALRM fired %d times, expected once", alarms);
	cr_check(rel_done, "relative nanosleep did not complete");
	cr_check(abs_done == 1 && abs_ret == 0, "absolute clock_nanosleep: done %d ret %d", abs_done,
		 abs_ret);
	cr_sleep_ms(100);
	cr_check(alarms == 1, "SIGALRM fired again (%d)", alarms);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	cr_check_ids();
	cr_finish();
}
