// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * file-locks: file locks held across the cut, checked from another process.
 *  - "$CR_DIR/lk-flock": flock(LOCK_EX) on fd A (and fd A2, a dup of A);
 *  - "$CR_DIR/lk-posix": POSIX locks: write [10, 30), read [100, EOF) on fd B;
 *  - "$CR_DIR/lk-ofd":   OFD write lock [0, 4096) on fd C;
 *  - "$CR_DIR/lk-shared": flock(LOCK_SH) on fd D.
 * After go a child (a process of its own, the locks' rival) probes each:
 * flock(LOCK_EX|LOCK_NB) on a new open of lk-flock fails (EWOULDBLOCK);
 * F_GETLK on lk-posix reports our write lock at 10..29 owned by our pid, our
 * read lock at 100.. (a write there conflicts, a read does not), nothing at
 * 50; F_OFD_GETLK on lk-ofd reports the write lock; on lk-shared LOCK_SH|LOCK_NB
 * succeeds and LOCK_EX|LOCK_NB fails. Then we unlock lk-flock and the child's
 * flock succeeds (the lock was ours, not a leftover).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cr.h"

#ifndef F_OFD_GETLK
#define F_OFD_GETLK	36
#define F_OFD_SETLK	37
#endif

/* Expected ranges (published): posix write start/len, posix read start, ofd len. */
static long want[4] = { 10, 20, 100, 4096 };

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", cr_dir(), name);
}

/* In a child: the probes; exit status = number of failed probes (printed). */
static int probe(pid_t owner)
{
	char p[PATH_MAX];
	struct flock fl;
	int fd, bad = 0;

#define PROBE(cond, ...) do { if (!(cond)) { bad++; printf("FAIL probe: " __VA_ARGS__); printf("\n"); } } while (0)
	path_of(p, sizeof(p), "lk-flock");
	fd = open(p, O_RDONLY | O_CLOEXEC);
	PROBE(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK,
	      "lk-flock is not locked exclusively by another process");
	close(fd);

	path_of(p, sizeof(p), "lk-posix");
	fd = open(p, O_RDWR | O_CLOEXEC);
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	PROBE(fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_WRLCK &&
	      fl.l_start == want[0] && fl.l_len == want[1] && fl.l_pid == owner,
	      "lk-posix: first lock type %d start %lld len %lld pid %d", fl.l_type,
	      (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid);
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 10 };
	PROBE(fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_UNLCK, "lk-posix: 50..59 is locked");
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5000, .l_len = 1 };
	PROBE(fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_RDLCK && fl.l_start == want[2] &&
	      fl.l_len == 0, "lk-posix: no read lock from %ld to EOF (type %d start %lld len %lld)",
	      want[2], fl.l_type, (long long)fl.l_start, (long long)fl.l_len);
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 5000, .l_len = 1 };
	PROBE(fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_UNLCK,
	      "lk-posix: a read lock at 5000 would conflict");
	close(fd);

	path_of(p, sizeof(p), "lk-ofd");
	fd = open(p, O_RDWR | O_CLOEXEC);
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	PROBE(fd >= 0 && fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type == F_WRLCK &&
	      fl.l_start == 0 && fl.l_len == want[3] && fl.l_pid == -1,
	      "lk-ofd: lock type %d start %lld len %lld pid %d", fl.l_type,
	      (long long)fl.l_start, (long long)fl.l_len, (int)fl.l_pid);
	close(fd);

	path_of(p, sizeof(p), "lk-shared");
	fd = open(p, O_RDONLY | O_CLOEXEC);
	PROBE(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK,
	      "lk-shared: not locked by another process");
	PROBE(flock(fd, LOCK_SH | LOCK_NB) == 0, "lk-shared: a shared lock conflicts");
	close(fd);
	return bad;
}

static int open_new(const char *name)
{
	char p[PATH_MAX];
	int fd;

	path_of(p, sizeof(p), name);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		cr_fail("%s: %m", p);
	return fd;
}

int main(int argc, char **argv)
{
	struct flock fl;
	int a, a2, b, c, d, st;
	pid_t kid;

	cr_init(argc, argv);
	a = open_new("lk-flock");
	a2 = dup(a);
	b = open_new("lk-posix");
	c = open_new("lk-ofd");
	d = open_new("lk-shared");
	if (flock(a, LOCK_EX) < 0 || flock(d, LOCK_SH) < 0)
		cr_fail("flock: %m");
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 20 };
	if (fcntl(b, F_SETLK, &fl) < 0)
		cr_fail("F_SETLK: %m");
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 100, .l_len = 0 };
	if (fcntl(b, F_SETLK, &fl) < 0)
		cr_fail("F_SETLK: %m");
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 4096 };
	if (fcntl(c, F_OFD_SETLK, &fl) < 0)
		cr_fail("F_OFD_SETLK: %m");

	cr_ready_tamper(want, sizeof(want));
	cr_wait();

	kid = fork();
	if (kid == 0)
		_exit(probe(getppid()));
	cr_check(kid > 0 && waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "%d lock probes failed", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	/* Ours: released by us, then free for others. */
	cr_check(flock(a2, LOCK_UN) == 0, "flock(LOCK_UN): %m");
	kid = fork();
	if (kid == 0) {
		char p[PATH_MAX];
		int fd;

		path_of(p, sizeof(p), "lk-flock");
		fd = open(p, O_RDONLY | O_CLOEXEC);
		_exit(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
	}
	cr_check(kid > 0 && waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		 "lk-flock still locked after our LOCK_UN");
	cr_check_ids();
	cr_finish();
}
