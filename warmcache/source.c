// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Reading pages back: the store's page source and the read engine behind it.
 *
 * A batch of requests (key -> destination) is resolved through the key
 * index to (pack, page), sorted by position, deduplicated (a key is read
 * once, into its first destination) and coalesced: pages adjacent in a pack
 * become one vectored read of up to 1 MiB, straight into the destinations.
 * The reads go through io_uring with many in flight, or through preadv()
 * on the baseline path. Every page read is hashed and compared with its key
 * before it is copied to the other destinations of the same key; a
 * mismatch is reported, never used silently.
 *
 * Pack files vanish only by gc, which first writes the live pages elsewhere:
 * a pack that cannot be opened triggers a full index reload and a retry.
 */
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "wc-internal.h"

#define RUN_MAX_PAGES	256u		/* 1 MiB per read */
#define RUN_MAX_IOV	256u

struct rd_op {
	uint64_t pos;		/* slot << 32 | page */
	uint64_t req;
};

struct rd_run {
	size_t first_op, nr_ops;	/* primaries only */
	size_t good;			/* pages read completely */
	size_t first_iov, nr_iov;
	uint32_t slot;
	uint64_t off;
	size_t len;
};

struct rd_ctx {
	struct wc_store *s;
	const struct wc_page_req *reqs;
	wc_read_problem_cb cb;
	void *userdata;
	struct rd_op *ops;	/* sorted by pos */
	size_t nr_ops;
	size_t *prim;		/* indices into ops of primaries (first of each pos) */
	size_t nr_prim;
	struct rd_run *runs;
	size_t nr_runs;
	struct iovec *iov;
	bool refreshed;		/* index refreshed once for missing keys */
	bool need_full;		/* a pack vanished: full reload */
	int err;		/* first fatal problem */
};

/* LSD radix sort of ops by pos, 11 bits per pass, only over used bits. */
static int sort_ops(struct rd_op *ops, size_t nr)
{
	uint64_t maxpos = 0;
	bool sorted = true;
	struct rd_op *tmp, *src = ops, *dst;
	unsigned bits;

	for (size_t i = 0; i < nr; i++) {
		if (i && ops[i].pos < ops[i - 1].pos)
			sorted = false;
		maxpos |= ops[i].pos;
	}
	if (sorted)
		return 0;
	tmp = malloc(nr * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	dst = tmp;
	bits = 64 - (unsigned)__builtin_clzll(maxpos | 1);
	for (unsigned shift = 0; shift < bits; shift += 11) {
		size_t count[2048] = { 0 };
		size_t sum = 0;

		for (size_t i = 0; i < nr; i++)
			count[(src[i].pos >> shift) & 2047]++;
		for (size_t d = 0; d < 2048; d++) {
			size_t c = count[d];

			count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < nr; i++)
			dst[count[(src[i].pos >> shift) & 2047]++] = src[i];
		struct rd_op *t = src;

		src = dst;
		dst = t;
	}
	if (src != ops)
		memcpy(ops, src, nr * sizeof(*ops));
	free(tmp);
	return 0;
}

static int problem(struct rd_ctx *c, size_t req, enum wc_read_problem what, uint32_t slot,
		   uint32_t page, int err)
{
	uint32_t pack_id = slot < c->s->nr_packs ? c->s->packs[slot].id : 0;
	char hex[33];
	int r;

	if (c->cb) {
		r = c->cb(c->userdata, req, what, pack_id, page, err);
		if (r < 0 && !c->err)
			c->err = r;
		return r;
	}
	if (c->err)
		return c->err;
	wc_key_hex(&c->reqs[req].key, hex);
	switch (what) {
	case WC_READ_MISSING:
		c->err = err_set(EBADMSG, "page %s is not in the store", hex);
		break;
	case WC_READ_BAD:
		c->err = err_set(EBADMSG, "page %s (pack-%08" PRIx32 " page %" PRIu32 ") does not match its key",
				 hex, pack_id, page);
		break;
	default:
		c->err = err_set(err ? err : EIO, "page %s (pack-%08" PRIx32 " page %" PRIu32 ") unreadable: %s",
				 hex, pack_id, page, strerror(err ? -err : EIO));
		break;
	}
	return c->err;
}

/* Look every request up; sort, dedupe, coalesce. Returns -ESTALE if a pack
 * vanished (caller reloads and retries). */
static int rd_plan(struct rd_ctx *c, size_t nr)
{
	struct wc_store *s = c->s;
	size_t nr_iov = 0;
	int r;

	c->nr_ops = 0;
	for (size_t i = 0; i < nr; i++) {
		const struct wc_ient *e;

		if (i + 16 < nr)
			wc_index_prefetch(&s->index, &c->reqs[i + 16].key);
		e = wc_index_get(&s->index, &c->reqs[i].key);

		if (!e && !c->refreshed) {
			/* Written by another process since we loaded the index? */
			c->refreshed = true;
			return -ESTALE;
		}
		if (!e) {
			r = problem(c, i, WC_READ_MISSING, UINT32_MAX, 0, 0);
			if (r < 0)
				return r;
			continue;
		}
		c->ops[c->nr_ops].pos = (uint64_t)(e->pack - 1) << 32 | e->page;
		c->ops[c->nr_ops].req = i;
		c->nr_ops++;
	}
	r = sort_ops(c->ops, c->nr_ops);
	if (r < 0)
		return r;

	/* Make sure every pack is openable before issuing any I/O. */
	for (size_t i = 0; i < c->nr_ops; i++) {
		uint32_t slot = (uint32_t)(c->ops[i].pos >> 32);

		if (i && slot == (uint32_t)(c->ops[i - 1].pos >> 32))
			continue;
		r = wc_store_pack_fd(s, slot);
		if (r == -ENOENT) {
			c->need_full = true;
			return -ESTALE;
		}
		if (r < 0)
			return err_set(r, "store \"%s\": cannot open pack-%08" PRIx32 ": %s", s->dir,
				       s->packs[slot].id, strerror(-r));
	}

	c->nr_prim = 0;
	c->nr_runs = 0;
	for (size_t i = 0; i < c->nr_ops; i++) {
		const struct rd_op *op = &c->ops[i];
		uint32_t slot = (uint32_t)(op->pos >> 32), page = (uint32_t)op->pos;
		void *dst = c->reqs[op->req].dst;
		struct rd_run *run = c->nr_runs ? &c->runs[c->nr_runs - 1] : NULL;

		if (i && op->pos == c->ops[i - 1].pos)
			continue;	/* same page: copied after verification */
		c->prim[c->nr_prim] = i;
		if (run && run->slot == slot && run->nr_ops < RUN_MAX_PAGES &&
		    run->off + run->len == (uint64_t)page * WC_PAGE_SIZE) {
			struct iovec *last = &c->iov[run->first_iov + run->nr_iov - 1];

			if ((uint8_t *)last->iov_base + last->iov_len == (uint8_t *)dst) {
				last->iov_len += WC_PAGE_SIZE;
			} else if (run->nr_iov < RUN_MAX_IOV) {
				c->iov[nr_iov].iov_base = dst;
				c->iov[nr_iov].iov_len = WC_PAGE_SIZE;
				nr_iov++;
				run->nr_iov++;
			} else {
				run = NULL;
			}
			if (run) {
				run->nr_ops++;
				run->len += WC_PAGE_SIZE;
				c->nr_prim++;
				continue;
			}
		}
		run = &c->runs[c->nr_runs++];
		run->first_op = c->nr_prim;
		run->nr_ops = 1;
		run->first_iov = nr_iov;
		run->nr_iov = 1;
		run->slot = slot;
		run->off = (uint64_t)page * WC_PAGE_SIZE;
		run->len = WC_PAGE_SIZE;
		c->iov[nr_iov].iov_base = dst;
		c->iov[nr_iov].iov_len = WC_PAGE_SIZE;
		nr_iov++;
		c->nr_prim++;
	}
	return 0;
}

/* Synchronous preadv of the part of @run from byte @done on; returns bytes
 * read in total (short at end of file) or -errno. */
static ssize_t run_pread(struct rd_ctx *c, const struct rd_run *run, size_t done)
{
	int fd = c->s->packs[run->slot].fd;

	while (done < run->len) {
		struct iovec iov[RUN_MAX_IOV];
		size_t skip = done, n = 0;
		ssize_t got;

		for (size_t k = 0; k < run->nr_iov; k++) {
			const struct iovec *v = &c->iov[run->first_iov + k];

			if (skip >= v->iov_len) {
				skip -= v->iov_len;
				continue;
			}
			iov[n].iov_base = (uint8_t *)v->iov_base + skip;
			iov[n].iov_len = v->iov_len - skip;
			skip = 0;
			n++;
		}
		got = preadv(fd, iov, (int)n, (off_t)(run->off + done));
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (got == 0)
			break;
		done += (size_t)got;
	}
	return (ssize_t)done;
}

/*
 * Execution. A "lane" works through runs: it reads a run, copies each page
 * to the other destinations of its key while the run is still in the
 * cache, and hashes every page against its key. The pread baseline has
 * one lane. The io_uring path has two, each with its own ring, taking runs
 * from a shared counter: the caller's thread and a helper thread, so both
 * cores copy and hash (each on data it just read, which keeps it in the
 * cache; splitting copying and hashing between threads would not).
 *
 * Problems found by the helper are recorded and reported by the caller's
 * thread after the join (err_set() details are thread-local).
 */
struct rd_problem {
	size_t req;
	enum wc_read_problem what;
	uint32_t slot, page;
	int err;
};

struct rd_lane {
	struct rd_ctx *c;
	struct io_uring *ring;		/* NULL: preadv */
	bool deferred;			/* helper: record problems */
	bool ring_broken;		/* drop the ring after this read */
	struct rd_problem *problems;
	size_t nr_problems, cap_problems;
	int err;			/* fatal: stop this lane */
};

/* Shared between the lanes of one read. */
struct rd_shared {
	atomic_size_t next_run;
	atomic_bool stop;		/* a fatal problem: every lane stops */
};

static int lane_problem(struct rd_lane *l, size_t req, enum wc_read_problem what, uint32_t slot,
			uint32_t page, int err)
{
	if (!l->deferred)
		return problem(l->c, req, what, slot, page, err);
	if (l->nr_problems == l->cap_problems) {
		size_t ncap = l->cap_problems ? l->cap_problems * 2 : 16;
		struct rd_problem *n = realloc(l->problems, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		l->problems = n;
		l->cap_problems = ncap;
	}
	l->problems[l->nr_problems++] = (struct rd_problem){ req, what, slot, page, err };
	/* Without a callback the first problem ends the read. */
	return l->c->cb ? 0 : -EBADMSG;
}

/* @run's read finished with @res: handle a short or failed read, copy each
 * page to the other destinations of its key, verify every page. */
static int lane_run_done(struct rd_lane *l, struct rd_run *run, ssize_t res)
{
	struct rd_ctx *c = l->c;
	int err = 0;

	/* A short read (end of a truncated pack, or a partial read) or a
	 * failed one (-EAGAIN, -EINTR...): try the rest synchronously once. */
	if (res < 0)
		res = run_pread(c, run, 0);
	else if ((size_t)res < run->len)
		res = run_pread(c, run, (size_t)res);
	if (res < 0) {
		err = (int)res;
		run->good = 0;
	} else {
		run->good = (size_t)res / WC_PAGE_SIZE;
	}
	for (size_t k = 0; k < run->nr_ops; k++) {
		size_t oi = c->prim[run->first_op + k];
		const struct rd_op *op = &c->ops[oi];
		const struct wc_page_req *rq = &c->reqs[op->req];
		uint32_t page = (uint32_t)op->pos;
		enum wc_read_problem what = WC_READ_IO;
		bool bad_page = true;
		struct wc_key key;
		int r = 0;

		if (k < run->good) {
			wc_key_of(rq->dst, &key);
			bad_page = !wc_key_eq(&key, &rq->key);
			what = WC_READ_BAD;
		}
		if (bad_page)
			r = lane_problem(l, op->req, what, run->slot, page, err);
		if (r < 0)
			return r;
		/* Duplicates of a bad page are bad; so is a second key at one
		 * position (a damaged index). */
		for (size_t j = oi + 1; j < c->nr_ops && c->ops[j].pos == op->pos; j++) {
			const struct wc_page_req *dup = &c->reqs[c->ops[j].req];

			if (!bad_page && wc_key_eq(&dup->key, &rq->key)) {
				memcpy(dup->dst, rq->dst, WC_PAGE_SIZE);
				continue;
			}
			r = lane_problem(l, c->ops[j].req, bad_page ? what : WC_READ_BAD, run->slot,
					 page, err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static void lane_run_pread(struct rd_lane *l, struct rd_shared *sh)
{
	for (;;) {
		size_t ri;
		int r;

		if (atomic_load(&sh->stop))
			return;
		ri = atomic_fetch_add(&sh->next_run, 1);
		if (ri >= l->c->nr_runs)
			return;
		r = lane_run_done(l, &l->c->runs[ri], run_pread(l->c, &l->c->runs[ri], 0));
		if (r < 0) {
			l->err = r;
			atomic_store(&sh->stop, true);
			return;
		}
	}
}

/* Runs a lane claims at once: read together, processed one after the
 * other while the next ones are still in the cache. */
#define LANE_BATCH	2u

/* Submit everything queued; returns how many were submitted. Transient
 * failures are retried; anything else leaves the rest unsubmitted. */
static unsigned submit_all(struct io_uring *ring, unsigned n)
{
	unsigned submitted = 0;

	for (int tries = 0; submitted < n && tries < 10000; ) {
		int r = io_uring_submit(ring);

		if (r > 0) {
			submitted += (unsigned)r;
			continue;
		}
		if (r == 0 || r == -EINTR || r == -EAGAIN || r == -EBUSY) {
			tries++;
			sched_yield();
			continue;
		}
		break;
	}
	return submitted;
}

static void lane_run_uring(struct rd_lane *l, struct rd_shared *sh)
{
	struct rd_ctx *c = l->c;
	struct io_uring *ring = l->ring;

	while (!l->ring_broken) {
		struct io_uring_cqe *cqe;
		size_t first, n;
		unsigned submitted, done = 0;
		int r;

		if (atomic_load(&sh->stop))
			return;
		first = atomic_fetch_add(&sh->next_run, LANE_BATCH);
		if (first >= c->nr_runs)
			return;
		n = MIN((size_t)LANE_BATCH, c->nr_runs - first);
		for (size_t i = 0; i < n; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			const struct rd_run *run = &c->runs[first + i];
			int fd = c->s->packs[run->slot].fd;

			if (run->nr_iov == 1)
				io_uring_prep_read(sqe, fd, c->iov[run->first_iov].iov_base,
						   (unsigned)run->len, run->off);
			else
				io_uring_prep_readv(sqe, fd, &c->iov[run->first_iov],
						    (unsigned)run->nr_iov, run->off);
			io_uring_sqe_set_data64(sqe, first + i);
		}
		submitted = submit_all(ring, (unsigned)n);
		if (submitted < n) {
			/* The ring is unusable: it is dropped after this read (so
			 * the queued requests are never issued); the runs it did
			 * not take are read with preadv. */
			l->ring_broken = true;
		}
		while (done < submitted) {
			r = io_uring_wait_cqe(ring, &cqe);
			if (r == -EINTR)
				continue;
			if (r < 0) {
				l->ring_broken = true;
				l->err = l->err ? l->err : r;
				atomic_store(&sh->stop, true);
				return;
			}
			size_t ri = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(ring, cqe);
			done++;
			if (!l->err) {
				r = lane_run_done(l, &c->runs[ri], res);
				if (r < 0) {
					l->err = r;
					atomic_store(&sh->stop, true);
				}
			}
		}
		for (size_t i = submitted; i < n && !l->err; i++) {
			struct rd_run *run = &c->runs[first + i];

			r = lane_run_done(l, run, run_pread(c, run, 0));
			if (r < 0) {
				l->err = r;
				atomic_store(&sh->stop, true);
			}
		}
		if (l->err)
			return;
	}
	/* Without a ring: go on with preadv. */
	lane_run_pread(l, sh);
}

static int rd_exec_pread(struct rd_ctx *c)
{
	struct rd_shared sh;
	struct rd_lane l = { .c = c };

	atomic_init(&sh.next_run, 0);
	atomic_init(&sh.stop, false);
	lane_run_pread(&l, &sh);
	return l.err;
}

static struct io_uring *new_ring(struct wc_store *s)
{
	struct io_uring *ring = calloc(1, sizeof(*ring));

	if (!ring)
		return NULL;
	if (io_uring_queue_init(MAX(s->opts.queue_depth, LANE_BATCH), ring, 0) < 0) {
		free(ring);
		return NULL;
	}
	return ring;
}

static struct io_uring *rd_ring(struct wc_store *s, int which)
{
	if (!s->uring_ok)
		return NULL;
	if (s->rd_ring_pid != getpid()) {
		/* A ring's queues are shared memory: after fork the child
		 * must not use the parent's. Drop our copies, make new ones. */
		wc_store_rd_ring_free(s);
		s->rd_ring_pid = getpid();
	}
	if (!s->rd_ring[which]) {
		s->rd_ring[which] = new_ring(s);
		if (!s->rd_ring[which] && which == 0)
			s->uring_ok = false;	/* e.g. a seccomp filter: use pread */
	}
	return s->rd_ring[which];
}

void wc_store_rd_ring_free(struct wc_store *s)
{
	for (int i = 0; i < 2; i++) {
		if (s->rd_ring[i]) {
			io_uring_queue_exit(s->rd_ring[i]);
			free(s->rd_ring[i]);
			s->rd_ring[i] = NULL;
		}
	}
}

struct helper_arg {
	struct rd_lane *lane;
	struct rd_shared *sh;
};

static void *helper_main(void *arg)
{
	struct helper_arg *h = arg;

	lane_run_uring(h->lane, h->sh);
	return NULL;
}

/* Below this many pages a second thread costs more than it saves. */
#define HELPER_MIN_PAGES	512u

static int rd_exec_uring(struct rd_ctx *c, struct io_uring *ring)
{
	struct rd_lane main_lane = { .c = c, .ring = ring };
	struct rd_lane helper = { .c = c, .deferred = true };
	struct helper_arg ha = { &helper, NULL };
	struct rd_shared sh;
	pthread_t thread;
	bool have_helper = false;
	int r;

	atomic_init(&sh.next_run, 0);
	atomic_init(&sh.stop, false);
	ha.sh = &sh;
	if (!c->s->opts.no_threads && c->nr_prim >= HELPER_MIN_PAGES &&
	    c->nr_runs >= 2 * LANE_BATCH) {
		helper.ring = rd_ring(c->s, 1);
		have_helper = helper.ring && pthread_create(&thread, NULL, helper_main, &ha) == 0;
	}
	lane_run_uring(&main_lane, &sh);
	if (have_helper)
		pthread_join(thread, NULL);
	for (int i = 0; i < 2; i++) {
		struct rd_lane *l = i ? &helper : &main_lane;

		if (l->ring_broken && c->s->rd_ring[i] == l->ring) {
			io_uring_queue_exit(l->ring);
			free(l->ring);
			c->s->rd_ring[i] = NULL;
		}
	}
	/* The helper's problems, reported here, after the main lane's. */
	r = main_lane.err;
	for (size_t i = 0; i < helper.nr_problems && (r == 0 || c->cb); i++) {
		int e = problem(c, helper.problems[i].req, helper.problems[i].what,
				helper.problems[i].slot, helper.problems[i].page,
				helper.problems[i].err);

		if (e < 0 && r == 0)
			r = e;
	}
	if (r == 0 && helper.err && helper.err != -EBADMSG)
		r = helper.err;
	else if (r == 0 && helper.err == -EBADMSG)
		r = c->err ? c->err : -EBADMSG;
	free(helper.problems);
	return r;
}

int wc_store_read(struct wc_store *s, const struct wc_page_req *reqs, size_t nr,
		  wc_read_problem_cb cb, void *userdata)
{
	struct rd_ctx c = { .s = s, .reqs = reqs, .cb = cb, .userdata = userdata };
	struct io_uring *ring;
	int r = 0;

	if (nr == 0)
		return 0;
	c.ops = malloc(nr * sizeof(*c.ops));
	c.prim = malloc(nr * sizeof(*c.prim));
	c.runs = malloc(nr * sizeof(*c.runs));
	c.iov = malloc(nr * sizeof(*c.iov));
	if (!c.ops || !c.prim || !c.runs || !c.iov) {
		r = -ENOMEM;
		goto out;
	}
	for (int attempt = 0; ; attempt++) {
		r = rd_plan(&c, nr);
		if (r != -ESTALE)
			break;
		if (attempt >= 4) {
			r = err_set(EAGAIN, "store \"%s\": packs keep vanishing while reading", s->dir);
			goto out;
		}
		/* New keys elsewhere, or a pack vanished (gc): reload, resolve again. */
		r = wc_store_refresh(s, c.need_full);
		c.need_full = false;
		if (r < 0)
			goto out;
	}
	if (r < 0)
		goto out;
	ring = rd_ring(s, 0);
	r = ring ? rd_exec_uring(&c, ring) : rd_exec_pread(&c);
	if (c.err)
		r = c.err;
out:
	free(c.ops);
	free(c.prim);
	free(c.runs);
	free(c.iov);
	return r;
}

/* ------------------------------------------------------------ the source */

struct store_source {
	struct wc_source base;
	struct wc_store *s;
};

static int src_lacks(struct wc_source *src, const struct wc_key *keys, size_t nr,
		     uint8_t *ret_lacking)
{
	int r = wc_store_lacks(((struct store_source *)src)->s, keys, nr, ret_lacking);

	return r < 0 ? r : 0;
}

static int src_read_pages(struct wc_source *src, const struct wc_page_req *reqs, size_t nr)
{
	return wc_store_read(((struct store_source *)src)->s, reqs, nr, NULL, NULL);
}

static void src_free(struct wc_source *src)
{
	free(src);
}

static const struct wc_source_ops store_source_ops = {
	.lacks = src_lacks,
	.read_pages = src_read_pages,
	.free = src_free,
};

bool wc_source_is_store(const struct wc_source *src)
{
	return src && src->ops == &store_source_ops;
}

struct wc_store *wc_source_store(struct wc_source *src)
{
	return wc_source_is_store(src) ? ((struct store_source *)src)->s : NULL;
}

int wc_store_source_new(struct wc_store *s, struct wc_source **ret)
{
	struct store_source *src = calloc(1, sizeof(*src));

	if (!src)
		return -ENOMEM;
	src->base.ops = &store_source_ops;
	src->s = s;
	*ret = &src->base;
	return 0;
}
