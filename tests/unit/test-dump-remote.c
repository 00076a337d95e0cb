// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The remote-syscall primitive (engine/dump/remote.c) on its own: in a
 * frozen child, one-by-one calls and a batch return what the child itself
 * would get, every register reads back exactly as before, and the child,
 * once thawed, goes on as if nothing happened (its sleeps never see EINTR,
 * its busy loop keeps its registers).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "dump.h"
#include "test-check.h"

struct shared {
	volatile int ready, stop;
	volatile unsigned long loops, eintr;
};
static struct shared *sh;

static _Noreturn void sleeper(void)
{
	sh->ready = 1;
	while (!sh->stop) {
		struct timespec ts = { 0, 2000000 };

		if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
			sh->eintr++;
		sh->loops++;
	}
	_exit(0);
}

static _Noreturn void spinner(void)
{
	sh->ready = 1;
	while (!sh->stop)
		sh->loops++;
	_exit(0);
}

static pid_t spawn(void (*fn)(void))
{
	pid_t pid;

	sh->ready = sh->stop = 0;
	sh->loops = sh->eintr = 0;
	pid = fork();
	if (pid == 0)
		fn();
	for (int i = 0; i < 5000 && !sh->ready; i++)
		usleep(1000);
	usleep(10000);
	return pid;
}

static bool regs_equal(pid_t tid, const struct user_regs_struct *want)
{
	struct user_regs_struct now;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &now) < 0)
		return false;
	return memcmp(&now, want, sizeof(now)) == 0;
}

static void exercise(void (*fn)(void), const char *name)
{
	struct eng_dump_threads ts;
	struct eng_remote rs;
	struct user_regs_struct before;
	struct eng_proc_map vdso = {};
	uint64_t ip = 0, scratch = 0;
	char *maps = NULL, *line;
	unsigned long l0;
	long v;
	pid_t pid;
	int r, st;

	pid = spawn(fn);
	CHECK(eng_dump_freeze(pid, &ts) == 0);
	CHECK(ts.nr == 1 && ts.v[0].tid == pid);
	CHECK(ptrace(PTRACE_GETREGS, pid, NULL, &before) == 0);

	/* The syscall instruction borrowed from the child's [vdso]. */
	{
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/maps", pid);
		CHECK(read_file(path, &maps, NULL) == 0);
		line = maps ? strstr(maps, "[vdso]") : NULL;
		while (line && line > maps && line[-1] != '\n')
			line--;
		CHECK(line && eng_dump_parse_maps_line(line, &vdso) == 0 &&
		      strcmp(vdso.path, "[vdso]") == 0);
		CHECK(vdso.path && eng_remote_find_syscall(pid, &vdso, 1, &ip) == 0 &&
		      ip >= vdso.start && ip < vdso.end);
	}

	/* One by one. */
	CHECK(eng_remote_begin(&rs, pid, ip) == 0);
	r = eng_remote_syscall(&rs, SYS_getpid, &v, 0, 0, 0, 0, 0, 0);
	CHECK(r == 0 && v == pid);
	r = eng_remote_syscall(&rs, SYS_mmap, &v, 0, 8192, PROT_READ | PROT_WRITE | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS, (unsigned long)-1, 0);
	CHECK(r == 0 && v > 0);
	scratch = r == 0 ? (uint64_t)v : 0;
	r = eng_remote_syscall(&rs, SYS_close, &v, 12345, 0, 0, 0, 0, 0);
	CHECK(r == 0 && v == -EBADF);
	CHECK(eng_remote_end(&rs) == 0);
	CHECK(regs_equal(pid, &before));

	/* A batch. */
	if (scratch && eng_remote_batch_ok(pid, 0)) {
		size_t len = eng_remote_blob_end - eng_remote_blob;
		struct iovec local = { (void *)eng_remote_blob, len };
		struct iovec remote = { (void *)(uintptr_t)scratch, len };
		struct eng_remote_call calls[3] = {
			{ .nr = SYS_getpid },
			{ .nr = SYS_gettid },
			{ .nr = SYS_close, .args = { 12345 } },
		};

		CHECK(process_vm_writev(pid, &local, 1, &remote, 1, 0) == (ssize_t)len);
		CHECK(eng_remote_begin(&rs, pid, ip) == 0);
		r = eng_remote_batch(&rs, scratch, scratch + 256, calls, 3);
		CHECK(r == 0);
		CHECK(calls[0].ret == pid && calls[1].ret == pid && calls[2].ret == -EBADF);
		CHECK(eng_remote_end(&rs) == 0);
		CHECK(regs_equal(pid, &before));
	}

	/* Leave nothing behind. */
	if (scratch) {
		CHECK(eng_remote_begin(&rs, pid, ip) == 0);
		r = eng_remote_syscall(&rs, SYS_munmap, &v, scratch, 8192, 0, 0, 0, 0);
		CHECK(r == 0 && v == 0);
		CHECK(eng_remote_end(&rs) == 0);
		CHECK(regs_equal(pid, &before));
	}
	{
		char path[64], *after = NULL;

		snprintf(path, sizeof(path), "/proc/%d/maps", pid);
		CHECK(read_file(path, &after, NULL) == 0);
		CHECK(maps && after && strcmp(maps, after) == 0);
		free(after);
	}
	eng_dump_thaw(&ts);
	eng_dump_threads_fini(&ts);

	l0 = sh->loops;
	usleep(30000);
	CHECK(sh->loops > l0);
	sh->stop = 1;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(sh->eintr == 0);
	free(maps);
	eng_dump_map_fini(&vdso);
	fprintf(stderr, "%s: done\n", name);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("SKIP: needs root (ptrace)\n");
		return 77;
	}
	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	exercise(sleeper, "sleeper (interrupted nanosleep)");
	exercise(spinner, "spinner (user mode)");
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("dump-remote: all checks passed\n");
	return 0;
}
