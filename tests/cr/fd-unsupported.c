// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * fd-unsupported (failckpt mode): descriptors no version captures yet, an
 * io_uring instance (fd 20) and a perf event counter (fd 21). The checkpoint
 * must fail and leave them as they were (with CR_CONTROL=1 the program
 * holds neither, for the harness's control checkpoint): after go the
 * io_uring fd is still an io_uring with the same ring sizes (fdinfo), the
 * perf counter still counts, an eventfd next to them (fd 22) kept its value.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cr.h"

static volatile uint64_t expect_efd = 0x100000005ULL;

static int fdinfo_has(int fd, const char *what)
{
	char buf[4096];

	return cr_fdinfo(fd, buf, sizeof(buf)) == 0 && strstr(buf, what) != NULL;
}

static uint64_t perf_count(void)
{
	uint64_t v = 0;

	if (read(21, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

int main(int argc, char **argv)
{
	struct io_uring_params p = {};
	struct perf_event_attr pa = {
		.type = PERF_TYPE_SOFTWARE, .size = sizeof(pa),
		.config = PERF_COUNT_SW_TASK_CLOCK, .exclude_kernel = 1,
	};
	uint64_t v = 0x100000005ULL, c0, c1;
	volatile uint64_t spin = 0;
	int fd;

	cr_init(argc, argv);
	if ((fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 || dup3(fd, 22, O_CLOEXEC) < 0 ||
	    write(22, &v, 8) != 8)
		cr_fail("eventfd: %m");
	close(fd);
	if (getenv("CR_CONTROL")) {
		cr_ready();
		cr_wait();
		cr_finish();
	}
	fd = (int)syscall(SYS_io_uring_setup, 4, &p);
	if (fd < 0)
		cr_skip("io_uring_setup failed");
	if (dup3(fd, 20, O_CLOEXEC) < 0)
		cr_fail("dup3: %m");
	close(fd);
	fd = (int)syscall(SYS_perf_event_open, &pa, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		cr_skip("perf_event_open failed");
	if (dup3(fd, 21, O_CLOEXEC) < 0)
		cr_fail("dup3: %m");
	close(fd);

	cr_ready_tamper((const void *)&expect_efd, sizeof(expect_efd));
	cr_wait();

	cr_check(fdinfo_has(20, "SqMask:\t0x3") && fdinfo_has(20, "CqMask:\t0x7"),
		 "fd 20 is no longer the io_uring of 4 entries");
	c0 = perf_count();
	for (int i = 0; i < 20000000; i++)
		spin++;
	c1 = perf_count();
	cr_check(c0 > 0 && c1 > c0, "perf counter does not count (%llu, %llu)",
		 (unsigned long long)c0, (unsigned long long)c1);
	v = 0;
	cr_check(read(22, &v, 8) == 8 && v == expect_efd, "eventfd holds %#llx, expected %#llx",
		 (unsigned long long)v, (unsigned long long)expect_efd);
	cr_check_ids();
	cr_finish();
}
