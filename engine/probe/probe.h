/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef ENG_PROBE_H
#define ENG_PROBE_H

/*
 * Internal to engine/probe: the helpers every probe uses. Each probe_*()
 * function fills the rows it owns with probe_set() and never fails as a
 * whole: whatever goes wrong is recorded as "missing" with its -errno.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"

/* Record the result of one row. @err is 0 when supported, else -errno. */
void probe_set(struct eng_features *f, enum eng_feature feat, int err,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Append to a detail buffer (bounded, always NUL-terminated). */
void probe_appendf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * What a probe child sends back to the parent through a pipe.
 */
struct probe_msg {
	int err;			/* 0 or -errno */
	uint64_t val[4];		/* probe-specific values */
	char detail[ENG_FEATURE_DETAIL_MAX];
};

/*
 * Run @fn in a forked child (PR_SET_PDEATHSIG, a 10 s alarm) and collect
 * its message. The child is always reaped before returning. Returns fn's
 * err, or -errno if the child could not be run, or -ECHILD with a detail
 * naming the signal if it died before reporting.
 */
int probe_in_child(int (*fn)(void *arg, struct probe_msg *msg), void *arg,
		   struct probe_msg *ret_msg);

/*
 * A "sleeper": a forked child that runs @setup (which may write @report_len
 * bytes of report to @report_fd), then sleeps until killed. Dies by itself
 * after 10 s or when the caller dies. probe_sleeper_start() returns once the
 * report arrived; probe_sleeper_stop() kills (SIGKILL) and reaps it and
 * accepts a pid of 0 (already reaped).
 */
int probe_sleeper_start(int (*setup)(void *arg, int report_fd), void *arg,
			void *report, size_t report_len, pid_t *ret_pid);
void probe_sleeper_stop(pid_t pid);

/* Wait for @pid (also a traced child), retrying on EINTR. -errno. */
int probe_wait(pid_t pid, int *ret_status, int options);

/* Read one unsigned integer from a /proc file. -errno. */
int probe_read_uint(const char *path, uint64_t *ret);

/* The probes, grouped by source file. */
void probe_proc(struct eng_features *f);	/* probe-proc.c: ptrace, clone3, prctl, /proc, pidfd */
void probe_vdso(struct eng_features *f);	/* probe-vdso.c */
void probe_mem(struct eng_features *f);		/* probe-mem.c: memfd, madvise, uffd, pagemap */
void probe_sys(struct eng_features *f);		/* probe-sys.c: io_uring, TCP_REPAIR, caps, xsave */

#endif
