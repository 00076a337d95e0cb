// SPDX-License-Identifier: GPL-2.0-or-later
/* The test-program side of the checkpoint/restore protocol (see cr.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cr.h"

#ifndef RSEQ_SIG
#define RSEQ_SIG 0x53053053
#endif

volatile sig_atomic_t cr_go;

static char cr_dir_path[PATH_MAX];
static const char *cr_name = "test";
static pid_t cr_pid;
static unsigned cr_failed;
static unsigned cr_recreated;
static bool cr_is_ready;
static uint64_t cr_last_beat_ns;
static uintptr_t cr_tamper_addr;
static size_t cr_tamper_len;

static void cr_on_go(int sig)
{
	cr_go = 1;
}

uint64_t cr_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void cr_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int cr_fdinfo(int fd, char *buf, size_t len)
{
	char path[64];
	int f, n;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -1;
	n = (int)read(f, buf, len - 1);
	close(f);
	buf[n > 0 ? n : 0] = 0;
	return n > 0 ? 0 : -1;
}

int cr_fdinfo_u64(int fd, const char *key, int base, uint64_t *ret)
{
	char buf[4096], *s;

	if (cr_fdinfo(fd, buf, sizeof(buf)) < 0 || !(s = strstr(buf, key)))
		return -1;
	*ret = strtoull(s + strlen(key), NULL, base);
	return 0;
}

/* Last field of "NSpid:" in /proc/self/fdinfo/FD, or -1. */
int cr_fdinfo_nspid(int fd)
{
	char buf[4096], *p;
	int last = -1;

	if (cr_fdinfo(fd, buf, sizeof(buf)) < 0)
		return -1;
	p = strstr(buf, "NSpid:");
	if (!p)
		return -1;
	p += 6;
	for (;;) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		last = (int)v;
		p = end;
	}
	return last;
}

const char *cr_dir(void)
{
	return cr_dir_path;
}

void cr_init(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = cr_on_go, .sa_flags = SA_RESTART };
	const char *d = getenv("CR_DIR");
	const char *slash;

	slash = strrchr(argv[0], '/');
	cr_name = slash ? slash + 1 : argv[0];
	if (!d || !*d || strlen(d) >= sizeof(cr_dir_path) - 64)
		cr_fail("CR_DIR is not set (run me through cr-harness)");
	strcpy(cr_dir_path, d);
	cr_pid = getpid();
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		cr_fail("sigaction(SIGUSR1): %m");
	/* Unbuffered: a failure message must not sit in a stdio buffer at the cut. */
	setvbuf(stdout, NULL, _IONBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);
}

/* The ready file is named after the pid namespace so that copies restored into
 * fresh namespaces (--pidns=new) announce themselves separately. */
static int cr_ready_path(char *buf, size_t len, pid_t *ret_hostpid)
{
	char self[64];
	struct stat st;
	ssize_t n;

	if (stat("/proc/self/ns/pid", &st) < 0)
		return -errno;
	/* /proc here is the harness's procfs: /proc/self names our pid there. */
	n = readlink("/proc/self", self, sizeof(self) - 1);
	if (n <= 0)
		return -errno;
	self[n] = 0;
	*ret_hostpid = (pid_t)atoi(self);
	snprintf(buf, len, "%s/ready.%llu", cr_dir_path, (unsigned long long)st.st_ino);
	return 0;
}

static void cr_write_ready(bool force)
{
	char path[PATH_MAX], tmp[PATH_MAX], line[128];
	pid_t hostpid = 0;
	int fd, n;

	if (cr_ready_path(path, sizeof(path), &hostpid) < 0)
		return;
	if (!force && access(path, F_OK) == 0)
		return;
	if (cr_is_ready)
		cr_recreated++;
	snprintf(tmp, sizeof(tmp), "%s/tmp.%d", cr_dir_path, (int)hostpid);
	n = snprintf(line, sizeof(line), "%d %d %#lx %zu\n", (int)getpid(), (int)hostpid,
		     (unsigned long)cr_tamper_addr, cr_tamper_len);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) != n) {
		close(fd);
		unlink(tmp);
		return;
	}
	close(fd);
	if (rename(tmp, path) < 0)
		unlink(tmp);
}

void cr_ready_tamper(const void *addr, size_t len)
{
	cr_tamper_addr = (uintptr_t)addr;
	cr_tamper_len = len;
	cr_write_ready(true);
	cr_is_ready = true;
	cr_last_beat_ns = cr_now_ns();
}

void cr_ready(void)
{
	cr_ready_tamper(NULL, 0);
}

bool cr_poll(void)
{
	uint64_t now;

	if (cr_go)
		return true;
	now = cr_now_ns();
	if (cr_is_ready && now - cr_last_beat_ns >= 2000000ULL) {
		cr_last_beat_ns = now;
		cr_write_ready(false);
	}
	return cr_go;
}

void cr_wait(void)
{
	while (!cr_poll())
		cr_sleep_ms(2);
}

unsigned cr_restored_seen(void)
{
	return cr_recreated;
}

unsigned cr_nr_failed(void)
{
	return __atomic_load_n(&cr_failed, __ATOMIC_SEQ_CST);
}

void cr_check(bool ok, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (ok)
		return;
	__atomic_add_fetch(&cr_failed, 1, __ATOMIC_SEQ_CST);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "FAIL %s: %s\n", cr_name, msg);
}

void cr_fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "FAIL %s: %s\n", cr_name, msg);
	exit(1);
}

void cr_skip(const char *why)
{
	fprintf(stderr, "SKIP %s: %s\n", cr_name, why);
	exit(77);
}

void cr_finish(void)
{
	if (cr_nr_failed()) {
		fprintf(stderr, "FAIL %s: %u check(s) failed\n", cr_name, cr_nr_failed());
		exit(1);
	}
	fprintf(stderr, "PASS %s (restores seen: %u)\n", cr_name, cr_recreated);
	exit(0);
}

void cr_check_ids(void)
{
	cr_check(getpid() == cr_pid, "getpid() is %d, was %d", (int)getpid(), (int)cr_pid);
	cr_check(syscall(SYS_getpid) == cr_pid, "SYS_getpid is %ld, was %d",
		 (long)syscall(SYS_getpid), (int)cr_pid);
}

void cr_check_rseq(const char *who)
{
	void *area;
	long r;

	if (__rseq_size == 0)
		return; /* glibc did not register rseq (GLIBC_TUNABLES): nothing to keep */
	area = (char *)__builtin_thread_pointer() + __rseq_offset;
	/* Registering the same area, length and signature again fails with EBUSY
	 * exactly when it is still registered; 0 would mean it was lost (and now is
	 * registered again by us), EINVAL/EPERM that something else is registered. */
	r = syscall(SYS_rseq, area, 32, 0, RSEQ_SIG);
	cr_check(r < 0 && errno == EBUSY, "%s: rseq area %p not registered as before (rseq: %ld %s)",
		 who, area, r, r < 0 ? strerror(errno) : "registered anew");
}
