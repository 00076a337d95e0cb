/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WE_KEEP_H
#define WE_KEEP_H

/*
 * Keep-warm: a snapshot restored once into a template (the engine's spawn
 * template: memory in place, no program code running) that stays around
 * for a while, so that later runs get a copy-on-write copy of it, with
 * threads re-created, instead of a restore from the store.
 *
 * One keeper per snapshot, found by path: <store>/warm-exec/<id>.keep
 * (a SOCK_SEQPACKET unix socket, mode 0600, in the store's 0700 tree).
 * It holds one parked instance ready (created, not yet running program
 * code), so that an acquire only hands over descriptors and resumes it.
 *
 *   client                                keeper
 *   struct we_keep_req + fds 0,1,2  --->  start the parked instance on them
 *                                   <---  struct we_keep_rep + pidfd
 *   (connection kept open)                park the next one
 *   ... program runs; the client waits on the pidfd, forwards signals,
 *   reads the exit status with PIDFD_GET_INFO (PIDFD_INFO_EXIT, 6.15) ...
 *   close                            --->  (closed early: the instance is
 *                                           killed, the caller is gone)
 *
 * The keeper exits after its idle time without a request, when the
 * command's reference no longer names its snapshot (--refresh, --forget,
 * a re-warm after an invalidation), or when its template fails.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "warmcache.h"

#define WE_KEEP_MAGIC		0x7765706bu	/* "wepk" */

struct we_keep_req {
	uint32_t magic;
	uint32_t resume_signal;		/* > 0: sent to the program as it starts */
};

struct we_keep_rep {
	uint32_t magic;
	int32_t err;			/* 0, or -errno: no instance */
	int32_t pid;			/* the program, in the caller's pid namespace */
	int32_t ns_pid;			/* ... in its own */
};

/* The engine and kernel can do it here (template API, PIDFD_INFO_EXIT). */
bool we_keep_supported(void);

/*
 * Ask the keeper of snapshot @id for a running instance on our fds 0, 1,
 * 2. On success *ret_pid is the program, *ret_pidfd a pidfd for it, and
 * *ret_conn the connection to keep open while it runs. -ENOENT: no keeper
 * (start one); -ESTALE: the keeper is for an outdated snapshot; other
 * -errno: it failed (restore instead).
 */
int we_keep_acquire(const char *store_dir, const char *id, int resume_signal,
		    pid_t *ret_pid, int *ret_pidfd, int *ret_conn);

/*
 * Exit status (wait(2) format) of the process behind @pidfd once it has
 * exited and been reaped by its parent. Blocks until then.
 */
int we_keep_wait(int pidfd, int *ret_status);

/*
 * Start a keeper for snapshot @id (reference @ref in @store_dir) in the
 * background, detached, if none runs. Returns at once; the keeper lives
 * until it is @idle_ms without a request.
 */
int we_keep_spawn(const char *store_dir, const char *ref, const char *id, uint64_t idle_ms);

#endif
