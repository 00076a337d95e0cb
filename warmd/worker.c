// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmd's worker thread: opens each pool's template, keeps the pool filled
 * with parked instances, closes templates of dead pools, and reaps stray
 * children.
 *
 * Every template is the worker's child and every init is a child of the
 * process (CLONE_PARENT), reaped by the main thread through its pidfd. The
 * stray sweep waits only for pids that are neither (never waitpid(-1),
 * which would steal a template from eng_template_close), and runs in this
 * thread between engine calls, so no engine call of ours is waiting for a
 * child it could take.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "warmd.h"

#define BACKOFF_MIN_NS	(100ull * 1000000)
#define BACKOFF_MAX_NS	(5000ull * 1000000)
#define SWEEP_NS	(1000ull * 1000000)

static struct wc_store *wstore;		/* the worker's own store handle */

void wd_worker_kick(void)
{
	pthread_cond_signal(&wd.kick);
}

static void notify_main(void)
{
	uint64_t one = 1;

	(void)!write(wd.event_fd, &one, sizeof(one));
}

/* Close the descriptors of an ended or never-started instance and free it. */
void wd_inst_free(struct wd_inst *in)
{
	struct wd_pool *p = in->pool;

	pthread_mutex_lock(&p->tpl_lock);
	eng_instance_release(&in->e);
	pthread_mutex_unlock(&p->tpl_lock);
	if (in->reap_fd >= 0)
		close(in->reap_fd);
	free(in);
}

static bool known_child(pid_t pid)
{
	struct wd_list *ppos, *pos;

	for (ppos = wd.pools.next; ppos != &wd.pools; ppos = ppos->next) {
		struct wd_pool *p = wd_container_of(ppos, struct wd_pool, link);

		if (p->tpl && eng_template_pid(p->tpl) == pid)
			return true;
		for (pos = p->idle.next; pos != &p->idle; pos = pos->next)
			if (wd_container_of(pos, struct wd_inst, link)->e.init == pid)
				return true;
		for (pos = p->busy.next; pos != &p->busy; pos = pos->next)
			if (wd_container_of(pos, struct wd_inst, link)->e.init == pid)
				return true;
	}
	return false;
}

/* Reap children that are neither templates nor inits we track (orphans
 * reparented to us, the subreaper). wd.lock held. */
static void sweep_strays(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		_cleanup_free_ char *buf = NULL;
		char path[300];
		char *s, *end;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/children", de->d_name);
		if (read_file(path, &buf, NULL) < 0)
			continue;
		for (s = buf;; s = end) {
			long pid = strtol(s, &end, 10);

			if (end == s)
				break;
			if (pid > 0 && !known_child((pid_t)pid))
				waitpid((pid_t)pid, NULL, WNOHANG);
		}
	}
	closedir(d);
}

/* Snapshots deleted under a pool are noticed within a sweep even without
 * acquires (which check at once), so that its parked instances go. */
static void notice_deleted(void)
{
	bool any = false;

	for (struct wd_list *pos = wd.pools.next; pos != &wd.pools; pos = pos->next) {
		struct wd_pool *p = wd_container_of(pos, struct wd_pool, link);

		if (p->state == WD_POOL_READY && !p->gone && !p->gone_seen &&
		    wd_pool_snapshot_gone(p))
			any = p->gone_seen = true;
	}
	if (any)
		notify_main();
}

static void open_template(struct wd_pool *p)
{
	struct eng_template_opts o = { .sz = sizeof(o), .null_stdio = true };
	struct eng_template *tpl = NULL;
	uint64_t t0 = now_ns();
	char snap[WC_ID_LEN + 1];
	int r;

	memcpy(snap, p->snap, sizeof(snap));
	p->worker_busy = true;
	pthread_mutex_unlock(&wd.lock);
	err_clear();
	r = eng_template_open(wstore, snap, &o, &tpl);
	pthread_mutex_lock(&wd.lock);
	p->worker_busy = false;
	if (r < 0) {
		snprintf(p->last_error, sizeof(p->last_error), "cannot open a template of snapshot "
			 "%s: %s", snap, err_str(r));
		log_error("pool \"%s\": %s", p->name, p->last_error);
		if (p->state == WD_POOL_OPENING)
			p->state = WD_POOL_FAILED;
		return;
	}
	p->tpl = tpl;
	if (p->state == WD_POOL_OPENING)
		p->state = WD_POOL_READY;
	log_verbose("pool \"%s\": template of %s open in %.1f ms", p->name, snap,
		    (now_ns() - t0) / 1e6);
}

static void close_template(struct wd_pool *p)
{
	struct eng_template *tpl = p->tpl;

	p->worker_busy = true;
	pthread_mutex_unlock(&wd.lock);
	pthread_mutex_lock(&p->tpl_lock);
	eng_template_close(tpl);
	pthread_mutex_unlock(&p->tpl_lock);
	pthread_mutex_lock(&wd.lock);
	p->tpl = NULL;
	p->worker_busy = false;
}

/* A new parked instance into @p's idle list, watched by main. wd.lock held. */
static void add_parked(struct wd_pool *p, const struct eng_instance *e)
{
	struct wd_inst *in = calloc(1, sizeof(*in));

	if (in) {
		in->e = *e;
		in->pool = p;
		in->watch = (struct wd_watch){ WD_WATCH_INST, in };
		/* Its end is seen (and reaped) by the main thread. */
		in->reap_fd = fcntl(e->init_pidfd, F_DUPFD_CLOEXEC, 3);
		if (in->reap_fd >= 0 && wd_epoll_add(in->reap_fd, EPOLLIN, &in->watch) == 0) {
			in->idle = true;
			p->spawned++;
			p->nr_idle++;
			wd_list_add_tail(&p->idle, &in->link);
			return;
		}
		if (in->reap_fd >= 0)
			close(in->reap_fd);
		free(in);
	}
	/* Cannot keep it: kill it, reap its init. */
	{
		struct eng_instance dead = *e;
		pid_t init = dead.init;

		p->failed++;
		pthread_mutex_lock(&p->tpl_lock);
		eng_instance_release(&dead);	/* parked: killed */
		pthread_mutex_unlock(&p->tpl_lock);
		while (init > 0 && waitpid(init, NULL, 0) < 0 && errno == EINTR)
			;
	}
}

/* Most spawns under way at once (eng_template_spawn_many's window). */
#define SPAWN_BATCH_MAX	6

/*
 * Spawn @n parked instances (1..SPAWN_BATCH_MAX) into @p: one by one, or
 * several under way at once when acquires wait for them anyway. wd.lock
 * held (dropped during the engine call).
 */
static void spawn_batch(struct wd_pool *p, size_t n)
{
	struct eng_instance_opts o = { .sz = sizeof(o), .parked = true };
	struct eng_instance e[SPAWN_BATCH_MAX];
	char msg[256] = "";
	size_t done = 0;
	int r;

	n = MIN(MAX(n, (size_t)1), (size_t)SPAWN_BATCH_MAX);
	p->worker_busy = true;
	pthread_mutex_unlock(&wd.lock);
	err_clear();
	pthread_mutex_lock(&p->tpl_lock);
	if (n == 1) {
		r = eng_template_spawn(p->tpl, &o, &e[0]);
		done = r < 0 ? 0 : 1;
	} else {
		r = eng_template_spawn_many(p->tpl, &o, n, e, &done);
	}
	pthread_mutex_unlock(&p->tpl_lock);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "spawn: %s", err_str(r));
		/* Nothing of it runs, but a single spawn's init may be left to
		 * reap (spawn_many reaps its failures itself). */
		if (n == 1 && e[0].init > 0)
			while (waitpid(e[0].init, NULL, 0) < 0 && errno == EINTR)
				;
	}
	pthread_mutex_lock(&wd.lock);
	p->worker_busy = false;
	for (size_t i = 0; i < done; i++)
		add_parked(p, &e[i]);
	if (r < 0) {
		p->failed++;
		snprintf(p->last_error, sizeof(p->last_error), "%s", msg);
		log_error("pool \"%s\": %s", p->name, msg);
		p->backoff_ns = p->backoff_ns ? MIN(p->backoff_ns * 2, BACKOFF_MAX_NS) : BACKOFF_MIN_NS;
		p->fail_until_ns = now_ns() + p->backoff_ns;
	} else {
		p->backoff_ns = 0;
	}
}

/*
 * Refills yield to acquires: a spawn holds the pool's tpl_lock for its whole
 * duration (engine.h: calls on one template are serialised), and a start
 * arriving meanwhile waits for it. So while acquires come (one started
 * within REFILL_QUIET_NS) and a quarter of the target is still parked, the
 * worker waits for a gap; a burst up to 3/4 of idle_target is then served
 * without ever waiting for a spawn. Below that, or with acquires waiting,
 * it spawns at once.
 */
#define REFILL_QUIET_NS	(20ull * 1000000)

static bool refill_now(const struct wd_pool *p, unsigned int want, uint64_t now)
{
	if (p->nr_idle >= want || now < p->fail_until_ns)
		return false;
	return !wd_list_empty(&p->waiters) || p->nr_idle * 4 <= p->idle_target ||
	       now - p->last_start_ns >= REFILL_QUIET_NS;
}

/* Idle instances to keep: the target, or more while acquires wait. */
static unsigned int want_idle(const struct wd_pool *p)
{
	unsigned int waiting = 0;

	for (const struct wd_list *w = p->waiters.next; w != &p->waiters; w = w->next)
		waiting++;
	return MAX(p->idle_target, waiting);
}

/* One thing to do for the pools, wd.lock held; false when idle. */
static bool work_once(void)
{
	struct wd_list *pos;
	uint64_t now = now_ns();

	for (pos = wd.pools.next; pos != &wd.pools; pos = pos->next) {
		struct wd_pool *p = wd_container_of(pos, struct wd_pool, link);

		if (p->worker_busy)
			continue;
		if ((p->state == WD_POOL_DEAD || p->gone) && p->tpl) {
			close_template(p);
			notify_main();
			return true;
		}
		if (p->state == WD_POOL_OPENING) {
			open_template(p);
			notify_main();
			return true;
		}
		if (p->state == WD_POOL_READY && !p->gone && p->tpl &&
		    refill_now(p, want_idle(p), now)) {
			/* Several at once only for acquires already waiting:
			 * an acquire arriving meanwhile waits for the batch. */
			spawn_batch(p, wd_list_empty(&p->waiters) ? 1 : want_idle(p) - p->nr_idle);
			notify_main();
			return true;
		}
	}
	return false;
}

/* When a pool below its target may be refilled next (end of a spawn
 * back-off or of the quiet wait), or 0. wd.lock held. */
static uint64_t next_retry(void)
{
	struct wd_list *pos;
	uint64_t next = 0;

	for (pos = wd.pools.next; pos != &wd.pools; pos = pos->next) {
		struct wd_pool *p = wd_container_of(pos, struct wd_pool, link);
		uint64_t at = MAX(p->fail_until_ns, p->last_start_ns + REFILL_QUIET_NS);

		if (p->state == WD_POOL_READY && !p->gone && p->nr_idle < want_idle(p) &&
		    (!next || at < next))
			next = at;
	}
	return next;
}

static void *worker_main(void *arg)
{
	uint64_t last_sweep = now_ns();

	pthread_mutex_lock(&wd.lock);
	while (!wd.stopping) {
		uint64_t now, until;
		struct timespec ts;

		if (work_once())
			continue;
		now = now_ns();
		if (now - last_sweep >= SWEEP_NS) {
			sweep_strays();
			notice_deleted();
			last_sweep = now;
		}
		until = last_sweep + SWEEP_NS;
		if (next_retry() && next_retry() < until)
			until = next_retry();
		if (until <= now)
			until = now + 1000000;	/* never spin */
		/* The condition variable waits on CLOCK_REALTIME by default. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)((until - now) / 1000000000);
		ts.tv_nsec += (long)((until - now) % 1000000000);
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&wd.kick, &wd.lock, &ts);
	}
	/* Stopping: close every template (instances were killed by main). */
	for (struct wd_list *pos = wd.pools.next; pos != &wd.pools; pos = pos->next) {
		struct wd_pool *p = wd_container_of(pos, struct wd_pool, link);

		if (p->tpl)
			close_template(p);
	}
	pthread_mutex_unlock(&wd.lock);
	return NULL;
}

int wd_worker_start(void)
{
	struct wc_store_opts so = { .sz = sizeof(so) };
	int r;

	err_clear();
	r = wc_store_open(wc_store_dir(wd.store), WC_OPEN_RDONLY, &so, &wstore);
	if (r < 0)
		return r;
	r = pthread_create(&wd.worker, NULL, worker_main, NULL);
	if (r) {
		wc_store_close(wstore);
		return err_set(r, "cannot start the worker thread: %s", strerror(r));
	}
	return 0;
}

void wd_worker_stop(void)
{
	pthread_mutex_lock(&wd.lock);
	wd.stopping = true;
	pthread_cond_signal(&wd.kick);
	pthread_mutex_unlock(&wd.lock);
	pthread_join(wd.worker, NULL);
	wc_store_close(wstore);
}
