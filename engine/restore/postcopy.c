// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Post-copy restore (eng_restore_opts.postcopy): the process runs before its
 * big anonymous areas hold their pages, and a thread of ours places them.
 *
 * What the eager fill spends most of its time on is allocating a page per
 * 4 KiB (UFFDIO_COPY: ~1.1 us each on this VM; CPython's 4,300 pages are
 * ~5 ms of the ~9 ms restore). Here the areas that hold most pages (the
 * "lazy" ones: private anonymous, not locked, not a thread's stack, not
 * special for fork) are registered with a userfaultfd in missing mode and
 * left empty by the child; this thread (in the process that called
 * eng_restore) then places every page with UFFDIO_COPY, straight from the
 * mapped packs, while the process already runs on the other core. A page
 * the process touches first faults to us and is placed at once, with its
 * neighbours (FAULT_WINDOW), ahead of the background order.
 *
 * Nothing is trusted later than on an eager restore: every lazy page is
 * hashed (wc_store_map_keys) before the process may run; eng_postcopy_ready()
 * waits for that, and a damaged store fails the restore with nothing run.
 *
 * Per lazy page (numbered across the lazy areas in address order) and per
 * address space a state: PENDING (data, not placed yet), DONE, ZERO (a
 * page with no data, or one the process dropped with MADV_DONTNEED or
 * moved over: it must read as zero, never as the saved data). Address
 * spaces: the process's, and one per child it forks while pages are still
 * missing (UFFD_EVENT_FORK gives each its own uffd; its missing pages are
 * the ones it did not inherit, so every data page is tried again there,
 * EEXIST telling which it has). Segments map current addresses to page
 * numbers: they start where the child premapped each area (it sends those
 * addresses with the uffd) and follow every mremap (UFFD_EVENT_REMAP), the
 * restorer's moves to the final addresses as well as the process's own.
 * Placing starts as soon as the uffd arrives, while the child still
 * prepares descriptors and the restorer moves the areas.
 *
 * When every address space has all its data pages (or is gone), the uffds
 * close: their registrations go, and the zero pages fault in as usual.
 * If this process died before that, the missing pages of the process would
 * read as zero: a watchdog child holds a copy of its uffd and a pidfd, and
 * SIGKILLs it unless told that every page is in (as rfork --lazy does). A
 * child the process forked meanwhile has no such guard. eng_postcopy_finish()
 * must be waited for (warmfork restore does, also with --detach).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "common/watchdog.h"
#include "restore.h"

#define PC_PAGE			4096u
/* Pages placed per call in the background: small enough that a fault
 * waits little (~70 us here), large enough that the calls stay few. */
#define BG_RUN_PAGES		64u
/* Pages placed on a fault: the page and the pending ones after it; a fault
 * where the last window ended (a process walking its memory) doubles the
 * window, up to FAULT_WINDOW_MAX, and the background goes on from there:
 * read-ahead. Measured (1 GiB, checked page by page right after the
 * restore): 16 pages each time was ~0.4 s slower than eager. */
#define FAULT_WINDOW		16u
#define FAULT_WINDOW_MAX	1024u
/* An area smaller than this is filled by the child as usual. */
#define LAZY_MIN_DATA_PAGES	64u

/* ZERO: reads as zero, missing; ZMAPPED: the zero page mapped there by a
 * fault's window (or present since). */
enum { PC_PENDING = 0, PC_DONE = 1, PC_ZERO = 2, PC_ZMAPPED = 3 };

struct pc_seg {
	uint64_t addr, len;	/* current place in its address space */
	uint32_t first;		/* lazy page number at addr */
};

struct pc_mm {
	int uffd;
	uint8_t *state;		/* [pc->nr] */
	struct pc_seg *segs;	/* sorted by addr, disjoint */
	size_t nr_segs, cap_segs;
	uint32_t left;		/* PENDING pages */
	uint64_t bg;		/* background cursor (address) */
	uint64_t win_start, win_end;	/* the last fault's window */
	uint32_t win;			/* its size in pages */
	bool dead;
};

struct eng_postcopy {
	pthread_t th;
	bool started;
	int sock;			/* the child's uffd and pidfd arrive here */
	int ctl[2];			/* main -> server: abort */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int verified;			/* 0: not yet, 1: ok, < 0: error */
	char vdetail[512];

	struct wc_store *store;
	struct wc_mapped *map;
	size_t nr_areas;
	uint64_t *area_start;		/* [nr_areas] final addresses, ascending */
	uint32_t *area_first;
	uint32_t nr;			/* lazy pages */
	const uint8_t **src;		/* [nr] data, or NULL (a zero or absent page) */
	struct wc_key *keys;		/* [nr_data], until verified */
	uint32_t *key_page;		/* [nr_data] lazy page of keys[i] */
	uint32_t nr_data;

	struct pc_mm *mms;
	size_t nr_mms, cap_mms;
	int pidfd;
	struct watchdog wd;
	uint8_t *zero;			/* a page of zeros */

	int result;
	char detail[512];
	uint64_t t_start;
	struct eng_postcopy_stats st;
};

static void pc_fail(struct eng_postcopy *pc, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void pc_fail(struct eng_postcopy *pc, int err, const char *fmt, ...)
{
	va_list ap;

	if (pc->result < 0)
		return;
	pc->result = err < 0 ? err : -err;
	va_start(ap, fmt);
	vsnprintf(pc->detail, sizeof(pc->detail), fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------- choosing */

static bool thread_sp_in(const EngProcess *p, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < p->n_threads; i++) {
		const struct user_regs_struct *regs = (const void *)p->threads[i]->regs.data;

		if (p->threads[i]->regs.len != sizeof(*regs))
			continue;
		if (regs->rsp >= start && regs->rsp < end)
			return true;
	}
	return false;
}

static bool lazy_candidate(const EngProcess *p, const EngVma *v, const struct wc_area *a)
{
	const uint32_t no = ENG_MADV_DONTFORK | ENG_MADV_WIPEONFORK | ENG_MADV_LOCKED |
			    ENG_MADV_LOCKONFAULT | ENG_MADV_SEALED | ENG_MADV_GROWSDOWN;

	if (v->kind != ENG_VMA_KIND__VMA_ANON_PRIVATE || v->has_fobj || !a ||
	    a->nr_data < LAZY_MIN_DATA_PAGES)
		return false;
	if (v->has_madv && (v->madv & no))
		return false;
	if (v->map_flags & MAP_GROWSDOWN)
		return false;
	/* A stack is touched the moment its thread runs: filled before. */
	return !thread_sp_in(p, v->start, v->end);
}

/* --------------------------------------------------------- addresses */

static int seg_cmp(const void *a, const void *b)
{
	const struct pc_seg *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* The segment holding @addr, or NULL. */
static struct pc_seg *seg_of(struct pc_mm *mm, uint64_t addr)
{
	size_t lo = 0, hi = mm->nr_segs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mm->segs[mid].addr + mm->segs[mid].len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < mm->nr_segs && mm->segs[lo].addr <= addr)
		return &mm->segs[lo];
	return NULL;
}

static int seg_push(struct pc_mm *mm, struct pc_seg s)
{
	if (mm->nr_segs == mm->cap_segs) {
		size_t cap = mm->cap_segs ? 2 * mm->cap_segs : 16;
		void *n = realloc(mm->segs, cap * sizeof(*mm->segs));

		if (!n)
			return -ENOMEM;
		mm->segs = n;
		mm->cap_segs = cap;
	}
	mm->segs[mm->nr_segs++] = s;
	return 0;
}

/* Split segments so that none straddles @addr. */
static int seg_split_at(struct pc_mm *mm, uint64_t addr)
{
	struct pc_seg *s = seg_of(mm, addr), tail;

	if (!s || s->addr == addr)
		return 0;
	tail = (struct pc_seg){ addr, s->addr + s->len - addr,
				s->first + (uint32_t)((addr - s->addr) / PC_PAGE) };
	s->len = addr - s->addr;
	if (seg_push(mm, tail) < 0)
		return -ENOMEM;
	qsort(mm->segs, mm->nr_segs, sizeof(*mm->segs), seg_cmp);
	return 0;
}

/* Pages in [start, end) now read as zero (dropped, or moved over) and are
 * not placed any more; with @drop their segments go too. */
static int zero_range(struct pc_mm *mm, uint64_t start, uint64_t end, bool drop)
{
	size_t k = 0;

	if (seg_split_at(mm, start) < 0 || seg_split_at(mm, end) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < mm->nr_segs; i++) {
		struct pc_seg *s = &mm->segs[i];

		if (s->addr >= start && s->addr + s->len <= end) {
			for (uint32_t g = s->first; g < s->first + s->len / PC_PAGE; g++) {
				if (mm->state[g] == PC_PENDING)
					mm->left--;
				mm->state[g] = PC_ZERO;
			}
			if (drop)
				continue;
		}
		mm->segs[k++] = *s;
	}
	mm->nr_segs = k;
	return 0;
}

/* The process moved [from, from + len) to @to (mremap). */
static int remap(struct pc_mm *mm, uint64_t from, uint64_t to, uint64_t len)
{
	/* What was at the destination is gone. */
	if (zero_range(mm, to, to + len, true) < 0 || seg_split_at(mm, from) < 0 ||
	    seg_split_at(mm, from + len) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < mm->nr_segs; i++)
		if (mm->segs[i].addr >= from && mm->segs[i].addr + mm->segs[i].len <= from + len)
			mm->segs[i].addr = mm->segs[i].addr - from + to;
	qsort(mm->segs, mm->nr_segs, sizeof(*mm->segs), seg_cmp);
	return 0;
}

/* ---------------------------------------------------------- placing */

static int uffd_copy(int uffd, uint64_t dst, const void *src, uint64_t len, uint64_t *copied)
{
	struct uffdio_copy uc = { .dst = dst, .src = (uintptr_t)src, .len = len };

	*copied = 0;
	if (ioctl(uffd, UFFDIO_COPY, &uc) == 0) {
		*copied = len;
		return 0;
	}
	if (uc.copy > 0) {
		*copied = (uint64_t)uc.copy;
		return 0;
	}
	return uc.copy < 0 ? (int)uc.copy : -errno;
}

static void uffd_wake(int uffd, uint64_t addr)
{
	struct uffdio_range r = { addr, PC_PAGE };

	(void)ioctl(uffd, UFFDIO_WAKE, &r);
}

/*
 * Place up to @max pending pages from lazy page @g (at @addr, in its
 * segment), as one run of consecutive pack pages. Returns the pages
 * handled (> 0), 0 if @g is not pending, -EAGAIN (an event must be read
 * first), or -ESRCH (the address space is gone; mm->dead is set).
 */
static int place_run(struct eng_postcopy *pc, struct pc_mm *mm, const struct pc_seg *s,
		     uint32_t g, uint32_t max)
{
	uint64_t addr = s->addr + (uint64_t)(g - s->first) * PC_PAGE, copied;
	uint32_t end = s->first + (uint32_t)(s->len / PC_PAGE), n = 1;
	int r;

	if (mm->state[g] != PC_PENDING)
		return 0;
	while (n < max && g + n < end && mm->state[g + n] == PC_PENDING &&
	       pc->src[g + n] == pc->src[g] + (size_t)n * PC_PAGE)
		n++;
	r = uffd_copy(mm->uffd, addr, pc->src[g], (uint64_t)n * PC_PAGE, &copied);
	if (copied) {
		uint32_t done = (uint32_t)(copied / PC_PAGE);

		for (uint32_t k = 0; k < done; k++)
			mm->state[g + k] = PC_DONE;
		mm->left -= done;
		pc->st.pages += done;
		return (int)done;
	}
	switch (r) {
	case -EEXIST:	/* there already (a child inherited it) */
	case -ENOENT:	/* no longer a registered mapping (unmapped, shrunk) */
		mm->state[g] = PC_DONE;
		mm->left--;
		return 1;
	case -EAGAIN:
		return -EAGAIN;
	case -ESRCH:
		mm->dead = true;
		return -ESRCH;
	default:
		/* Never leave a process reading zeros where it had data. */
		pc_fail(pc, r, "cannot place the page at 0x%" PRIx64 " (UFFDIO_COPY): %s", addr,
			strerror(-r));
		mm->dead = true;
		if (mm == &pc->mms[0] && pc->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, pc->pidfd, SIGKILL, NULL, 0);
		return -ESRCH;
	}
}

static int uffd_zero(int uffd, uint64_t addr, uint64_t len)
{
	struct uffdio_zeropage z = { .range = { addr, len } };

	if (ioctl(uffd, UFFDIO_ZEROPAGE, &z) == 0)
		return (int)(len / PC_PAGE);
	if (z.zeropage > 0)
		return (int)(z.zeropage / PC_PAGE);
	return z.zeropage < 0 ? (int)z.zeropage : -errno;
}

/* Map the zero page over the run of ZERO pages from lazy page @g (at most
 * @max). Returns the pages handled (> 0), or -EAGAIN / -ESRCH. */
static int zero_run(struct pc_mm *mm, const struct pc_seg *s, uint32_t g, uint32_t max)
{
	uint64_t addr = s->addr + (uint64_t)(g - s->first) * PC_PAGE;
	uint32_t n = 1;
	int r;

	while (n < max && mm->state[g + n] == PC_ZERO)
		n++;
	r = uffd_zero(mm->uffd, addr, (uint64_t)n * PC_PAGE);
	if (r == -EEXIST || r == -ENOENT)
		r = 1;		/* present already, or unmapped: nothing to do */
	if (r == -ESRCH)
		mm->dead = true;
	if (r < 0)
		return r;
	for (int k = 0; k < r; k++)
		mm->state[g + (uint32_t)k] = PC_ZMAPPED;
	return r;
}

/* Place the pages among @want from lazy page @g on (same segment): the
 * pending ones, and the zero page where there is no data. Returns the
 * pages handled, or -EAGAIN / -ESRCH as place_run(). */
static int place_window(struct eng_postcopy *pc, struct pc_mm *mm, const struct pc_seg *s,
			uint32_t g, uint32_t want)
{
	uint32_t end = MIN(s->first + (uint32_t)(s->len / PC_PAGE), g + want), placed = 0;

	while (g < end) {
		int r = mm->state[g] == PC_PENDING ? place_run(pc, mm, s, g, end - g) :
			mm->state[g] == PC_ZERO ? zero_run(mm, s, g, end - g) : 0;

		if (r < 0)
			return placed ? (int)placed : r;
		placed += (uint32_t)r;
		g += r ? (uint32_t)r : 1;
	}
	return (int)placed;
}

static int handle_fault(struct eng_postcopy *pc, struct pc_mm *mm, uint64_t addr, bool write)
{
	uint64_t page = addr & ~(uint64_t)(PC_PAGE - 1), copied;
	struct pc_seg *s = seg_of(mm, page);
	uint32_t g;
	int r = 0;

	pc->st.faults++;
	if (!s) {
		/* Not a page we follow: it reads as zero. */
		pc->st.unknown_faults++;
		r = write ? uffd_copy(mm->uffd, page, pc->zero, PC_PAGE, &copied)
			  : uffd_zero(mm->uffd, page, PC_PAGE);
	} else {
		g = s->first + (uint32_t)((page - s->addr) / PC_PAGE);
		if (mm->state[g] != PC_PENDING)
			pc->st.zero_faults += mm->state[g] != PC_DONE;
		if (write && mm->state[g] == PC_ZERO) {
			/* Written at once: a page of its own, not the zero page. */
			r = uffd_copy(mm->uffd, page, pc->zero, PC_PAGE, &copied);
			if (copied)
				mm->state[g] = PC_ZMAPPED;
		}
		if (mm->state[g] == PC_PENDING || mm->state[g] == PC_ZERO) {
			bool seq = page >= mm->win_start && page <= mm->win_end;

			mm->win = seq ? MIN(2 * mm->win, FAULT_WINDOW_MAX) : FAULT_WINDOW;
			r = place_window(pc, mm, s, g, mm->win);
			if (r > 0)
				pc->st.fault_pages += (uint64_t)r;
			mm->win_start = page;
			mm->win_end = MIN(page + (uint64_t)mm->win * PC_PAGE, s->addr + s->len);
			mm->bg = mm->win_end;
		}
	}
	if (r == -EAGAIN || r == -ESRCH)
		return r;
	/* Placed by us just now (woken then), before, or by a race: wake it
	 * in any case; a wake with no waiter costs nothing. */
	uffd_wake(mm->uffd, page);
	return 0;
}

static int add_kid(struct eng_postcopy *pc, size_t parent, int ufd)
{
	struct pc_mm *kid, *mm;

	if (pc->nr_mms == pc->cap_mms) {
		size_t cap = 2 * pc->cap_mms;
		void *n = realloc(pc->mms, cap * sizeof(*pc->mms));

		if (!n)
			return -ENOMEM;
		pc->mms = n;
		pc->cap_mms = cap;
	}
	mm = &pc->mms[parent];
	kid = &pc->mms[pc->nr_mms];
	*kid = (struct pc_mm){ .uffd = ufd };
	kid->state = malloc(pc->nr ? pc->nr : 1);
	kid->segs = malloc((mm->nr_segs ? mm->nr_segs : 1) * sizeof(*kid->segs));
	if (!kid->state || !kid->segs) {
		free(kid->state);
		free(kid->segs);
		return -ENOMEM;
	}
	memcpy(kid->segs, mm->segs, mm->nr_segs * sizeof(*kid->segs));
	kid->nr_segs = kid->cap_segs = mm->nr_segs;
	/* Whatever the parent had placed may or may not have been copied by
	 * the fork: every data page is tried again (EEXIST: inherited). */
	for (uint32_t g = 0; g < pc->nr; g++) {
		bool data = pc->src[g] && (mm->state[g] == PC_PENDING || mm->state[g] == PC_DONE);

		kid->state[g] = data ? PC_PENDING : PC_ZERO;
		kid->left += data;
	}
	pc->nr_mms++;
	pc->st.forks++;
	return 0;
}

/* Read and handle what waits on address space @i's uffd. */
static int drain(struct eng_postcopy *pc, size_t i)
{
	struct uffd_msg msg[16];
	ssize_t n;
	int r;

	for (;;) {
		n = read(pc->mms[i].uffd, msg, sizeof(msg));
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0)
			return 0;
		for (size_t k = 0; k < (size_t)n / sizeof(msg[0]); k++) {
			struct pc_mm *mm = &pc->mms[i];	/* add_kid may move it */
			const struct uffd_msg *m = &msg[k];

			r = 0;
			switch (m->event) {
			case UFFD_EVENT_PAGEFAULT:
				do {
					r = handle_fault(pc, mm, m->arg.pagefault.address,
							 m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE);
					/* The address space is changing: its event may
					 * still be on its way, and its task must run. */
					if (r != -EAGAIN || drain(pc, i) < 0)
						break;
					sched_yield();
					mm = &pc->mms[i];
				} while (true);
				if (r == -ESRCH)
					return 0;
				break;
			case UFFD_EVENT_REMAP:
				r = remap(mm, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
				break;
			case UFFD_EVENT_REMOVE:
				r = zero_range(mm, m->arg.remove.start, m->arg.remove.end, false);
				break;
			case UFFD_EVENT_FORK:
				r = add_kid(pc, i, (int)m->arg.fork.ufd);
				if (r < 0)
					close((int)m->arg.fork.ufd);
				break;
			default:
				break;
			}
			if (r == -ENOMEM) {
				pc_fail(pc, ENOMEM, "out of memory following the process's mappings");
				return r;
			}
		}
	}
}

/* One background run in the next address space with pending pages.
 * Returns 1 if something was done, 0 if nothing is left anywhere. */
static int bg_step(struct eng_postcopy *pc, size_t *turn)
{
	for (size_t t = 0; t < pc->nr_mms; t++) {
		size_t i = (*turn + t) % pc->nr_mms;
		struct pc_mm *mm = &pc->mms[i];
		bool wrapped = false;

		if (mm->dead || !mm->left)
			continue;
		*turn = i + 1;
		for (;;) {
			struct pc_seg *s = NULL;
			size_t j;

			for (j = 0; j < mm->nr_segs; j++)
				if (mm->segs[j].addr + mm->segs[j].len > mm->bg)
					break;
			if (j == mm->nr_segs) {
				if (wrapped) {
					mm->left = 0;	/* the rest lies nowhere: moved over */
					break;
				}
				wrapped = true;
				mm->bg = 0;
				continue;
			}
			s = &mm->segs[j];
			for (uint64_t a = MAX(mm->bg, s->addr); a < s->addr + s->len; a += PC_PAGE) {
				uint32_t g = s->first + (uint32_t)((a - s->addr) / PC_PAGE);
				int r;

				if (mm->state[g] != PC_PENDING)
					continue;
				r = place_run(pc, mm, s, g, BG_RUN_PAGES);
				if (r == -EAGAIN) {
					mm->bg = a;
					if (drain(pc, i) < 0)
						mm->dead = true;
					sched_yield();
					return 1;
				}
				if (r < 0)
					return 1;
				mm->bg = a + (uint64_t)r * PC_PAGE;
				return 1;
			}
			mm->bg = s->addr + s->len;
		}
	}
	return 0;
}

/* ----------------------------------------------------------- thread */

static int verify(struct eng_postcopy *pc)
{
	_cleanup_free_ const uint8_t **pages = malloc((pc->nr_data ? pc->nr_data : 1) * sizeof(*pages));
	int r;

	if (!pages)
		return -ENOMEM;
	r = wc_store_map_keys(pc->store, pc->keys, pc->nr_data, pages, &pc->map);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < pc->nr_data; i++)
		pc->src[pc->key_page[i]] = pages[i];
	return 0;
}

/* The child's uffd and pidfd, and where it premapped each lazy area (the
 * restorer moves them to their final addresses: REMAP events). */
static int recv_fds(struct eng_postcopy *pc)
{
	struct pollfd pf[2] = { { pc->sock, POLLIN, 0 }, { pc->ctl[0], POLLIN, 0 } };
	_cleanup_free_ uint64_t *at = malloc(pc->nr_areas * sizeof(*at));
	int fds[2];
	char cbuf[CMSG_SPACE(sizeof(fds))];
	struct iovec iov = { at, pc->nr_areas * sizeof(*at) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct pc_mm *mm = &pc->mms[0];
	struct cmsghdr *c;
	ssize_t n;

	if (!at)
		return -ENOMEM;
	while (poll(pf, 2, -1) < 0)
		if (errno != EINTR)
			return -errno;
	if (pf[1].revents)
		return -ECANCELED;
	n = recvmsg(pc->sock, &mh, MSG_CMSG_CLOEXEC);
	c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(fds)))
		return -ECANCELED;	/* the child died: the main thread reports it */
	memcpy(fds, CMSG_DATA(c), sizeof(fds));
	mm->uffd = fds[0];
	pc->pidfd = fds[1];
	if ((size_t)n != pc->nr_areas * sizeof(*at) || (mh.msg_flags & MSG_TRUNC))
		return -EPROTO;
	for (size_t i = 0; i < pc->nr_areas; i++)
		mm->segs[i].addr = at[i];	/* pushed in area order */
	qsort(mm->segs, mm->nr_segs, sizeof(*mm->segs), seg_cmp);
	return 0;
}

/* The CPU the process of @pidfd last ran on, or -1. */
static int cpu_of(int pidfd)
{
	_cleanup_free_ char *info = NULL, *stat = NULL;
	char path[64], *p;
	int pid = -1, cpu = -1;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	if (read_file(path, &info, NULL) < 0 || !(p = strstr(info, "\nPid:")) ||
	    sscanf(p + 5, "%d", &pid) != 1 || pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, &stat, NULL) < 0)
		return -1;
	p = strrchr(stat, ')');	/* the name may hold anything */
	/* Fields after the name: state is field 3, processor field 39. */
	for (int f = 2; p && f < 39; f++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%d", &cpu) != 1)
		return -1;
	return cpu;
}

/*
 * Placing competes with the process it serves when both share a CPU (the
 * scheduler often wakes the process next to us): run on the others, if
 * there are.
 */
static void away_from(int pidfd)
{
	cpu_set_t set;
	int cpu = cpu_of(pidfd);

	if (cpu < 0 || sched_getaffinity(0, sizeof(set), &set) < 0 || !CPU_ISSET(cpu, &set) ||
	    CPU_COUNT(&set) < 2)
		return;
	CPU_CLR(cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

static void *server(void *arg)
{
	struct eng_postcopy *pc = arg;
	size_t turn = 0;
	sigset_t all;
	int r;

	/* The caller's signals (warmfork restore forwards some) are for its
	 * own threads: none interrupts a placing. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	/* Ready (eng_postcopy_ready) once every page is verified and the
	 * child's uffd is here: it sent it before its restorer ran, so the
	 * caller, which waits for the restorer's report first, never waits
	 * long; a failure of either fails the restore before anything ran. */
	r = verify(pc);
	if (r < 0) {
		/* The child must not wait for us (a restorer's mremap waits until
		 * its REMAP event is read): closing drops a uffd in flight, and
		 * its sendmsg fails if it comes later. */
		close(pc->sock);
		pc->sock = -1;
	} else {
		r = recv_fds(pc);
		if (r < 0 && r != -ECANCELED)
			err_set(-r, "post-copy: the lazy areas were not handed over: %s",
				strerror(-r));
		else if (r < 0)
			err_set(ECANCELED, "post-copy: the lazy areas were not handed over");
		/* Before the process may run: from then on, our death must
		 * take it along. */
		if (r >= 0) {
			r = watchdog_start(&pc->wd, pc->pidfd, &pc->mms[0].uffd, 1);
			if (r < 0)
				err_set(-r, "post-copy: cannot start the watchdog: %s", strerror(-r));
		}
	}
	pthread_mutex_lock(&pc->lock);
	pc->verified = r < 0 ? r : 1;
	if (r < 0)
		snprintf(pc->vdetail, sizeof(pc->vdetail), "%s", err_detail());
	pthread_cond_broadcast(&pc->cond);
	pthread_mutex_unlock(&pc->lock);
	if (r < 0)
		goto out;
	pc->t_start = now_ns();
	away_from(pc->pidfd);

	/* Faults and events first, then one background run; the restorer's
	 * moves come as REMAP events like the process's own. */
	for (;;) {
		size_t nfd = pc->nr_mms + 1, live = 0;
		_cleanup_free_ struct pollfd *pf = calloc(nfd, sizeof(*pf));

		if (!pf) {
			pc_fail(pc, ENOMEM, "out of memory");
			break;
		}
		for (size_t i = 0; i < pc->nr_mms; i++) {
			pf[i] = (struct pollfd){ pc->mms[i].dead ? -1 : pc->mms[i].uffd, POLLIN, 0 };
			live += !pc->mms[i].dead && pc->mms[i].left;
		}
		pf[pc->nr_mms] = (struct pollfd){ pc->ctl[0], POLLIN, 0 };
		if (!live)
			break;	/* every page in place */
		if (poll(pf, nfd, 0) < 0 && errno != EINTR)
			break;
		if (pf[pc->nr_mms].revents)
			break;	/* abort */
		for (size_t i = 0, n = pc->nr_mms; i < n; i++)
			if (pf[i].revents & POLLIN && drain(pc, i) < 0)
				pc->mms[i].dead = true;
		if (pc->result < 0)
			break;
		bg_step(pc, &turn);
	}
	pc->st.fill_ns = now_ns() - pc->t_start;
	/* Every page in, or a failure (which killed the process): either way
	 * the watchdog goes without a kill. Otherwise (abort: the restore
	 * failed and the caller kills the process) the same. */
	watchdog_stop(&pc->wd, true);
out:
	/* Closing drops the registrations: zero pages now fault in as usual. */
	for (size_t i = 0; i < pc->nr_mms; i++) {
		if (pc->mms[i].uffd >= 0)
			close(pc->mms[i].uffd);
		pc->mms[i].uffd = -1;
	}
	return NULL;
}

/* ------------------------------------------------------------ entry */

static void pc_free(struct eng_postcopy *pc)
{
	if (!pc)
		return;
	for (size_t i = 0; i < pc->nr_mms; i++) {
		if (pc->mms[i].uffd >= 0)
			close(pc->mms[i].uffd);
		free(pc->mms[i].state);
		free(pc->mms[i].segs);
	}
	free(pc->mms);
	if (pc->pidfd >= 0)
		close(pc->pidfd);
	if (pc->sock >= 0)
		close(pc->sock);
	if (pc->ctl[0] >= 0)
		close(pc->ctl[0]);
	if (pc->ctl[1] >= 0)
		close(pc->ctl[1]);
	wc_mapped_free(pc->map);
	free(pc->area_start);
	free(pc->zero);
	free(pc->area_first);
	free(pc->src);
	free(pc->keys);
	free(pc->key_page);
	pthread_mutex_destroy(&pc->lock);
	pthread_cond_destroy(&pc->cond);
	free(pc);
}

int eng_postcopy_start(struct wc_store *store, struct wc_snapshot *snap, const EngProcess *p,
		       struct eng_postcopy **ret, int *ret_child_sock)
{
	struct eng_postcopy *pc;
	struct pc_mm *mm;
	int sv[2], r;
	size_t na = 0;
	uint32_t g = 0, d = 0;

	*ret = NULL;
	*ret_child_sock = -1;
	for (size_t i = 0; i < p->n_vmas; i++) {
		const EngVma *v = p->vmas[i];
		const struct wc_area *a = v->has_area ? wc_snapshot_area(snap, v->area) : NULL;

		na += lazy_candidate(p, v, a);
	}
	if (!na)
		return 0;
	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return -ENOMEM;
	pc->sock = pc->ctl[0] = pc->ctl[1] = pc->pidfd = -1;
	pc->wd = WATCHDOG_INIT;
	pthread_mutex_init(&pc->lock, NULL);
	pthread_cond_init(&pc->cond, NULL);
	pc->store = store;
	pc->area_start = calloc(na, sizeof(*pc->area_start));
	pc->area_first = calloc(na, sizeof(*pc->area_first));
	pc->cap_mms = 4;
	pc->mms = calloc(pc->cap_mms, sizeof(*pc->mms));
	pc->zero = aligned_alloc(PC_PAGE, PC_PAGE);
	if (!pc->area_start || !pc->area_first || !pc->mms || !pc->zero) {
		r = -ENOMEM;
		goto fail;
	}
	memset(pc->zero, 0, PC_PAGE);
	for (size_t i = 0; i < p->n_vmas; i++) {
		const EngVma *v = p->vmas[i];
		const struct wc_area *a = v->has_area ? wc_snapshot_area(snap, v->area) : NULL;

		if (!lazy_candidate(p, v, a))
			continue;
		if (a->start != v->start || a->nr_pages * PC_PAGE != v->end - v->start ||
		    (uint64_t)g + a->nr_pages > UINT32_MAX / 2) {
			r = err_set(EBADMSG, "area of 0x%" PRIx64 " does not match its mapping",
				    v->start);
			goto fail;
		}
		pc->area_start[pc->nr_areas] = v->start;
		pc->area_first[pc->nr_areas] = g;
		pc->nr_areas++;
		g += (uint32_t)a->nr_pages;
		d += (uint32_t)a->nr_data;
	}
	pc->nr = g;
	pc->nr_data = d;
	pc->src = calloc(g ? g : 1, sizeof(*pc->src));
	pc->keys = malloc((d ? d : 1) * sizeof(*pc->keys));
	pc->key_page = malloc((d ? d : 1) * sizeof(*pc->key_page));
	mm = &pc->mms[0];
	*mm = (struct pc_mm){ .uffd = -1 };
	mm->state = malloc(g ? g : 1);
	if (!pc->src || !pc->keys || !pc->key_page || !mm->state) {
		r = -ENOMEM;
		goto fail;
	}
	pc->nr_mms = 1;
	d = 0;
	for (size_t i = 0, k = 0; i < p->n_vmas; i++) {
		const EngVma *v = p->vmas[i];
		const struct wc_area *a = v->has_area ? wc_snapshot_area(snap, v->area) : NULL;
		uint32_t first;
		uint64_t kd = 0;

		if (!lazy_candidate(p, v, a))
			continue;
		first = pc->area_first[k++];
		for (uint64_t j = 0; j < a->nr_pages; j++) {
			bool data = a->kinds[j] == WC_PAGE_DATA;

			mm->state[first + j] = data ? PC_PENDING : PC_ZERO;
			if (!data)
				continue;
			pc->keys[d] = a->keys[kd++];
			pc->key_page[d++] = first + (uint32_t)j;
		}
		r = seg_push(mm, (struct pc_seg){ v->start, v->end - v->start, first });
		if (r < 0)
			goto fail;
	}
	mm->left = d;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(pc->ctl, O_CLOEXEC) < 0) {
		r = err_set(errno, "post-copy: %m");
		goto fail;
	}
	pc->sock = sv[0];
	*ret_child_sock = sv[1];
	*ret = pc;
	return 0;
fail:
	pc_free(pc);
	return r;
}

int eng_postcopy_run(struct eng_postcopy *pc)
{
	int r = pthread_create(&pc->th, NULL, server, pc);

	if (r)
		return err_set(r, "post-copy: cannot start its thread: %s", strerror(r));
	pc->started = true;
	return 0;
}

size_t eng_postcopy_areas(const struct eng_postcopy *pc, const uint64_t **ret)
{
	*ret = pc->area_start;
	return pc->nr_areas;
}

/* The pages verified and the child's uffd received: 0, or -errno with
 * detail. */
int eng_postcopy_ready(struct eng_postcopy *pc)
{
	int v;

	pthread_mutex_lock(&pc->lock);
	while (!pc->verified)
		pthread_cond_wait(&pc->cond, &pc->lock);
	v = pc->verified;
	pthread_mutex_unlock(&pc->lock);
	return v < 0 ? err_set(-v, "%s", pc->vdetail) : 0;
}

void eng_postcopy_abort(struct eng_postcopy *pc)
{
	if (!pc)
		return;
	if (pc->started) {
		(void)!write(pc->ctl[1], "A", 1);	/* a recv or poll in progress ends */
		pthread_join(pc->th, NULL);
	}
	pc_free(pc);
}

int eng_postcopy_finish(struct eng_postcopy *pc, struct eng_postcopy_stats *st)
{
	int r;

	if (!pc)
		return 0;
	if (pc->started)
		pthread_join(pc->th, NULL);
	pc->started = false;
	if (st)
		*st = pc->st;
	r = pc->result;
	if (r < 0)
		err_set(-r, "post-copy: %s", pc->detail);
	pc_free(pc);
	return r;
}
