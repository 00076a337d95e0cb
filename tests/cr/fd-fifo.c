// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fd-fifo: a FIFO whose writer lives outside the checkpointed process (a
 * child that the checkpoint leaves alone). The process holds the read end
 * (fd 10, O_RDONLY|O_NONBLOCK); the child W opened the FIFO for writing and
 * wrote "abc" before ready, then waits for $CR_DIR/go-writer. W keeps the
 * FIFO's pipe alive across the cut: the restored process reopens the path
 * and gets that same pipe, with "abc" in it once (not written back twice).
 * After go: the process reads "abc", creates go-writer, W writes "def" and
 * exits, the process reads "def" and then EOF (no writer left).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cr.h"

static volatile char expect[8] = "abcdef";

/* Read until @n bytes or 5 s pass. */
static size_t read_n(int fd, char *buf, size_t n)
{
	size_t got = 0;
	uint64_t t0 = cr_now_ns();

	while (got < n && cr_now_ns() - t0 < 5000000000ULL) {
		ssize_t r = read(fd, buf + got, n - got);

		if (r > 0)
			got += (size_t)r;
		else
			cr_sleep_ms(1);
	}
	return got;
}

int main(int argc, char **argv)
{
	char fifo[4096], gof[4096], buf[16] = "";
	struct stat st;
	int fd, n = -1;
	uint64_t t0;

	cr_init(argc, argv);
	snprintf(fifo, sizeof(fifo), "%s/fifo", cr_dir());
	snprintf(gof, sizeof(gof), "%s/go-writer", cr_dir());
	if (mkfifo(fifo, 0600) < 0)
		cr_fail("mkfifo: %m");
	fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || dup3(fd, 10, O_CLOEXEC) < 0)
		cr_fail("open fifo: %m");
	close(fd);
	if (fork() == 0) {
		int w = open(fifo, O_WRONLY | O_CLOEXEC);

		close(10);
		if (w < 0 || write(w, "abc", 3) != 3)
			_exit(1);
		for (int i = 0; i < 60000 && access(gof, F_OK) < 0; i++)
			usleep(1000);
		write(w, "def", 3);
		_exit(0);
	}
	/* W's bytes are there before the cut. */
	for (int i = 0; i < 5000; i++) {
		struct pollfd p = { .fd = 10, .events = POLLIN };

		if (poll(&p, 1, 1) == 1 && (p.revents & POLLIN))
			break;
	}

	cr_ready_tamper((const void *)expect, sizeof(expect));
	cr_wait();

	cr_check(fstat(10, &st) == 0 && S_ISFIFO(st.st_mode), "fd 10 is not a FIFO");
	cr_check(read_n(10, buf, 3) == 3 && !memcmp(buf, (const char *)expect, 3),
		 "first read \"%.3s\", expected \"abc\"", buf);
	fd = open(gof, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	memset(buf, 0, sizeof(buf));
	cr_check(read_n(10, buf, 3) == 3 && !memcmp(buf, (const char *)expect + 3, 3),
		 "second read \"%.3s\", expected \"def\" (the writer outside still connected)", buf);
	/* The writer exits: EOF (it may take a moment). */
	t0 = cr_now_ns();
	while (cr_now_ns() - t0 < 5000000000ULL && (n = (int)read(10, buf, sizeof(buf))) < 0 &&
	       errno == EAGAIN)
		cr_sleep_ms(1);
	cr_check(n == 0, "after the writer exited: read %d (errno %d), expected EOF", n, errno);
	cr_check_ids();
	cr_finish();
}
