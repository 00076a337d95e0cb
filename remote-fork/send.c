// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The sending side of a snapshot transfer: a wc_sink that streams to the
 * peer (contract in include/rfork/transfer.h, exchange in docs/protocol.md).
 *
 * Pages are collected into batches of up to RF_BATCH_MAX_PAGES pages, never
 * spanning two areas. A full batch goes out as KEYS (kinds + data keys) and
 * joins the window; its data pages stay in memory until the receiver's
 * LACKS for it arrives, then exactly the lacking ones go out as one PAGES
 * frame. The sender reads LACKS whenever some are waiting and blocks only
 * when RF_PUSH_WINDOW batches are outstanding, so the link stays busy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/ioctl.h>

#include <liburing.h>
#include <xxhash.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/pagemap.h"
#include "common/util.h"
#include "rfork/transfer.h"

void rf_page_key(const void *page, struct wc_key *ret)
{
	XXH128_hash_t h = XXH3_128bits(page, WC_PAGE_SIZE);

	ret->lo = h.low64;
	ret->hi = h.high64;
}

bool rf_page_is_zero(const void *page)
{
	const uint64_t *p = page;

	for (size_t i = 0; i < WC_PAGE_SIZE / 8; i += 4)
		if (p[i] | p[i + 1] | p[i + 2] | p[i + 3])
			return false;
	return true;
}

struct push_batch {
	uint32_t seq;
	uint32_t nr_pages;
	uint32_t nr_data;
	uint8_t kinds[RF_BATCH_MAX_PAGES];
	struct wc_key keys[RF_BATCH_MAX_PAGES];	/* [nr_data] */
	uint8_t *data;				/* nr_data pages, back to back */
	uint64_t addr;				/* address of the first page */
	bool lazy;				/* in a lazy area of a lazy push */
};

/* Lazy pages n..n+nr-1 live at addr, addr + 4096, ... (the sender's
 * table of lazy pages as runs: its size follows the number of runs, not
 * of pages). */
struct lz_run {
	uint64_t addr;
	uint32_t first, nr;
};

/* A run of page kinds of an unkeyed lazy area not announced yet (RUNS). */
struct kind_run {
	uint32_t count, kind;
};

struct rf_push {
	struct wc_sink sink;
	struct rf_session *s;
	bool committed;
	bool failed;
	uint64_t area_left;			/* pages still owed to the current area */
	bool in_area;
	uint32_t next_seq;
	struct push_batch *cur;			/* being filled, or NULL */
	/* Window of batches sent as KEYS awaiting LACKS, oldest at head. */
	struct push_batch *win[RF_PUSH_WINDOW];
	unsigned win_head, win_nr;
	struct push_batch *spare;		/* recycled batch */
	struct rf_push_stats st;

	/* --lazy (rf_push_sink_new_lazy) */
	bool lazy;
	bool unkeyed;				/* RF_PUSH_UNKEYED */
	uint8_t *scratch;			/* unkeyed: RF_LAZY_MAX_PAGES pages read */
	pid_t pid;
	uint64_t area_start, area_pos;		/* current area, next page in it */
	bool area_lazy;
	int mem_fd;				/* /proc/PID/mem of the frozen original */
	int pm_fd;				/* its /proc/PID/pagemap (unkeyed), or -1 */
	struct io_uring ring;
	bool ring_ok;
	struct lz_run *lz_runs;			/* lazy page n -> its address */
	uint32_t lz_nr_runs, lz_runs_cap;
	struct wc_key *lz_keys;			/* lazy page n -> its key (keyed only) */
	struct kind_run runs[RF_RUNS_MAX];	/* unkeyed: kinds still to announce */
	uint32_t nr_runs;
	uint64_t runs_addr;			/* address of their first page */
	uint8_t *lz_sent;			/* 1 once lazy page n went out */
	uint32_t lz_nr, lz_cap, lz_nr_sent, lz_cursor;
	void (*on_restored)(void *arg, const struct rf_restored_info *info);
	void *arg;
	bool have_restored;
	struct rf_restored_info restored;
};

#define to_push(x) ((struct rf_push *)(x))

static void batch_free(struct push_batch *b)
{
	if (b) {
		free(b->data);
		free(b);
	}
}

static int batch_get(struct rf_push *p, struct push_batch **ret)
{
	struct push_batch *b = TAKE_PTR(p->spare);

	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return -ENOMEM;
		b->data = malloc((size_t)RF_BATCH_MAX_PAGES * WC_PAGE_SIZE);
		if (!b->data) {
			free(b);
			return -ENOMEM;
		}
	}
	b->nr_pages = b->nr_data = 0;
	*ret = b;
	return 0;
}

static void batch_put(struct rf_push *p, struct push_batch *b)
{
	if (!p->spare)
		p->spare = b;
	else
		batch_free(b);
}

/* Lazy pages [lz_nr, lz_nr + n) are at @addr onwards. */
static int lz_append(struct rf_push *p, uint64_t addr, uint32_t n)
{
	struct lz_run *last = p->lz_nr_runs ? &p->lz_runs[p->lz_nr_runs - 1] : NULL;

	if (n > RF_LAZY_MAX_ENTRIES - p->lz_nr)
		return err_set(EPROTO, "more than %u lazy pages", RF_LAZY_MAX_ENTRIES);
	if (last && last->addr + (uint64_t)last->nr * WC_PAGE_SIZE == addr) {
		last->nr += n;
	} else {
		if (p->lz_nr_runs == p->lz_runs_cap) {
			uint32_t cap = MAX(p->lz_runs_cap * 2, 64u);
			struct lz_run *v = realloc(p->lz_runs, (size_t)cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			p->lz_runs = v;
			p->lz_runs_cap = cap;
		}
		p->lz_runs[p->lz_nr_runs++] = (struct lz_run){ addr, p->lz_nr, n };
	}
	p->lz_nr += n;
	return 0;
}

/* Address of lazy page @e (< lz_nr). */
static uint64_t lz_addr_of(const struct rf_push *p, uint32_t e)
{
	uint32_t lo = 0, hi = p->lz_nr_runs;

	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (p->lz_runs[mid].first <= e)
			lo = mid;
		else
			hi = mid;
	}
	return p->lz_runs[lo].addr + (uint64_t)(e - p->lz_runs[lo].first) * WC_PAGE_SIZE;
}

/*
 * A batch of a lazy area: its lacking pages (@bitmap, @nr_lacking of them)
 * and its RF_KIND_LAZY pages become lazy pages, numbered in batch order as
 * the receiver numbers them. An unkeyed lazy batch has no LACKS (@bitmap
 * NULL): nothing in it has a key.
 */
static int lazy_note_batch(struct rf_push *p, struct push_batch *b, const uint8_t *bitmap,
			   uint32_t nr_lacking)
{
	uint32_t nr_new = nr_lacking, d = 0;

	for (uint32_t i = 0; i < b->nr_pages; i++)
		nr_new += b->kinds[i] == RF_KIND_LAZY;
	if (nr_new > RF_LAZY_MAX_ENTRIES - p->lz_nr)
		return err_set(EPROTO, "more than %u lazy pages", RF_LAZY_MAX_ENTRIES);
	if (!p->unkeyed && p->lz_nr + nr_new > p->lz_cap) {
		/* Keyed: the keys, for rf_lazy_dedup(). */
		uint32_t cap = MAX(p->lz_cap * 2, p->lz_nr + nr_new + 4096);
		struct wc_key *k = realloc(p->lz_keys, (size_t)cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		p->lz_keys = k;
		p->lz_cap = cap;
	}
	for (uint32_t i = 0; i < b->nr_pages; i++) {
		bool lack = bitmap && ((bitmap[i / 8] >> (i % 8)) & 1);
		int r;

		if (lack && b->kinds[i] != WC_PAGE_DATA)
			return err_set(EPROTO, "receiver asked for page %u of batch %u, "
				       "which holds no data", i, b->seq);
		if (lack || b->kinds[i] == RF_KIND_LAZY) {
			/* Unkeyed lazy pages have no key (never used). */
			if (!p->unkeyed)
				p->lz_keys[p->lz_nr] = b->keys[d];
			r = lz_append(p, b->addr + (uint64_t)i * WC_PAGE_SIZE, 1);
			if (r < 0)
				return r;
		}
		d += b->kinds[i] == WC_PAGE_DATA;
	}
	p->st.pages_skipped += b->nr_data - nr_lacking;
	return 0;
}

/* Answer the LACKS for the oldest batch in the window: send its lacking
 * pages, retire it. */
static int push_handle_lacks(struct rf_push *p, const struct rf_msg *m)
{
	struct push_batch *b;
	uint32_t d = 0, n = 0;
	uint8_t *out = NULL;

	if (m->type != RF_MSG_LACKS)
		return err_set(EPROTO, "receiver sent %s while pages were announced",
			       rf_msg_name(m->type));
	if (!p->win_nr)
		return err_set(EPROTO, "receiver sent LACKS for no announced batch");
	b = p->win[p->win_head];
	if (m->lacks.seq != b->seq || m->lacks.nr_pages != b->nr_pages)
		return err_set(EPROTO, "receiver sent LACKS for batch %u (%u pages), expected %u (%u)",
			       m->lacks.seq, m->lacks.nr_pages, b->seq, b->nr_pages);
	if (b->lazy) {
		/* Lazy area: remember the lacking pages, in LACKS order (both
		 * sides number them alike), and send them after RESTORED. */
		int r = lazy_note_batch(p, b, m->lacks.bitmap, m->lacks.nr_lacking);

		if (r < 0)
			return r;
		p->win[p->win_head] = NULL;
		p->win_head = (p->win_head + 1) % RF_PUSH_WINDOW;
		p->win_nr--;
		batch_put(p, b);
		return 0;
	}
	if (m->lacks.nr_lacking) {
		out = rf_session_frame(p->s, RF_MSG_PAGES,
				       8 + (size_t)m->lacks.nr_lacking * WC_PAGE_SIZE);
		rf_put_u32(out, b->seq);
		rf_put_u32(out + 4, m->lacks.nr_lacking);
	}
	for (uint32_t i = 0; i < b->nr_pages; i++) {
		bool lack = (m->lacks.bitmap[i / 8] >> (i % 8)) & 1;

		if (b->kinds[i] != WC_PAGE_DATA) {
			if (lack)
				return err_set(EPROTO, "receiver asked for page %u of batch %u, "
					       "which holds no data", i, b->seq);
			continue;
		}
		if (lack)
			memcpy(out + 8 + (size_t)n++ * WC_PAGE_SIZE,
			       b->data + (size_t)d * WC_PAGE_SIZE, WC_PAGE_SIZE);
		d++;
	}
	p->win[p->win_head] = NULL;
	p->win_head = (p->win_head + 1) % RF_PUSH_WINDOW;
	p->win_nr--;
	p->st.pages_sent += n;
	p->st.pages_skipped += b->nr_data - n;
	batch_put(p, b);
	if (n)
		return rf_session_send(p->s, 8 + (size_t)n * WC_PAGE_SIZE);
	return 0;
}

static int push_recv_one(struct rf_push *p)
{
	struct rf_msg m;
	int r = rf_session_recv(p->s, &m);

	if (r == -ENODATA)
		return err_set(ECONNRESET, "receiver closed the connection");
	if (r < 0)
		return r;
	return push_handle_lacks(p, &m);
}

/* Read what the receiver has answered so far; block while more than @max
 * batches are outstanding. */
static int push_service(struct rf_push *p, unsigned max)
{
	int r;

	while (p->win_nr) {
		if (p->win_nr <= max) {
			r = rf_session_readable(p->s);
			if (r <= 0)
				return r;
		}
		r = push_recv_one(p);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Announce the kinds gathered in p->runs as one RUNS frame (a batch that
 * needs no LACKS); their lazy pages get the next numbers, as on the
 * receiver. */
static int runs_flush(struct rf_push *p)
{
	uint64_t addr = p->runs_addr;
	uint8_t *out;
	int r;

	if (!p->nr_runs)
		return 0;
	out = rf_session_frame(p->s, RF_MSG_RUNS, 8 + (size_t)p->nr_runs * RF_RUN_BYTES);
	rf_put_u32(out, p->next_seq++);
	rf_put_u32(out + 4, p->nr_runs);
	for (uint32_t i = 0; i < p->nr_runs; i++) {
		rf_put_u32(out + 8 + RF_RUN_BYTES * i, p->runs[i].count);
		rf_put_u32(out + 12 + RF_RUN_BYTES * i, p->runs[i].kind);
	}
	r = rf_session_send(p->s, 8 + (size_t)p->nr_runs * RF_RUN_BYTES);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < p->nr_runs; i++) {
		if (p->runs[i].kind == RF_KIND_LAZY) {
			r = lz_append(p, addr, p->runs[i].count);
			if (r < 0)
				return r;
		}
		addr += (uint64_t)p->runs[i].count * WC_PAGE_SIZE;
	}
	p->nr_runs = 0;
	p->st.nr_batches++;
	return 0;
}

/*
 * Unkeyed lazy area, pages not read (@kinds only): gather runs of kinds
 * (absent, zero, lazy = present and unread) for RUNS frames: no per-page
 * frame bytes, no per-page work on either side but this loop.
 */
static int push_put_runs(struct rf_push *p, const uint8_t *kinds, size_t nr_pages)
{
	int r;

	for (size_t i = 0; i < nr_pages;) {
		uint32_t kind = kinds[i] == WC_PAGE_ABSENT ? WC_PAGE_ABSENT : RF_KIND_LAZY;
		uint8_t k0 = kinds[i];
		size_t n = 1;
		struct kind_run *last;

		/* Same input kind: same run kind. */
		while (i + n < nr_pages && kinds[i + n] == k0 && n < UINT32_MAX)
			n++;
		if (kind == WC_PAGE_ABSENT)
			p->st.pages_absent += n;
		else
			p->st.pages_data += n;
		last = p->nr_runs ? &p->runs[p->nr_runs - 1] : NULL;
		if (last && last->kind == kind && last->count <= UINT32_MAX - n) {
			last->count += (uint32_t)n;
		} else {
			if (p->nr_runs == RF_RUNS_MAX && (r = runs_flush(p)) < 0)
				return r;
			if (!p->nr_runs)
				p->runs_addr = p->area_start + p->area_pos * WC_PAGE_SIZE;
			p->runs[p->nr_runs++] = (struct kind_run){ (uint32_t)n, kind };
		}
		p->area_pos += n;
		p->area_left -= n;
		p->st.pages_total += n;
		i += n;
	}
	return p->area_left ? 0 : runs_flush(p);
}

static int push_flush(struct rf_push *p)
{
	struct push_batch *b = p->cur;
	uint8_t *out;
	int r;

	r = runs_flush(p);
	if (r < 0)
		return r;
	if (!b || !b->nr_pages)
		return 0;
	/* Room in the window first, so the batch can join it once sent. */
	r = push_service(p, RF_PUSH_WINDOW - 1);
	if (r < 0)
		return r;
	b->seq = p->next_seq++;
	out = rf_session_frame(p->s, RF_MSG_KEYS, 8 + b->nr_pages + (size_t)b->nr_data * 16);
	rf_put_u32(out, b->seq);
	rf_put_u32(out + 4, b->nr_pages);
	memcpy(out + 8, b->kinds, b->nr_pages);
	for (uint32_t i = 0; i < b->nr_data; i++)
		rf_put_key(out + 8 + b->nr_pages + i * 16, &b->keys[i]);
	r = rf_session_send(p->s, 8 + b->nr_pages + (size_t)b->nr_data * 16);
	if (r < 0)
		return r;
	if (p->unkeyed && b->lazy) {
		/* No LACKS comes for it (nothing to look up): no round trip
		 * per batch before the twin can start. */
		r = lazy_note_batch(p, b, NULL, 0);
		if (r < 0)
			return r;
		batch_put(p, TAKE_PTR(p->cur));
		p->st.nr_batches++;
		return 0;
	}
	p->win[(p->win_head + p->win_nr) % RF_PUSH_WINDOW] = TAKE_PTR(p->cur);
	p->win_nr++;
	p->st.nr_batches++;
	return 0;
}

static int push_fail(struct rf_push *p, int r)
{
	if (r < 0)
		p->failed = true;
	return r;
}

static int push_begin_area(struct wc_sink *sink, const struct wc_area_desc *desc)
{
	struct rf_push *p = to_push(sink);
	size_t name_len = desc->name ? strnlen(desc->name, RF_NAME_MAX + 1) : 0;
	uint8_t *out;
	int r;

	if (p->failed || p->committed)
		return -EINVAL;
	if (p->in_area && p->area_left)
		return push_fail(p, err_set(EINVAL, "area ended %llu pages early",
					    (unsigned long long)p->area_left));
	if (desc->start % WC_PAGE_SIZE || desc->nr_pages > RF_AREA_MAX_PAGES || name_len > RF_NAME_MAX)
		return push_fail(p, err_set(EINVAL, "area 0x%llx+%llu pages cannot be sent",
					    (unsigned long long)desc->start,
					    (unsigned long long)desc->nr_pages));
	r = push_flush(p);
	if (r < 0)
		return push_fail(p, r);
	out = rf_session_frame(p->s, RF_MSG_AREA, 26 + 2 + name_len);
	rf_put_u64(out, desc->start);
	rf_put_u64(out + 8, desc->nr_pages);
	rf_put_u32(out + 16, desc->prot);
	rf_put_u32(out + 20, desc->flags);
	rf_put_u16(out + 24, desc->name != NULL);
	if (desc->name) {
		rf_put_u16(out + 26, name_len);
		memcpy(out + 28, desc->name, name_len);
	}
	r = rf_session_send(p->s, desc->name ? 28 + name_len : 26);
	if (r < 0)
		return push_fail(p, r);
	p->in_area = true;
	p->area_left = desc->nr_pages;
	p->area_start = desc->start;
	p->area_pos = 0;
	p->area_lazy = p->lazy && rf_area_is_lazy(desc->flags);
	p->st.nr_areas++;
	return 0;
}

static int push_put_pages(struct wc_sink *sink, const void *buf, const uint8_t *kinds,
			  size_t nr_pages)
{
	struct rf_push *p = to_push(sink);
	int r;

	if (p->failed || p->committed)
		return -EINVAL;
	if (!p->in_area || nr_pages > p->area_left)
		return push_fail(p, err_set(EINVAL, "%zu pages beyond the current area", nr_pages));
	if (!buf && !kinds)
		return push_fail(p, err_set(EINVAL, "no pages and no kinds"));
	if (p->unkeyed && p->area_lazy && !buf) {
		/* Pages of the current batch (if any) go first. */
		r = p->cur && p->cur->nr_pages ? push_flush(p) : 0;
		if (r >= 0)
			r = push_put_runs(p, kinds, nr_pages);
		return r < 0 ? push_fail(p, r) : 0;
	}
	if (p->nr_runs && (r = runs_flush(p)) < 0)
		return push_fail(p, r);
	for (size_t i = 0; i < nr_pages; i++) {
		/* @buf may be NULL when every page is absent. */
		const uint8_t *src = buf ? (const uint8_t *)buf + i * WC_PAGE_SIZE : NULL;
		struct push_batch *b;
		uint8_t kind;

		if (!p->cur && (r = batch_get(p, &p->cur)) < 0)
			return push_fail(p, r);
		b = p->cur;
		if (!b->nr_pages) {
			b->addr = p->area_start + p->area_pos * WC_PAGE_SIZE;
			b->lazy = p->area_lazy;
		}
		p->area_pos++;
		if (kinds && kinds[i] == WC_PAGE_ABSENT) {
			kind = WC_PAGE_ABSENT;
			p->st.pages_absent++;
		} else if (p->unkeyed && b->lazy && (!src || !rf_page_is_zero(src))) {
			/* Unkeyed: not read (or not looked at) now; read, and
			 * zero pages told apart, when it goes out. */
			kind = RF_KIND_LAZY;
			p->st.pages_data++;
		} else if (!src) {
			return push_fail(p, err_set(EINVAL, "page %zu is present but no buffer given", i));
		} else if (rf_page_is_zero(src)) {
			kind = WC_PAGE_ZERO;
			p->st.pages_zero++;
		} else {
			kind = WC_PAGE_DATA;
			/* A lazy area's pages are read again from the process
			 * when they go out: no copy now. */
			if (!b->lazy)
				memcpy(b->data + (size_t)b->nr_data * WC_PAGE_SIZE, src, WC_PAGE_SIZE);
			rf_page_key(src, &b->keys[b->nr_data++]);
			p->st.pages_data++;
		}
		b->kinds[b->nr_pages++] = kind;
		p->st.pages_total++;
		p->area_left--;
		if (b->nr_pages == RF_BATCH_MAX_PAGES || !p->area_left) {
			r = push_flush(p);
			if (r < 0)
				return push_fail(p, r);
		}
	}
	return 0;
}

static int push_put_blob(struct wc_sink *sink, const char *name, const void *data, size_t len)
{
	struct rf_push *p = to_push(sink);
	size_t name_len = strnlen(name, RF_NAME_MAX + 1), off = 0;
	int r;

	if (p->failed || p->committed)
		return -EINVAL;
	if (!name_len || name_len > RF_NAME_MAX)
		return push_fail(p, err_set(EINVAL, "blob name of %zu bytes cannot be sent", name_len));
	if (len > RF_BLOB_MAX)
		return push_fail(p, err_set(EFBIG, "blob \"%s\" of %zu bytes exceeds %u bytes",
					    name, len, RF_BLOB_MAX));
	do {
		size_t n = MIN(len - off, (size_t)RF_BLOB_CHUNK);
		uint8_t *out = rf_session_frame(p->s, RF_MSG_BLOB, 18 + name_len + n);

		rf_put_u64(out, len);
		rf_put_u64(out + 8, off);
		rf_put_u16(out + 16, name_len);
		memcpy(out + 18, name, name_len);
		if (n)
			memcpy(out + 18 + name_len, (const uint8_t *)data + off, n);
		r = rf_session_send(p->s, 18 + name_len + n);
		if (r < 0)
			return push_fail(p, r);
		off += n;
		/* Keep reading answers so the receiver never blocks on us. */
		r = push_service(p, RF_PUSH_WINDOW);
		if (r < 0)
			return push_fail(p, r);
	} while (off < len);
	p->st.nr_blobs++;
	p->st.blob_bytes += len;
	return 0;
}

static int push_put_label(struct wc_sink *sink, const char *key, const char *value)
{
	struct rf_push *p = to_push(sink);
	size_t kl = strnlen(key, RF_LABEL_MAX + 1), vl = strnlen(value, RF_LABEL_MAX + 1);
	uint8_t *out;

	if (p->failed || p->committed)
		return -EINVAL;
	if (!kl || kl > RF_LABEL_MAX || vl > RF_LABEL_MAX)
		return push_fail(p, err_set(EINVAL, "label \"%.32s\" too long to send", key));
	out = rf_session_frame(p->s, RF_MSG_LABEL, 4 + kl + vl);
	rf_put_u16(out, kl);
	memcpy(out + 2, key, kl);
	rf_put_u16(out + 2 + kl, vl);
	memcpy(out + 4 + kl, value, vl);
	return push_fail(p, rf_session_send(p->s, 4 + kl + vl));
}

/* ------------------------------------------------------------------ --lazy */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void rf_restored_info_get(const struct rf_msg *m, struct rf_restored_info *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->pid = m->restored.pid;
	ret->ns_pid = m->restored.ns_pid;
	ret->flags = m->restored.flags;
	memcpy(ret->out_path, m->restored.out_path, MIN(m->restored.out_len, (size_t)RF_PATH_MAX));
	memcpy(ret->err_path, m->restored.err_path, MIN(m->restored.err_len, (size_t)RF_PATH_MAX));
}

/*
 * Read @n pages of the frozen original, at the addresses of lazy pages
 * @ents, into @dst: one io_uring read of /proc/PID/mem per run of adjacent
 * addresses, all in flight at once; a short or failed read is redone with
 * pread (the original is frozen: its memory is the checkpoint's).
 */
static int lazy_read(struct rf_push *p, const uint32_t *ents, uint32_t n, uint8_t *dst)
{
	struct { uint64_t addr; uint32_t first, nr; } runs[RF_LAZY_MAX_PAGES];
	uint32_t nr_runs = 0, inflight = 0;
	int r;

	for (uint32_t i = 0; i < n; i++) {
		uint64_t a = lz_addr_of(p, ents[i]);

		if (nr_runs && runs[nr_runs - 1].addr + (uint64_t)runs[nr_runs - 1].nr * WC_PAGE_SIZE == a)
			runs[nr_runs - 1].nr++;
		else
			runs[nr_runs++] = (typeof(runs[0])){ a, i, 1 };
	}
	if (p->ring_ok) {
		for (uint32_t k = 0; k < nr_runs; k++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);

			if (!sqe) {
				io_uring_submit(&p->ring);
				sqe = io_uring_get_sqe(&p->ring);
				if (!sqe)
					break;
			}
			io_uring_prep_read(sqe, p->mem_fd, dst + (size_t)runs[k].first * WC_PAGE_SIZE,
					   runs[k].nr * WC_PAGE_SIZE, runs[k].addr);
			io_uring_sqe_set_data64(sqe, k);
			inflight++;
		}
		r = io_uring_submit(&p->ring);
		if (r < 0)
			return err_set(-r, "io_uring submit: %s", strerror(-r));
		while (inflight) {
			struct io_uring_cqe *cqe;
			uint64_t k;

			r = io_uring_wait_cqe(&p->ring, &cqe);
			if (r == -EINTR)
				continue;
			if (r < 0)
				return err_set(-r, "io_uring wait: %s", strerror(-r));
			k = io_uring_cqe_get_data64(cqe);
			if (k < nr_runs && cqe->res == (int)(runs[k].nr * WC_PAGE_SIZE))
				runs[k].nr = 0;		/* done */
			io_uring_cqe_seen(&p->ring, cqe);
			inflight--;
		}
	}
	for (uint32_t k = 0; k < nr_runs; k++) {
		if (!runs[k].nr)
			continue;
		r = pread_full(p->mem_fd, dst + (size_t)runs[k].first * WC_PAGE_SIZE,
			       runs[k].nr * WC_PAGE_SIZE, (off_t)runs[k].addr);
		if (r < 0)
			return err_set(-r, "cannot read the memory of process %d at 0x%llx: %s",
				       (int)p->pid, (unsigned long long)runs[k].addr, strerror(-r));
	}
	return 0;
}

/*
 * Which of lazy pages @ents are neither present nor swapped in the
 * original (@ret_absent[i]). The engine may announce a whole vma lazy
 * without a walk (engine/dump/dump.c read_maps_fast()): such pages are
 * zero, and reading them through /proc/PID/mem would map the zero page
 * into the original. One PAGEMAP_SCAN per run of adjacent addresses; if
 * the kernel cannot tell, every page counts as present (read as before).
 */
static void lazy_absent(struct rf_push *p, const uint32_t *ents, uint32_t n, bool *ret_absent)
{
	struct pm_page_region vec[32];

	for (uint32_t i = 0; i < n;) {
		uint64_t start = lz_addr_of(p, ents[i]), end;
		uint32_t j = i + 1;

		while (j < n && lz_addr_of(p, ents[j]) == start + (uint64_t)(j - i) * WC_PAGE_SIZE)
			j++;
		end = start + (uint64_t)(j - i) * WC_PAGE_SIZE;
		for (uint32_t k = i; k < j; k++)
			ret_absent[k] = p->pm_fd >= 0;
		for (uint64_t at = start; p->pm_fd >= 0 && at < end;) {
			struct pm_scan_arg_v1 a = {
				.size = sizeof(a), .start = at, .end = end,
				.vec = (uint64_t)(uintptr_t)vec, .vec_len = ARRAY_SIZE(vec),
				.category_anyof_mask = PM_PAGE_IS_PRESENT | PM_PAGE_IS_SWAPPED,
				.return_mask = PM_PAGE_IS_PRESENT | PM_PAGE_IS_SWAPPED,
			};
			long nr = ioctl(p->pm_fd, PM_PAGEMAP_SCAN, &a);

			if (nr < 0) {
				/* Unknown: read them all. */
				for (uint32_t k = i; k < j; k++)
					ret_absent[k] = false;
				break;
			}
			for (long v = 0; v < nr; v++)
				for (uint64_t q = vec[v].start; q < vec[v].end; q += WC_PAGE_SIZE)
					ret_absent[i + (q - start) / WC_PAGE_SIZE] = false;
			if (a.walk_end <= at)
				break;
			at = a.walk_end;
		}
		i = j;
	}
}

/*
 * RF_PUSH_UNKEYED: read @ents, then the pages found all zero go out as one
 * LAZY_ZERO frame (numbers only) and the others as one LAZY_PAGES frame.
 * No key is computed here: the receiver hashes what arrives.
 */
static int lazy_send_unkeyed(struct rf_push *p, const uint32_t *ents, uint32_t n, bool demand)
{
	uint32_t zero[RF_LAZY_MAX_PAGES], data[RF_LAZY_MAX_PAGES], nz = 0, nd = 0;
	uint32_t present[RF_LAZY_MAX_PAGES], data_k[RF_LAZY_MAX_PAGES], np = 0;
	bool absent[RF_LAZY_MAX_PAGES];
	uint8_t *out;
	int r;

	/* zero[] and data[] hold indices into @ents; present[] lazy page
	 * numbers, read into scratch in that order (data_k[]: where). */
	lazy_absent(p, ents, n, absent);
	for (uint32_t i = 0; i < n; i++)
		if (!absent[i])
			present[np++] = ents[i];
	r = np ? lazy_read(p, present, np, p->scratch) : 0;
	if (r < 0)
		return r;
	for (uint32_t i = 0, k = 0; i < n; i++) {
		if (absent[i]) {
			zero[nz++] = i;
		} else {
			if (rf_page_is_zero(p->scratch + (size_t)k * WC_PAGE_SIZE))
				zero[nz++] = i;
			else
				data_k[nd] = k, data[nd++] = i;
			k++;
		}
		p->lz_sent[ents[i]] = 1;
	}
	p->lz_nr_sent += n;
	p->st.pages_lazy += n;
	p->st.pages_lazy_zero += nz;
	if (demand)
		p->st.pages_demand += n;
	if (nz) {
		out = rf_session_frame(p->s, RF_MSG_LAZY_ZERO, 4 + (size_t)nz * 4);
		rf_put_u32(out, nz);
		for (uint32_t i = 0; i < nz; i++)
			rf_put_u32(out + 4 + 4 * i, ents[zero[i]]);
		r = rf_session_send(p->s, 4 + (size_t)nz * 4);
		if (r < 0)
			return r;
	}
	if (!nd)
		return 0;
	out = rf_session_frame(p->s, RF_MSG_LAZY_PAGES, 4 + (size_t)nd * (4 + WC_PAGE_SIZE));
	rf_put_u32(out, nd);
	for (uint32_t i = 0; i < nd; i++) {
		rf_put_u32(out + 4 + 4 * i, ents[data[i]]);
		memcpy(out + 4 + 4 * (size_t)nd + (size_t)i * WC_PAGE_SIZE,
		       p->scratch + (size_t)data_k[i] * WC_PAGE_SIZE, WC_PAGE_SIZE);
	}
	return rf_session_send(p->s, 4 + (size_t)nd * (4 + WC_PAGE_SIZE));
}

/* Send lazy pages @ents (not sent yet) as one LAZY_PAGES frame. */
static int lazy_send(struct rf_push *p, const uint32_t *ents, uint32_t n, bool demand)
{
	size_t len = 4 + (size_t)n * (4 + WC_PAGE_SIZE);
	uint8_t *out;
	int r;

	if (p->unkeyed)
		return lazy_send_unkeyed(p, ents, n, demand);
	out = rf_session_frame(p->s, RF_MSG_LAZY_PAGES, len);

	rf_put_u32(out, n);
	for (uint32_t i = 0; i < n; i++)
		rf_put_u32(out + 4 + 4 * i, ents[i]);
	r = lazy_read(p, ents, n, out + 4 + 4 * (size_t)n);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < n; i++)
		p->lz_sent[ents[i]] = 1;
	p->lz_nr_sent += n;
	p->st.pages_lazy += n;
	if (demand)
		p->st.pages_demand += n;
	return rf_session_send(p->s, len);
}

/* Pages per background LAZY_PAGES frame: small, so that a request never
 * waits long behind one (64 pages = 2 ms at 1 Gbit/s). */
#define RF_LAZY_BG_PAGES	64u

/* The unsent lazy pages among [first, first + nr), at most RF_LAZY_MAX_PAGES
 * per frame. */
static int lazy_serve_req(struct rf_push *p, uint32_t first, uint32_t nr)
{
	uint32_t ents[RF_LAZY_MAX_PAGES], n = 0;
	int r;

	if (first >= p->lz_nr || nr > p->lz_nr - first)
		return err_set(EPROTO, "receiver asked for lazy pages %u+%u of %u", first, nr, p->lz_nr);
	for (uint32_t e = first; e < first + nr; e++) {
		if (p->lz_sent[e])
			continue;
		ents[n++] = e;
		if (n == RF_LAZY_MAX_PAGES) {
			r = lazy_send(p, ents, n, true);
			if (r < 0)
				return r;
			n = 0;
		}
	}
	/* Background goes on right after what the twin touched (hot first). */
	if (first + nr < p->lz_nr)
		p->lz_cursor = first + nr;
	p->st.nr_requests++;
	return n ? lazy_send(p, ents, n, true) : 0;
}

static int lazy_send_background(struct rf_push *p)
{
	uint32_t ents[RF_LAZY_BG_PAGES], n = 0, e = p->lz_cursor, seen = 0;

	while (n < RF_LAZY_BG_PAGES && seen < p->lz_nr) {
		if (e >= p->lz_nr)
			e = 0;
		if (!p->lz_sent[e])
			ents[n++] = e;
		e++;
		seen++;
	}
	p->lz_cursor = e;
	return n ? lazy_send(p, ents, n, false) : 0;
}

/*
 * After COMMITTED: wait for RESTORED, then serve page requests first and
 * stream the rest, then LAZY_END; done once the receiver says LAZY_DONE.
 */
static int lazy_serve(struct rf_push *p)
{
	uint64_t t0 = mono_ns(), t1 = 0;
	bool end_sent = false;
	int r;

	p->lz_sent = calloc(p->lz_nr ? p->lz_nr : 1, 1);
	if (!p->lz_sent)
		return -ENOMEM;
	if (!p->unkeyed) {
		/* Pages with the content of an earlier lazy page never travel:
		 * the receiver installs the primary's copy (rf_lazy_dedup). */
		_cleanup_free_ uint32_t *primary = malloc((p->lz_nr ? p->lz_nr : 1) * sizeof(*primary));

		if (!primary)
			return -ENOMEM;
		r = rf_lazy_dedup(p->lz_keys, p->lz_nr, primary);
		if (r < 0)
			return r;
		for (uint32_t i = 0; i < p->lz_nr; i++)
			if (primary[i] != i) {
				p->lz_sent[i] = 1;
				p->lz_nr_sent++;
				p->st.pages_lazy_dup++;
			}
	}
	for (;;) {
		struct rf_msg m;

		if (p->have_restored && p->lz_nr_sent == p->lz_nr && !end_sent) {
			uint8_t *out = rf_session_frame(p->s, RF_MSG_LAZY_END, 4);

			rf_put_u32(out, p->lz_nr);
			r = rf_session_send(p->s, 4);
			if (r < 0)
				return r;
			end_sent = true;
		}
		if (p->have_restored && p->lz_nr_sent < p->lz_nr) {
			r = rf_session_readable(p->s);
			if (r < 0)
				return r;
			if (r == 0) {
				r = lazy_send_background(p);
				if (r < 0)
					return r;
				continue;
			}
		}
		r = rf_session_recv(p->s, &m);
		if (r == -ENODATA)
			return err_set(ECONNRESET, "receiver closed the connection before the twin "
				       "held every page");
		if (r < 0)
			return r;
		switch (m.type) {
		case RF_MSG_RESTORED:
			if (p->have_restored)
				return err_set(EPROTO, "receiver sent RESTORED twice");
			rf_restored_info_get(&m, &p->restored);
			p->have_restored = true;
			{
				struct rf_session_stats ss;

				rf_session_stats(p->s, &ss);
				p->st.run_bytes = ss.bytes_sent;
			}
			t1 = mono_ns();
			p->st.restored_ns = t1 - t0;
			if (p->on_restored)
				p->on_restored(p->arg, &p->restored);
			break;
		case RF_MSG_PAGE_REQ:
			r = lazy_serve_req(p, m.page_req.first, m.page_req.nr);
			if (r < 0)
				return r;
			break;
		case RF_MSG_LAZY_DONE:
			if (!end_sent || m.lazy_end.nr != p->lz_nr)
				return err_set(EPROTO, "receiver said LAZY_DONE (%u pages) before LAZY_END "
					       "(%u pages)", m.lazy_end.nr, p->lz_nr);
			p->st.lazy_ns = mono_ns() - t1;
			return 0;
		default:
			return err_set(EPROTO, "receiver sent %s while pages were served lazily",
				       rf_msg_name(m.type));
		}
	}
}

static int push_commit(struct wc_sink *sink, char ret_id[WC_ID_LEN + 1])
{
	struct rf_push *p = to_push(sink);
	struct rf_msg m;
	uint8_t *out;
	int r;

	if (p->failed || p->committed)
		return -EINVAL;
	if (p->in_area && p->area_left)
		return push_fail(p, err_set(EINVAL, "area ended %llu pages early",
					    (unsigned long long)p->area_left));
	r = push_flush(p);
	if (r >= 0)
		r = push_service(p, 0);
	if (r < 0)
		return push_fail(p, r);
	out = rf_session_frame(p->s, RF_MSG_COMMIT, 24);
	rf_put_u64(out, p->st.nr_areas);
	rf_put_u64(out + 8, p->st.nr_batches);
	rf_put_u64(out + 16, p->st.pages_total);
	r = rf_session_send(p->s, 24);
	if (r < 0)
		return push_fail(p, r);
	r = rf_session_recv(p->s, &m);
	if (r == -ENODATA)
		r = err_set(ECONNRESET, "receiver closed the connection before confirming the snapshot");
	if (r >= 0 && m.type != RF_MSG_COMMITTED)
		r = err_set(EPROTO, "receiver answered COMMIT with %s", rf_msg_name(m.type));
	if (r < 0)
		return push_fail(p, r);
	memcpy(ret_id, m.committed.id, WC_ID_LEN + 1);
	if (p->lazy) {
		r = lazy_serve(p);
		if (r < 0)
			return push_fail(p, r);
	}
	p->committed = true;
	return 0;
}

static void push_free(struct wc_sink *sink)
{
	struct rf_push *p = to_push(sink);

	if (p->ring_ok)
		io_uring_queue_exit(&p->ring);
	if (p->mem_fd >= 0)
		close(p->mem_fd);
	if (p->pm_fd >= 0)
		close(p->pm_fd);
	free(p->lz_runs);
	free(p->lz_keys);
	free(p->lz_sent);
	free(p->scratch);

	batch_free(p->cur);
	batch_free(p->spare);
	for (unsigned i = 0; i < RF_PUSH_WINDOW; i++)
		batch_free(p->win[i]);
	free(p);
}

static const struct wc_sink_ops push_ops = {
	.begin_area = push_begin_area,
	.put_pages = push_put_pages,
	.put_blob = push_put_blob,
	.put_label = push_put_label,
	.commit = push_commit,
	.free = push_free,
};

int rf_push_sink_new(struct rf_session *s, unsigned flags, struct wc_sink **ret)
{
	struct rf_push *p;
	uint8_t *out;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->sink.ops = &push_ops;
	p->s = s;
	p->mem_fd = -1;
	p->pm_fd = -1;
	if (flags & ~RF_PUSH_FLAGS) {
		free(p);
		return -EINVAL;
	}
	out = rf_session_frame(s, RF_MSG_PUSH, 4);
	rf_put_u32(out, flags);
	r = rf_session_send(s, 4);
	if (r < 0) {
		free(p);
		return r;
	}
	*ret = &p->sink;
	return 0;
}

int rf_push_sink_new_lazy(struct rf_session *s, unsigned flags, pid_t pid,
			  void (*on_restored)(void *arg, const struct rf_restored_info *info),
			  void *arg, struct wc_sink **ret)
{
	struct wc_sink *sink;
	struct rf_push *p;
	char path[64];
	int fd, r;

	if (flags & ~(RF_PUSH_ATTACH | RF_PUSH_HOLD | RF_PUSH_UNKEYED) ||
	    ((flags & RF_PUSH_UNKEYED) && (flags & RF_PUSH_HOLD)))
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(errno, "cannot open %s: %m", path);
	r = rf_push_sink_new(s, flags | RF_PUSH_RESTORE | RF_PUSH_LAZY, &sink);
	if (r < 0) {
		close(fd);
		return r;
	}
	p = to_push(sink);
	p->lazy = true;
	p->unkeyed = flags & RF_PUSH_UNKEYED;
	if (p->unkeyed) {
		p->scratch = aligned_alloc(WC_PAGE_SIZE, (size_t)RF_LAZY_MAX_PAGES * WC_PAGE_SIZE);
		if (!p->scratch) {
			close(fd);
			wc_sink_free(sink);
			return -ENOMEM;
		}
	}
	p->pid = pid;
	p->mem_fd = fd;
	if (p->unkeyed) {
		/* Optional (lazy_absent()): without it absent pages are read. */
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
		p->pm_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	p->on_restored = on_restored;
	p->arg = arg;
	p->ring_ok = io_uring_queue_init(64, &p->ring, 0) == 0;
	*ret = sink;
	return 0;
}

int rf_push_sink_restored(const struct wc_sink *sink, struct rf_restored_info *ret)
{
	const struct rf_push *p = to_push(sink);

	if (!p->have_restored)
		return -ENOENT;
	*ret = p->restored;
	return 0;
}

void rf_push_sink_stats(const struct wc_sink *sink, struct rf_push_stats *ret)
{
	*ret = to_push(sink)->st;
}
