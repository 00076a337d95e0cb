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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

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

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

/* A pack mapped read-only for placing by userfaultfd (wc_store_read_uffd). */
struct rd_map {
	const uint8_t *base;	/* NULL: not mapped (unused, or empty) */
	size_t len;		/* whole pages of the file when mapped */
};

struct rd_ctx {
	struct wc_store *s;
	const struct wc_uffd_dst *uffd;	/* NULL: read into the destinations */
	struct rd_map *maps;		/* per pack slot, with uffd */
	const uint8_t **dup_src;	/* with uffd: per request, its verified source
					 * if it is a copy, placed last (place_dups) */
	size_t nr_reqs;
	pthread_barrier_t *barrier;	/* with uffd and a helper: runs done */
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
	bool mapped;			/* place from the mapped packs (uffd) */
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

/* Claim runs one at a time until none is left (or a lane failed): @one
 * reads and checks a run. */
static void lane_runs(struct rd_lane *l, struct rd_shared *sh,
		      int (*one)(struct rd_lane *l, struct rd_run *run))
{
	for (;;) {
		size_t ri;
		int r;

		if (atomic_load(&sh->stop))
			return;
		ri = atomic_fetch_add(&sh->next_run, 1);
		if (ri >= l->c->nr_runs)
			return;
		r = one(l, &l->c->runs[ri]);
		if (r < 0) {
			l->err = r;
			atomic_store(&sh->stop, true);
			return;
		}
	}
}

static int lane_one_pread(struct rd_lane *l, struct rd_run *run)
{
	return lane_run_done(l, run, run_pread(l->c, run, 0));
}

static void lane_run_pread(struct rd_lane *l, struct rd_shared *sh)
{
	lane_runs(l, sh, lane_one_pread);
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

/*
 * Placing by userfaultfd. The destinations of wc_snapshot_fill_uffd lie in
 * fresh private anonymous memory registered with a userfaultfd in missing
 * mode. Their pages are not read into place (each first touch would be a
 * page fault: allocate, zero, map, then the copy): the packs are mapped
 * read-only, every page is hashed where it lies in the page cache and then
 * placed with UFFDIO_COPY, which allocates the page and copies into it in
 * one step, many pages per call, with no fault, no zeroing and no copy
 * through a buffer. Measured on this VM (3,860 pages, one lane): 9.2 ms
 * against 11.8 ms for reading into the faulting destinations.
 * Destinations outside the registered ranges get a memcpy.
 */
static int rd_map_packs(struct rd_ctx *c)
{
	c->maps = calloc(c->s->nr_packs ? c->s->nr_packs : 1, sizeof(*c->maps));
	if (!c->maps)
		return -ENOMEM;
	for (size_t i = 0; i < c->nr_runs; i++) {
		uint32_t slot = c->runs[i].slot;
		struct rd_map *m = &c->maps[slot];
		struct stat st;
		size_t len;
		void *p;

		if (m->base || (i && c->runs[i - 1].slot == slot))
			continue;
		if (fstat(c->s->packs[slot].fd, &st) < 0)
			return err_set(errno, "store \"%s\": pack-%08" PRIx32 ": %m", c->s->dir,
				       c->s->packs[slot].id);
		len = (size_t)st.st_size & ~(size_t)(WC_PAGE_SIZE - 1);
		if (len == 0)
			continue;	/* every run from it is short: WC_READ_IO */
		p = mmap(NULL, len, PROT_READ, MAP_SHARED, c->s->packs[slot].fd, 0);
		if (p == MAP_FAILED)
			return err_set(errno, "store \"%s\": cannot map pack-%08" PRIx32 ": %m",
				       c->s->dir, c->s->packs[slot].id);
		m->base = p;
		m->len = len;
	}
	return 0;
}

static void rd_unmap_packs(struct rd_ctx *c)
{
	for (size_t i = 0; c->maps && i < c->s->nr_packs; i++)
		if (c->maps[i].base)
			munmap((void *)c->maps[i].base, c->maps[i].len);
	free(c->maps);
	c->maps = NULL;
}

/* Write @len bytes from @src at @dst: UFFDIO_COPY where @dst lies in a
 * registered range (one call per range touched), memcpy elsewhere. */
static int place(const struct wc_uffd_dst *u, uint8_t *dst, const uint8_t *src, size_t len)
{
	while (len) {
		uintptr_t d = (uintptr_t)dst;
		size_t lo = 0, hi = u->nr, n;

		while (lo < hi) {	/* first range ending above d */
			size_t mid = lo + (hi - lo) / 2;

			if (u->ranges[mid][1] <= d)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < u->nr && u->ranges[lo][0] <= d) {
			size_t done = 0;
			int tries = 0;

			n = MIN(len, (size_t)(u->ranges[lo][1] - d));
			while (done < n) {
				struct uffdio_copy uc = {
					.dst = d + done, .src = (uintptr_t)src + done, .len = n - done,
				};

				if (ioctl(u->fd, UFFDIO_COPY, &uc) == 0)
					break;
				if (uc.copy > 0)
					done += (size_t)uc.copy;
				else if ((errno != EAGAIN && errno != EINTR) || ++tries > 1000)
					return err_set(errno, "cannot place pages at 0x%" PRIxPTR
						       " (UFFDIO_COPY): %m", d + done);
			}
		} else {
			/* A private file mapping or shared memory: its pages
			 * populated in one call, then written (a fault per page
			 * costs more on this VM; a failure leaves the faults). */
			n = lo < u->nr ? MIN(len, (size_t)(u->ranges[lo][0] - d)) : len;
			(void)madvise(dst, n, MADV_POPULATE_WRITE);
			memcpy(dst, src, n);
		}
		dst += n;
		src += n;
		len -= n;
	}
	return 0;
}

/* Pages verified then placed together: small enough that they are still
 * in the cache when UFFDIO_COPY reads them again, large enough that the
 * calls stay few (128 KiB). */
#define PLACE_CHUNK_PAGES	32u

/* Verify every page of @run in the mapped pack and place it, and the other
 * destinations of its key, chunk by chunk. */
static int lane_run_mapped(struct rd_lane *l, struct rd_run *run)
{
	struct rd_ctx *c = l->c;
	const struct rd_map *m = &c->maps[run->slot];
	const uint8_t *src = m->base ? m->base + run->off : NULL;
	uint8_t *pend_dst = NULL;		/* pages verified, not placed yet */
	const uint8_t *pend_src = NULL;
	size_t pend_len = 0, v = 0, v_off = 0;
	int r;

	run->good = m->base && run->off < m->len ? MIN(run->len, m->len - run->off) / WC_PAGE_SIZE : 0;
	/* Map the run's page cache pages in one call, not a fault per 16. */
	if (run->good)
		(void)madvise((void *)src, run->good * WC_PAGE_SIZE, MADV_POPULATE_READ);
	for (size_t k = 0; k < run->nr_ops; k++) {
		size_t oi = c->prim[run->first_op + k];
		const struct rd_op *op = &c->ops[oi];
		const struct wc_page_req *rq = &c->reqs[op->req];
		const uint8_t *page = k < run->good ? src + k * WC_PAGE_SIZE : NULL;
		const struct iovec *iv = &c->iov[run->first_iov + v];
		uint8_t *dst = (uint8_t *)iv->iov_base + v_off;
		enum wc_read_problem what = WC_READ_IO;
		bool bad_page = true;
		struct wc_key key;

		/* The iov entries of the run hold its pages' destinations in order. */
		v_off += WC_PAGE_SIZE;
		if (v_off == iv->iov_len) {
			v++;
			v_off = 0;
		}
		if (page) {
			wc_key_of(page, &key);
			bad_page = !wc_key_eq(&key, &rq->key);
			what = WC_READ_BAD;
		}
		if (pend_len && (bad_page || pend_dst + pend_len != dst ||
				 pend_len == PLACE_CHUNK_PAGES * WC_PAGE_SIZE)) {
			r = place(c->uffd, pend_dst, pend_src, pend_len);
			if (r < 0)
				return r;
			pend_len = 0;
		}
		if (bad_page) {
			r = lane_problem(l, op->req, what, run->slot, (uint32_t)op->pos, 0);
			if (r < 0)
				return r;
		} else {
			if (!pend_len) {
				pend_dst = dst;
				pend_src = page;
			}
			pend_len += WC_PAGE_SIZE;
		}
		for (size_t j = oi + 1; j < c->nr_ops && c->ops[j].pos == op->pos; j++) {
			const struct wc_page_req *dup = &c->reqs[c->ops[j].req];

			if (!bad_page && wc_key_eq(&dup->key, &rq->key)) {
				c->dup_src[c->ops[j].req] = page;
				continue;
			}
			r = lane_problem(l, c->ops[j].req, bad_page ? what : WC_READ_BAD, run->slot,
					 (uint32_t)op->pos, 0);
			if (r < 0)
				return r;
		}
	}
	return pend_len ? place(c->uffd, pend_dst, pend_src, pend_len) : 0;
}

/* Copies placed together, through a buffer: at most 256 KiB. */
#define DUP_BATCH_PAGES		64u

/*
 * The other destinations of every verified page, requests [@from, @to):
 * after all runs, in destination order, so that a stretch of destinations
 * holding copies of different pages (wl-mem's repeated patterns) is placed
 * with one UFFDIO_COPY from a buffer they are gathered in, not one call per
 * page (65 K calls for 1 GiB mixed: 15% slower than faulting them in).
 */
static int place_dups(struct rd_ctx *c, size_t from, size_t to)
{
	_cleanup_free_ uint8_t *buf = NULL;
	int r;

	for (size_t i = from; i < to;) {
		uint8_t *dst = c->reqs[i].dst;
		size_t n = 1;

		if (!c->dup_src[i]) {
			i++;
			continue;
		}
		while (i + n < to && n < DUP_BATCH_PAGES && c->dup_src[i + n] &&
		       (uint8_t *)c->reqs[i + n].dst == dst + n * WC_PAGE_SIZE)
			n++;
		if (n == 1) {
			r = place(c->uffd, dst, c->dup_src[i], WC_PAGE_SIZE);
		} else {
			if (!buf) {
				buf = aligned_alloc(WC_PAGE_SIZE, DUP_BATCH_PAGES * WC_PAGE_SIZE);
				if (!buf)
					return -ENOMEM;
			}
			for (size_t k = 0; k < n; k++)
				memcpy(buf + k * WC_PAGE_SIZE, c->dup_src[i + k], WC_PAGE_SIZE);
			r = place(c->uffd, dst, buf, n * WC_PAGE_SIZE);
		}
		if (r < 0)
			return r;
		i += n;
	}
	return 0;
}

/* A lane's share of the copies, once every lane is done with the runs
 * (lane 0: the first half of the requests, lane 1: the second). */
static void lane_dups(struct rd_lane *l, struct rd_shared *sh, int lane, int nr_lanes)
{
	struct rd_ctx *c = l->c;
	size_t half = c->nr_reqs / 2;
	int r;

	if (nr_lanes > 1)
		pthread_barrier_wait(c->barrier);
	if (atomic_load(&sh->stop))
		return;
	r = place_dups(c, nr_lanes > 1 && lane ? half : 0, nr_lanes > 1 && !lane ? half : c->nr_reqs);
	if (r < 0) {
		l->err = r;
		atomic_store(&sh->stop, true);
	}
}

static void lane_run_mapped_all(struct rd_lane *l, struct rd_shared *sh)
{
	lane_runs(l, sh, lane_run_mapped);
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

	if (h->lane->mapped) {
		lane_run_mapped_all(h->lane, h->sh);
		lane_dups(h->lane, h->sh, 1, 2);
	} else
		lane_run_uring(h->lane, h->sh);
	return NULL;
}

/* Below this many pages a second thread costs more than it saves. */
#define HELPER_MIN_PAGES	512u

/* Two lanes (the caller and a helper thread): io_uring reads into the
 * destinations with @ring, or (@ring NULL, with c->uffd) placing from the
 * mapped packs. */
static int rd_exec_lanes(struct rd_ctx *c, struct io_uring *ring)
{
	bool mapped = !ring;
	struct rd_lane main_lane = { .c = c, .ring = ring, .mapped = mapped };
	struct rd_lane helper = { .c = c, .deferred = true, .mapped = mapped };
	struct helper_arg ha = { &helper, NULL };
	struct rd_shared sh;
	pthread_barrier_t barrier;
	pthread_t thread;
	bool have_helper = false;
	int r;

	atomic_init(&sh.next_run, 0);
	atomic_init(&sh.stop, false);
	ha.sh = &sh;
	if (!c->s->opts.no_threads && c->nr_prim >= HELPER_MIN_PAGES &&
	    c->nr_runs >= 2 * LANE_BATCH) {
		helper.ring = mapped ? NULL : rd_ring(c->s, 1);
		if (mapped && pthread_barrier_init(&barrier, NULL, 2) == 0)
			c->barrier = &barrier;
		have_helper = ((mapped && c->barrier) || helper.ring) &&
			      pthread_create(&thread, NULL, helper_main, &ha) == 0;
	}
	if (mapped) {
		lane_run_mapped_all(&main_lane, &sh);
		lane_dups(&main_lane, &sh, 0, have_helper ? 2 : 1);
	} else
		lane_run_uring(&main_lane, &sh);
	if (have_helper)
		pthread_join(thread, NULL);
	if (c->barrier) {
		pthread_barrier_destroy(c->barrier);
		c->barrier = NULL;
	}
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

static int store_read(struct wc_store *s, const struct wc_page_req *reqs, size_t nr,
		      wc_read_problem_cb cb, void *userdata, const struct wc_uffd_dst *u)
{
	struct rd_ctx c = { .s = s, .reqs = reqs, .cb = cb, .userdata = userdata, .uffd = u };
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
	if (u) {
		c.nr_reqs = nr;
		c.dup_src = calloc(nr, sizeof(*c.dup_src));
		r = c.dup_src ? rd_map_packs(&c) : -ENOMEM;
		if (r >= 0)
			r = rd_exec_lanes(&c, NULL);
	} else {
		ring = rd_ring(s, 0);
		r = ring ? rd_exec_lanes(&c, ring) : rd_exec_pread(&c);
	}
	if (c.err)
		r = c.err;
out:
	rd_unmap_packs(&c);
	free(c.dup_src);
	free(c.ops);
	free(c.prim);
	free(c.runs);
	free(c.iov);
	return r;
}

int wc_store_read(struct wc_store *s, const struct wc_page_req *reqs, size_t nr,
		  wc_read_problem_cb cb, void *userdata)
{
	return store_read(s, reqs, nr, cb, userdata, NULL);
}

int wc_store_read_uffd(struct wc_store *s, const struct wc_page_req *reqs, size_t nr,
		       wc_read_problem_cb cb, void *userdata, const struct wc_uffd_dst *u)
{
	if (!u || u->fd < 0)
		return -EINVAL;
	return store_read(s, reqs, nr, cb, userdata, u);
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
