// SPDX-License-Identifier: LGPL-2.1-or-later
#ifndef WARMFORK_H
#define WARMFORK_H

/*
 * libwarmfork: the client of warmd, the pool daemon of pre-spawned
 * instances of warmfork snapshots (docs/warmd.md).
 *
 * A pool is a snapshot of warmd's store plus a number of idle instances
 * warmd keeps parked (created from the snapshot, not yet running). Acquire
 * hands one out: it starts running with the descriptors you pass (e.g. a
 * request's connection as its stdin and stdout) and you get its pid and a
 * pidfd. Every instance is used once: it is never returned to a pool.
 *
 * Conventions:
 *  - every call returns 0 on success and -errno on failure, and then a
 *    one-line explanation is available from wf_errmsg() in the same thread;
 *  - ret out-parameters are written only on success;
 *  - the library never prints, never raises SIGPIPE (MSG_NOSIGNAL) and
 *    opens every descriptor with O_CLOEXEC;
 *  - thread safety: a struct wf_client may be shared by threads; its
 *    requests are serialized by a mutex (one request on the wire at a time),
 *    so threads that need parallel acquires should each wf_connect().
 *    wf_disconnect() must not run while another thread uses the client.
 *    wf_errmsg() is per thread.
 *
 * Errors with a specific meaning:
 *  -EACCES     warmd refused this caller (socket mode or peer credentials)
 *  -ENOENT     no such pool, or its snapshot is gone from warmd's store
 *  -EEXIST     a pool of that name exists with another snapshot
 *  -ETIMEDOUT  no instance became available within the acquire timeout
 *  -EBUSY      the pool has max_busy instances running
 *  -ESRCH      release/signal: no such instance acquired on this connection
 *  -EPROTO     warmd broke the protocol (or is another program)
 *  -ECONNRESET warmd closed the connection (the client is then unusable)
 *
 * Instances belong to the connection that acquired them: when it closes
 * (wf_disconnect, or the client process dies) warmd kills (SIGKILL) and
 * reaps every instance of it that still runs.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WF_DEFAULT_SOCKET	"/run/warmfork/warmd.sock"
#define WF_NAME_MAX		64	/* pool names: [A-Za-z0-9._-], 1..64 chars */
#define WF_MAX_FDS		16	/* descriptors passed to one acquire */

struct wf_client;

/*
 * Connect to warmd at @socket_path (NULL: $WARMD_SOCKET, else
 * WF_DEFAULT_SOCKET) and read its greeting: -EACCES if it refuses us.
 */
int wf_connect(const char *socket_path, struct wf_client **ret);

/* Close the connection: warmd kills this connection's running instances.
 * Accepts NULL. */
void wf_disconnect(struct wf_client *c);

/* The explanation of this thread's last failed wf_* call ("" if none). */
const char *wf_errmsg(void);

struct wf_pool_opts {
	size_t sz;			/* sizeof(struct wf_pool_opts) */
	unsigned int idle_target;	/* parked instances kept ready (default 4) */
	unsigned int max_busy;		/* running instances at most (0: no limit) */
};

/*
 * Register @snapshot (id or unique prefix, in warmd's store) as pool
 * @pool; warmd then keeps idle_target instances parked in the background.
 * Registering an existing pool with the same snapshot updates its options;
 * with another snapshot it fails with -EEXIST. @opts may be NULL.
 */
int wf_pool_register(struct wf_client *c, const char *pool, const char *snapshot,
		     const struct wf_pool_opts *opts);

/* Drop @pool: its idle instances are killed; acquired ones run on. */
int wf_pool_unregister(struct wf_client *c, const char *pool);

/* A descriptor of ours that becomes descriptor @target_fd of the instance. */
struct wf_fd_map {
	int fd;
	int target_fd;
};

struct wf_acquire_opts {
	size_t sz;			/* sizeof(struct wf_acquire_opts) */
	const struct wf_fd_map *fds;	/* e.g. { conn, 0 }, { conn, 1 } */
	size_t nr_fds;			/* at most WF_MAX_FDS */
	unsigned int timeout_ms;	/* wait for a free instance (0: 5000) */
};

struct wf_instance {
	pid_t pid;			/* in warmd's pid namespace */
	pid_t ns_pid;			/* in the instance's own pid namespace */
	int pidfd;			/* yours: poll it (readable when the instance
					 * ended), close it when done */
	uint64_t latency_ns;		/* warmd's time from request to reply */
};

/*
 * Start one instance of @pool with the descriptors in @opts (your copies
 * stay yours; the instance's other saved descriptors are as checkpointed).
 * Descriptors of the snapshot's stdio that are not passed are /dev/null.
 */
int wf_acquire(struct wf_client *c, const char *pool, const struct wf_acquire_opts *opts,
	       struct wf_instance *ret);

/*
 * Done with instance @pid (acquired on this connection): warmd kills it if
 * it still runs and reaps it. Your pidfd stays open until you close it.
 * Returns 0 also when the instance had already exited.
 */
int wf_release(struct wf_client *c, pid_t pid);

/* Send @sig to instance @pid (acquired on this connection). */
int wf_signal(struct wf_client *c, pid_t pid, int sig);

struct wf_pool_stats {
	char pool[WF_NAME_MAX + 1];
	char snapshot[17];		/* full id */
	unsigned int idle, busy, waiting;
	unsigned int idle_target, max_busy;
	uint64_t spawned, failed, acquired, exited;
	uint64_t acquire_p50_ns, acquire_p99_ns, acquire_max_ns;	/* recent acquires */
	int gone;			/* its snapshot was deleted */
	char last_error[256];		/* the pool's last failure, "" if none */
};

/*
 * Statistics of @pool (NULL: every pool) into a malloc'ed array of
 * *ret_nr entries; free it with free().
 */
int wf_stats(struct wf_client *c, const char *pool, struct wf_pool_stats **ret,
	     size_t *ret_nr);

#ifdef __cplusplus
}
#endif

#endif
