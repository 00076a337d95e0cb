// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * warmd's pool threads and janitor.
 *
 * A pool's thread makes every engine call on the pool's template: it opens
 * it, runs the start jobs the main thread queues (acquires come first),
 * releases the parked instances the main thread gives up, keeps the pool
 * filled with parked instances, and closes the template when the pool
 * dies. (Parked instances could be pretraced, engine.h, so that a start
 * only installs descriptors and resumes: the tracer would be this thread,
 * which starts and releases them already; see spawn_batch for why not yet.)
 *
 * Every template is a pool thread's child and every init a child of the
 * process (CLONE_PARENT), reaped by the main thread through its pidfd. The
 * janitor reaps other children (orphans handed to us, the subreaper) by pid,
 * never waitpid(-1) (it would steal a template from eng_template_close),
 * and only while no pool thread is inside an engine call, which may wait for
 * a child of its own. It also notices snapshots deleted under their pools.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
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

/*
 * Refills yield to acquires: a spawn in progress delays a start queued
 * meanwhile (same thread). So while acquires come (one started within
 * REFILL_QUIET_NS) and a quarter of the target is still parked, the thread
 * waits for a gap; a burst of up to 3/4 of idle_target never waits for a
 * spawn. Below that, or with acquires waiting, it spawns at once.
 */
#define REFILL_QUIET_NS	(20ull * 1000000)
/* Most spawns under way at once (eng_template_spawn_many's window). */
#define SPAWN_BATCH_MAX	6

static struct wc_store *wstore;		/* the pool threads' store handle (opens
					 * are serialised by wd.lock-free calls:
					 * see open_template) */
static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;

static void notify_main(void)
{
	uint64_t one = 1;

	(void)!write(wd.event_fd, &one, sizeof(one));
}

void wd_pool_kick(struct wd_pool *p)
{
	pthread_cond_signal(&p->cond);
}

/*
 * Close the descriptors of an instance that is not parked any more (started
 * and ended, failed, or released by its pool thread) and free it. No
 * engine call on its template: any thread may.
 */
void wd_inst_free(struct wd_inst *in)
{
	eng_instance_release(&in->e);
	if (in->reap_fd >= 0)
		close(in->reap_fd);
	free(in);
}

static void cond_wait_until(pthread_cond_t *cond, uint64_t until_ns)
{
	uint64_t now = now_ns(), d = until_ns > now ? until_ns - now : 1000000;
	struct timespec ts;

	/* The condition variables wait on CLOCK_REALTIME. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(d / 1000000000);
	ts.tv_nsec += (long)(d % 1000000000);
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(cond, &wd.lock, &ts);
}

/* ---------------------------------------------------------- pool thread */

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
	/* Cannot keep it: kill it (this thread is its tracer), reap its init. */
	{
		struct eng_instance dead = *e;
		pid_t init = dead.init;

		p->failed++;
		eng_instance_release(&dead);
		while (init > 0 && waitpid(init, NULL, 0) < 0 && errno == EINTR)
			;
	}
}

/* Spawn @n parked instances (1..SPAWN_BATCH_MAX). wd.lock held, dropped
 * during the engine call. */
static void spawn_batch(struct wd_pool *p, size_t n)
{
	/*
	 * Not pretraced: releasing a parked multi-threaded pretraced instance
	 * hangs in the engine (reap_traced waits for the zombie leader before
	 * its traced zombie threads, which it never gets to: seen at 01:15 with
	 * 20 threads). A start then seizes the threads itself, from this
	 * thread all the same.
	 */
	struct eng_instance_opts o = { .sz = sizeof(o), .parked = true, .pretrace = false };
	struct eng_instance e[SPAWN_BATCH_MAX];
	char msg[256] = "";
	size_t done = 0;
	int r;

	n = MIN(MAX(n, (size_t)1), (size_t)SPAWN_BATCH_MAX);
	p->worker_busy = true;
	pthread_mutex_unlock(&wd.lock);
	err_clear();
	if (n == 1) {
		r = eng_template_spawn(p->tpl, &o, &e[0]);
		done = r < 0 ? 0 : 1;
	} else {
		r = eng_template_spawn_many(p->tpl, &o, n, e, &done);
	}
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

/* Idle instances to keep: the target, or more while acquires wait. */
static unsigned int want_idle(const struct wd_pool *p)
{
	unsigned int waiting = 0;

	for (const struct wd_list *w = p->waiters.next; w != &p->waiters; w = w->next)
		waiting++;
	return MAX(p->idle_target, waiting);
}

static bool refill_now(const struct wd_pool *p, uint64_t now)
{
	if (p->nr_idle >= want_idle(p) || now < p->fail_until_ns)
		return false;
	return !wd_list_empty(&p->waiters) || p->nr_idle * 4 <= p->idle_target ||
	       now - p->last_start_ns >= REFILL_QUIET_NS;
}

/* Run one start job. wd.lock held, dropped during the start. */
static void run_job(struct wd_pool *p, struct wd_job *j)
{
	uint64_t t = now_ns();
	int r;

	wd_list_del(&j->link);
	wd_list_init(&j->link);
	p->running = j;			/* still seen by wd_pool_conn_closed */
	j->pid = j->in->e.pid;		/* reset by a failed start */
	p->worker_busy = true;
	pthread_mutex_unlock(&wd.lock);
	err_clear();
	r = eng_instance_start(&j->in->e, j->fds, j->targets, j->nr_fds);
	if (r < 0)
		snprintf(j->err, sizeof(j->err), "%s", err_str(r));
	log_debug("pool \"%s\": start of %d: queued %.0f us, start %.0f us, since request %.0f us",
		  p->name, j->pid, (t - j->t0_ns) / 1e3, (now_ns() - t) / 1e3,
		  (now_ns() - j->t0_ns) / 1e3);
	pthread_mutex_lock(&wd.lock);
	p->worker_busy = false;
	p->running = NULL;
	j->r = r;
	p->last_start_ns = now_ns();
	wd_list_add_tail(&wd.done_jobs, &j->link);
}

/* Release a parked instance given up by main (killed; its traced threads
 * reaped here). wd.lock held, dropped during the call. */
static void run_release(struct wd_pool *p, struct wd_inst *in)
{
	wd_list_del(&in->link);
	wd_list_init(&in->link);
	p->worker_busy = true;
	pthread_mutex_unlock(&wd.lock);
	eng_instance_release(&in->e);	/* keeps nothing; init is ours to reap */
	pthread_mutex_lock(&wd.lock);
	p->worker_busy = false;
	in->release_pending = false;
	/* Back in busy as owner-less: main frees it once its init is reaped. */
	wd_list_add_tail(&p->busy, &in->link);
}

static void open_template(struct wd_pool *p)
{
	struct eng_template_opts o = { .sz = sizeof(o), .null_stdio = true };
	struct eng_template *tpl = NULL;
	uint64_t t0 = now_ns();
	char snap[WC_ID_LEN + 1], why[256];
	int r;

	memcpy(snap, p->snap, sizeof(snap));
	p->worker_busy = true;
	pthread_mutex_unlock(&wd.lock);
	err_clear();
	/* One store handle for all pool threads: opens one at a time. */
	pthread_mutex_lock(&store_lock);
	/* A pool hands its instances to strangers: none may see another's
	 * pipe, socket or shared memory. */
	r = eng_snapshot_independent(wstore, snap, why, sizeof(why));
	if (r == 0)
		r = err_set(EOPNOTSUPP, "its instances would not be independent: %s", why);
	if (r > 0)
		r = eng_template_open(wstore, snap, &o, &tpl);
	pthread_mutex_unlock(&store_lock);
	pthread_mutex_lock(&wd.lock);
	p->worker_busy = false;
	if (r < 0) {
		p->open_err = r;
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

static void *pool_thread(void *arg)
{
	struct wd_pool *p = arg;

	pthread_mutex_lock(&wd.lock);
	open_template(p);
	notify_main();
	for (;;) {
		uint64_t now = now_ns(), until;
		bool ending = p->state != WD_POOL_READY || p->gone || wd.stopping;

		if (!wd_list_empty(&p->jobs)) {
			run_job(p, wd_container_of(p->jobs.next, struct wd_job, link));
			notify_main();
			continue;
		}
		if (!wd_list_empty(&p->release_q)) {
			run_release(p, wd_container_of(p->release_q.next, struct wd_inst, link));
			notify_main();
			continue;
		}
		if (ending && !wd_list_empty(&p->idle)) {
			/* Parked meanwhile (a spawn under way when the pool
			 * ended): given up here, as main gives up the others. */
			struct wd_list *pos, *tmp;

			wd_list_for_each_safe(pos, tmp, &p->idle) {
				struct wd_inst *in = wd_container_of(pos, struct wd_inst, link);

				wd_list_del(&in->link);
				in->idle = false;
				p->nr_idle--;
				in->release_pending = in->killed = true;
				wd_list_add_tail(&p->release_q, &in->link);
			}
			continue;
		}
		if (ending)
			break;
		if (!ending && p->tpl && refill_now(p, now)) {
			/* Several at once only for acquires already waiting. */
			spawn_batch(p, wd_list_empty(&p->waiters) ? 1 : want_idle(p) - p->nr_idle);
			notify_main();
			continue;
		}
		until = now + SWEEP_NS;
		if (!ending && p->nr_idle < want_idle(p))
			until = MIN(until, MAX(p->fail_until_ns, p->last_start_ns + REFILL_QUIET_NS));
		cond_wait_until(&p->cond, until);
	}
	if (p->tpl) {
		struct eng_template *tpl = p->tpl;

		p->worker_busy = true;
		pthread_mutex_unlock(&wd.lock);
		eng_template_close(tpl);
		pthread_mutex_lock(&wd.lock);
		p->tpl = NULL;
		p->worker_busy = false;
	}
	p->thread_done = true;
	pthread_mutex_unlock(&wd.lock);
	notify_main();
	return NULL;
}

/* Start @p's thread (it opens the template and reports to main). */
int wd_pool_thread_start(struct wd_pool *p)
{
	int r = pthread_create(&p->thread, NULL, pool_thread, p);

	if (r)
		return -r;
	p->thread_running = true;
	return 0;
}

/* --------------------------------------------------------------- janitor */

static bool known_child(pid_t pid)
{
	struct wd_list *ppos, *pos;

	for (ppos = wd.pools.next; ppos != &wd.pools; ppos = ppos->next) {
		struct wd_pool *p = wd_container_of(ppos, struct wd_pool, link);
		struct wd_list *lists[] = { &p->idle, &p->busy, &p->release_q };

		if (p->tpl && eng_template_pid(p->tpl) == pid)
			return true;
		for (size_t k = 0; k < ARRAY_SIZE(lists); k++)
			for (pos = lists[k]->next; pos != lists[k]; pos = pos->next)
				if (wd_container_of(pos, struct wd_inst, link)->e.init == pid)
					return true;
		for (pos = p->jobs.next; pos != &p->jobs; pos = pos->next)
			if (wd_container_of(pos, struct wd_job, link)->in->e.init == pid)
				return true;
		if (p->running && p->running->in->e.init == pid)
			return true;
	}
	for (pos = wd.done_jobs.next; pos != &wd.done_jobs; pos = pos->next)
		if (wd_container_of(pos, struct wd_job, link)->in->e.init == pid)
			return true;
	return false;
}

/* Reap children that are neither templates nor inits we track (orphans
 * reparented to us, the subreaper). wd.lock held. */
static void sweep_strays(void)
{
	DIR *d;
	struct dirent *de;

	for (struct wd_list *pos = wd.pools.next; pos != &wd.pools; pos = pos->next)
		if (wd_container_of(pos, struct wd_pool, link)->worker_busy ||
		    !wd_list_empty(&wd_container_of(pos, struct wd_pool, link)->jobs))
			return;		/* an engine call may wait for a child */
	d = opendir("/proc/self/task");
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

static void *janitor_main(void *arg)
{
	pthread_mutex_lock(&wd.lock);
	while (!wd.stopping) {
		cond_wait_until(&wd.kick, now_ns() + SWEEP_NS);
		if (wd.stopping)
			break;
		sweep_strays();
		notice_deleted();
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
	r = pthread_create(&wd.janitor, NULL, janitor_main, NULL);
	if (r) {
		wc_store_close(wstore);
		return err_set(r, "cannot start the janitor thread: %s", strerror(r));
	}
	return 0;
}

/*
 * Stopping (every pool DEAD, its parked instances handed over): wake and
 * join every pool thread (each closes its template) and the janitor.
 */
void wd_worker_stop(void)
{
	pthread_mutex_lock(&wd.lock);
	wd.stopping = true;
	pthread_cond_signal(&wd.kick);
	for (struct wd_list *pos = wd.pools.next; pos != &wd.pools; pos = pos->next)
		pthread_cond_signal(&wd_container_of(pos, struct wd_pool, link)->cond);
	pthread_mutex_unlock(&wd.lock);
	for (struct wd_list *pos = wd.pools.next; pos != &wd.pools; pos = pos->next) {
		struct wd_pool *p = wd_container_of(pos, struct wd_pool, link);

		if (p->thread_running) {
			pthread_join(p->thread, NULL);
			p->thread_running = false;
		}
	}
	pthread_join(wd.janitor, NULL);
	wc_store_close(wstore);
}
