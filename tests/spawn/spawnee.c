// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * spawnee THREADS MIB DIR [shm|dontfork|pipe]: the program spawn-test checkpoints and spawns.
 *
 * It fills MIB MiB with a pattern, starts THREADS workers that each count
 * (one counter per thread, every 10 ms), and writes DIR/ready holding its
 * pid. Its main thread then loops every 5 ms, counting too:
 *   SIGUSR1: value becomes 2222 (was 1111) and the first buffer page changes;
 *   SIGUSR2: it writes DIR/r.<pid-ns inode> (atomically, by rename):
 *     "<getpid> <value> <ok> <nr threads> <c0> <c1> ... <cN>\n"
 *     ok: its memory pattern is intact and it leads its session and
 *     process group (it called setsid() at start);
 *     where c0 is the main thread's counter, and a thread's counter is -1 if
 *     its gettid() is not the tid it had before the cut.
 * Each spawned instance lives in its own pid namespace, hence its own file.
 * With "shm" the value lives in a MAP_SHARED|MAP_ANONYMOUS page (each
 * instance must get its own copy of it). With "dontfork" it holds a
 * MADV_DONTFORK page, which spawn must refuse.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

static volatile uint64_t counters[MAX_THREADS + 1];
static pid_t tids[MAX_THREADS + 1];
static volatile uint64_t value_storage = 1111, *valp = &value_storage;
static volatile sig_atomic_t want_change, want_report;
static uint64_t *buf;
static size_t nwords;
static const char *dir;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x + 1;
}

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
			counters[i]++;
		sleep_ms(10);
	}
	return NULL;
}

static void on_usr1(int sig)
{
	want_change = 1;
}

static void on_usr2(int sig)
{
	want_report = 1;
}

static void report(int nthreads)
{
	char path[4096], tmp[4096 + 8], line[64 * 24 + 128];
	struct stat st;
	int len, ok = 1;
	FILE *f;

	for (size_t i = 1; i < nwords; i++)
		if (buf[i] != mix(i)) {
			ok = 0;
			break;
		}
	if (stat("/proc/self/ns/pid", &st) < 0)
		return;
	/* A session leader (it called setsid) stays one: ok only if so. */
	if (getsid(0) != (pid_t)syscall(SYS_getpid) || getpgrp() != (pid_t)syscall(SYS_getpid))
		ok = 0;
	len = snprintf(line, sizeof(line), "%ld %llu %d %d", (long)syscall(SYS_getpid),
		       (unsigned long long)*valp, ok, nthreads);
	for (int i = 0; i <= nthreads; i++)
		len += snprintf(line + len, sizeof(line) - len, " %lld",
				(pid_t)syscall(SYS_gettid) == tids[0] || i > 0 ?
				(long long)counters[i] : -1ll);
	snprintf(path, sizeof(path), "%s/r.%llu", dir, (unsigned long long)st.st_ino);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%s\n", line);
	fclose(f);
	rename(tmp, path);
}

int main(int argc, char **argv)
{
	struct sigaction sa = {};
	char path[4096], tmp[4096 + 8];
	int nthreads;
	size_t mib;
	FILE *f;

	if (argc != 4 && !(argc == 5 && (!strcmp(argv[4], "shm") || !strcmp(argv[4], "dontfork") ||
					 !strcmp(argv[4], "pipe")))) {
		fprintf(stderr, "usage: spawnee THREADS MIB DIR [shm|dontfork|pipe]\n");
		return 2;
	}
	if (argc == 5 && !strcmp(argv[4], "dontfork")) {
		char *pg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (pg == MAP_FAILED || madvise(pg, 4096, MADV_DONTFORK) < 0)
			return 1;
		pg[0] = 1;
	} else if (argc == 5 && !strcmp(argv[4], "pipe")) {
		int pp[2];

		if (pipe(pp) < 0)	/* held: instances would share it */
			return 1;
	} else if (argc == 5) {
		valp = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (valp == MAP_FAILED)
			return 1;
		*valp = 1111;
	}
	nthreads = atoi(argv[1]);
	mib = strtoul(argv[2], NULL, 10);
	dir = argv[3];
	if (nthreads < 0 || nthreads > MAX_THREADS || !mib)
		return 2;
	nwords = mib << 17;
	buf = malloc(nwords * sizeof(*buf));
	if (!buf)
		return 1;
	for (size_t i = 0; i < nwords; i++)
		buf[i] = mix(i);
	tids[0] = (pid_t)syscall(SYS_gettid);
	if (setsid() < 0)
		return 1;
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	for (int i = 1; i <= nthreads; i++) {
		pthread_t t;

		if (pthread_create(&t, NULL, worker, (void *)(uintptr_t)i))
			return 1;
	}
	for (int i = 1; i <= nthreads; i++)
		while (!__atomic_load_n(&tids[i], __ATOMIC_SEQ_CST))
			sleep_ms(1);
	snprintf(path, sizeof(path), "%s/ready", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return 1;
	fprintf(f, "%d\n", getpid());
	fclose(f);
	rename(tmp, path);
	for (;;) {
		if ((pid_t)syscall(SYS_gettid) == tids[0])
			counters[0]++;
		if (want_change) {
			want_change = 0;
			*valp = 2222;
			buf[0] = ~buf[0];
		}
		if (want_report) {
			want_report = 0;
			report(nthreads);
		}
		sleep_ms(5);
	}
}
