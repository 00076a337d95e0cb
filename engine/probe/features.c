// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Run-time feature probes: the table of what the engine relies on, the
 * driver, and the child-process helpers the probes share.
 *
 * Required means the engine cannot checkpoint or restore without it (or, for
 * io_uring, cannot meet its design); optional features enable lazy restore,
 * incremental dumps and TCP, and the engine falls back without them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "probe.h"

static const struct eng_feature_desc feature_descs[ENG_FEAT__COUNT] = {
	[ENG_FEAT_PTRACE_SEIZE]		= { "ptrace-seize",	"freeze and inspect a process",	true },
	[ENG_FEAT_PTRACE_RSEQ]		= { "ptrace-rseq",	"save each thread's rseq area",	true },
	[ENG_FEAT_CLONE3_SET_TID]	= { "clone3-set-tid",	"recreate processes with their pids", true },
	[ENG_FEAT_PR_SET_MM_MAP]	= { "prctl-mm-map",	"restore brk, args, env, auxv",	true },
	[ENG_FEAT_MAP_FILES]		= { "map-files",	"open mapped (also deleted) files", true },
	[ENG_FEAT_PROCESS_VM_READV]	= { "process-vm-readv",	"copy memory out at checkpoint", true },
	[ENG_FEAT_PIDFD]		= { "pidfd",		"race-free signals, fetch fds",	true },
	[ENG_FEAT_VDSO_REMAP]		= { "vdso-remap",	"move [vvar]+[vdso] to saved place", true },
	[ENG_FEAT_MEMFD]		= { "memfd",		"restore shared anonymous memory", true },
	[ENG_FEAT_IO_URING]		= { "io-uring",		"batched page I/O of the store", true },
	[ENG_FEAT_IO_URING_OPS]		= { "io-uring-ops",	"opcodes the store/transfer use", true },
	[ENG_FEAT_CAPS]			= { "capabilities",	"privileges to checkpoint/restore", true },
	[ENG_FEAT_XSAVE]		= { "xsave",		"save/restore FPU, AVX state",	true },
	[ENG_FEAT_MADV_POPULATE_WRITE]	= { "madv-populate-write", "populate restored memory in bulk", false },
	[ENG_FEAT_USERFAULTFD]		= { "userfaultfd",	"lazy restore (pages on demand)", false },
	[ENG_FEAT_USERFAULTFD_DEV]	= { "userfaultfd-dev",	"userfaultfd without the syscall", false },
	[ENG_FEAT_PAGEMAP_SCAN]		= { "pagemap-scan",	"fast scan of present pages",	false },
	[ENG_FEAT_DIRTY_TRACKING]	= { "dirty-tracking",	"incremental dumps (uffd-wp)",	false },
	[ENG_FEAT_SOFT_DIRTY]		= { "soft-dirty",	"incremental dumps (legacy)",	false },
	[ENG_FEAT_TCP_REPAIR]		= { "tcp-repair",	"checkpoint TCP connections",	false },
	[ENG_FEAT_CAP_SYS_RESOURCE]	= { "cap-sys-resource",	"restore rlimits above hard limits", false },
};

const struct eng_feature_desc *eng_feature_desc(enum eng_feature feat)
{
	if ((unsigned)feat >= ENG_FEAT__COUNT)
		return NULL;
	return &feature_descs[feat];
}

void probe_appendf(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strnlen(buf, len);
	va_list ap;

	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

void probe_set(struct eng_features *f, enum eng_feature feat, int err, const char *fmt, ...)
{
	struct eng_feature_state *s = &f->state[feat];
	va_list ap;

	s->supported = err == 0;
	s->err = err > 0 ? -err : err;
	s->detail[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(s->detail, sizeof(s->detail), fmt, ap);
		va_end(ap);
	}
}

int probe_wait(pid_t pid, int *ret_status, int options)
{
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, options | __WALL);

		if (r == pid)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 ? -errno : -ECHILD;
	}
	if (ret_status)
		*ret_status = status;
	return 0;
}

int probe_read_uint(const char *path, uint64_t *ret)
{
	_cleanup_free_ char *buf = NULL;
	char *nl;
	int r;

	r = read_file(path, &buf, NULL);
	if (r < 0)
		return r;
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	return parse_u64(buf, 10, ret);
}

/* Common setup of every probe child: die with the parent, die after 10 s. */
static void probe_child_init(void)
{
	sigset_t alrm;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGALRM, SIG_DFL);
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	sigprocmask(SIG_UNBLOCK, &alrm, NULL);
	alarm(10);
}

static int describe_death(int status, struct probe_msg *msg)
{
	if (WIFSIGNALED(status)) {
		snprintf(msg->detail, sizeof(msg->detail), "probe child killed by signal %d (%s)",
			 WTERMSIG(status), strsignal(WTERMSIG(status)));
		return -ECHILD;
	}
	snprintf(msg->detail, sizeof(msg->detail), "probe child exited with %d before reporting",
		 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return -ECHILD;
}

int probe_in_child(int (*fn)(void *arg, struct probe_msg *msg), void *arg,
		   struct probe_msg *ret_msg)
{
	struct probe_msg msg = {};
	int fds[2], status, r, rw;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	if (pid == 0) {
		close(fds[0]);
		probe_child_init();
		msg.err = fn(arg, &msg);
		_exit(write_full(fds[1], &msg, sizeof(msg)) < 0 ? 2 : 0);
	}
	close(fds[1]);
	rw = read_full(fds[0], &msg, sizeof(msg));
	close(fds[0]);
	r = probe_wait(pid, &status, 0);
	if (r < 0)
		return r;
	if (rw < 0) {
		memset(&msg, 0, sizeof(msg));
		msg.err = describe_death(status, &msg);
	}
	*ret_msg = msg;
	return msg.err;
}

int probe_sleeper_start(int (*setup)(void *arg, int report_fd), void *arg,
			void *report, size_t report_len, pid_t *ret_pid)
{
	int fds[2], r, status = 0;
	char ready = 1;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	if (pid == 0) {
		close(fds[0]);
		probe_child_init();
		if (setup && setup(arg, fds[1]) < 0)
			_exit(1);
		if (write_full(fds[1], &ready, 1) < 0)
			_exit(2);
		close(fds[1]);
		for (;;)
			pause();
	}
	close(fds[1]);
	r = report_len ? read_full(fds[0], report, report_len) : 0;
	if (r >= 0)
		r = read_full(fds[0], &ready, 1);
	close(fds[0]);
	if (r < 0) {
		kill(pid, SIGKILL);
		probe_wait(pid, &status, 0);
		return err_set(ECHILD, "probe child failed its setup (status 0x%x)", status);
	}
	*ret_pid = pid;
	return 0;
}

void probe_sleeper_stop(pid_t pid)
{
	int status;

	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	/* A traced child may report a stop before its death: wait for the end. */
	while (probe_wait(pid, &status, 0) == 0 && !WIFEXITED(status) && !WIFSIGNALED(status))
		;
}

int eng_probe_features(struct eng_features *ret)
{
	char missing[256] = "";
	bool any = false;

	memset(ret, 0, sizeof(*ret));
	ret->io_uring_disabled = -1;

	probe_proc(ret);
	probe_vdso(ret);
	probe_mem(ret);
	probe_sys(ret);

	for (unsigned i = 0; i < ENG_FEAT__COUNT; i++) {
		if (!feature_descs[i].required || ret->state[i].supported)
			continue;
		probe_appendf(missing, sizeof(missing), "%s%s", any ? ", " : "",
			      feature_descs[i].name);
		any = true;
	}
	if (any)
		return err_set(EOPNOTSUPP, "missing required: %s", missing);
	return 0;
}

static struct eng_features features_cached;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

static void features_probe_once(void)
{
	eng_probe_features(&features_cached);
}

const struct eng_features *eng_features_get(void)
{
	pthread_once(&features_once, features_probe_once);
	return &features_cached;
}
