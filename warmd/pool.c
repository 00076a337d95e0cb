// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmd's pools, main-thread side: the requests, acquires (start jobs run
 * by each pool's thread, answered here), and the end of every instance.
 *
 * Life of an instance (struct wd_inst):
 *
 *   pool thread: spawn (parked)            -> pool->idle (its init's pidfd in epoll)
 *   acquire: a start job (starting)        -> the pool thread starts it
 *   job done                               -> pool->busy, owner = the connection
 *   the init exits (pidfd readable)        -> reaped (waitid P_PIDFD): "ended";
 *                                             an owner-less one is freed, a busy
 *                                             one stays until released
 *   release, or its connection closes      -> SIGKILL to the init if it runs,
 *                                             freed once reaped
 *   given up while parked (unregister,     -> release_q: its pool thread (the
 *   snapshot gone, died)                      engine's caller) releases it, freed once reaped
 *
 * Instances are used once: a started instance never goes back to idle.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "warmd.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Connections whose parked request was answered: resumed last, so that no
 * request runs while a pool list is being walked. */
static struct wd_conn *to_resume[64];
static size_t nr_to_resume;

static void defer_resume(struct wd_conn *c)
{
	for (size_t i = 0; i < nr_to_resume; i++)
		if (to_resume[i] == c)
			return;
	if (nr_to_resume < ARRAY_SIZE(to_resume))
		to_resume[nr_to_resume++] = c;
	else
		c->closing = true;	/* cannot happen: one request each */
}

static void run_resumes(void)
{
	while (nr_to_resume) {
		struct wd_conn *c = to_resume[--nr_to_resume];

		wd_conn_resume(c);
	}
}

static void forget_resume(struct wd_conn *c)
{
	for (size_t i = 0; i < nr_to_resume; i++)
		if (to_resume[i] == c)
			to_resume[i] = to_resume[--nr_to_resume];
}

static int pidfd_signal(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

static struct wd_pool *pool_find(const char *name)
{
	struct wd_list *pos, *tmp;

	wd_list_for_each_safe(pos, tmp, &wd.pools) {
		struct wd_pool *p = wd_container_of(pos, struct wd_pool, link);

		if (p->state != WD_POOL_DEAD && !strcmp(p->name, name))
			return p;
	}
	return NULL;
}

static void set_last_error(struct wd_pool *p, const char *fmt, ...) _printf_(2, 3);
static void set_last_error(struct wd_pool *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->last_error, sizeof(p->last_error), fmt, ap);
	va_end(ap);
}

static void reply_ok(struct wd_conn *c, uint64_t seq, WdOp op)
{
	WdReply rep = WD_REPLY__INIT;

	rep.has_seq = rep.has_op = true;
	rep.seq = seq;
	rep.op = op;
	wd_conn_send(c, &rep, -1);
}

static void close_fds(int *fds, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Kill an instance (its init: the whole namespace goes). Reaped later. */
static void inst_kill(struct wd_inst *in)
{
	if (in->killed || in->reap_fd < 0)
		return;
	in->killed = true;
	pidfd_signal(in->reap_fd, SIGKILL);
}

static void waiter_free(struct wd_waiter *w)
{
	close_fds(w->fds, w->nr_fds);
	wd_list_del(&w->link);
	free(w);
}

/* Answer and drop every waiter of @p with @err. */
static void fail_waiters(struct wd_pool *p, int err, const char *msg)
{
	struct wd_list *pos, *tmp;

	wd_list_for_each_safe(pos, tmp, &p->waiters) {
		struct wd_waiter *w = wd_container_of(pos, struct wd_waiter, link);

		wd_conn_reply_err(w->conn, w->seq, WD_OP__ACQUIRE, err, "%s", msg);
		defer_resume(w->conn);
		waiter_free(w);
	}
}

/* A job still naming @p (queued or done)? wd.lock held. */
static bool pool_has_jobs(const struct wd_pool *p)
{
	if (!wd_list_empty(&p->jobs))
		return true;
	for (struct wd_list *pos = wd.done_jobs.next; pos != &wd.done_jobs; pos = pos->next)
		if (wd_container_of(pos, struct wd_job, link)->pool == p)
			return true;
	return false;
}

/* A dead pool with nothing left in it, its thread ended, is freed (main
 * thread, wd.lock held). */
static bool pool_maybe_free(struct wd_pool *p)
{
	if (p->state != WD_POOL_DEAD || (p->thread_running && !p->thread_done) || p->tpl ||
	    !wd_list_empty(&p->idle) || !wd_list_empty(&p->busy) || !wd_list_empty(&p->waiters) ||
	    !wd_list_empty(&p->release_q) || pool_has_jobs(p))
		return false;
	if (p->thread_running)
		pthread_join(p->thread, NULL);	/* ended: at once */
	wd_list_del(&p->link);
	wd.nr_pools--;
	pthread_cond_destroy(&p->cond);
	free(p);
	return true;
}

/* Hand a parked instance to its pool thread (its tracer) to be released:
 * killed, its traced threads reaped. wd.lock held. */
static void give_up_parked(struct wd_pool *p, struct wd_inst *in)
{
	wd_list_del(&in->link);
	if (in->idle) {
		in->idle = false;
		p->nr_idle--;
	}
	in->release_pending = true;
	in->killed = true;
	wd_list_add_tail(&p->release_q, &in->link);
	wd_pool_kick(p);
}

/* Give up @p's idle instances (unregistered, or its snapshot is gone). */
static void kill_idle(struct wd_pool *p)
{
	struct wd_list *pos, *tmp;

	wd_list_for_each_safe(pos, tmp, &p->idle)
		give_up_parked(p, wd_container_of(pos, struct wd_inst, link));
}

/*
 * Is the pool's snapshot still in the store? One fstatat of its manifest
 * (DIR/snapshots/ID.snap, warmcache's layout): cheap enough for every
 * acquire, so that a deleted snapshot is reported at once.
 */
bool wd_pool_snapshot_gone(const struct wd_pool *p)
{
	char name[WC_ID_LEN + 8];
	struct stat st;

	snprintf(name, sizeof(name), "%s.snap", p->snap);
	return fstatat(wd.snaps_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
}

static void mark_gone(struct wd_pool *p)
{
	char msg[WD_MSG_MAX];

	p->gone = true;
	set_last_error(p, "snapshot %s was deleted from store \"%s\"", p->snap,
		       wc_store_dir(wd.store));
	log_info("pool \"%s\": snapshot %s was deleted: idle instances killed, acquires refused",
		 p->name, p->snap);
	kill_idle(p);
	snprintf(msg, sizeof(msg), "pool \"%s\": its snapshot %s was deleted from store \"%s\"; "
		 "register the pool again with a snapshot that exists", p->name, p->snap,
		 wc_store_dir(wd.store));
	fail_waiters(p, ENOENT, msg);
	wd_pool_kick(p);	/* its thread closes the template */
}

static void record_latency(struct wd_pool *p, uint64_t ns)
{
	p->lat_ns[p->nr_lat % WD_LAT_WINDOW] = ns;
	p->nr_lat++;
}

/*
 * Queue the start of an idle instance of @p for @c (answered when the job
 * is done: wd_pool_worker_event). Takes the descriptors on success; returns
 * -EAGAIN (descriptors kept) when no instance is idle. @attempt counts the
 * instances tried for this acquire. wd.lock held.
 */
static int queue_start(struct wd_pool *p, struct wd_conn *c, uint64_t seq, const int *fds,
		       const int *targets, size_t nr_fds, uint64_t t0_ns, int attempt)
{
	struct wd_inst *in;
	struct wd_job *j;

	if (wd_list_empty(&p->idle))
		return -EAGAIN;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	in = wd_container_of(p->idle.next, struct wd_inst, link);
	wd_list_del(&in->link);
	in->idle = false;
	in->starting = true;
	p->nr_idle--;
	p->nr_starting++;
	/* Owner-less in busy until it works: if it fails, just freed. */
	wd_list_add_tail(&p->busy, &in->link);
	*j = (struct wd_job){ .pool = p, .in = in, .conn = c, .seq = seq, .t0_ns = t0_ns,
			      .nr_fds = nr_fds, .attempt = attempt };
	memcpy(j->fds, fds, nr_fds * sizeof(int));
	memcpy(j->targets, targets, nr_fds * sizeof(int));
	wd_list_add_tail(&p->jobs, &j->link);
	c->waiting = true;
	wd_pool_kick(p);
	return 0;
}

static bool inst_freeable(const struct wd_inst *in)
{
	return in->reaped && !in->owner && !in->starting && !in->release_pending;
}

/* Answer a start job done by a pool thread. wd.lock held. */
static void finish_job(struct wd_job *j)
{
	struct wd_pool *p = j->pool;
	struct wd_inst *in = j->in;
	struct wd_conn *c = j->conn;
	WdReply rep = WD_REPLY__INIT;

	wd_list_del(&j->link);
	in->starting = false;
	p->nr_starting--;
	if (j->r >= 0) {
		/* It may have ended already (reaped while its job was done). */
		if (in->reaped) {
			p->exited++;
		} else {
			in->busy = true;
			p->nr_busy++;
		}
		p->acquired++;
		close_fds(j->fds, j->nr_fds);
		if (!c) {		/* its connection closed meanwhile */
			inst_kill(in);
			free(j);
			return;
		}
		in->owner = c;
		rep.has_seq = rep.has_op = rep.has_pid = rep.has_ns_pid = rep.has_latency_ns = true;
		rep.seq = j->seq;
		rep.op = WD_OP__ACQUIRE;
		rep.pid = in->e.pid;
		rep.ns_pid = in->e.ns_pid;
		rep.latency_ns = now_ns() - j->t0_ns;
		wd_conn_send(c, &rep, in->e.pidfd);
		record_latency(p, now_ns() - j->t0_ns);
		defer_resume(c);
		free(j);
		return;
	}
	/* Failed: the engine killed it; freed once its init is reaped. */
	p->failed++;
	set_last_error(p, "start of instance %d: %s", j->pid, j->err);
	log_error("pool \"%s\": %s", p->name, p->last_error);
	in->killed = true;
	if (inst_freeable(in)) {
		wd_list_del(&in->link);
		wd_inst_free(in);
	}
	/* What the caller passed is wrong (EINVAL, EBADF, EMFILE): another
	 * instance would fail the same way. Otherwise try the next one. */
	if (c && j->r != -EINVAL && j->r != -EBADF && j->r != -EMFILE && j->attempt < 3 &&
	    p->state == WD_POOL_READY && !p->gone &&
	    queue_start(p, c, j->seq, j->fds, j->targets, j->nr_fds, j->t0_ns, j->attempt + 1) == 0) {
		free(j);
		return;
	}
	close_fds(j->fds, j->nr_fds);
	if (c) {
		wd_conn_reply_err(c, j->seq, WD_OP__ACQUIRE, -j->r, "pool \"%s\": %s", p->name,
				  p->last_error);
		defer_resume(c);
	}
	free(j);
}

static void do_register(struct wd_conn *c, const WdRequest *req)
{
	char full[WC_ID_LEN + 1];
	struct wd_pool *p;
	int r;

	if (!wd_name_valid(req->pool)) {
		wd_conn_reply_err(c, req->seq, req->op, EINVAL, "invalid pool name");
		return;
	}
	if (!req->snapshot || !req->has_idle_target || req->idle_target > WD_MAX_IDLE_TARGET) {
		wd_conn_reply_err(c, req->seq, req->op, EINVAL,
				  "register needs a snapshot and an idle target of 0..%d",
				  WD_MAX_IDLE_TARGET);
		return;
	}
	err_clear();
	r = wc_store_resolve(wd.store, req->snapshot, full);
	if (r < 0) {
		wd_conn_reply_err(c, req->seq, req->op, -r, "pool \"%s\": snapshot \"%.64s\" in store "
				  "\"%s\": %s", req->pool, req->snapshot, wc_store_dir(wd.store),
				  err_str(r));
		return;
	}
	pthread_mutex_lock(&wd.lock);
	p = pool_find(req->pool);
	if (p && (p->gone || p->state == WD_POOL_FAILED)) {
		/* Replaced: the old one is cleaned up by its thread. */
		p->state = WD_POOL_DEAD;
		kill_idle(p);
		p = NULL;
	}
	if (p && strcmp(p->snap, full)) {
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, EEXIST, "pool \"%s\" exists with snapshot %s",
				  req->pool, p->snap);
		return;
	}
	if (p && p->state == WD_POOL_OPENING) {
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, EBUSY, "pool \"%s\" is being registered",
				  req->pool);
		return;
	}
	if (p) {
		p->idle_target = req->idle_target;
		p->max_busy = req->has_max_busy ? req->max_busy : 0;
		wd_pool_kick(p);
		pthread_mutex_unlock(&wd.lock);
		reply_ok(c, req->seq, req->op);
		return;
	}
	if (wd.nr_pools >= WD_MAX_POOLS) {
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, ENOSPC, "warmd has %d pools, its limit",
				  WD_MAX_POOLS);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, ENOMEM, "out of memory");
		return;
	}
	snprintf(p->name, sizeof(p->name), "%s", req->pool);
	memcpy(p->snap, full, sizeof(p->snap));
	p->state = WD_POOL_OPENING;
	p->idle_target = req->idle_target;
	p->max_busy = req->has_max_busy ? req->max_busy : 0;
	wd_list_init(&p->idle);
	wd_list_init(&p->busy);
	wd_list_init(&p->waiters);
	wd_list_init(&p->jobs);
	wd_list_init(&p->release_q);
	pthread_cond_init(&p->cond, NULL);
	p->reg_conn = c;
	p->reg_seq = req->seq;
	wd_list_add_tail(&wd.pools, &p->link);
	wd.nr_pools++;
	/* Its thread opens the template and reports (wd_pool_worker_event). */
	r = wd_pool_thread_start(p);
	if (r < 0) {
		wd_list_del(&p->link);
		wd.nr_pools--;
		pthread_cond_destroy(&p->cond);
		free(p);
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, -r, "cannot start a pool thread: %s",
				  strerror(-r));
		return;
	}
	c->waiting = true;
	log_info("pool \"%s\": registering snapshot %s, %u idle (by pid %d, uid %u)", p->name,
		 p->snap, p->idle_target, c->pid, c->uid);
	pthread_mutex_unlock(&wd.lock);
}

static void do_unregister(struct wd_conn *c, const WdRequest *req)
{
	struct wd_pool *p;
	char msg[WD_MSG_MAX];

	pthread_mutex_lock(&wd.lock);
	p = req->pool ? pool_find(req->pool) : NULL;
	if (!p) {
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, ENOENT, "no pool \"%.64s\"",
				  req->pool ? req->pool : "");
		return;
	}
	if (p->state == WD_POOL_OPENING && p->reg_conn) {
		wd_conn_reply_err(p->reg_conn, p->reg_seq, WD_OP__REGISTER, ECANCELED,
				  "pool \"%s\" was unregistered meanwhile", p->name);
		defer_resume(p->reg_conn);
		p->reg_conn = NULL;
	}
	p->state = WD_POOL_DEAD;
	kill_idle(p);
	snprintf(msg, sizeof(msg), "pool \"%s\" was unregistered", p->name);
	fail_waiters(p, ENOENT, msg);
	wd_pool_kick(p);	/* its thread ends */
	pthread_mutex_unlock(&wd.lock);
	log_info("pool \"%s\": unregistered", req->pool);
	reply_ok(c, req->seq, req->op);
}

static void do_acquire(struct wd_conn *c, const WdRequest *req, int *fds, size_t nr_fds,
		       uint64_t t0_ns)
{
	int targets[WD_MAX_FDS];
	struct wd_waiter *w;
	struct wd_pool *p;
	uint32_t timeout_ms;

	if (req->n_target_fds != nr_fds) {
		close_fds(fds, nr_fds);
		wd_conn_reply_err(c, req->seq, req->op, EPROTO, "acquire: %zu descriptors for %zu "
				  "targets", nr_fds, req->n_target_fds);
		return;
	}
	for (size_t i = 0; i < nr_fds; i++) {
		bool bad = req->target_fds[i] < 0 || req->target_fds[i] > 1 << 20;

		targets[i] = req->target_fds[i];
		for (size_t j = 0; j < i; j++)
			bad = bad || targets[j] == targets[i];
		if (bad) {
			close_fds(fds, nr_fds);
			wd_conn_reply_err(c, req->seq, req->op, EINVAL,
					  "acquire: invalid or repeated target fd %d", targets[i]);
			return;
		}
	}
	timeout_ms = req->has_timeout_ms && req->timeout_ms ? req->timeout_ms : WD_DEFAULT_TIMEOUT_MS;
	timeout_ms = MIN(timeout_ms, WD_MAX_TIMEOUT_MS);
	pthread_mutex_lock(&wd.lock);
	p = req->pool ? pool_find(req->pool) : NULL;
	if (!p) {
		pthread_mutex_unlock(&wd.lock);
		close_fds(fds, nr_fds);
		wd_conn_reply_err(c, req->seq, req->op, ENOENT, "no pool \"%.64s\"",
				  req->pool ? req->pool : "");
		return;
	}
	if (!p->gone && wd_pool_snapshot_gone(p))
		mark_gone(p);
	if (p->gone || p->state == WD_POOL_FAILED) {
		pthread_mutex_unlock(&wd.lock);
		close_fds(fds, nr_fds);
		wd_conn_reply_err(c, req->seq, req->op, ENOENT, "pool \"%s\": %s%s", p->name,
				  p->last_error, p->gone ? "; register the pool again with a snapshot "
				  "that exists" : "");
		return;
	}
	if (p->max_busy && p->nr_busy + p->nr_starting >= p->max_busy) {
		pthread_mutex_unlock(&wd.lock);
		close_fds(fds, nr_fds);
		wd_conn_reply_err(c, req->seq, req->op, EBUSY, "pool \"%s\": %u instances running, "
				  "its max_busy", p->name, p->nr_busy);
		return;
	}
	if (queue_start(p, c, req->seq, fds, targets, nr_fds, t0_ns, 1) == 0) {
		pthread_mutex_unlock(&wd.lock);
		return;
	}
	pthread_mutex_unlock(&wd.lock);
	/* None idle: wait for one (the pool thread spawns for waiters). */
	w = calloc(1, sizeof(*w));
	if (!w) {
		close_fds(fds, nr_fds);
		wd_conn_reply_err(c, req->seq, req->op, ENOMEM, "out of memory");
		return;
	}
	w->conn = c;
	w->seq = req->seq;
	w->t0_ns = t0_ns;
	w->deadline_ns = t0_ns + (uint64_t)timeout_ms * 1000000;
	w->nr_fds = nr_fds;
	memcpy(w->fds, fds, nr_fds * sizeof(int));
	memcpy(w->targets, targets, nr_fds * sizeof(int));
	pthread_mutex_lock(&wd.lock);
	wd_list_add_tail(&p->waiters, &w->link);
	wd_pool_kick(p);
	pthread_mutex_unlock(&wd.lock);
	c->waiting = true;
}

/* The busy instance @pid acquired by @c, or NULL. */
static struct wd_inst *find_owned(struct wd_conn *c, pid_t pid)
{
	struct wd_list *ppos, *ptmp, *pos, *tmp;

	wd_list_for_each_safe(ppos, ptmp, &wd.pools) {
		struct wd_pool *p = wd_container_of(ppos, struct wd_pool, link);

		wd_list_for_each_safe(pos, tmp, &p->busy) {
			struct wd_inst *in = wd_container_of(pos, struct wd_inst, link);

			if (in->owner == c && in->e.pid == pid)
				return in;
		}
	}
	return NULL;
}

static void inst_unlink_free(struct wd_inst *in);

static void do_release(struct wd_conn *c, const WdRequest *req)
{
	struct wd_inst *in;

	pthread_mutex_lock(&wd.lock);
	in = req->has_pid ? find_owned(c, req->pid) : NULL;
	if (!in) {
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, ESRCH, "no instance %d acquired on this "
				  "connection", req->has_pid ? req->pid : 0);
		return;
	}
	in->owner = NULL;		/* freed once reaped */
	if (!in->busy)			/* already ended and reaped */
		inst_unlink_free(in);
	else
		inst_kill(in);
	pthread_mutex_unlock(&wd.lock);
	reply_ok(c, req->seq, req->op);
}

static void do_signal(struct wd_conn *c, const WdRequest *req)
{
	struct wd_inst *in;
	int r;

	pthread_mutex_lock(&wd.lock);
	in = req->has_pid ? find_owned(c, req->pid) : NULL;
	if (!in || !in->busy) {
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, ESRCH, "no running instance %d acquired on "
				  "this connection", req->has_pid ? req->pid : 0);
		return;
	}
	if (!req->has_signal || req->signal <= 0 || req->signal >= 65) {
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, EINVAL, "invalid signal");
		return;
	}
	r = pidfd_signal(in->e.pidfd, req->signal);
	pthread_mutex_unlock(&wd.lock);
	if (r < 0)
		wd_conn_reply_err(c, req->seq, req->op, -r, "signal %d to instance %d: %s",
				  req->signal, req->pid, strerror(-r));
	else
		reply_ok(c, req->seq, req->op);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void do_stats(struct wd_conn *c, const WdRequest *req)
{
	WdReply rep = WD_REPLY__INIT;
	WdPoolStats *ps = NULL, **pps = NULL;
	uint64_t *lat = NULL;
	struct wd_list *pos, *tmp;
	size_t n = 0;

	pthread_mutex_lock(&wd.lock);
	ps = calloc(wd.nr_pools + 1, sizeof(*ps));
	pps = calloc(wd.nr_pools + 1, sizeof(*pps));
	lat = malloc(sizeof(uint64_t) * WD_LAT_WINDOW);
	if (!ps || !pps || !lat) {
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, ENOMEM, "out of memory");
		goto out;
	}
	wd_list_for_each_safe(pos, tmp, &wd.pools) {
		struct wd_pool *p = wd_container_of(pos, struct wd_pool, link);
		WdPoolStats *s = &ps[n];
		size_t nl = MIN(p->nr_lat, (uint64_t)WD_LAT_WINDOW);

		if (p->state == WD_POOL_DEAD || (req->pool && strcmp(req->pool, p->name)))
			continue;
		if (!p->gone && wd_pool_snapshot_gone(p))
			mark_gone(p);
		wd_pool_stats__init(s);
		s->pool = p->name;
		s->snapshot = p->snap;
		s->idle = p->nr_idle;
		s->busy = p->nr_busy;
		s->idle_target = p->idle_target;
		s->max_busy = p->max_busy;
		s->spawned = p->spawned;
		s->failed = p->failed;
		s->acquired = p->acquired;
		s->exited = p->exited;
		s->has_gone = true;
		s->gone = p->gone;
		s->has_waiting = true;
		for (struct wd_list *w = p->waiters.next; w != &p->waiters; w = w->next)
			s->waiting++;
		if (nl) {
			memcpy(lat, p->lat_ns, nl * sizeof(uint64_t));
			qsort(lat, nl, sizeof(uint64_t), cmp_u64);
			s->has_acquire_p50_ns = s->has_acquire_p99_ns = s->has_acquire_max_ns = true;
			s->acquire_p50_ns = lat[(nl - 1) / 2];
			s->acquire_p99_ns = lat[(nl - 1) * 99 / 100];
			s->acquire_max_ns = lat[nl - 1];
		}
		if (p->last_error[0])
			s->last_error = p->last_error;
		pps[n++] = s;
	}
	if (req->pool && !n) {
		pthread_mutex_unlock(&wd.lock);
		wd_conn_reply_err(c, req->seq, req->op, ENOENT, "no pool \"%.64s\"", req->pool);
		goto out;
	}
	rep.has_seq = rep.has_op = true;
	rep.seq = req->seq;
	rep.op = req->op;
	rep.n_pools = n;
	rep.pools = pps;
	/* Packed under the lock: the strings point into the pools. */
	wd_conn_send(c, &rep, -1);
	pthread_mutex_unlock(&wd.lock);
out:
	free(ps);
	free(pps);
	free(lat);
}

void wd_pool_request(struct wd_conn *c, WdRequest *req, int *fds, size_t nr_fds, uint64_t t0_ns)
{
	if (req->op != WD_OP__ACQUIRE && nr_fds) {
		close_fds(fds, nr_fds);
		wd_conn_reply_err(c, req->seq, req->op, EPROTO, "descriptors passed with op %d",
				  req->op);
		return;
	}
	switch (req->op) {
	case WD_OP__REGISTER:
		do_register(c, req);
		break;
	case WD_OP__UNREGISTER:
		do_unregister(c, req);
		break;
	case WD_OP__ACQUIRE:
		do_acquire(c, req, fds, nr_fds, t0_ns);
		break;
	case WD_OP__RELEASE:
		do_release(c, req);
		break;
	case WD_OP__SIGNAL:
		do_signal(c, req);
		break;
	case WD_OP__STATS:
		do_stats(c, req);
		break;
	default:
		wd_conn_reply_err(c, req->seq, req->op, EOPNOTSUPP, "unknown operation %d", req->op);
		break;
	}
	run_resumes();
}

/* Unlink and free an ended (reaped) instance; wd.lock held. */
static void inst_unlink_free(struct wd_inst *in)
{
	struct wd_pool *p = in->pool;

	wd_list_del(&in->link);
	wd_inst_free(in);
	pool_maybe_free(p);
}

/*
 * The connection is gone (closed, or its process died): every instance it
 * acquired that still runs is killed (one being started for it too, once
 * started), its parked requests dropped.
 */
void wd_pool_conn_closed(struct wd_conn *c)
{
	struct wd_list *ppos, *ptmp, *pos, *tmp;
	unsigned int killed = 0;

	forget_resume(c);
	pthread_mutex_lock(&wd.lock);
	for (pos = wd.done_jobs.next; pos != &wd.done_jobs; pos = pos->next)
		if (wd_container_of(pos, struct wd_job, link)->conn == c)
			wd_container_of(pos, struct wd_job, link)->conn = NULL;
	wd_list_for_each_safe(ppos, ptmp, &wd.pools) {
		struct wd_pool *p = wd_container_of(ppos, struct wd_pool, link);

		if (p->reg_conn == c)
			p->reg_conn = NULL;
		for (pos = p->jobs.next; pos != &p->jobs; pos = pos->next)
			if (wd_container_of(pos, struct wd_job, link)->conn == c)
				wd_container_of(pos, struct wd_job, link)->conn = NULL;
		if (p->running && p->running->conn == c)
			p->running->conn = NULL;
		wd_list_for_each_safe(pos, tmp, &p->waiters) {
			struct wd_waiter *w = wd_container_of(pos, struct wd_waiter, link);

			if (w->conn == c)
				waiter_free(w);
		}
		wd_list_for_each_safe(pos, tmp, &p->busy) {
			struct wd_inst *in = wd_container_of(pos, struct wd_inst, link);

			if (in->owner != c)
				continue;
			in->owner = NULL;
			if (inst_freeable(in)) {
				inst_unlink_free(in);
				continue;
			}
			if (in->busy) {
				inst_kill(in);
				killed++;
			}
		}
		/* pool_maybe_free may have freed p: the iteration uses ptmp. */
		pool_maybe_free(p);
	}
	pthread_mutex_unlock(&wd.lock);
	if (killed)
		log_info("pid %d closed its connection: %u running instance%s killed", c->pid,
			 killed, killed == 1 ? "" : "s");
}

/* An instance's init ended (its pidfd is readable): reap it. */
void wd_pool_inst_event(struct wd_inst *in)
{
	struct wd_pool *p = in->pool;
	siginfo_t si = {};

	/* ECHILD would mean someone else reaped it: ended all the same. */
	if (waitid(P_PIDFD, in->reap_fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0)
		return;		/* still running */
	wd_epoll_del(in->reap_fd);
	close(in->reap_fd);
	in->reap_fd = -1;
	pthread_mutex_lock(&wd.lock);
	in->reaped = true;
	if (in->idle) {
		/* A parked instance died: its tracer still has to let go of it. */
		p->failed++;
		set_last_error(p, "parked instance %d died (status %d)", in->e.pid, si.si_status);
		give_up_parked(p, in);
	}
	if (in->busy) {
		in->busy = false;
		p->nr_busy--;
		p->exited++;
	}
	if (inst_freeable(in))
		inst_unlink_free(in);
	pthread_mutex_unlock(&wd.lock);
}

/* Free what the pool threads are done with. wd.lock held. */
static void free_released(struct wd_pool *p)
{
	struct wd_list *pos, *tmp;

	wd_list_for_each_safe(pos, tmp, &p->busy) {
		struct wd_inst *in = wd_container_of(pos, struct wd_inst, link);

		if (inst_freeable(in)) {
			wd_list_del(&in->link);
			wd_inst_free(in);
		}
	}
}

/*
 * A pool thread did something: answer registers and finished start jobs,
 * serve waiters, free instances and pools.
 */
void wd_pool_worker_event(void)
{
	struct wd_list *ppos, *ptmp;
	uint64_t v;

	(void)!read(wd.event_fd, &v, sizeof(v));
	pthread_mutex_lock(&wd.lock);
	while (!wd_list_empty(&wd.done_jobs))
		finish_job(wd_container_of(wd.done_jobs.next, struct wd_job, link));
	wd_list_for_each_safe(ppos, ptmp, &wd.pools) {
		struct wd_pool *p = wd_container_of(ppos, struct wd_pool, link);

		if (p->reg_conn && p->state != WD_POOL_OPENING) {
			if (p->state == WD_POOL_READY) {
				reply_ok(p->reg_conn, p->reg_seq, WD_OP__REGISTER);
				log_info("pool \"%s\": ready (template pid %d)", p->name,
					 p->tpl ? eng_template_pid(p->tpl) : -1);
			} else {
				wd_conn_reply_err(p->reg_conn, p->reg_seq, WD_OP__REGISTER,
						  p->open_err ? -p->open_err : ENOENT,
						  "pool \"%s\": %s", p->name, p->last_error);
			}
			defer_resume(p->reg_conn);
			p->reg_conn = NULL;
		}
		if (p->state == WD_POOL_FAILED && !p->reg_conn)
			p->state = WD_POOL_DEAD;
		if (p->gone_seen && !p->gone && p->state == WD_POOL_READY)
			mark_gone(p);
		/* Waiters, oldest first, while instances are parked. */
		while (p->state == WD_POOL_READY && !p->gone && !wd_list_empty(&p->waiters) &&
		       !wd_list_empty(&p->idle) &&
		       (!p->max_busy || p->nr_busy + p->nr_starting < p->max_busy)) {
			struct wd_waiter *w = wd_container_of(p->waiters.next, struct wd_waiter, link);

			if (queue_start(p, w->conn, w->seq, w->fds, w->targets, w->nr_fds, w->t0_ns,
					1) < 0)
				break;
			wd_list_del(&w->link);
			free(w);	/* the job has its descriptors */
		}
		free_released(p);
		pool_maybe_free(p);
	}
	pthread_mutex_unlock(&wd.lock);
	run_resumes();
}

/* Waiters whose time is up. */
void wd_pool_timer(void)
{
	struct wd_list *ppos, *ptmp, *pos, *tmp;
	uint64_t now = now_ns();

	pthread_mutex_lock(&wd.lock);
	wd_list_for_each_safe(ppos, ptmp, &wd.pools) {
		struct wd_pool *p = wd_container_of(ppos, struct wd_pool, link);

		wd_list_for_each_safe(pos, tmp, &p->waiters) {
			struct wd_waiter *w = wd_container_of(pos, struct wd_waiter, link);

			if (w->deadline_ns > now)
				continue;
			wd_conn_reply_err(w->conn, w->seq, WD_OP__ACQUIRE, ETIMEDOUT,
					  "pool \"%s\": no instance ready within %" PRIu64 " ms%s%s",
					  p->name, (w->deadline_ns - w->t0_ns) / 1000000,
					  p->last_error[0] ? "; last error: " : "", p->last_error);
			defer_resume(w->conn);
			waiter_free(w);
		}
	}
	pthread_mutex_unlock(&wd.lock);
	run_resumes();
}

uint64_t wd_pool_next_deadline(void)
{
	struct wd_list *ppos, *ptmp, *pos, *tmp;
	uint64_t next = UINT64_MAX;

	pthread_mutex_lock(&wd.lock);
	wd_list_for_each_safe(ppos, ptmp, &wd.pools) {
		struct wd_pool *p = wd_container_of(ppos, struct wd_pool, link);

		wd_list_for_each_safe(pos, tmp, &p->waiters) {
			struct wd_waiter *w = wd_container_of(pos, struct wd_waiter, link);

			next = MIN(next, w->deadline_ns);
		}
	}
	pthread_mutex_unlock(&wd.lock);
	return next;
}

/*
 * Stopping: queued starts are dropped (their instances given back to be
 * released), parked instances handed to their pool threads, running ones
 * killed; the caller then joins the threads and reaps everything.
 */
void wd_pool_shutdown(void)
{
	struct wd_list *ppos, *ptmp, *pos, *tmp;

	pthread_mutex_lock(&wd.lock);
	wd_list_for_each_safe(ppos, ptmp, &wd.pools) {
		struct wd_pool *p = wd_container_of(ppos, struct wd_pool, link);

		p->state = WD_POOL_DEAD;
		wd_list_for_each_safe(pos, tmp, &p->jobs) {
			struct wd_job *j = wd_container_of(pos, struct wd_job, link);

			wd_list_del(&j->link);
			j->in->starting = false;
			p->nr_starting--;
			give_up_parked(p, j->in);
			close_fds(j->fds, j->nr_fds);
			free(j);
		}
		kill_idle(p);
		wd_list_for_each_safe(pos, tmp, &p->busy)
			inst_kill(wd_container_of(pos, struct wd_inst, link));
	}
	pthread_mutex_unlock(&wd.lock);
}
