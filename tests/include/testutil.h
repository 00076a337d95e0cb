// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Small helpers shared by the test and benchmark programs that drive
 * warmfork from outside (tests/spawn, tests/warmd, bench/spawn, bench/pool):
 * failed checks, clocks, sleeping, reading a small text file. Header only: each program
 * is one translation unit, and what it does not call costs nothing.
 */
#ifndef WARMFORK_TESTUTIL_H
#define WARMFORK_TESTUTIL_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* How many checks failed so far (tu_fail), as an int lvalue. */
static inline int *tu_failures_at(void)
{
	static int n;

	return &n;
}
#define tu_failures (*tu_failures_at())

/* One failed check: "FAIL: ..." on stderr, counted (from any thread). */
static inline void tu_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void tu_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("FAIL: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	__atomic_fetch_add(tu_failures_at(), 1, __ATOMIC_RELAXED);
}

static inline uint64_t tu_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t tu_now_us(void)
{
	return tu_now_ns() / 1000;
}

static inline uint64_t tu_now_ms(void)
{
	return tu_now_ns() / 1000000;
}

static inline void tu_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * The first 64 KiB of @path as a string, in a buffer of the calling
 * thread's that the next call overwrites; NULL if it cannot be read.
 */
static inline char *tu_read_text(const char *path)
{
	static __thread char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = 0;
	return buf;
}

#endif
