/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WARMD_H
#define WARMD_H

/*
 * warmd's internals. One thread per pool owns every engine call on that
 * pool's template (engine.h: calls on one template are serialised; a
 * pretraced parked instance would have to be started and released by the
 * thread that spawned it):
 *
 *   main thread (warmd.c, conn.c, pool.c)      pool threads (worker.c), one per pool
 *   epoll: socket, clients, instances'         eng_template_open (once)
 *   init pidfds, threads' eventfd, signals     start jobs first: eng_instance_start
 *   requests: acquire queues a start job       parked instances to release
 *   and answers when it is done                refill: eng_template_spawn(_many)
 *   reaps the inits (waitid P_PIDFD)           then waits for work
 *                                              eng_template_close at the end
 *                                            janitor thread: strays, deleted snapshots
 *
 * wd.lock guards every list, counter and job; no thread holds it across an
 * engine call. The main thread never calls the engine on a template, so a
 * slow spawn in one pool never stalls the daemon.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"
#include "warmcache.h"
#include "wd-wire.h"
#include "warmd.pb-c.h"

/* ---------------------------------------------------------------- lists */

struct wd_list {
	struct wd_list *prev, *next;
};

#define WD_LIST_INIT(l)		((struct wd_list){ &(l), &(l) })
#define wd_container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))
#define wd_list_for_each_safe(pos, tmp, head) \
	for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

static inline void wd_list_init(struct wd_list *l)
{
	l->prev = l->next = l;
}

static inline bool wd_list_empty(const struct wd_list *l)
{
	return l->next == l;
}

static inline void wd_list_add_tail(struct wd_list *head, struct wd_list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void wd_list_del(struct wd_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	wd_list_init(n);
}

/* ------------------------------------------------------------- watches */

/* What an epoll event points at. */
enum wd_watch_kind {
	WD_WATCH_LISTEN,
	WD_WATCH_CONN,
	WD_WATCH_INST,
	WD_WATCH_EVENT,		/* the pool threads' and janitor's eventfd */
	WD_WATCH_SIGNAL,
	WD_WATCH_TIMER,
};

struct wd_watch {
	enum wd_watch_kind kind;
	void *obj;
};

/* ------------------------------------------------------------ objects */

struct wd_conn;
struct wd_pool;

struct wd_inst {
	struct wd_list link;		/* in pool->idle or pool->busy */
	struct wd_watch watch;		/* reap_fd in epoll */
	struct eng_instance e;
	int reap_fd;			/* our own pidfd of e.init: the engine closes
					 * its copies when a start fails */
	struct wd_pool *pool;
	struct wd_conn *owner;		/* the connection that acquired it, until
					 * released (then NULL: freed once reaped) */
	bool idle;			/* in pool->idle (parked) */
	bool busy;			/* started and running (in pool->busy) */
	bool starting;			/* a start job holds it */
	bool release_pending;		/* parked, queued for its pool thread to release */
	bool reaped;			/* its init was reaped */
	bool killed;
};

/*
 * A start of a parked instance (an acquire), run by the pool's thread and
 * answered by the main thread. Holds the descriptors to pass.
 */
struct wd_job {
	struct wd_list link;		/* in pool->jobs, then wd.done_jobs */
	struct wd_pool *pool;
	struct wd_inst *in;
	struct wd_conn *conn;		/* NULL once the connection closed */
	uint64_t seq;
	uint64_t t0_ns;			/* request received */
	int fds[WD_MAX_FDS];
	int targets[WD_MAX_FDS];
	size_t nr_fds;
	int attempt;
	int r;				/* the start's result */
	pid_t pid;
	char err[256];
};

/* An acquire waiting for an instance (the pool had none idle). */
struct wd_waiter {
	struct wd_list link;		/* in pool->waiters */
	struct wd_conn *conn;
	uint64_t seq;
	uint64_t t0_ns;			/* request received */
	uint64_t deadline_ns;
	int fds[WD_MAX_FDS];
	int targets[WD_MAX_FDS];
	size_t nr_fds;
};

enum wd_pool_state {
	WD_POOL_OPENING,		/* its thread opens its template */
	WD_POOL_READY,
	WD_POOL_FAILED,			/* the template could not be opened */
	WD_POOL_DEAD,			/* unregistered or gone: the worker cleans up */
};

struct wd_pool {
	struct wd_list link;		/* in wd.pools */
	char name[WD_NAME_MAX + 1];
	char snap[WC_ID_LEN + 1];
	enum wd_pool_state state;
	bool gone;			/* its snapshot was deleted from the store */
	bool gone_seen;			/* the janitor saw it deleted (main marks it) */
	bool worker_busy;		/* its thread is in an engine call */
	unsigned int idle_target, max_busy;
	unsigned int nr_idle, nr_busy, nr_starting;
	struct wd_list idle, busy, waiters;
	uint64_t spawned, failed, acquired, exited;
	uint64_t lat_ns[WD_LAT_WINDOW];	/* ring of recent acquire latencies */
	uint64_t nr_lat;
	uint64_t fail_until_ns;		/* back off spawning after a failure */
	uint64_t backoff_ns;
	uint64_t last_start_ns;		/* the last acquire's start ended */
	char last_error[256];
	int open_err;			/* -errno of a failed template open, or 0 */
	struct eng_template *tpl;	/* its thread's; NULL until opened, once closed */
	pthread_t thread;
	bool thread_running;		/* created, not joined */
	bool thread_done;		/* its thread has ended (join it) */
	pthread_cond_t cond;		/* wakes its thread */
	struct wd_list jobs;		/* start jobs, oldest first */
	struct wd_job *running;		/* the job its thread runs now */
	struct wd_list release_q;	/* parked instances to release */
	/* A register waiting for the template to open. */
	struct wd_conn *reg_conn;
	uint64_t reg_seq;
};

struct wd_conn {
	struct wd_list link;		/* in wd.conns */
	struct wd_watch watch;
	int fd;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool refused;			/* close once the refusal is sent */
	bool dead;			/* freed: buried until the batch ends */
	bool closing;
	/* input: bytes of frames, and descriptors received with them (FIFO) */
	uint8_t *in;
	size_t in_len, in_cap;
	int in_fds[WD_MAX_FDS * 2];
	size_t nr_in_fds;
	/* output: bytes not sent yet; out_fd goes with the first of them */
	uint8_t *out;
	size_t out_len, out_cap;
	int out_fd;
	bool out_fd_pending;
	bool waiting;			/* a request of it is parked (register/acquire) */
};

struct wd_opts {
	const char *socket_path;
	const char *store_dir;
	mode_t mode;
	gid_t group;			/* socket group and allowed group; -1 none */
	uid_t allow_uid;		/* -1 none */
	unsigned int max_conns;
};

struct wd_state {
	struct wd_opts opts;
	pthread_mutex_t lock;
	pthread_cond_t kick;		/* wakes the janitor */
	struct wd_list done_jobs;	/* start jobs done, for main to answer */
	struct wd_list pools, conns;
	unsigned int nr_pools, nr_conns;
	struct wc_store *store;
	int snaps_fd;			/* the store's snapshots/ directory */
	int epfd, event_fd;
	bool stopping;
	pthread_t janitor;
};

extern struct wd_state wd;

#define WD_MAX_POOLS		256
#define WD_MAX_IDLE_TARGET	1024
#define WD_OUT_MAX		(4u * 1024 * 1024)

/* warmd.c */
int wd_epoll_add(int fd, uint32_t events, struct wd_watch *w);
void wd_epoll_del(int fd);

/* conn.c */
void wd_conn_accept(int lfd);
void wd_conn_event(struct wd_conn *c, uint32_t events);
int wd_conn_send(struct wd_conn *c, const WdReply *rep, int fd);
int wd_conn_reply_err(struct wd_conn *c, uint64_t seq, WdOp op, int err, const char *fmt, ...)
	_printf_(5, 6);
void wd_conn_resume(struct wd_conn *c);
void wd_conn_close_all(void);
void wd_conn_free_buried(void);

/* pool.c (main thread) */
void wd_pool_request(struct wd_conn *c, WdRequest *req, int *fds, size_t nr_fds, uint64_t t0_ns);
void wd_pool_conn_closed(struct wd_conn *c);
void wd_pool_inst_event(struct wd_inst *in);
void wd_pool_worker_event(void);
void wd_pool_timer(void);
void wd_pool_shutdown(void);
uint64_t wd_pool_next_deadline(void);
bool wd_pool_snapshot_gone(const struct wd_pool *p);

/* worker.c */
int wd_worker_start(void);
void wd_worker_stop(void);
int wd_pool_thread_start(struct wd_pool *p);
void wd_pool_kick(struct wd_pool *p);
void wd_inst_free(struct wd_inst *in);

#endif
