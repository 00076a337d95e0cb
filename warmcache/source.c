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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

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
	struct rd_verifier *verifier;
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

/* Problems found on the verifier thread, reported by the caller's thread
 * (err_set() details are thread-local). */
struct rd_problem {
	size_t req;
	enum wc_read_problem what;
	uint32_t slot, page;
};

/*
 * The verifier: hashes the pages of completed reads on a second thread
 * while the submitting thread keeps the reads (kernel copies) going. Runs
 * are handed over in completion order through a small queue.
 */
struct rd_verifier {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t *queue;		/* run indices, nr_runs slots */
	size_t head, tail;	/* head: next to verify; tail: next free */
	bool closing;
	atomic_bool stop;	/* a problem without callback: stop early */
	struct rd_problem *problems;
	size_t nr_problems, cap_problems;
	int err;		/* -ENOMEM while recording */
};

static int run_io_done(struct rd_ctx *c, struct rd_run *run, ssize_t res);

/* @run's read finished with @res: handle a short read or an error, and copy
 * each page to the other destinations of its key. Sets run->good. The
 * copies happen before verification: if a page is bad the whole read fails
 * (or, for verify, the destinations are scratch). */
static int run_io_done(struct rd_ctx *c, struct rd_run *run, ssize_t res)
{
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
		int r;

		if (k >= run->good) {
			r = problem(c, op->req, WC_READ_IO, run->slot, (uint32_t)op->pos, err);
			if (r < 0)
				return r;
			for (size_t j = oi + 1; j < c->nr_ops && c->ops[j].pos == op->pos; j++) {
				r = problem(c, c->ops[j].req, WC_READ_IO, run->slot, (uint32_t)op->pos, err);
				if (r < 0)
					return r;
			}
			continue;
		}
		for (size_t j = oi + 1; j < c->nr_ops && c->ops[j].pos == op->pos; j++)
			memcpy(c->reqs[c->ops[j].req].dst, rq->dst, WC_PAGE_SIZE);
	}
	return 0;
}

static int verifier_record(struct rd_verifier *v, size_t req, enum wc_read_problem what,
			   uint32_t slot, uint32_t page)
{
	if (v->nr_problems == v->cap_problems) {
		size_t ncap = v->cap_problems ? v->cap_problems * 2 : 16;
		struct rd_problem *n = realloc(v->problems, ncap * sizeof(*n));

		if (!n) {
			v->err = -ENOMEM;
			atomic_store(&v->stop, true);
			return -ENOMEM;
		}
		v->problems = n;
		v->cap_problems = ncap;
	}
	v->problems[v->nr_problems++] = (struct rd_problem){ req, what, slot, page };
	return 0;
}

/* Hash every good page of @run against its key. With @v, problems are
 * recorded for later; without, reported at once. */
static int run_verify(struct rd_ctx *c, const struct rd_run *run, struct rd_verifier *v)
{
	for (size_t k = 0; k < run->good && k < run->nr_ops; k++) {
		size_t oi = c->prim[run->first_op + k];
		const struct rd_op *op = &c->ops[oi];
		const struct wc_page_req *rq = &c->reqs[op->req];
		uint32_t page = (uint32_t)op->pos;
		bool bad_page;
		struct wc_key key;
		int r = 0;

		wc_key_of(rq->dst, &key);
		bad_page = !wc_key_eq(&key, &rq->key);
		if (bad_page)
			r = v ? verifier_record(v, op->req, WC_READ_BAD, run->slot, page) :
				problem(c, op->req, WC_READ_BAD, run->slot, page, 0);
		if (r < 0)
			return r;
		/* Duplicates of a bad page are bad; so is a second key at one
		 * position (a damaged index). */
		for (size_t j = oi + 1; j < c->nr_ops && c->ops[j].pos == op->pos; j++) {
			const struct wc_page_req *dup = &c->reqs[c->ops[j].req];

			if (!bad_page && wc_key_eq(&dup->key, &rq->key))
				continue;
			r = v ? verifier_record(v, c->ops[j].req, WC_READ_BAD, run->slot, page) :
				problem(c, c->ops[j].req, WC_READ_BAD, run->slot, page, 0);
			if (r < 0)
				return r;
		}
		if (v && v->nr_problems && !c->cb)
			atomic_store(&v->stop, true);
	}
	return 0;
}

static void *verifier_main(void *arg)
{
	struct rd_ctx *c = arg;
	struct rd_verifier *v = c->verifier;

	pthread_mutex_lock(&v->lock);
	for (;;) {
		size_t ri;

		while (v->head == v->tail && !v->closing)
			pthread_cond_wait(&v->cond, &v->lock);
		if (v->head == v->tail)
			break;
		ri = v->queue[v->head++];
		pthread_mutex_unlock(&v->lock);
		if (!atomic_load(&v->stop))
			run_verify(c, &c->runs[ri], v);
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

static void verifier_push(struct rd_verifier *v, size_t ri)
{
	pthread_mutex_lock(&v->lock);
	v->queue[v->tail++] = ri;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

/* Start the verifier thread; NULL (verify inline) if it cannot start. */
static struct rd_verifier *verifier_start(struct rd_ctx *c)
{
	struct rd_verifier *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->queue = malloc(c->nr_runs * sizeof(*v->queue));
	if (!v->queue || pthread_mutex_init(&v->lock, NULL) != 0) {
		free(v->queue);
		free(v);
		return NULL;
	}
	pthread_cond_init(&v->cond, NULL);
	atomic_init(&v->stop, false);
	c->verifier = v;
	if (pthread_create(&v->thread, NULL, verifier_main, c) != 0) {
		c->verifier = NULL;
		pthread_cond_destroy(&v->cond);
		pthread_mutex_destroy(&v->lock);
		free(v->queue);
		free(v);
		return NULL;
	}
	return v;
}

/* Join the verifier and report what it found, in the caller's thread. */
static int verifier_finish(struct rd_ctx *c, struct rd_verifier *v)
{
	int r = 0;

	pthread_mutex_lock(&v->lock);
	v->closing = true;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->thread, NULL);
	c->verifier = NULL;
	for (size_t i = 0; i < v->nr_problems && r >= 0; i++)
		r = problem(c, v->problems[i].req, v->problems[i].what, v->problems[i].slot,
			    v->problems[i].page, 0);
	if (r >= 0 && v->err)
		r = v->err;
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	free(v->problems);
	free(v->queue);
	free(v);
	return r < 0 ? r : 0;
}

static int rd_exec_pread(struct rd_ctx *c)
{
	for (size_t i = 0; i < c->nr_runs; i++) {
		struct rd_run *run = &c->runs[i];
		int r = run_io_done(c, run, run_pread(c, run, 0));

		if (r == 0)
			r = run_verify(c, run, NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

static struct io_uring *rd_ring(struct wc_store *s)
{
	if (!s->uring_ok)
		return NULL;
	if (!s->rd_ring) {
		struct io_uring *ring = calloc(1, sizeof(*ring));

		if (!ring)
			return NULL;
		if (io_uring_queue_init(s->opts.queue_depth, ring, 0) < 0) {
			free(ring);
			s->uring_ok = false;	/* e.g. a seccomp filter: use pread */
			return NULL;
		}
		s->rd_ring = ring;
	}
	return s->rd_ring;
}

void wc_store_rd_ring_free(struct wc_store *s)
{
	if (s->rd_ring) {
		io_uring_queue_exit(s->rd_ring);
		free(s->rd_ring);
		s->rd_ring = NULL;
	}
}

/* Below this many pages a second thread costs more than it saves. */
#define VERIFIER_MIN_PAGES	512u

static int rd_exec_uring(struct rd_ctx *c, struct io_uring *ring)
{
	unsigned depth = c->s->opts.queue_depth, inflight = 0;
	struct rd_verifier *v = NULL;
	size_t next = 0;
	int fatal = 0, r;

	if (c->nr_prim >= VERIFIER_MIN_PAGES)
		v = verifier_start(c);
	while (next < c->nr_runs || inflight) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		while (!fatal && next < c->nr_runs && inflight < depth) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
			const struct rd_run *run = &c->runs[next];
			int fd = c->s->packs[run->slot].fd;

			if (!sqe)
				break;
			if (run->nr_iov == 1)
				io_uring_prep_read(sqe, fd, c->iov[run->first_iov].iov_base,
						   (unsigned)run->len, run->off);
			else
				io_uring_prep_readv(sqe, fd, &c->iov[run->first_iov],
						    (unsigned)run->nr_iov, run->off);
			io_uring_sqe_set_data64(sqe, next);
			next++;
			inflight++;
		}
		if (!inflight)
			break;
		r = io_uring_submit_and_wait(ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			/* The ring failed: stop issuing, drain what is in flight. */
			if (!fatal)
				fatal = r;
			if (io_uring_cq_ready(ring) == 0)
				break;
		}
		io_uring_for_each_cqe(ring, head, cqe) {
			size_t ri = io_uring_cqe_get_data64(cqe);
			struct rd_run *run = &c->runs[ri];

			seen++;
			inflight--;
			if (fatal)
				continue;
			r = run_io_done(c, run, cqe->res);
			if (r < 0)
				fatal = r;
			else if (v)
				verifier_push(v, ri);
			else if ((r = run_verify(c, run, NULL)) < 0)
				fatal = r;
		}
		io_uring_cq_advance(ring, seen);
		if (v && atomic_load(&v->stop) && !fatal)
			fatal = -EBADMSG;	/* reported by verifier_finish */
		if (fatal)
			next = c->nr_runs;
	}
	if (v) {
		r = verifier_finish(c, v);
		if (r < 0)
			return r;
	}
	return fatal;
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
	ring = rd_ring(s);
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
