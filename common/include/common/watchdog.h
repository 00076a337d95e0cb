/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_COMMON_WATCHDOG_H
#define WF_COMMON_WATCHDOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * A child that keeps a process from outliving us in a broken state: it
 * holds copies of @hold (a userfaultfd, whose registrations must not go
 * with us) and SIGKILLs the process of @pidfd on EOF of its pipe unless a
 * 'D' (done) came first, then exits. Only async-signal-safe calls after
 * the fork: safe in a caller with threads. Users: a post-copy restore
 * (engine/restore/postcopy.c) and rfork's lazy twins (remote-fork/lazy.c).
 */
struct watchdog {
	int fd;		/* write end of its pipe, or -1 */
	pid_t pid;
};

#define WATCHDOG_INIT	((struct watchdog){ .fd = -1, .pid = -1 })

int watchdog_start(struct watchdog *w, int pidfd, const int *hold, size_t nr_hold);
/* @done: the process may go on without us (no kill). Reaps the child. A
 * watchdog not started is a no-op. */
void watchdog_stop(struct watchdog *w, bool done);

#endif
