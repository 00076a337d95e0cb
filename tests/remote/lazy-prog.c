// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The process rforked with --lazy by test-lazy.sh: a heap of MIB MiB of
 * mixed pages (zero, repeated, unique), then forever, every 100 ms, one
 * line "COUNTER PART" where PART is a checksum of the heap's first 16
 * pages only: a lazy twin can answer it long before all its memory
 * arrived. SIGUSR1 asks for "FULL COUNTER SUM", the checksum of the whole
 * heap (printed once at start too), to compare the twin's memory with the
 * original's once every page is there. SIGUSR2 forks a child that prints
 * "CHILD COUNTER SUM" (the whole heap as the child sees it) and exits.
 *
 *   rf-lazy-prog MIB [SEED [LOCK_MIB [HUGE]]]	(SEED changes the unique
 *	pages' content; the first LOCK_MIB MiB are mlock'ed; HUGE 1: the heap
 *	is MADV_HUGEPAGE). SIGHUP changes one word in every 16th page and
 *	prints the new full checksum. The full checksum is computed by 4
 *	threads at once (slices combined: the same value as one pass), so a
 *	lazy twin's threads fault concurrently.
 *
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t want_full, want_fork, want_change;

static void on_usr1(int sig)
{
	want_full = 1;
}

static void on_usr2(int sig)
{
	want_fork = 1;
}

static void on_hup(int sig)
{
	want_change = 1;
}

static uint64_t sum(const uint64_t *p, size_t words)
{
	uint64_t s = 0;

	for (size_t i = 0; i < words; i++)
		s = s * 31 + p[i];
	return s;
}

/* sum() of 4 slices by 4 threads: h(ab) = h(a) * 31^len(b) + h(b). */
struct slice {
	const uint64_t *p;
	size_t words;
	uint64_t h;
};

static void *slice_sum(void *arg)
{
	struct slice *s = arg;

	s->h = sum(s->p, s->words);
	return NULL;
}

static uint64_t pow31(size_t e)
{
	uint64_t r = 1, b = 31;

	for (; e; e >>= 1, b *= b)
		if (e & 1)
			r *= b;
	return r;
}

static uint64_t full_sum(const uint64_t *p, size_t words)
{
	struct slice s[4];
	pthread_t th[4];
	uint64_t h = 0;

	for (int i = 0; i < 4; i++) {
		size_t a = words / 4 * i, b = i == 3 ? words : words / 4 * (i + 1);

		s[i] = (struct slice){ p + a, b - a, 0 };
		if (pthread_create(&th[i], NULL, slice_sum, &s[i]) != 0)
			slice_sum(&s[i]), th[i] = 0;
	}
	for (int i = 0; i < 4; i++) {
		if (th[i])
			pthread_join(th[i], NULL);
		h = h * pow31(s[i].words) + s[i].h;
	}
	return h;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64, n = mib << 20;
	uint64_t x = 88172645463325252ull ^ (argc > 2 ? strtoull(argv[2], NULL, 10) << 32 : 0), *p;
	struct sigaction sa = { .sa_handler = on_usr1 };

	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	if (argc > 4 && atoi(argv[4]) && madvise(p, n, MADV_HUGEPAGE) < 0)
		return 1;
	for (size_t pg = 0; pg < n / 4096; pg++) {
		uint64_t *q = p + pg * 512;

		if (pg % 8 == 3)
			continue;			/* zero page */
		for (size_t i = 0; i < 512; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			q[i] = pg % 8 == 6 ? pg % 5 + 1 : x;	/* repeated or unique */
		}
	}
	if (argc > 3 && strtoul(argv[3], NULL, 10) &&
	    mlock(p, strtoul(argv[3], NULL, 10) << 20) < 0)
		return 1;
	printf("FULL 0 %016llx\n", (unsigned long long)sum(p, n / 8));
	fflush(stdout);
	for (unsigned long c = 1;; c++) {
		if (want_fork) {
			pid_t k;

			want_fork = 0;
			fflush(stdout);
			k = fork();
			if (k == 0) {
				printf("CHILD %lu %016llx\n", c, (unsigned long long)sum(p, n / 8));
				fflush(stdout);
				_exit(0);
			}
			if (k > 0)
				waitpid(k, NULL, 0);
		}
		if (want_change) {
			want_change = 0;
			for (size_t pg = 0; pg < n / 4096; pg += 16)
				p[pg * 512 + 7] += c;
			want_full = 1;
		}
		if (want_full) {
			want_full = 0;
			printf("FULL %lu %016llx\n", c, (unsigned long long)full_sum(p, n / 8));
		}
		printf("%lu %016llx\n", c, (unsigned long long)sum(p, 16 * 512));
		fflush(stdout);
		usleep(100000);
	}
}
