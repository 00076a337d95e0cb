// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * file-dryrun: `warmfork checkpoint --dry-run PID` lists every descriptor the
 * engine cannot capture, in one pass, and changes nothing.
 *
 * Usage: cr-file-dryrun WARMFORK (root; a test of its own, not a cr-harness
 * program). A target child holds, at fixed numbers, an io_uring instance
 * (fd 20), a perf event counter (fd 21), a directory (fd 22), and supported
 * kinds around them (a memfd, an eventfd, an unlinked file: fds 23-25); its
 * standard streams are pipes to us.
 *  1. The dry run exits non-zero and prints exactly three lines on stdout,
 *     one per offending fd, each naming the pid, the fd number, its kind
 *     and its path ("io_uring", "perf_event", "directory").
 *  2. The target was not changed: it is running, untraced (TracerPid 0), its
 *     io_uring still has its ring sizes, its perf counter still counts, its
 *     eventfd kept its value, and it answers us.
 *  3. Once it closed fds 20-22, a dry run exits 0 with nothing on stdout.
 *  4. With --tree, once it forked a child holding an io_uring (fd 20): one
 *     line naming the child's pid and fd 20, exit 1; both left running.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cr.h"

static int failed;

#define CHECK(cond, ...) do { if (!(cond)) { failed++; printf("FAIL: " __VA_ARGS__); printf("\n"); } } while (0)

static int fdinfo_has(int fd, const char *what)
{
	char buf[4096];

	return cr_fdinfo(fd, buf, sizeof(buf)) == 0 && strstr(buf, what) != NULL;
}

/* The target: sets up, says 'R', then answers each command byte. */
static void target(void)
{
	struct io_uring_params p = {};
	struct perf_event_attr pa = {
		.type = PERF_TYPE_SOFTWARE, .size = sizeof(pa),
		.config = PERF_COUNT_SW_TASK_CLOCK, .exclude_kernel = 1,
	};
	uint64_t v = 0x12345, c0 = 0, c1 = 0;
	char path[] = "/tmp/cr-file-dryrun-XXXXXX", cmd;
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	fd = (int)syscall(SYS_io_uring_setup, 4, &p);
	if (fd < 0 || dup3(fd, 20, 0) < 0)
		_exit(77);
	close(fd);
	fd = (int)syscall(SYS_perf_event_open, &pa, 0, -1, -1, 0);
	if (fd < 0 || dup3(fd, 21, 0) < 0)
		_exit(77);
	close(fd);
	fd = open("/tmp", O_RDONLY | O_DIRECTORY);
	if (fd < 0 || dup3(fd, 22, 0) < 0)
		_exit(1);
	close(fd);
	fd = memfd_create("cr-dryrun", 0);
	if (fd < 0 || dup3(fd, 23, 0) < 0)
		_exit(1);
	close(fd);
	fd = eventfd(0, 0);
	if (fd < 0 || dup3(fd, 24, 0) < 0 || write(24, &v, 8) != 8)
		_exit(1);
	close(fd);
	fd = mkstemp(path);
	if (fd < 0 || dup3(fd, 25, 0) < 0)
		_exit(1);
	close(fd);
	unlink(path);
	if (write(1, "R", 1) != 1)
		_exit(1);
	while (read(0, &cmd, 1) == 1) {
		char ok = 'Y';
		volatile uint64_t spin = 0;

		if (cmd == 'c') {		/* check: nothing changed */
			uint64_t got = 0;

			if (read(21, &c0, 8) != 8)
				ok = 'N';
			for (int i = 0; i < 2000000; i++)
				spin++;
			if (read(21, &c1, 8) != 8 || c1 <= c0)
				ok = 'N';
			if (!fdinfo_has(20, "SqMask:\t0x3") || !fdinfo_has(20, "CqMask:\t0x7"))
				ok = 'N';
			if (read(24, &got, 8) != 8 || got != v || write(24, &got, 8) != 8)
				ok = 'N';
		} else if (cmd == 'x') {	/* close what cannot be captured */
			close(20);
			close(21);
			close(22);
		} else if (cmd == 't') {	/* a child with an io_uring */
			pid_t k = fork();

			if (k == 0) {
				struct io_uring_params q = {};
				int u = (int)syscall(SYS_io_uring_setup, 4, &q);

				if (u < 0 || dup3(u, 20, 0) < 0)
					_exit(1);
				close(u);
				if (write(1, "Y", 1) != 1)
					_exit(1);
				for (;;)
					pause();
			}
			continue;	/* the child answers */
		}
		if (write(1, &ok, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

/* Run WARMFORK checkpoint --dry-run [--tree] PID; its stdout into @out. Exit status. */
static int dry_run(const char *wf, pid_t pid, bool tree, char *out, size_t len)
{
	char spid[16];
	int p[2], st;
	size_t got = 0;
	ssize_t n;
	pid_t c;

	snprintf(spid, sizeof(spid), "%d", (int)pid);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	c = fork();
	if (c == 0) {
		dup2(p[1], 1);
		if (tree)
			execl(wf, wf, "checkpoint", "--dry-run", "--tree", spid, (char *)NULL);
		else
			execl(wf, wf, "checkpoint", "--dry-run", spid, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (got < len - 1 && (n = read(p[0], out + got, len - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = 0;
	close(p[0]);
	if (waitpid(c, &st, 0) != c)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int ask(int to, int from, char cmd)
{
	char a = 0;

	if (write(to, &cmd, 1) != 1 || read(from, &a, 1) != 1)
		return 0;
	return a == 'Y';
}

int main(int argc, char **argv)
{
	char out[8192], want[128], status[4096];
	int in[2], back[2], st, r, lines = 0;
	pid_t t;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc != 2) {
		fprintf(stderr, "usage: %s WARMFORK\n", argv[0]);
		return 2;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root\n");
		return 77;
	}
	/* The target's child is reparented to us when the target ends. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(back, O_CLOEXEC) < 0)
		return 1;
	t = fork();
	if (t == 0) {
		dup2(in[0], 0);
		dup2(back[1], 1);
		close(in[0]);
		close(in[1]);
		close(back[0]);
		close(back[1]);
		target();
	}
	close(in[0]);
	close(back[1]);
	if (read(back[0], out, 1) != 1 || out[0] != 'R') {
		waitpid(t, &st, 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
			printf("SKIP: no io_uring or perf events here\n");
			return 77;
		}
		printf("FAIL: the target did not start\n");
		return 1;
	}

	/* 1. every offending fd, one line each */
	r = dry_run(argv[1], t, false, out, sizeof(out));
	printf("dry run (exit %d):\n%s", r, out);
	CHECK(r != 0 && r != 127, "dry run exit status %d, expected a refusal", r);
	for (char *p = out; *p; p++)
		lines += *p == '\n';
	CHECK(lines == 3, "%d lines on stdout, expected 3", lines);
	snprintf(want, sizeof(want), "process %d fd 20: ", (int)t);
	CHECK(strstr(out, want) && strstr(out, "io_uring"), "no line for the io_uring fd 20");
	snprintf(want, sizeof(want), "process %d fd 21: ", (int)t);
	CHECK(strstr(out, want) && strstr(out, "perf_event"), "no line for the perf event fd 21");
	snprintf(want, sizeof(want), "process %d fd 22: ", (int)t);
	CHECK(strstr(out, want) && strstr(out, "directory") && strstr(out, "\"/tmp\""),
	      "no line for the directory fd 22 with its path");
	for (int fd = 23; fd <= 25; fd++) {
		snprintf(want, sizeof(want), "fd %d:", fd);
		CHECK(!strstr(out, want), "supported fd %d listed", fd);
	}

	/* 2. nothing changed */
	{
		char path[64];
		int f;

		snprintf(path, sizeof(path), "/proc/%d/status", (int)t);
		f = open(path, O_RDONLY | O_CLOEXEC);
		r = f < 0 ? 0 : (int)read(f, status, sizeof(status) - 1);
		status[r > 0 ? r : 0] = 0;
		if (f >= 0)
			close(f);
		CHECK(strstr(status, "TracerPid:\t0\n") != NULL, "the target is still traced");
		CHECK(strstr(status, "State:\tS") || strstr(status, "State:\tR"),
		      "the target is not running");
	}
	CHECK(ask(in[1], back[0], 'c'), "the target's io_uring/perf/eventfd changed");

	/* 3. without them: exit 0, nothing listed */
	CHECK(ask(in[1], back[0], 'x'), "the target did not close its fds");
	r = dry_run(argv[1], t, false, out, sizeof(out));
	CHECK(r == 0 && !out[0], "dry run of a capturable process: exit %d, stdout \"%s\"", r, out);

	/* 4. --tree: the child's io_uring */
	CHECK(ask(in[1], back[0], 't'), "the target's child did not start");
	{
		char path[64], kids[64] = "";
		int f, n;
		pid_t kid = 0;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)t, (int)t);
		f = open(path, O_RDONLY | O_CLOEXEC);
		n = f < 0 ? 0 : (int)read(f, kids, sizeof(kids) - 1);
		kids[n > 0 ? n : 0] = 0;
		if (f >= 0)
			close(f);
		kid = (pid_t)atoi(kids);
		r = dry_run(argv[1], t, true, out, sizeof(out));
		printf("dry run --tree (exit %d):\n%s", r, out);
		lines = 0;
		for (char *p = out; *p; p++)
			lines += *p == '\n';
		snprintf(want, sizeof(want), "process %d fd 20: ", (int)kid);
		CHECK(kid > 0 && r == 1 && lines == 1 && strstr(out, want) && strstr(out, "io_uring"),
		      "--tree: exit %d, %d lines, expected one for child %d fd 20", r, lines, (int)kid);
		CHECK(kill(kid, 0) == 0 && kill(t, 0) == 0, "--tree left a process stopped or gone");
		snprintf(path, sizeof(path), "/proc/%d/status", (int)kid);
		f = open(path, O_RDONLY | O_CLOEXEC);
		n = f < 0 ? 0 : (int)read(f, status, sizeof(status) - 1);
		status[n > 0 ? n : 0] = 0;
		if (f >= 0)
			close(f);
		CHECK(strstr(status, "TracerPid:\t0\n") != NULL, "the child is still traced");
		if (kid > 0) {
			kill(kid, SIGKILL);
		}
	}

	close(in[1]);
	waitpid(t, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the target ended badly (%#x)", st);
	while (waitpid(-1, NULL, 0) > 0)
		;	/* the target's child */
	if (failed)
		printf("FAIL file-dryrun: %d check(s) failed\n", failed);
	else
		printf("PASS file-dryrun\n");
	return failed ? 1 : 0;
}
