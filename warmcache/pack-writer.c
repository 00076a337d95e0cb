// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Appending pages to a pack: the writer owns one pack at a time (flock
 * LOCK_EX on the .pack), gathers pages into a ring of large buffers and
 * writes each full buffer with one io_uring write (several in flight), or
 * pwrite() on the baseline path. When a buffer's write has completed, the
 * idx records of its pages are appended: a record never names a page that
 * is not on disk (in the page cache) yet.
 *
 * On failure (ENOSPC...) the writer stops; closing it cuts the pack back to
 * the end of its last recorded page and the idx to its last complete
 * record, so the pack stays self-consistent.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "wc-internal.h"

#define WBUF_PAGES	128u		/* 512 KiB per write */
#define WBUF_COUNT	16u

struct wbuf {
	uint8_t *data;
	struct wc_key keys[WBUF_PAGES];
	uint64_t first_page;
	uint32_t nr;
	bool busy;
};

struct wc_writer {
	struct wc_store *s;
	uint32_t id;
	size_t slot;		/* cached: check with writer_slot() */
	dev_t dev;
	ino_t ino;
	int pack_fd, idx_fd;
	uint64_t next_page;	/* where the next appended page goes */
	uint64_t idx_size;	/* bytes of valid idx */
	uint64_t good_end;	/* end (in pages) of the recorded part of the pack */
	bool uring;
	struct io_uring ring;
	struct wbuf bufs[WBUF_COUNT];
	int cur;		/* buffer being filled, or -1 */
	unsigned inflight;
	unsigned depth;
	int err;
	uint64_t pages;
	struct wc_idx_rec recs[WBUF_PAGES];
};

uint64_t wc_writer_pages(const struct wc_writer *w)
{
	return w->pages;
}

static int writer_fail(struct wc_writer *w, int err)
{
	if (!w->err)
		w->err = err < 0 ? err : -err;
	return w->err;
}

/* The store's slot of our pack. A full index reload (another writer of
 * this handle failed) renumbers slots: find ours again, or re-add it. */
static int writer_slot(struct wc_writer *w, size_t *ret)
{
	struct wc_store *s = w->s;

	if (w->slot < s->nr_packs && s->packs[w->slot].id == w->id) {
		*ret = w->slot;
		return 0;
	}
	if (wc_store_pack_slot(s, w->id, w->dev, w->ino, &w->slot) < 0)
		return -ENOMEM;
	*ret = w->slot;
	return 0;
}

/* A buffer's pages are in the pack: append their idx records. */
static int wbuf_done(struct wc_writer *w, struct wbuf *b)
{
	size_t slot;
	int r;

	for (uint32_t i = 0; i < b->nr; i++)
		wc_idx_rec_init(&w->recs[i], w->id, &b->keys[i], (uint32_t)(b->first_page + i));
	r = pwrite_full(w->idx_fd, w->recs, b->nr * sizeof(struct wc_idx_rec), (off_t)w->idx_size);
	if (r < 0)
		return writer_fail(w, r);
	w->idx_size += b->nr * sizeof(struct wc_idx_rec);
	if (writer_slot(w, &slot) == 0) {
		/* Refreshes need not re-read what we wrote. */
		w->s->packs[slot].idx_off = MAX(w->s->packs[slot].idx_off, w->idx_size);
		w->s->packs[slot].have_idx = true;
	}
	w->good_end = MAX(w->good_end, b->first_page + b->nr);
	return 0;
}

static int reap_one(struct wc_writer *w, bool wait)
{
	struct io_uring_cqe *cqe;
	struct wbuf *b;
	size_t len;
	int r, res;

	r = wait ? io_uring_wait_cqe(&w->ring, &cqe) : io_uring_peek_cqe(&w->ring, &cqe);
	if (r == -EAGAIN && !wait)
		return 0;
	if (r < 0) {
		if (r == -EINTR)
			return 0;
		return writer_fail(w, r);
	}
	b = &w->bufs[io_uring_cqe_get_data64(cqe)];
	res = cqe->res;
	io_uring_cqe_seen(&w->ring, cqe);
	w->inflight--;
	b->busy = false;
	len = (size_t)b->nr * WC_PAGE_SIZE;
	if (res == -ECANCELED || res == -EINTR || res == -EAGAIN) {
		/* Not a file system error (e.g. the submitting thread exited
		 * and its requests were cancelled): write it ourselves. */
		res = 0;
	}
	if (res < 0)
		return writer_fail(w, res);
	if ((size_t)res < len) {
		/* Short write (rare): finish it synchronously. */
		r = pwrite_full(w->pack_fd, b->data + res, len - (size_t)res,
				(off_t)(b->first_page * WC_PAGE_SIZE + (uint64_t)res));
		if (r < 0)
			return writer_fail(w, r);
	}
	if (w->err)
		return w->err;
	return wbuf_done(w, b) < 0 ? w->err : 1;
}

static int submit_buf(struct wc_writer *w, int bi)
{
	struct wbuf *b = &w->bufs[bi];
	size_t len = (size_t)b->nr * WC_PAGE_SIZE;
	off_t off = (off_t)(b->first_page * WC_PAGE_SIZE);
	int r;

	w->cur = -1;
	if (!w->uring) {
		r = pwrite_full(w->pack_fd, b->data, len, off);
		if (r < 0)
			return writer_fail(w, r);
		return wbuf_done(w, b);
	}
	while (w->inflight >= w->depth) {
		r = reap_one(w, true);
		if (r < 0)
			return r;
	}
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	if (!sqe) {
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
		if (!sqe)
			return writer_fail(w, -EBUSY);
	}
	io_uring_prep_write(sqe, w->pack_fd, b->data, (unsigned)len, (uint64_t)off);
	io_uring_sqe_set_data64(sqe, (uint64_t)bi);
	b->busy = true;
	w->inflight++;
	r = io_uring_submit(&w->ring);
	if (r < 0) {
		b->busy = false;
		w->inflight--;
		return writer_fail(w, r);
	}
	/* Collect what has already completed, without waiting. */
	while (w->inflight) {
		r = reap_one(w, false);
		if (r <= 0)
			return r;
	}
	return 0;
}

static int get_buf(struct wc_writer *w)
{
	for (;;) {
		for (unsigned i = 0; i < WBUF_COUNT; i++) {
			if (!w->bufs[i].busy) {
				w->bufs[i].busy = true;	/* filling */
				w->bufs[i].nr = 0;
				w->bufs[i].first_page = w->next_page;
				return (int)i;
			}
		}
		int r = reap_one(w, true);

		if (r < 0)
			return r;
	}
}

int wc_writer_flush(struct wc_writer *w)
{
	int r;

	if (w->cur >= 0) {
		int bi = w->cur;

		w->bufs[bi].busy = false;
		if (w->bufs[bi].nr) {
			r = submit_buf(w, bi);
			if (r < 0 && !w->uring)
				return r;
		} else {
			w->cur = -1;
		}
	}
	while (w->uring && w->inflight) {
		unsigned before = w->inflight;

		r = reap_one(w, true);
		if (r < 0 && w->inflight == before)
			break;	/* the ring itself failed: nothing more will come */
	}
	return w->err;
}

int wc_writer_sync(struct wc_writer *w)
{
	int r = wc_writer_flush(w);

	if (r < 0)
		return r;
	if (fdatasync(w->pack_fd) < 0 || fdatasync(w->idx_fd) < 0)
		return writer_fail(w, -errno);
	return 0;
}

/* Try to take over an existing, unlocked, healthy pack with room left. */
static int writer_reuse(struct wc_writer *w)
{
	struct wc_store *s = w->s;

	for (size_t i = 0; i < s->nr_packs; i++) {
		struct wc_pack *p = &s->packs[i];
		struct wc_idx_parse_result res;
		_cleanup_close_ int fd = -1, ifd = -1;
		char name[32];
		struct stat st;
		int r;

		if (p->damaged || !p->have_idx || p->idx_off == UINT64_MAX)
			continue;
		wc_pack_name(name, sizeof(name), p->id, "pack");
		fd = openat(s->packs_fd, name, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || st.st_ino != p->ino || st.st_dev != p->dev)
			continue;
		if ((uint64_t)st.st_size / WC_PAGE_SIZE + WBUF_PAGES >= WC_PACK_MAX_PAGES)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0)
			continue;
		/* Ours now. Validate the whole idx and cut a torn tail. */
		wc_pack_name(name, sizeof(name), p->id, "idx");
		ifd = openat(s->packs_fd, name, O_RDWR | O_CLOEXEC);
		if (ifd < 0)
			continue;
		if (fstat(fd, &st) < 0)
			continue;
		r = wc_pack_read_idx(s, p->id, (uint64_t)st.st_size / WC_PAGE_SIZE, NULL, NULL, &res);
		if (r < 0 || res.damaged || res.consumed < WC_IDX_HDR_SIZE)
			continue;
		if (ftruncate(ifd, (off_t)res.consumed) < 0)
			continue;
		w->id = p->id;
		w->slot = i;
		w->dev = p->dev;
		w->ino = p->ino;
		w->idx_size = res.consumed;
		w->next_page = DIV_ROUND_UP((uint64_t)st.st_size, WC_PAGE_SIZE);
		w->good_end = w->next_page;
		w->pack_fd = TAKE_FD(fd);
		w->idx_fd = TAKE_FD(ifd);
		p->idx_off = MAX(p->idx_off, res.consumed);
		return 0;
	}
	return -ENOENT;
}

static int writer_create(struct wc_writer *w)
{
	struct wc_store *s = w->s;

	for (int attempt = 0; attempt < 64; attempt++) {
		char tmp[40], name[32];
		struct wc_idx_hdr hdr;
		_cleanup_close_ int fd = -1, ifd = -1;
		struct stat st;
		uint32_t id = 0;
		int r;

		if (getrandom(&id, sizeof(id), 0) != sizeof(id))
			id = (uint32_t)now_ns() ^ (uint32_t)getpid() << 16;
		if (id == 0)
			continue;
		/* Created under a temporary name and locked before it appears, so
		 * nobody mistakes it for an abandoned pack without idx. */
		snprintf(tmp, sizeof(tmp), ".tmp-pack-%08" PRIx32, id);
		wc_pack_name(name, sizeof(name), id, "pack");
		fd = openat(s->packs_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			if (errno == EEXIST)
				continue;
			return -errno;
		}
		if (flock(fd, LOCK_EX) < 0 ||
		    renameat2(s->packs_fd, tmp, s->packs_fd, name, RENAME_NOREPLACE) < 0) {
			r = -errno;
			unlinkat(s->packs_fd, tmp, 0);
			if (r == -EEXIST)
				continue;
			return r;
		}
		/* An idx of this name can only be an orphan of a deleted pack. */
		wc_pack_name(name, sizeof(name), id, "idx");
		ifd = openat(s->packs_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (ifd < 0)
			return -errno;
		wc_idx_hdr_init(&hdr, id);
		r = pwrite_full(ifd, &hdr, sizeof(hdr), 0);
		if (r < 0)
			return r;
		if (fstat(fd, &st) < 0)
			return -errno;
		r = wc_store_pack_slot(s, id, st.st_dev, st.st_ino, &w->slot);
		if (r < 0)
			return r;
		s->packs[w->slot].have_idx = true;
		s->packs[w->slot].idx_off = WC_IDX_HDR_SIZE;
		w->dev = st.st_dev;
		w->ino = st.st_ino;
		w->id = id;
		w->idx_size = WC_IDX_HDR_SIZE;
		w->next_page = 0;
		w->good_end = 0;
		w->pack_fd = TAKE_FD(fd);
		w->idx_fd = TAKE_FD(ifd);
		return 0;
	}
	return -EEXIST;
}

static int writer_attach(struct wc_writer *w, bool fresh)
{
	int r = fresh ? -ENOENT : writer_reuse(w);

	if (r == -ENOENT)
		r = writer_create(w);
	if (r < 0)
		return err_set(r, "store \"%s\": cannot open a pack for writing: %s", w->s->dir,
			       strerror(-r));
	return 0;
}

static void writer_detach(struct wc_writer *w)
{
	if (w->pack_fd < 0)
		return;
	if (w->err) {
		/* Keep only what the idx describes; the rest is garbage. */
		if (ftruncate(w->pack_fd, (off_t)(w->good_end * WC_PAGE_SIZE)) < 0) {
			/* Best effort: unrecorded pages are garbage gc reclaims. */
		}
		if (ftruncate(w->idx_fd, (off_t)w->idx_size) < 0) {
			/* Best effort: a torn tail record is ignored by readers. */
		}
		/* The index got entries for pages that never made it. */
		w->s->stale = true;
	}
	close(w->idx_fd);
	close(w->pack_fd);	/* releases the flock */
	w->pack_fd = w->idx_fd = -1;
}

int wc_writer_open(struct wc_store *s, bool fresh, struct wc_writer **ret)
{
	struct wc_writer *w;
	int r;

	if (s->flags & WC_OPEN_RDONLY)
		return -EROFS;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->s = s;
	w->pack_fd = w->idx_fd = -1;
	w->cur = -1;
	for (unsigned i = 0; i < WBUF_COUNT; i++) {
		w->bufs[i].data = aligned_alloc(WC_PAGE_SIZE, WBUF_PAGES * WC_PAGE_SIZE);
		if (!w->bufs[i].data) {
			r = -ENOMEM;
			goto fail;
		}
	}
	w->depth = MIN(s->opts.queue_depth, WBUF_COUNT);
	if (s->uring_ok) {
		r = io_uring_queue_init(w->depth * 2, &w->ring, 0);
		w->uring = r == 0;
		if (w->uring) {
			/* Buffered writes that cannot complete inline (ext4) go to
			 * io-wq workers; they all serialize on the pack's inode
			 * lock, so one worker does it without contention, on the
			 * other core while this thread hashes. */
			unsigned max_workers[2] = { 1, 0 };

			io_uring_register_iowq_max_workers(&w->ring, max_workers);
		}
	}
	r = writer_attach(w, fresh);
	if (r < 0)
		goto fail;
	*ret = w;
	return 0;
fail:
	wc_writer_close(w);
	return r;
}

int wc_writer_append(struct wc_writer *w, const struct wc_key *key, const void *page)
{
	struct wbuf *b;
	size_t slot;
	int r;

	if (w->err)
		return w->err;
	if (w->next_page >= WC_PACK_MAX_PAGES) {
		/* Roll over to a new pack. */
		r = wc_writer_flush(w);
		if (r < 0)
			return r;
		writer_detach(w);
		r = writer_attach(w, true);
		if (r < 0)
			return writer_fail(w, r);
	}
	if (w->cur < 0) {
		r = get_buf(w);
		if (r < 0)
			return r;
		w->cur = r;
	}
	b = &w->bufs[w->cur];
	memcpy(b->data + (size_t)b->nr * WC_PAGE_SIZE, page, WC_PAGE_SIZE);
	b->keys[b->nr++] = *key;
	r = writer_slot(w, &slot);
	if (r == 0)
		r = wc_index_put(&w->s->index, key, (uint32_t)slot + 1, (uint32_t)w->next_page);
	if (r < 0)
		return writer_fail(w, r);
	w->next_page++;
	w->pages++;
	if (b->nr == WBUF_PAGES) {
		b->busy = false;
		return submit_buf(w, w->cur);
	}
	return 0;
}

void wc_writer_close(struct wc_writer *w)
{
	if (!w)
		return;
	if (w->pack_fd >= 0)
		wc_writer_flush(w);
	writer_detach(w);
	if (w->uring)
		io_uring_queue_exit(&w->ring);
	for (unsigned i = 0; i < WBUF_COUNT; i++)
		free(w->bufs[i].data);
	free(w);
}
