// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Probes of the process interfaces: ptrace (seize, rseq configuration,
 * xstate regset), clone3 with set_tid, PR_SET_MM_MAP, /proc/PID/map_files,
 * process_vm_readv and pidfds. Each works on a forked child it reaps.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/util.h"
#include "probe.h"

/* Newer than Debian 12's headers (and glibc has these as enum values). */
#define PROBE_PTRACE_GET_RSEQ_CONFIGURATION	0x420f
#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE	0x202
#endif

struct probe_rseq_conf {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

/* struct clone_args up to CLONE_ARGS_SIZE_VER2 (88 bytes). */
struct probe_clone_args {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
	uint64_t cgroup;
};

#define XSTATE_REGSET_MAX	(64u << 10)

static uintptr_t thread_pointer(void)
{
	uintptr_t tp;

	__asm__("mov %%fs:0, %0" : "=r"(tp));
	return tp;
}

/* ptrace-seize and ptrace-rseq on one seized child; records the xstate size. */
static void probe_ptrace(struct eng_features *f)
{
	struct probe_rseq_conf conf = {};
	_cleanup_free_ void *xbuf = NULL;
	struct iovec iov;
	int r, status = 0;
	pid_t pid = 0;

	r = probe_sleeper_start(NULL, NULL, NULL, 0, &pid);
	if (r < 0) {
		probe_set(f, ENG_FEAT_PTRACE_SEIZE, r, "cannot start a child: %s", strerror(-r));
		probe_set(f, ENG_FEAT_PTRACE_RSEQ, r, "not probed: no seized child");
		return;
	}
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_PTRACE_SEIZE, r, "PTRACE_SEIZE: %s", strerror(-r));
		goto no_rseq;
	}
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_PTRACE_SEIZE, r, "PTRACE_INTERRUPT: %s", strerror(-r));
		goto no_rseq;
	}
	r = probe_wait(pid, &status, 0);
	if (r < 0) {
		probe_set(f, ENG_FEAT_PTRACE_SEIZE, r, "waitpid: %s", strerror(-r));
		goto no_rseq;
	}
	if (!WIFSTOPPED(status) || (status >> 16) != PTRACE_EVENT_STOP) {
		probe_set(f, ENG_FEAT_PTRACE_SEIZE, -EPROTO,
			  "no PTRACE_EVENT_STOP after PTRACE_INTERRUPT (status 0x%x)", status);
		goto no_rseq;
	}
	probe_set(f, ENG_FEAT_PTRACE_SEIZE, 0, "seized a child, PTRACE_INTERRUPT stopped it");

	xbuf = calloc(1, XSTATE_REGSET_MAX);
	if (xbuf) {
		iov.iov_base = xbuf;
		iov.iov_len = XSTATE_REGSET_MAX;
		if (ptrace(PTRACE_GETREGSET, pid, (void *)(uintptr_t)NT_X86_XSTATE, &iov) == 0)
			f->xstate_regset_size = iov.iov_len;
	}

	if (ptrace(PROBE_PTRACE_GET_RSEQ_CONFIGURATION, pid, (void *)sizeof(conf), &conf) < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_PTRACE_RSEQ, r, "PTRACE_GET_RSEQ_CONFIGURATION: %s",
			  strerror(-r));
		goto out;
	}
	f->rseq_sig = conf.signature;
	if (__rseq_size == 0) {
		/* glibc's registration is off (tunable): the call itself is the feature. */
		probe_set(f, ENG_FEAT_PTRACE_RSEQ, 0,
			  "works; glibc registers no rseq area in this process");
		goto out;
	}
	/* The child is a fork of this thread: same TLS, so the same rseq area. */
	if (conf.rseq_abi_pointer != thread_pointer() + __rseq_offset || conf.signature != RSEQ_SIG) {
		probe_set(f, ENG_FEAT_PTRACE_RSEQ, -EPROTO,
			  "reports area 0x%" PRIx64 " sig 0x%x, expected 0x%" PRIxPTR " sig 0x%x",
			  conf.rseq_abi_pointer, conf.signature,
			  thread_pointer() + __rseq_offset, RSEQ_SIG);
		goto out;
	}
	probe_set(f, ENG_FEAT_PTRACE_RSEQ, 0, "area of %u bytes at TLS%+td, signature 0x%x",
		  conf.rseq_abi_size, __rseq_offset, conf.signature);
	goto out;

no_rseq:
	probe_set(f, ENG_FEAT_PTRACE_RSEQ, r, "not probed: could not seize a child");
out:
	probe_sleeper_stop(pid);
}

static pid_t probe_clone3(uint64_t flags, pid_t *set_tid, size_t nr)
{
	struct probe_clone_args args = {
		.flags = flags,
		.exit_signal = SIGCHLD,
		.set_tid = (uintptr_t)set_tid,
		.set_tid_size = nr,
	};

	return syscall(__NR_clone3, &args, sizeof(args));
}

/* Exit codes of the namespace init below, besides an errno value < 100. */
enum {
	CLONE3_INIT_NOT_PID1	= 100,
	CLONE3_CHILD_WRONG_PID	= 101,
	CLONE3_PARENT_WRONG_PID	= 102,
	CLONE3_WAIT_FAILED	= 103,
};

/*
 * In the probe child: clone3(CLONE_NEWPID, set_tid = {1}) makes the init of a
 * fresh pid namespace; the init clone3()s a child with set_tid = {want}, and
 * both check that they got the pid they asked for. This is what a restore
 * into a new pid namespace does.
 */
static int clone3_child(void *arg, struct probe_msg *msg)
{
	pid_t want = *(pid_t *)arg, one = 1, init, child;
	int status, r;

	init = probe_clone3(CLONE_NEWPID, &one, 1);
	if (init < 0) {
		r = -errno;
		snprintf(msg->detail, sizeof(msg->detail),
			 "clone3(CLONE_NEWPID, set_tid={1}): %s", strerror(-r));
		return r;
	}
	if (init == 0) {
		/* pid 1 of the new namespace; only raw syscalls from here. */
		syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (syscall(SYS_getpid) != 1)
			_exit(CLONE3_INIT_NOT_PID1);
		child = probe_clone3(0, &want, 1);
		if (child < 0)
			_exit(errno < 100 ? errno : 99);
		if (child == 0)
			_exit(syscall(SYS_getpid) == want ? 0 : CLONE3_CHILD_WRONG_PID);
		if (child != want)
			_exit(CLONE3_PARENT_WRONG_PID);
		if (waitpid(child, &status, 0) != child)
			_exit(CLONE3_WAIT_FAILED);
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : CLONE3_WAIT_FAILED);
	}
	r = probe_wait(init, &status, 0);
	if (r < 0) {
		snprintf(msg->detail, sizeof(msg->detail), "waitpid: %s", strerror(-r));
		return r;
	}
	if (!WIFEXITED(status)) {
		snprintf(msg->detail, sizeof(msg->detail), "namespace init died (status 0x%x)", status);
		return -ECHILD;
	}
	switch (WEXITSTATUS(status)) {
	case 0:
		snprintf(msg->detail, sizeof(msg->detail), "got pid %d in a new pid namespace", want);
		return 0;
	case CLONE3_INIT_NOT_PID1:
		snprintf(msg->detail, sizeof(msg->detail), "set_tid={1} did not make pid 1");
		return -EPROTO;
	case CLONE3_CHILD_WRONG_PID:
	case CLONE3_PARENT_WRONG_PID:
		snprintf(msg->detail, sizeof(msg->detail), "set_tid={%d} gave another pid", want);
		return -EPROTO;
	case CLONE3_WAIT_FAILED:
		snprintf(msg->detail, sizeof(msg->detail), "child in the namespace failed");
		return -ECHILD;
	default:
		r = -(int)WEXITSTATUS(status);
		snprintf(msg->detail, sizeof(msg->detail), "clone3(set_tid={%d}) in a new pid ns: %s",
			 want, strerror(-r));
		return r;
	}
}

static void probe_clone3_set_tid(struct eng_features *f)
{
	struct probe_msg msg = {};
	uint64_t pid_max = 0;
	pid_t want;
	int r;

	r = probe_read_uint("/proc/sys/kernel/pid_max", &pid_max);
	if (r < 0 || pid_max < 2 || pid_max > INT32_MAX) {
		probe_set(f, ENG_FEAT_CLONE3_SET_TID, r < 0 ? r : -ERANGE,
			  "cannot read /proc/sys/kernel/pid_max");
		return;
	}
	f->pid_max = pid_max;
	/* The highest pid allowed: set_tid must be below pid_max. */
	want = (pid_t)pid_max - 1;
	r = probe_in_child(clone3_child, &want, &msg);
	probe_set(f, ENG_FEAT_CLONE3_SET_TID, r, "%s (pid_max %" PRIu64 ")", msg.detail, pid_max);
}

/* Fields of /proc/self/stat by their number in proc(5) (1-based); 0..52. */
#define STAT_FIELDS 53

static int read_self_stat(uint64_t fields[STAT_FIELDS])
{
	_cleanup_free_ char *buf = NULL;
	char *p, *end;
	int r, i;

	r = read_file("/proc/self/stat", &buf, NULL);
	if (r < 0)
		return r;
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -EBADMSG;
	p += 2;
	memset(fields, 0, sizeof(uint64_t) * STAT_FIELDS);
	/* Field 3 is the state letter. */
	for (i = 3; i < STAT_FIELDS && *p; i++) {
		if (i == 3) {
			p++;
		} else {
			errno = 0;
			fields[i] = strtoull(p, &end, 10);
			if (end == p || errno)
				fields[i] = (uint64_t)strtoll(p, &end, 10);
			if (end == p)
				return -EBADMSG;
			p = end;
		}
		while (*p == ' ')
			p++;
	}
	return i == STAT_FIELDS ? 0 : -EBADMSG;
}

/*
 * In the probe child: set the child's own current mm layout with
 * PR_SET_MM_MAP (exe_fd = -1: changing the executable needs the old one
 * unmapped, which only the restorer can do) and check it reads back.
 */
static int mm_map_child(void *arg, struct probe_msg *msg)
{
	uint64_t before[STAT_FIELDS], after[STAT_FIELDS];
	static const int check[] = { 26, 27, 28, 45, 46, 47, 48, 49, 50, 51 };
	_cleanup_free_ char *auxv = NULL;
	struct prctl_mm_map map = {};
	unsigned int size = 0;
	size_t auxv_len = 0;
	int r;

	if (prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0) < 0) {
		r = -errno;
		snprintf(msg->detail, sizeof(msg->detail), "PR_SET_MM_MAP_SIZE: %s", strerror(-r));
		return r;
	}
	msg->val[0] = size;
	if (size != sizeof(map)) {
		snprintf(msg->detail, sizeof(msg->detail), "kernel struct is %u bytes, ours %zu",
			 size, sizeof(map));
		return -EPROTO;
	}
	r = read_self_stat(before);
	if (r >= 0)
		r = read_file("/proc/self/auxv", &auxv, &auxv_len);
	if (r < 0) {
		snprintf(msg->detail, sizeof(msg->detail), "reading /proc/self: %s", strerror(-r));
		return r;
	}
	map.start_code = before[26];
	map.end_code = before[27];
	map.start_stack = before[28];
	map.start_data = before[45];
	map.end_data = before[46];
	map.start_brk = before[47];
	map.brk = syscall(SYS_brk, 0);
	map.arg_start = before[48];
	map.arg_end = before[49];
	map.env_start = before[50];
	map.env_end = before[51];
	map.auxv = (__u64 *)auxv;
	map.auxv_size = auxv_len;
	map.exe_fd = (uint32_t)-1;
	if (prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof(map), 0) < 0) {
		r = -errno;
		snprintf(msg->detail, sizeof(msg->detail), "PR_SET_MM_MAP: %s", strerror(-r));
		return r;
	}
	r = read_self_stat(after);
	if (r < 0) {
		snprintf(msg->detail, sizeof(msg->detail), "re-reading /proc/self/stat: %s",
			 strerror(-r));
		return r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(check); i++) {
		if (before[check[i]] != after[check[i]]) {
			snprintf(msg->detail, sizeof(msg->detail),
				 "stat field %d changed from 0x%" PRIx64 " to 0x%" PRIx64,
				 check[i], before[check[i]], after[check[i]]);
			return -EPROTO;
		}
	}
	snprintf(msg->detail, sizeof(msg->detail),
		 "set own layout in a child (struct %u bytes, auxv %zu bytes)", size, auxv_len);
	return 0;
}

static void probe_mm_map(struct eng_features *f)
{
	struct probe_msg msg = {};
	int r;

	r = probe_in_child(mm_map_child, NULL, &msg);
	f->mm_map_size = msg.val[0];
	probe_set(f, ENG_FEAT_PR_SET_MM_MAP, r, "%s", msg.detail);
}

/* Open the first file mapping of a child through /proc/PID/map_files. */
static void probe_map_files(struct eng_features *f)
{
	_cleanup_free_ char *maps = NULL;
	char path[96];
	pid_t pid = 0;
	int r;

	r = probe_sleeper_start(NULL, NULL, NULL, 0, &pid);
	if (r < 0) {
		probe_set(f, ENG_FEAT_MAP_FILES, r, "cannot start a child: %s", strerror(-r));
		return;
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	r = read_file(path, &maps, NULL);
	if (r < 0) {
		probe_set(f, ENG_FEAT_MAP_FILES, r, "%s: %s", path, strerror(-r));
		goto out;
	}
	r = -ENOENT;
	for (char *line = maps, *next; line && *line; line = next) {
		unsigned long start, end, ino, maj, min;
		_cleanup_close_ int fd = -1;
		struct stat st;
		int n = 0;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (sscanf(line, "%lx-%lx %*s %*x %lx:%lx %lu %n", &start, &end, &maj, &min,
			   &ino, &n) < 5 || ino == 0 || !n || line[n] != '/')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/map_files/%lx-%lx", pid, start, end);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			probe_set(f, ENG_FEAT_MAP_FILES, r, "open %s: %s", path, strerror(-r));
			goto out;
		}
		if (fstat(fd, &st) < 0 || st.st_ino != ino) {
			r = -EPROTO;
			probe_set(f, ENG_FEAT_MAP_FILES, r, "%s is not inode %lu", path, ino);
			goto out;
		}
		probe_set(f, ENG_FEAT_MAP_FILES, 0, "opened %s of a child", line + n);
		goto out;
	}
	probe_set(f, ENG_FEAT_MAP_FILES, r, "no file mapping found in a child");
out:
	probe_sleeper_stop(pid);
}

/* Written only by sleeper children: the parent's copy stays zero. */
static uint8_t pvm_buf[2 * 4096] __attribute__((aligned(4096)));

static int pvm_setup(void *arg, int report_fd)
{
	for (size_t i = 0; i < sizeof(pvm_buf); i++)
		pvm_buf[i] = (uint8_t)(i * 31 + 7);
	return 0;
}

static void probe_process_vm_readv(struct eng_features *f)
{
	_cleanup_free_ uint8_t *local = NULL;
	struct iovec liov[2], riov;
	pid_t pid = 0;
	ssize_t n;
	int r;

	local = calloc(1, sizeof(pvm_buf));
	if (!local) {
		probe_set(f, ENG_FEAT_PROCESS_VM_READV, -ENOMEM, "out of memory");
		return;
	}
	r = probe_sleeper_start(pvm_setup, NULL, NULL, 0, &pid);
	if (r < 0) {
		probe_set(f, ENG_FEAT_PROCESS_VM_READV, r, "cannot start a child: %s", strerror(-r));
		return;
	}
	/* Two local pieces for one remote range: the vectored path is the one we use. */
	liov[0] = (struct iovec){ local, sizeof(pvm_buf) / 2 };
	liov[1] = (struct iovec){ local + sizeof(pvm_buf) / 2, sizeof(pvm_buf) / 2 };
	riov = (struct iovec){ pvm_buf, sizeof(pvm_buf) };
	n = process_vm_readv(pid, liov, 2, &riov, 1, 0);
	if (n < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_PROCESS_VM_READV, r, "%s", strerror(-r));
		goto out;
	}
	if ((size_t)n != sizeof(pvm_buf)) {
		probe_set(f, ENG_FEAT_PROCESS_VM_READV, -EIO, "short read: %zd of %zu bytes", n,
			  sizeof(pvm_buf));
		goto out;
	}
	for (size_t i = 0; i < sizeof(pvm_buf); i++) {
		if (local[i] != (uint8_t)(i * 31 + 7)) {
			probe_set(f, ENG_FEAT_PROCESS_VM_READV, -EPROTO,
				  "byte %zu differs from the child's memory", i);
			goto out;
		}
	}
	probe_set(f, ENG_FEAT_PROCESS_VM_READV, 0, "read 2 pages of a child's memory");
out:
	probe_sleeper_stop(pid);
}

struct pidfd_report {
	int fd;
	uint64_t ino;
};

static int pidfd_setup(void *arg, int report_fd)
{
	struct pidfd_report rep = {};
	struct stat st;

	rep.fd = memfd_create("warmfork-probe-getfd", MFD_CLOEXEC);
	if (rep.fd < 0 || fstat(rep.fd, &st) < 0)
		return -errno;
	rep.ino = st.st_ino;
	return write_full(report_fd, &rep, sizeof(rep));
}

/* pidfd_open a child, pidfd_getfd one of its fds, kill it with pidfd_send_signal. */
static void probe_pidfd(struct eng_features *f)
{
	_cleanup_close_ int pidfd = -1, got = -1;
	struct pidfd_report rep = {};
	struct stat st;
	pid_t pid = 0;
	int r, status;

	r = probe_sleeper_start(pidfd_setup, NULL, &rep, sizeof(rep), &pid);
	if (r < 0) {
		probe_set(f, ENG_FEAT_PIDFD, r, "cannot start a child: %s", strerror(-r));
		return;
	}
	pidfd = syscall(__NR_pidfd_open, pid, 0);
	if (pidfd < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_PIDFD, r, "pidfd_open: %s", strerror(-r));
		goto out;
	}
	got = syscall(__NR_pidfd_getfd, pidfd, rep.fd, 0);
	if (got < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_PIDFD, r, "pidfd_getfd: %s", strerror(-r));
		goto out;
	}
	if (fstat(got, &st) < 0 || st.st_ino != rep.ino) {
		probe_set(f, ENG_FEAT_PIDFD, -EPROTO, "pidfd_getfd returned another file");
		goto out;
	}
	if (syscall(__NR_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0) {
		r = -errno;
		probe_set(f, ENG_FEAT_PIDFD, r, "pidfd_send_signal: %s", strerror(-r));
		goto out;
	}
	r = probe_wait(pid, &status, 0);
	pid = 0;
	if (r < 0 || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
		probe_set(f, ENG_FEAT_PIDFD, r < 0 ? r : -EPROTO,
			  "child not killed by pidfd_send_signal");
		goto out;
	}
	probe_set(f, ENG_FEAT_PIDFD, 0, "open, getfd and send_signal on a child");
out:
	probe_sleeper_stop(pid);
}

void probe_proc(struct eng_features *f)
{
	probe_ptrace(f);
	probe_clone3_set_tid(f);
	probe_mm_map(f);
	probe_map_files(f);
	probe_process_vm_readv(f);
	probe_pidfd(f);
}
