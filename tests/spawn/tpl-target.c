// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * tpl-target THREADS DIR [ignsegv]: the program template-test checkpoints,
 * then runs as parked and started instances of a spawn template. With
 * ignsegv it ignores SIGSEGV (spawn's start then takes its slow path: the
 * leader's own fault would reset that disposition).
 *
 * It locks 16 pages (mlock), starts THREADS workers that each count (one
 * counter per thread, every 2 ms, only while gettid() is the tid it had
 * before the cut), and writes DIR/ready: "<pid> <address of ticks[]>".
 * Its main thread then loops every 2 ms, counting too (ticks[0]), and once
 * descriptor 10 exists (passed at the instance's start) it writes
 * "hello <getpid>\n" to fd 1 and serves fd 10 (one datagram per command):
 *   "get"      -> "<getpid> <value> <nthreads> <ticks[0]> ... <ticks[N]> <SIGSEGV ignored>"
 *   "set V"    -> value = V, "ok"
 * SIGTERM, SIGINT and SIGHUP keep their default action.
 */
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS	64
#define SERVE_FD	10

static volatile uint64_t ticks[MAX_THREADS + 1];
static pid_t tids[MAX_THREADS + 1];
static volatile uint64_t value = 1111;
static char locked[16 * 4096] __attribute__((aligned(4096)));

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0)
		;
}

static void *worker(void *arg)
{
	size_t i = (size_t)(uintptr_t)arg;

	tids[i] = (pid_t)syscall(SYS_gettid);
	for (;;) {
		if ((pid_t)syscall(SYS_gettid) == tids[i])
			ticks[i]++;
		sleep_ms(2);
	}
	return NULL;
}

static void serve(int nthreads)
{
	char req[64], rep[64 * 24 + 64];
	ssize_t n = recv(SERVE_FD, req, sizeof(req) - 1, MSG_DONTWAIT);
	int len;

	if (n <= 0)
		return;
	req[n] = 0;
	if (!strcmp(req, "get")) {
		len = snprintf(rep, sizeof(rep), "%ld %llu %d", (long)syscall(SYS_getpid),
			       (unsigned long long)value, nthreads);
		struct sigaction sa;

		for (int i = 0; i <= nthreads; i++)
			len += snprintf(rep + len, sizeof(rep) - len, " %llu",
					(unsigned long long)ticks[i]);
		/* Last: 1 if SIGSEGV is (still) ignored. */
		sigaction(SIGSEGV, NULL, &sa);
		len += snprintf(rep + len, sizeof(rep) - len, " %d", sa.sa_handler == SIG_IGN);
	} else if (!strncmp(req, "set ", 4)) {
		value = strtoull(req + 4, NULL, 10);
		len = snprintf(rep, sizeof(rep), "ok");
	} else {
		len = snprintf(rep, sizeof(rep), "?");
	}
	send(SERVE_FD, rep, (size_t)len, MSG_NOSIGNAL);
}

int main(int argc, char **argv)
{
	char path[4096], tmp[4096 + 8];
	bool hello = false;
	int nthreads;
	FILE *f;

	if (argc != 3 && !(argc == 4 && !strcmp(argv[3], "ignsegv"))) {
		fprintf(stderr, "usage: tpl-target THREADS DIR [ignsegv]\n");
		return 2;
	}
	if (argc == 4)
		signal(SIGSEGV, SIG_IGN);	/* spawn's start then takes its slow path */
	nthreads = atoi(argv[1]);
	if (nthreads < 0 || nthreads > MAX_THREADS)
		return 2;
	memset(locked, 0x5a, sizeof(locked));
	if (mlock(locked, sizeof(locked)) < 0)
		return 1;
	tids[0] = (pid_t)syscall(SYS_gettid);
	for (int i = 1; i <= nthreads; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, worker, (void *)(uintptr_t)i))
			return 1;
	}
	for (int i = 1; i <= nthreads; i++)
		while (!__atomic_load_n(&tids[i], __ATOMIC_SEQ_CST))
			sleep_ms(1);
	snprintf(path, sizeof(path), "%s/ready", argv[2]);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return 1;
	fprintf(f, "%d %llu\n", getpid(), (unsigned long long)(uintptr_t)ticks);
	fclose(f);
	rename(tmp, path);
	for (;;) {
		if ((pid_t)syscall(SYS_gettid) == tids[0])
			ticks[0]++;
		if (fcntl(SERVE_FD, F_GETFD) >= 0) {
			struct pollfd p = { .fd = SERVE_FD, .events = POLLIN };

			if (!hello) {
				char line[32];
				int len = snprintf(line, sizeof(line), "hello %ld\n",
						   (long)syscall(SYS_getpid));

				(void)!write(1, line, (size_t)len);
				hello = true;
			}
			if (poll(&p, 1, 2) > 0)
				serve(nthreads);
		} else {
			sleep_ms(2);
		}
	}
}
