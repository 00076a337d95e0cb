// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The receiver's fault server for a lazy twin (contract in
 * include/rfork/transfer.h, exchange in docs/protocol.md "--lazy").
 *
 * One thread, one poll loop over: a pipe from the main thread (restored /
 * abort), the socket on which the restore child hands over its userfaultfd
 * and a pidfd, the uffd, and the session. The loop never blocks on anything
 * but poll, so a twin whose threads all wait on faults never stalls it; the
 * main thread (inside eng_restore while the restorer moves the areas) only
 * ever sends through rf_lazy_send().
 *
 * Per lazy page a state: PENDING (not here, not asked), ASKED (PAGE_REQ
 * sent), DONE (installed, or dropped by the twin). Faults are queued while
 * the uffd is drained and answered after, so that an install that meets
 * -EAGAIN (an mremap of the twin in flight: its event must be read first)
 * can drain events without recursion.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/watchdog.h"
#include "rfork/transfer.h"

enum { LZ_PENDING = 0, LZ_ASKED = 1, LZ_DONE = 2 };

/* Lazy pages asked per fault: the page and its neighbours in address
 * order (RF_LAZY_WINDOW_BACK before it), so that a twin walking memory
 * needs one round trip per window, not per page. */
#define RF_LAZY_WINDOW		32u
#define RF_LAZY_WINDOW_BACK	4u
#define RF_LAZY_MAX_FAULTS	4096u
/* Children the twin forks while pages still arrive (UFFD_EVENT_FORK): each
 * has its own uffd, gets every page the twin gets, and its faults are
 * served alike. */
#define RF_LAZY_MAX_KIDS	64u

struct rf_lazy {
	struct rf_session *s;
	pthread_mutex_t send_lock;
	struct rf_lazy_table t;
	int sock, uffd, pidfd;
	/* If this process dies before every page is in (crash, SIGKILL, rforkd
	 * stopped), the uffd would close and the twin's faults read zeros: the
	 * watchdog holds a copy of the uffd and kills the twin then. */
	struct watchdog wd;
	int kids[RF_LAZY_MAX_KIDS];	/* uffds of the twin's children */
	unsigned nr_kids;
	int ctl[2];			/* main -> server: 'R' restored, 'A' abort */
	int timeout_ms;
	pthread_t th;
	bool started;

	uint8_t *state;			/* [t.nr] LZ_* */
	/* Keyed only (NULL when unkeyed: every page is its own primary and
	 * has no duplicate; see PRIMARY(), NEXT_DUP()). */
	uint32_t *primary;		/* [t.nr] rf_lazy_dedup() */
	uint32_t *next_dup;		/* [t.nr] next page with the primary's content, or UINT32_MAX */
	uint32_t nr_primaries;
	struct wc_sink *pages;		/* rf_lazy_set_sink(), or NULL */
	uint32_t pages_put;
	pid_t hold_pid;			/* rf_lazy_set_hold(), or 0 */
	uint32_t nr_left;		/* lazy pages not DONE */
	/* Lazy page numbers sorted by current address; NULL while that is
	 * the identity (until the twin's mremap moves pages out of order):
	 * BY_ADDR(). */
	uint32_t *by_addr;
	bool restored, end_seen;
	uint64_t *faults;		/* queued fault addresses (| 1: write) */
	int *fault_fd;			/* the uffd each came from */
	size_t nr_faults;
	uint64_t t0;

	int result;
	char detail[512];
	struct rf_lazy_stats st;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int rf_lazy_dedup(const struct wc_key *keys, uint32_t nr, uint32_t *ret_primary)
{
	uint32_t cap = 16, mask, *slot;
	int n = 0;

	while (cap < 2 * (uint64_t)nr)
		cap *= 2;
	mask = cap - 1;
	slot = malloc((size_t)cap * sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	memset(slot, 0xff, (size_t)cap * sizeof(*slot));
	for (uint32_t i = 0; i < nr; i++) {
		uint32_t h = (uint32_t)(keys[i].lo ^ keys[i].hi >> 17) & mask;

		while (slot[h] != UINT32_MAX && !wc_key_eq(&keys[slot[h]], &keys[i]))
			h = (h + 1) & mask;
		if (slot[h] == UINT32_MAX) {
			slot[h] = i;
			n++;
		}
		ret_primary[i] = slot[h];
	}
	free(slot);
	return n;
}

int rf_lazy_send(struct rf_lazy *lz, uint16_t type, const void *payload, size_t len)
{
	int r;

	pthread_mutex_lock(&lz->send_lock);
	memcpy(rf_session_frame(lz->s, type, len), payload, len);
	r = rf_session_send(lz->s, len);
	pthread_mutex_unlock(&lz->send_lock);
	return r;
}

/* ------------------------------------------------------------ addresses */

#define BY_ADDR(lz, i)	((lz)->by_addr ? (lz)->by_addr[i] : (i))
#define PRIMARY(lz, e)	((lz)->primary ? (lz)->primary[e] : (e))
#define NEXT_DUP(lz, e)	((lz)->next_dup ? (lz)->next_dup[e] : UINT32_MAX)

/* Index into by_addr of the first lazy page at or above @addr. */
static uint32_t lower_bound(const struct rf_lazy *lz, uint64_t addr)
{
	uint32_t lo = 0, hi = lz->t.nr;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (lz->t.addr[BY_ADDR(lz, mid)] < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int64_t lookup(const struct rf_lazy *lz, uint64_t page)
{
	uint32_t i = lower_bound(lz, page);

	if (i < lz->t.nr && lz->t.addr[BY_ADDR(lz, i)] == page)
		return BY_ADDR(lz, i);
	return -1;
}

static const uint64_t *sort_base;

static int cmp_addr(const void *a, const void *b)
{
	uint64_t x = sort_base[*(const uint32_t *)a], y = sort_base[*(const uint32_t *)b];

	return x < y ? -1 : x > y;
}

/* The twin (or the restorer) moved [from, from + len) to @to: lazy pages
 * there now live at their new addresses. */
static int on_remap(struct rf_lazy *lz, uint64_t from, uint64_t to, uint64_t len)
{
	uint32_t i = lower_bound(lz, from);
	bool moved = false;

	for (; i < lz->t.nr && lz->t.addr[BY_ADDR(lz, i)] < from + len; i++) {
		lz->t.addr[BY_ADDR(lz, i)] += to - from;
		moved = true;
	}
	if (moved) {
		/* Rare (the twin's own mremap of memory still arriving). */
		if (!lz->by_addr) {
			lz->by_addr = malloc((size_t)lz->t.nr * sizeof(*lz->by_addr));
			if (!lz->by_addr)
				return -ENOMEM;
			for (uint32_t k = 0; k < lz->t.nr; k++)
				lz->by_addr[k] = k;
		}
		sort_base = lz->t.addr;
		qsort(lz->by_addr, lz->t.nr, sizeof(*lz->by_addr), cmp_addr);
		lz->st.nr_remaps++;
	}
	return 0;
}

static void mark_done(struct rf_lazy *lz, uint32_t e)
{
	if (lz->state[e] != LZ_DONE) {
		lz->state[e] = LZ_DONE;
		lz->nr_left--;
	}
}

/* MADV_DONTNEED (or an unmapped range): never install those pages; a later
 * fault there gets a zero page, as the twin expects. */
static void on_remove(struct rf_lazy *lz, uint64_t start, uint64_t end)
{
	for (uint32_t i = lower_bound(lz, start);
	     i < lz->t.nr && lz->t.addr[BY_ADDR(lz, i)] < end; i++) {
		if (lz->state[BY_ADDR(lz, i)] != LZ_DONE)
			lz->st.pages_dropped++;
		mark_done(lz, BY_ADDR(lz, i));
	}
}

/* ----------------------------------------------------------------- uffd */

/*
 * Read every queued message of uffd @fd (the twin's, or a child's): faults
 * queued, bookkeeping now. Addresses follow the twin's own mremaps and
 * MADV_DONTNEED only (a child doing either while pages arrive may get a
 * page's old content or a zero page there).
 */
static int drain_one(struct rf_lazy *lz, int fd)
{
	bool twin = fd == lz->uffd;

	for (;;) {
		struct uffd_msg msg[16];
		ssize_t n = read(fd, msg, sizeof(msg));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return err_set(errno, "reading the twin's userfaultfd: %m");
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
			switch (msg[i].event) {
			case UFFD_EVENT_PAGEFAULT:
				if (lz->nr_faults == RF_LAZY_MAX_FAULTS)
					return err_set(ENOBUFS, "more than %u faults queued",
						       RF_LAZY_MAX_FAULTS);
				lz->fault_fd[lz->nr_faults] = fd;
				lz->faults[lz->nr_faults++] = msg[i].arg.pagefault.address |
					!!(msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE);
				break;
			case UFFD_EVENT_FORK:
				/* The fork waited for this read; the child's missing
				 * pages fault to its own uffd from now on. */
				if (lz->nr_kids == RF_LAZY_MAX_KIDS) {
					close((int)msg[i].arg.fork.ufd);
					return err_set(EMFILE, "the twin forked more than %u children "
						       "while its pages arrived", RF_LAZY_MAX_KIDS);
				}
				fcntl((int)msg[i].arg.fork.ufd, F_SETFL, O_NONBLOCK);
				fcntl((int)msg[i].arg.fork.ufd, F_SETFD, FD_CLOEXEC);
				lz->kids[lz->nr_kids++] = (int)msg[i].arg.fork.ufd;
				break;
			case UFFD_EVENT_REMAP:
				if (twin) {
					int r = on_remap(lz, msg[i].arg.remap.from,
							 msg[i].arg.remap.to, msg[i].arg.remap.len);

					if (r < 0)
						return r;
				}
				break;
			case UFFD_EVENT_REMOVE:
				if (twin)
					on_remove(lz, msg[i].arg.remove.start, msg[i].arg.remove.end);
				break;
			default:
				break;
			}
		}
	}
}

static int drain_uffd(struct rf_lazy *lz)
{
	int r = drain_one(lz, lz->uffd);

	for (unsigned k = 0; r >= 0 && k < lz->nr_kids; k++)
		r = drain_one(lz, lz->kids[k]);
	return r;
}

/*
 * UFFDIO_COPY @nr pages from @src to @dst. Returns the pages copied (the
 * rest failed with *ret_err), retrying -EAGAIN (an mremap in progress:
 * read its event first).
 */
static int64_t uffd_copy_fd(struct rf_lazy *lz, int fd, uint64_t dst, const void *src,
			    uint64_t nr, int *ret_err)
{
	for (unsigned tries = 0;; tries++) {
		struct uffdio_copy c = { .dst = dst, .src = (uint64_t)(uintptr_t)src,
					 .len = nr * WC_PAGE_SIZE };
		int r;

		if (ioctl(fd, UFFDIO_COPY, &c) == 0)
			return (int64_t)nr;
		*ret_err = -errno;
		if (c.copy > 0)
			return c.copy / WC_PAGE_SIZE;
		if (errno != EAGAIN || tries > 100000)
			return 0;
		r = drain_uffd(lz);
		if (r < 0) {
			*ret_err = r;
			return 0;
		}
		sched_yield();
	}
}

/* Into the twin; and into each child it forked, whatever happens there
 * (a child that unmapped the range or exec'd does not need the page). */
static int64_t uffd_copy(struct rf_lazy *lz, uint64_t dst, const void *src, uint64_t nr,
			 int *ret_err)
{
	int64_t done = uffd_copy_fd(lz, lz->uffd, dst, src, nr, ret_err);

	for (unsigned k = 0; k < lz->nr_kids; k++) {
		int err = 0;
		int64_t d = uffd_copy_fd(lz, lz->kids[k], dst, src, nr, &err);

		/* -EEXIST and short copies: the rest page by page. */
		for (uint64_t p = d + 1; d >= 0 && p < nr; p++)
			(void)uffd_copy_fd(lz, lz->kids[k], dst + p * WC_PAGE_SIZE,
					   (const uint8_t *)src + p * WC_PAGE_SIZE, 1, &err);
	}
	return done;
}

static int install_one(struct rf_lazy *lz, uint32_t e, const uint8_t *data)
{
	int err = 0;

	if (uffd_copy(lz, lz->t.addr[e], data, 1, &err) == 1)
		lz->st.pages_installed++;
	else if (err == -EEXIST)
		lz->st.pages_present++;		/* the twin had it some other way */
	else if (err == -ENOENT || err == -EFAULT || err == -ESRCH)
		lz->st.pages_dropped++;		/* unmapped meanwhile */
	else
		return err_set(-err, "installing the page at 0x%llx in the twin: %s",
			       (unsigned long long)lz->t.addr[e], strerror(-err));
	mark_done(lz, e);
	return 0;
}

/* Install @data at lazy page @e and every other page of its content. */
static int install_chain(struct rf_lazy *lz, uint32_t e, const uint8_t *data)
{
	for (uint32_t k = e; k != UINT32_MAX; k = NEXT_DUP(lz, k)) {
		int r;

		if (lz->state[k] == LZ_DONE)
			continue;
		r = install_one(lz, k, data);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Arriving lazy pages into the store too (each primary comes exactly
 * once), in one pseudo-area in arrival order; @kinds NULL: all data. */
static int store_put(struct rf_lazy *lz, const void *data, const uint8_t *kinds, uint32_t n)
{
	int r;

	if (!lz->pages)
		return 0;
	if (n > lz->nr_primaries - lz->pages_put)
		return err_set(EPROTO, "more lazy pages than distinct contents");
	if (!lz->pages_put) {
		struct wc_area_desc d = { .start = 0, .nr_pages = lz->nr_primaries,
					  .prot = 1, .name = "rfork lazy pages" };

		r = lz->pages->ops->begin_area(lz->pages, &d);
		if (r < 0)
			return err_wrap(r, "storing lazy pages");
	}
	r = lz->pages->ops->put_pages(lz->pages, data, kinds, n);
	if (r < 0)
		return err_wrap(r, "storing lazy pages");
	lz->pages_put += n;
	return 0;
}

/*
 * LAZY_PAGES: verify every page (unkeyed: compute its key instead), then
 * install runs of adjacent pages that have no duplicates in one ioctl, the
 * others page by page along with the pages that share their content.
 */
static int on_pages(struct rf_lazy *lz, const struct rf_msg *m)
{
	uint32_t n = m->lazy_pages.nr;
	int r;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t e = rf_get_u32(m->lazy_pages.entries + 4 * i);
		struct wc_key k;

		if (e >= lz->t.nr || PRIMARY(lz, e) != e)
			return err_set(EPROTO, "LAZY_PAGES: page %u of %u is not a primary", e, lz->t.nr);
		rf_page_key(m->lazy_pages.data + (size_t)i * WC_PAGE_SIZE, &k);
		if (lz->t.unkeyed)
			lz->t.keys[e] = k;	/* for the whole snapshot (rforkd) */
		else if (!wc_key_eq(&k, &lz->t.keys[e]))
			return err_set(EPROTO, "lazy page %u (0x%llx) does not match its key", e,
				       (unsigned long long)lz->t.addr[e]);
	}
	r = store_put(lz, m->lazy_pages.data, NULL, n);
	if (r < 0)
		return r;
#define SINGLE(x) (NEXT_DUP(lz, x) == UINT32_MAX && lz->state[x] != LZ_DONE)
	for (uint32_t i = 0; i < n;) {
		uint32_t e = rf_get_u32(m->lazy_pages.entries + 4 * i), j = i + 1;
		const uint8_t *data = m->lazy_pages.data + (size_t)i * WC_PAGE_SIZE;
		int64_t done = 0;
		int err = 0;

		if (!SINGLE(e)) {
			r = install_chain(lz, e, data);
			if (r < 0)
				return r;
			i++;
			continue;
		}
		while (j < n) {
			uint32_t f = rf_get_u32(m->lazy_pages.entries + 4 * j);

			if (!SINGLE(f) ||
			    lz->t.addr[f] != lz->t.addr[e] + (uint64_t)(j - i) * WC_PAGE_SIZE)
				break;
			j++;
		}
		if (j - i > 1)
			done = uffd_copy(lz, lz->t.addr[e], data, j - i, &err);
		for (uint32_t k = i; k < i + (uint32_t)done; k++) {
			mark_done(lz, rf_get_u32(m->lazy_pages.entries + 4 * k));
			lz->st.pages_installed++;
		}
		/* The rest (or a single page) one by one: -EEXIST etc. per page. */
		for (uint32_t k = i + (uint32_t)done; k < j; k++) {
			r = install_one(lz, rf_get_u32(m->lazy_pages.entries + 4 * k),
					m->lazy_pages.data + (size_t)k * WC_PAGE_SIZE);
			if (r < 0)
				return r;
		}
		i = j;
	}
#undef SINGLE
	return 0;
}

static const uint8_t zero_page[WC_PAGE_SIZE] __attribute__((aligned(4096)));
static const uint8_t absent_kinds[RF_LAZY_ZERO_MAX];	/* WC_PAGE_ABSENT = 0 */

/*
 * LAZY_ZERO (unkeyed pushes): these lazy pages are all zero. Runs of
 * adjacent ones get the zero page in one UFFDIO_ZEROPAGE each (in the twin
 * and its children); a run that meets anything (-EEXIST, -EAGAIN, a range
 * gone) goes page by page through install_one() with a zero page.
 */
static int on_zero(struct rf_lazy *lz, const struct rf_msg *m)
{
	uint32_t n = m->lazy_zero.nr;
	struct wc_key zk;
	int r;

	if (!lz->t.unkeyed)
		return err_set(EPROTO, "LAZY_ZERO in a keyed push");
	rf_page_key(zero_page, &zk);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t e = rf_get_u32(m->lazy_zero.entries + 4 * i);

		if (e >= lz->t.nr)
			return err_set(EPROTO, "LAZY_ZERO: page %u of %u", e, lz->t.nr);
		lz->t.keys[e] = zk;
	}
	r = store_put(lz, NULL, absent_kinds, n);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < n;) {
		uint32_t e = rf_get_u32(m->lazy_zero.entries + 4 * i), j = i + 1;
		bool whole = lz->state[e] != LZ_DONE;

		while (j < n) {
			uint32_t f = rf_get_u32(m->lazy_zero.entries + 4 * j);

			if (lz->state[f] == LZ_DONE ||
			    lz->t.addr[f] != lz->t.addr[e] + (uint64_t)(j - i) * WC_PAGE_SIZE)
				break;
			j++;
		}
		if (whole && j - i > 1) {
			struct uffdio_zeropage z = {
				.range = { lz->t.addr[e], (uint64_t)(j - i) * WC_PAGE_SIZE } };

			whole = ioctl(lz->uffd, UFFDIO_ZEROPAGE, &z) == 0;
			for (unsigned k = 0; whole && k < lz->nr_kids; k++) {
				struct uffdio_zeropage zc = { .range = z.range };

				(void)ioctl(lz->kids[k], UFFDIO_ZEROPAGE, &zc);
			}
		} else {
			whole = false;
		}
		for (uint32_t k = i; k < j; k++) {
			uint32_t f = rf_get_u32(m->lazy_zero.entries + 4 * k);

			if (lz->state[f] == LZ_DONE)
				continue;
			if (whole) {
				mark_done(lz, f);
				lz->st.pages_installed++;
				continue;
			}
			r = install_one(lz, f, zero_page);
			if (r < 0)
				return r;
		}
		i = j;
	}
	return 0;
}

/* Answer the queued faults; those that meet -EAGAIN stay queued. */
static int serve_faults(struct rf_lazy *lz)
{
	size_t keep = 0;
	int r;

	for (size_t i = 0; i < lz->nr_faults; i++) {
		uint64_t page = lz->faults[i] & ~(uint64_t)(WC_PAGE_SIZE - 1);
		bool write = lz->faults[i] & 1;
		int64_t e = lookup(lz, page);

		if (e >= 0 && lz->state[e] != LZ_DONE) {
			/* Still to come: ask for its content (once) with the
			 * neighbours of that page; the install wakes the thread. */
			uint32_t pe = PRIMARY(lz, e);

			if (lz->state[pe] == LZ_PENDING) {
				uint32_t first = pe > RF_LAZY_WINDOW_BACK ? pe - RF_LAZY_WINDOW_BACK : 0;
				uint32_t nr = MIN(RF_LAZY_WINDOW, lz->t.nr - first);
				uint8_t req[8];

				rf_put_u32(req, first);
				rf_put_u32(req + 4, nr);
				r = rf_lazy_send(lz, RF_MSG_PAGE_REQ, req, sizeof(req));
				if (r < 0)
					return r;
				for (uint32_t k = first; k < first + nr; k++)
					if (lz->state[k] == LZ_PENDING)
						lz->state[k] = LZ_ASKED;
				lz->st.nr_requests++;
			}
			lz->st.faults_lazy++;
			continue;
		}
		/* Zero, absent or dropped: a zero page (a written one at once). */
		if (write) {
			struct uffdio_copy c = { .dst = page, .src = (uint64_t)(uintptr_t)zero_page,
						 .len = WC_PAGE_SIZE };

			r = ioctl(lz->fault_fd[i], UFFDIO_COPY, &c);
		} else {
			struct uffdio_zeropage z = { .range = { page, WC_PAGE_SIZE } };

			r = ioctl(lz->fault_fd[i], UFFDIO_ZEROPAGE, &z);
		}
		if (r < 0 && errno == EAGAIN) {
			lz->fault_fd[keep] = lz->fault_fd[i];
			lz->faults[keep++] = lz->faults[i];
			continue;
		}
		if (r < 0) {
			/* Present already (or gone): just wake whoever waits. */
			struct uffdio_range w = { page, WC_PAGE_SIZE };

			(void)ioctl(lz->fault_fd[i], UFFDIO_WAKE, &w);
		}
		lz->st.faults_zero++;
	}
	lz->nr_faults = keep;
	return 0;
}

/* --------------------------------------------------------------- thread */

static int take_handover(struct rf_lazy *lz)
{
	char byte, cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n;
	int fds[2], r;

	n = recvmsg(lz->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	c = CMSG_FIRSTHDR(&mh);
	if (n <= 0 || !c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(fds))) {
		/* The child died or failed before the handover: the restore
		 * fails and the main thread aborts us. */
		close(lz->sock);
		lz->sock = -1;
		return 0;
	}
	memcpy(fds, CMSG_DATA(c), sizeof(fds));
	lz->uffd = fds[0];
	lz->pidfd = fds[1];
	fcntl(lz->uffd, F_SETFL, O_NONBLOCK);
	close(lz->sock);
	lz->sock = -1;
	lz->st.handover_ns = mono_ns() - lz->t0;
	r = watchdog_start(&lz->wd, lz->pidfd, &lz->uffd, 1);
	return r < 0 ? err_set(-r, "watchdog: %s", strerror(-r)) : 0;
}

/* One complete message from the sender, if there is one (never waits for
 * the rest of a record: faults are served meanwhile). 1: handled one. */
static int on_session(struct rf_lazy *lz)
{
	struct rf_msg m;
	int r = rf_session_recv_nb(lz->s, &m);

	if (r == -EAGAIN)
		return 0;
	if (r == -ENODATA)
		return err_set(ECONNRESET, "sender closed the connection with %u lazy pages to come",
			       lz->nr_left);
	if (r < 0)
		return r;
	switch (m.type) {
	case RF_MSG_LAZY_PAGES:
		r = on_pages(lz, &m);
		return r < 0 ? r : 1;
	case RF_MSG_LAZY_ZERO:
		r = on_zero(lz, &m);
		return r < 0 ? r : 1;
	case RF_MSG_LAZY_END:
		if (m.lazy_end.nr != lz->t.nr)
			return err_set(EPROTO, "LAZY_END says %u pages, %u were lazy", m.lazy_end.nr,
				       lz->t.nr);
		if (lz->nr_left)
			return err_set(EPROTO, "LAZY_END with %u lazy pages never sent", lz->nr_left);
		lz->end_seen = true;
		return 0;
	default:
		return err_set(EPROTO, "unexpected %s while pages arrive lazily", rf_msg_name(m.type));
	}
}

static int serve(struct rf_lazy *lz)
{
	int r;

	for (;;) {
		struct pollfd pf[4 + RF_LAZY_MAX_KIDS] = {
			{ .fd = lz->ctl[0], .events = POLLIN },
			{ .fd = lz->uffd < 0 ? lz->sock : -1, .events = POLLIN },
			{ .fd = lz->uffd, .events = POLLIN },
			{ .fd = rf_session_fd(lz->s), .events = POLLIN },
		};
		bool kid_ready = false;
		bool asked = false;
		int timeout = -1, n;

		/* Done once every page is in; without lazy areas no uffd comes. */
		if (lz->end_seen && !lz->nr_left && lz->restored &&
		    (lz->uffd >= 0 || !lz->t.nr_areas)) {
			uint8_t msg[4];

			/* A held twin continues now, with all of its memory. */
			if (lz->hold_pid > 0 && kill(lz->hold_pid, SIGCONT) < 0)
				return err_set(errno, "cannot continue the twin %d: %m",
					       (int)lz->hold_pid);
			rf_put_u32(msg, lz->t.nr);
			r = rf_lazy_send(lz, RF_MSG_LAZY_DONE, msg, sizeof(msg));
			lz->st.done_ns = mono_ns() - lz->t0;
			return r;
		}
		for (uint32_t i = 0; i < lz->t.nr && !asked && !lz->restored; i++)
			asked = lz->state[i] == LZ_ASKED;
		/* Silence is a dead link once the twin runs (the sender then
		 * streams without pause) or while a fault waits for a page. */
		if (lz->restored || asked)
			timeout = lz->timeout_ms;
		if (lz->nr_faults)
			timeout = 1;		/* retry faults that met -EAGAIN */
		if (lz->end_seen)
			pf[3].fd = -1;
		for (unsigned k = 0; k < lz->nr_kids; k++)
			pf[4 + k] = (struct pollfd){ .fd = lz->kids[k], .events = POLLIN };
		n = poll(pf, 4 + lz->nr_kids, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(errno, "poll: %m");
		if (n == 0 && !lz->nr_faults)
			return err_set(ETIMEDOUT, "sender silent for %d ms with %u lazy pages to come",
				       lz->timeout_ms, lz->nr_left);
		if (pf[0].revents) {
			char c = 0;

			if (read(lz->ctl[0], &c, 1) != 1 || c == 'A')
				return err_set(ECANCELED, "the restore failed");
			if (c == 'R')
				lz->restored = true;
		}
		if (pf[1].revents) {
			r = take_handover(lz);
			if (r < 0)
				return r;
		}
		for (unsigned k = 0; k < lz->nr_kids; k++)
			kid_ready |= pf[4 + k].revents != 0;
		if (pf[2].revents || kid_ready) {
			r = drain_uffd(lz);
			if (r < 0)
				return r;
		}
		if (pf[3].revents) {
			/* A few complete frames, then faults again. */
			for (int k = 0; k < 4 && !lz->end_seen; k++) {
				r = on_session(lz);
				if (r < 0)
					return r;
				if (r == 0)
					break;
			}
		}
		if (lz->uffd >= 0 && lz->nr_faults) {
			r = serve_faults(lz);
			if (r < 0)
				return r;
		}
	}
}

static void *lazy_thread(void *arg)
{
	struct rf_lazy *lz = arg;
	sigset_t all;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	r = serve(lz);
	if (r < 0) {
		snprintf(lz->detail, sizeof(lz->detail), "%s", err_str(r));
		/* The twin cannot go on without its pages: kill it before the
		 * uffd closes (closing would let its faults read zeros). */
		if (lz->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, lz->pidfd, SIGKILL, NULL, 0);
	}
	lz->result = r;
	/* Done: the watchdog lets go without a kill (after a failure the twin
	 * is dead already either way). */
	watchdog_stop(&lz->wd, r >= 0);
	/* Every page is in (or the twin is dead): closing unregisters. */
	if (lz->uffd >= 0) {
		close(lz->uffd);
		lz->uffd = -1;
	}
	for (unsigned k = 0; k < lz->nr_kids; k++)
		close(lz->kids[k]);
	lz->nr_kids = 0;
	return NULL;
}

int rf_lazy_start(struct rf_session *s, struct rf_lazy_table *take, int sock, int timeout_ms,
		  struct rf_lazy **ret)
{
	struct rf_lazy *lz = calloc(1, sizeof(*lz));
	int r;

	if (!lz)
		return -ENOMEM;
	lz->s = s;
	lz->t = *take;
	memset(take, 0, sizeof(*take));
	lz->sock = sock;
	lz->uffd = lz->pidfd = -1;
	lz->wd = WATCHDOG_INIT;
	lz->ctl[0] = lz->ctl[1] = -1;
	lz->timeout_ms = timeout_ms;
	lz->nr_left = lz->t.nr;
	lz->t0 = mono_ns();
	pthread_mutex_init(&lz->send_lock, NULL);
	/*
	 * Nothing here may cost more than a pass over the lazy pages: the twin
	 * waits for it. Calloc'd tables are the kernel's untouched zero pages
	 * until written (the keys of an unkeyed push, written as pages
	 * arrive); unkeyed pushes need no primary / duplicate chains.
	 */
	lz->state = calloc(lz->t.nr ? lz->t.nr : 1, 1);
	lz->faults = malloc(RF_LAZY_MAX_FAULTS * sizeof(*lz->faults));
	lz->fault_fd = malloc(RF_LAZY_MAX_FAULTS * sizeof(*lz->fault_fd));
	if (lz->t.unkeyed && !lz->t.keys)
		lz->t.keys = calloc(lz->t.nr ? lz->t.nr : 1, sizeof(*lz->t.keys));
	if (!lz->t.unkeyed) {
		lz->primary = malloc((lz->t.nr ? lz->t.nr : 1) * sizeof(*lz->primary));
		lz->next_dup = malloc((lz->t.nr ? lz->t.nr : 1) * sizeof(*lz->next_dup));
	}
	/* (A keyed push that lacked nothing has no keys: t.nr = 0.) */
	if (!lz->state || !lz->faults || !lz->fault_fd || (lz->t.unkeyed && !lz->t.keys) ||
	    (!lz->t.unkeyed && (!lz->primary || !lz->next_dup))) {
		r = -ENOMEM;
		goto fail;
	}
	if (lz->t.unkeyed) {
		/* No keys yet: every page is its own primary. */
		lz->nr_primaries = lz->t.nr;
	} else {
		r = rf_lazy_dedup(lz->t.keys, lz->t.nr, lz->primary);
		if (r < 0)
			goto fail;
		lz->nr_primaries = (uint32_t)r;
		/* Chains primary -> its duplicates, in page order (built backwards). */
		for (uint32_t i = 0; i < lz->t.nr; i++)
			lz->next_dup[i] = UINT32_MAX;
		for (uint32_t i = lz->t.nr; i-- > 0;) {
			uint32_t pr = lz->primary[i];

			if (pr != i) {
				lz->next_dup[i] = lz->next_dup[pr];
				lz->next_dup[pr] = i;
			}
		}
	}
	/* by_addr stays NULL (the identity) as long as this holds. */
	for (uint32_t i = 1; i < lz->t.nr; i++) {
		if (lz->t.addr[i] <= lz->t.addr[i - 1]) {
			r = err_set(EPROTO, "lazy pages out of address order");
			goto fail;
		}
	}
	if (pipe2(lz->ctl, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	r = -pthread_create(&lz->th, NULL, lazy_thread, lz);
	if (r < 0)
		goto fail;
	lz->started = true;
	*ret = lz;
	return 0;
fail:
	lz->sock = -1;		/* the caller still owns it */
	rf_lazy_free(lz);
	return r;
}

void rf_lazy_set_sink(struct rf_lazy *lz, struct wc_sink *pages)
{
	lz->pages = pages;
}

uint32_t rf_lazy_nr_primaries(const struct rf_lazy *lz)
{
	return lz->nr_primaries;
}

const struct wc_key *rf_lazy_keys(const struct rf_lazy *lz)
{
	return lz->t.keys;
}

void rf_lazy_set_hold(struct rf_lazy *lz, pid_t pid)
{
	lz->hold_pid = pid;
}

void rf_lazy_restored(struct rf_lazy *lz)
{
	(void)!write(lz->ctl[1], "R", 1);
}

int rf_lazy_finish(struct rf_lazy *lz, bool abort, struct rf_lazy_stats *ret_stats)
{
	if (!lz->started)
		return -EINVAL;
	if (abort)
		(void)!write(lz->ctl[1], "A", 1);
	pthread_join(lz->th, NULL);
	lz->started = false;
	if (ret_stats)
		*ret_stats = lz->st;
	if (lz->result < 0)
		return err_set(lz->result, "%s", lz->detail);
	return 0;
}

void rf_lazy_free(struct rf_lazy *lz)
{
	if (!lz)
		return;
	if (lz->started)
		(void)rf_lazy_finish(lz, true, NULL);
	if (lz->sock >= 0)
		close(lz->sock);
	if (lz->uffd >= 0)
		close(lz->uffd);
	if (lz->pidfd >= 0)
		close(lz->pidfd);
	if (lz->ctl[0] >= 0)
		close(lz->ctl[0]);
	if (lz->ctl[1] >= 0)
		close(lz->ctl[1]);
	pthread_mutex_destroy(&lz->send_lock);
	rf_lazy_table_fini(&lz->t);
	free(lz->state);
	free(lz->by_addr);
	free(lz->primary);
	free(lz->next_dup);
	free(lz->faults);
	free(lz->fault_fd);
	free(lz);
}
