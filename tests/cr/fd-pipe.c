// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fd-pipe: pipes and a FIFO at descriptors other than 0-2, with bytes in
 * flight. Set up before ready:
 *   fd 10/11  pipe A, both ends, sized 1 MiB and full (1 MiB of pattern bytes);
 *             fd 12 is a dup of the read end (one open file description),
 *             read end O_NONBLOCK, write end not close-on-exec
 *   fd 13     pipe B's read end alone (its writer closed after 5000 bytes)
 *   fd 14     pipe C's write end alone (its reader closed)
 *   fd 15/16  pipe D, both ends, empty, 8192 bytes
 *   fd 17/18  a FIFO in $CR_DIR opened O_RDWR and O_RDONLY|O_NONBLOCK, 777
 *             bytes in it
 *   fd 9      pipe A's read end opened again through /proc (its own open file
 *             description: blocking while fd 10 is not)
 *   fd 8      pipe D opened O_RDWR through /proc
 *   fd 6/7    pipe H in packet mode (O_DIRECT), packets of 10, 100 and 1000
 *             bytes in it: read back one packet per read, same lengths
 *   fd 0/19   pipe G made by the process itself: its read end is stdin,
 *             its write end fd 19, 100 bytes in it (a whole pipe: stdin is
 *             this pipe after restore, not the caller's stream)
 * After go: A is 1 MiB and yields exactly its 1 MiB of bytes (through fd 12,
 * the dup: the same file, nonblocking, then EAGAIN), then carries new bytes;
 * B yields its 5000 bytes then EOF; a write to C fails with EPIPE; D is 8192
 * bytes, empty and works; the FIFO yields its 777 bytes, then EAGAIN, and
 * is still the FIFO at its path. Flags and close-on-exec as set.
 *
 * With the argument "outside" (failckpt mode): a child holds the write end
 * of pipe E (fd 20): the checkpoint must refuse; the pipe still works after.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

#define A_BYTES (1 << 20)	/* full: every slot of a 1 MiB pipe */
#define B_BYTES 5000
#define F_BYTES 777

/* The seed of every pattern: tamper flips it, every comparison fails. */
static volatile uint64_t seed = 0x5eed5eed12345678ULL;
static unsigned char buf[1 << 20];

static unsigned char pat(uint64_t s, size_t i)
{
	return (unsigned char)cr_mix64(s + i / 8) >> (i % 8);
}

static void fill(unsigned char *b, uint64_t s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pat(s, i);
}

static void put(int fd, uint64_t s, size_t n)
{
	fill(buf, s, n);
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, buf + off, n - off);

		if (w <= 0)
			cr_fail("write to fd %d: %m", fd);
		off += (size_t)w;
	}
}

/* Read until EAGAIN/EOF; returns the count, checks the pattern. */
static size_t take(int fd, uint64_t s, size_t max, int *end_errno, const char *what)
{
	size_t got = 0, bad = (size_t)-1;
	ssize_t n;

	while (got < max && (n = read(fd, buf + got, max - got)) > 0)
		got += (size_t)n;
	*end_errno = 0;
	if (got == max) {
		n = read(fd, buf, 1);
		if (n > 0) {
			*end_errno = -1;	/* more than expected */
			got++;
		}
	}
	if (n < 0)
		*end_errno = errno;
	for (size_t i = 0; i < got && i < max; i++)
		if (buf[i] != pat(s, i)) {
			bad = i;
			break;
		}
	cr_check(bad == (size_t)-1, "%s: byte %zu differs", what, bad);
	return got;
}

static int flags_of(int fd)
{
	return fcntl(fd, F_GETFL);
}

static int outside(void)
{
	int e[2], st;
	pid_t child;
	char c = 0;

	if (pipe(e) < 0 || dup2(e[0], 20) < 0)
		cr_fail("pipe: %m");
	child = fork();
	if (child == 0) {
		/* Hold the write end until SIGUSR1 ends us. */
		signal(SIGUSR1, SIG_DFL);
		close(e[0]);
		close(20);
		for (;;)
			pause();
	}
	close(e[0]);
	close(e[1]);
	cr_ready();
	cr_wait();
	kill(child, SIGUSR1);	/* the child ends, the pipe's writer with it */
	cr_check(waitpid(child, &st, 0) == child, "child not reaped");
	cr_check(read(20, &c, 1) == 0, "pipe E broken after the refused checkpoint");
	cr_finish();
}

int main(int argc, char **argv)
{
	char fifo[4096];
	int a[2], b[2], c[2], d[2], err, fl;
	size_t got;

	cr_init(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "outside")) {
		if (getenv("CR_CONTROL")) {
			cr_ready();
			cr_wait();
			cr_finish();
		}
		return outside();
	}
	if (pipe2(a, O_CLOEXEC) < 0 || dup3(a[0], 10, O_CLOEXEC) < 0 || dup2(a[1], 11) < 0 ||
	    dup3(a[0], 12, O_CLOEXEC) < 0)
		cr_fail("pipe A: %m");
	close(a[0]);
	close(a[1]);
	if (fcntl(11, F_SETPIPE_SZ, 1 << 20) != 1 << 20)
		cr_fail("F_SETPIPE_SZ 1 MiB: %m");
	put(11, seed, A_BYTES);
	fcntl(10, F_SETFL, O_NONBLOCK);
	if (pipe2(b, O_CLOEXEC) < 0 || dup3(b[0], 13, O_CLOEXEC) < 0)
		cr_fail("pipe B: %m");
	put(b[1], seed + 1, B_BYTES);
	close(b[0]);
	close(b[1]);
	if (pipe2(c, O_CLOEXEC) < 0 || dup3(c[1], 14, O_CLOEXEC) < 0)
		cr_fail("pipe C: %m");
	close(c[0]);
	close(c[1]);
	if (pipe2(d, O_CLOEXEC | O_NONBLOCK) < 0 || dup3(d[0], 15, O_CLOEXEC) < 0 ||
	    dup3(d[1], 16, O_CLOEXEC) < 0)
		cr_fail("pipe D: %m");
	close(d[0]);
	close(d[1]);
	if (fcntl(15, F_SETPIPE_SZ, 8192) != 8192)
		cr_fail("F_SETPIPE_SZ 8192: %m");
	if ((fl = open("/proc/self/fd/10", O_RDONLY | O_CLOEXEC)) < 0 || dup3(fl, 9, O_CLOEXEC) < 0)
		cr_fail("reopen pipe A: %m");
	close(fl);
	if ((fl = open("/proc/self/fd/15", O_RDWR | O_CLOEXEC)) < 0 || dup3(fl, 8, O_CLOEXEC) < 0)
		cr_fail("reopen pipe D O_RDWR: %m");
	close(fl);
	snprintf(fifo, sizeof(fifo), "%s/fifo", cr_dir());
	if (mkfifo(fifo, 0600) < 0)
		cr_fail("mkfifo: %m");
	if ((fl = open(fifo, O_RDWR | O_CLOEXEC)) < 0 || dup3(fl, 17, O_CLOEXEC) < 0)
		cr_fail("open fifo: %m");
	close(fl);
	if ((fl = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0 || dup3(fl, 18, O_CLOEXEC) < 0)
		cr_fail("open fifo: %m");
	close(fl);
	put(17, seed + 2, F_BYTES);
	if (pipe2(d, O_CLOEXEC | O_DIRECT | O_NONBLOCK) < 0 || dup3(d[0], 6, O_CLOEXEC) < 0 ||
	    dup3(d[1], 7, O_CLOEXEC) < 0)
		cr_fail("pipe H: %m");
	close(d[0]);
	close(d[1]);
	put(7, seed + 9, 10);
	put(7, seed + 10, 100);
	put(7, seed + 11, 1000);
	if (pipe2(d, O_CLOEXEC) < 0 || dup2(d[0], 0) < 0 || dup3(d[1], 19, O_CLOEXEC) < 0)
		cr_fail("pipe G: %m");
	close(d[0]);
	close(d[1]);
	put(19, seed + 5, 100);

	cr_ready_tamper((const void *)&seed, sizeof(seed));
	cr_wait();

	/* A */
	cr_check(fcntl(11, F_GETPIPE_SZ) == 1 << 20, "pipe A size %d", fcntl(11, F_GETPIPE_SZ));
	cr_check((flags_of(10) & (O_ACCMODE | O_NONBLOCK)) == (O_RDONLY | O_NONBLOCK),
		 "fd 10 flags %o", flags_of(10));
	cr_check((flags_of(12) & O_NONBLOCK) && (flags_of(11) & O_ACCMODE) == O_WRONLY &&
		 !(flags_of(11) & O_NONBLOCK), "fd 12/11 flags %o/%o", flags_of(12), flags_of(11));
	cr_check(fcntl(10, F_GETFD) == FD_CLOEXEC && fcntl(11, F_GETFD) == 0,
		 "close-on-exec of fd 10/11: %d/%d", fcntl(10, F_GETFD), fcntl(11, F_GETFD));
	{
		/* Plain buffers, not packets: one read takes the whole MiB. */
		ssize_t n1 = read(12, buf, A_BYTES);
		size_t bad = (size_t)-1;

		for (size_t i = 0; n1 > 0 && i < (size_t)n1; i++)
			if (buf[i] != pat(seed, i)) {
				bad = i;
				break;
			}
		cr_check(n1 == A_BYTES && bad == (size_t)-1, "pipe A: one read gave %zd bytes "
			 "(expected %d), byte %zd differs", n1, A_BYTES, (ssize_t)bad);
		got = n1 > 0 ? (size_t)n1 : 0;
		errno = 0;
		err = read(12, buf, 1) < 0 ? errno : -1;
	}
	cr_check(got == A_BYTES && err == EAGAIN, "pipe A: %zu bytes (expected %d) then errno %d",
		 got, A_BYTES, err);
	put(11, seed + 3, 1000);
	got = take(10, seed + 3, 1000, &err, "pipe A after");
	cr_check(got == 1000 && err == EAGAIN, "pipe A after: %zu bytes then %d", got, err);
	cr_check(!(flags_of(9) & O_NONBLOCK) && (flags_of(9) & O_ACCMODE) == O_RDONLY,
		 "fd 9 shares fd 10's open file description (flags %o)", flags_of(9));
	{
		unsigned char b9[100];
		ssize_t n9;

		/* fd 9 blocks: read exactly what was written. */
		put(11, seed + 7, sizeof(b9));
		n9 = read(9, b9, sizeof(b9));
		cr_check(n9 == (ssize_t)sizeof(b9) && b9[0] == pat(seed + 7, 0) &&
			 b9[99] == pat(seed + 7, 99), "pipe A through fd 9: %zd bytes", n9);
	}
	/* B */
	cr_check(fcntl(13, F_GETPIPE_SZ) == 65536, "pipe B size %d", fcntl(13, F_GETPIPE_SZ));
	got = take(13, seed + 1, B_BYTES, &err, "pipe B");
	cr_check(got == B_BYTES && err == 0, "pipe B: %zu bytes then errno %d (expected EOF)", got,
		 err);
	/* C */
	errno = 0;
	cr_check(write(14, "x", 1) < 0 && errno == EPIPE, "pipe C write: errno %d, expected EPIPE",
		 errno);
	/* D */
	cr_check(fcntl(16, F_GETPIPE_SZ) == 8192, "pipe D size %d", fcntl(16, F_GETPIPE_SZ));
	cr_check((flags_of(15) & O_NONBLOCK) && (flags_of(16) & O_NONBLOCK), "pipe D not nonblocking");
	got = take(15, seed, 0, &err, "pipe D");
	cr_check(got == 0 && err == EAGAIN, "pipe D not empty (%zu, %d)", got, err);
	put(16, seed + 4, 8192);
	got = take(15, seed + 4, 8192, &err, "pipe D after");
	cr_check(got == 8192, "pipe D after: %zu", got);
	cr_check((flags_of(8) & O_ACCMODE) == O_RDWR, "fd 8 flags %o", flags_of(8));
	put(8, seed + 8, 50);
	got = take(15, seed + 8, 50, &err, "pipe D written through fd 8");
	cr_check(got == 50 && err == EAGAIN, "pipe D through fd 8: %zu bytes then %d", got, err);
	/* FIFO */
	{
		struct stat s1, s2;

		cr_check(fstat(17, &s1) == 0 && stat(fifo, &s2) == 0 && S_ISFIFO(s1.st_mode) &&
			 s1.st_ino == s2.st_ino, "fd 17 is not the FIFO at its path");
		cr_check((flags_of(17) & O_ACCMODE) == O_RDWR &&
			 (flags_of(18) & (O_ACCMODE | O_NONBLOCK)) == (O_RDONLY | O_NONBLOCK),
			 "FIFO flags %o %o", flags_of(17), flags_of(18));
		got = take(18, seed + 2, F_BYTES, &err, "FIFO");
		cr_check(got == F_BYTES && err == EAGAIN, "FIFO: %zu bytes then errno %d", got, err);
	}
	/* H: one packet per read */
	cr_check((flags_of(7) & O_DIRECT), "pipe H's write end not in packet mode");
	for (int k = 0; k < 3; k++) {
		static const size_t lens[3] = { 10, 100, 1000 };
		ssize_t nh = read(6, buf, 4096);

		cr_check(nh == (ssize_t)lens[k] && buf[0] == pat(seed + 9 + k, 0) &&
			 buf[nh > 0 ? nh - 1 : 0] == pat(seed + 9 + k, lens[k] - 1),
			 "pipe H packet %d: %zd bytes, expected %zu", k, nh, lens[k]);
	}
	/* G */
	{
		struct stat s0;

		cr_check(fstat(0, &s0) == 0 && S_ISFIFO(s0.st_mode), "stdin is no longer pipe G");
		fcntl(0, F_SETFL, O_NONBLOCK);
		got = take(0, seed + 5, 100, &err, "pipe G");
		cr_check(got == 100 && err == EAGAIN, "pipe G (stdin): %zu bytes then errno %d", got,
			 err);
		put(19, seed + 6, 10);
		got = take(0, seed + 6, 10, &err, "pipe G after");
		cr_check(got == 10, "pipe G after: %zu bytes", got);
	}
	cr_check_ids();
	cr_finish();
}
