// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The receiving side of a snapshot transfer (contract in
 * include/rfork/transfer.h, exchange in docs/protocol.md).
 *
 * Messages arrive in the sender's order: AREA, KEYS..., AREA, KEYS...,
 * with PAGES for batch k arriving only after the sender read our LACKS for
 * k, i.e. possibly after later AREA/KEYS frames. The sink needs areas and
 * pages strictly in order, so areas and batches wait in a FIFO until every
 * item before them is complete; a batch is complete once its lacking pages
 * arrived (at once if it lacked none). Blobs and labels do not depend on
 * the area order and go to the sink when they are whole.
 *
 * Everything the peer sends is bounded: at most RF_MAX_INFLIGHT batches
 * wait for pages, RF_RECV_MAX_QUEUED items in all, RF_MAX_AREAS areas,
 * RF_MAX_BLOBS blobs of RF_BLOB_MAX bytes (one buffered at a time),
 * RF_MAX_LABELS labels. Each received page is hashed and must equal its
 * key, else -EPROTO.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/compiler.h"
#include "common/err.h"
#include "rfork/transfer.h"

#define RF_RECV_MAX_QUEUED	4096u
#define RF_RECV_RUN_CHUNK	65536u		/* pages per put_keys of a run */

enum { LACK_HAVE = 0, LACK_SENT = 1, LACK_DUP = 2 };

struct recv_batch {
	uint32_t seq, nr_pages, nr_data, nr_lacking;
	uint8_t kinds[RF_BATCH_MAX_PAGES];
	uint8_t lack[RF_BATCH_MAX_PAGES];		/* LACK_* per page */
	uint16_t dup_of[RF_BATCH_MAX_PAGES];		/* page index, for LACK_DUP */
	struct wc_key keys[RF_BATCH_MAX_PAGES];		/* per page (data pages only) */
};

struct recv_item {
	struct recv_item *next;
	bool complete;
	struct recv_batch *batch;			/* NULL: an area (or runs) */
	uint8_t *runs;					/* RUNS: nr_runs * RF_RUN_BYTES */
	uint32_t nr_runs;
	struct wc_area_desc desc;
	char name[RF_NAME_MAX + 1];
};

static void item_free(struct recv_item *it)
{
	if (it) {
		free(it->batch);
		free(it->runs);
		free(it);
	}
}

struct rf_recv {
	struct wc_source *have;
	struct wc_sink *out;
	rf_reply_fn reply;
	void *userdata;

	struct recv_item *head, *tail;
	unsigned nr_queued, nr_waiting;		/* items / batches awaiting PAGES */

	bool in_area;
	uint64_t area_left;			/* pages still to be announced */
	uint32_t next_seq;

	/* blob being received */
	char blob_name[RF_NAME_MAX + 1];
	uint8_t *blob;
	uint64_t blob_total, blob_off;
	bool blob_open;
	uint64_t nr_labels;

	uint8_t *buf;				/* RF_BATCH_MAX_PAGES pages */
	struct wc_page_req *reqs;
	struct wc_key *keys_tmp;
	uint8_t *bits_tmp;
	uint8_t *kinds_tmp;			/* RUNS: RF_RECV_RUN_CHUNK kinds */

	bool committed;
	char id[WC_ID_LEN + 1];
	struct rf_recv_stats st;

	/* --lazy */
	bool lazy;
	bool unkeyed;				/* RF_PUSH_UNKEYED */
	uint64_t area_start, area_pos, prev_end;
	bool area_lazy;
	struct rf_lazy_table lz;
};

int rf_recv_new(struct wc_source *have, struct wc_sink *out, rf_reply_fn reply, void *userdata,
		struct rf_recv **ret)
{
	struct rf_recv *rv = calloc(1, sizeof(*rv));

	if (!rv)
		return -ENOMEM;
	rv->have = have;
	rv->out = out;
	rv->reply = reply;
	rv->userdata = userdata;
	rv->buf = malloc((size_t)RF_BATCH_MAX_PAGES * WC_PAGE_SIZE);
	rv->reqs = calloc(RF_BATCH_MAX_PAGES, sizeof(*rv->reqs));
	rv->keys_tmp = calloc(RF_BATCH_MAX_PAGES, sizeof(*rv->keys_tmp));
	rv->bits_tmp = calloc(RF_BATCH_MAX_PAGES / 8, 1);
	rv->kinds_tmp = malloc(RF_RECV_RUN_CHUNK);
	if (!rv->buf || !rv->reqs || !rv->keys_tmp || !rv->bits_tmp || !rv->kinds_tmp) {
		rf_recv_free(rv);
		return -ENOMEM;
	}
	*ret = rv;
	return 0;
}

void rf_recv_free(struct rf_recv *rv)
{
	if (!rv)
		return;
	while (rv->head) {
		struct recv_item *it = rv->head;

		rv->head = it->next;
		item_free(it);
	}
	rf_lazy_table_fini(&rv->lz);
	free(rv->blob);
	free(rv->buf);
	free(rv->reqs);
	free(rv->keys_tmp);
	free(rv->bits_tmp);
	free(rv->kinds_tmp);
	free(rv);
}

const char *rf_recv_id(const struct rf_recv *rv)
{
	return rv->committed ? rv->id : NULL;
}

void rf_recv_stats(const struct rf_recv *rv, struct rf_recv_stats *ret)
{
	*ret = rv->st;
}

static inline bool needs_bytes(const struct recv_batch *b, uint32_t i)
{
	return b->kinds[i] == WC_PAGE_DATA && b->lack[i] != LACK_HAVE;
}

/* With the sink's put_keys: pages the receiver holds (and zero or absent
 * pages) are recorded by kind and key alone, nothing read back, copied or
 * hashed; only the pages that arrived (LACK_SENT, LACK_DUP) go through
 * put_pages, in runs, so that the sink still sees the pages in order. */
static int apply_batch_keys(struct rf_recv *rv, struct recv_batch *b, const uint8_t *data)
{
	size_t j = 0;
	int r;

	for (uint32_t i = 0; i < b->nr_pages; i++) {
		uint8_t *dst = rv->buf + (size_t)i * WC_PAGE_SIZE;
		struct wc_key k;

		if (b->kinds[i] != WC_PAGE_DATA || b->lack[i] != LACK_SENT)
			continue;
		memcpy(dst, data + j++ * WC_PAGE_SIZE, WC_PAGE_SIZE);
		rf_page_key(dst, &k);
		if (!wc_key_eq(&k, &b->keys[i]))
			return err_set(EPROTO, "page %u of batch %u does not match its "
				       "key %016llx%016llx", i, b->seq,
				       (unsigned long long)b->keys[i].hi,
				       (unsigned long long)b->keys[i].lo);
	}
	for (uint32_t i = 0; i < b->nr_pages; i++)
		if (b->kinds[i] == WC_PAGE_DATA && b->lack[i] == LACK_DUP)
			memcpy(rv->buf + (size_t)i * WC_PAGE_SIZE,
			       rv->buf + (size_t)b->dup_of[i] * WC_PAGE_SIZE, WC_PAGE_SIZE);

	for (uint32_t i = 0; i < b->nr_pages;) {
		uint32_t end = i;
		bool bytes = needs_bytes(b, i);

		while (end < b->nr_pages && needs_bytes(b, end) == bytes)
			end++;
		if (bytes) {
			/* All data pages: no kinds needed. */
			r = rv->out->ops->put_pages(rv->out, rv->buf + (size_t)i * WC_PAGE_SIZE,
						    NULL, end - i);
		} else {
			size_t d = 0;

			for (uint32_t p = i; p < end; p++)
				if (b->kinds[p] == WC_PAGE_DATA)
					rv->keys_tmp[d++] = b->keys[p];
			rv->st.pages_local += d;
			r = rv->out->ops->put_keys(rv->out, b->kinds + i, rv->keys_tmp, end - i);
		}
		if (r < 0)
			return r;
		i = end;
	}
	return 0;
}

/* Build the batch's pages in rv->buf and hand them to the sink. @data holds
 * the batch's LACK_SENT pages back to back (NULL if there are none). */
static int apply_batch(struct rf_recv *rv, struct recv_batch *b, const uint8_t *data)
{
	size_t nr_reqs = 0, j = 0;
	int r;

	if (rv->out->ops->put_keys)
		return apply_batch_keys(rv, b, data);

	for (uint32_t i = 0; i < b->nr_pages; i++) {
		uint8_t *dst = rv->buf + (size_t)i * WC_PAGE_SIZE;

		if (b->kinds[i] == WC_PAGE_ZERO) {
			memset(dst, 0, WC_PAGE_SIZE);
		} else if (b->kinds[i] == WC_PAGE_DATA) {
			if (b->lack[i] == LACK_SENT) {
				struct wc_key k;

				memcpy(dst, data + j++ * WC_PAGE_SIZE, WC_PAGE_SIZE);
				rf_page_key(dst, &k);
				if (!wc_key_eq(&k, &b->keys[i]))
					return err_set(EPROTO, "page %u of batch %u does not match its "
						       "key %016llx%016llx", i, b->seq,
						       (unsigned long long)b->keys[i].hi,
						       (unsigned long long)b->keys[i].lo);
			} else if (b->lack[i] == LACK_HAVE) {
				rv->reqs[nr_reqs].key = b->keys[i];
				rv->reqs[nr_reqs++].dst = dst;
			}
		}
	}
	/* Duplicates point to an earlier LACK_SENT page, filled above. */
	for (uint32_t i = 0; i < b->nr_pages; i++)
		if (b->kinds[i] == WC_PAGE_DATA && b->lack[i] == LACK_DUP)
			memcpy(rv->buf + (size_t)i * WC_PAGE_SIZE,
			       rv->buf + (size_t)b->dup_of[i] * WC_PAGE_SIZE, WC_PAGE_SIZE);
	if (nr_reqs) {
		r = rv->have->ops->read_pages(rv->have, rv->reqs, nr_reqs);
		if (r < 0)
			return err_wrap(r, "reading pages the receiver holds");
	}
	rv->st.pages_local += nr_reqs;
	return rv->out->ops->put_pages(rv->out, rv->buf, b->kinds, b->nr_pages);
}

/* RUNS: the pages of the partial snapshot by kind alone, a chunk at a
 * time (a lazy page is ABSENT there). */
static int apply_runs(struct rf_recv *rv, const uint8_t *runs, uint32_t nr_runs)
{
	int r = 0;

	for (uint32_t i = 0; r >= 0 && i < nr_runs; i++) {
		uint64_t left = rf_get_u32(runs + RF_RUN_BYTES * i);
		uint32_t kind = rf_get_u32(runs + RF_RUN_BYTES * i + 4);
		uint8_t k = kind == WC_PAGE_ZERO ? WC_PAGE_ZERO : WC_PAGE_ABSENT;

		while (r >= 0 && left) {
			size_t n;

			if (rv->out->ops->put_keys) {
				n = MIN(left, (uint64_t)RF_RECV_RUN_CHUNK);
				memset(rv->kinds_tmp, k, n);
				r = rv->out->ops->put_keys(rv->out, rv->kinds_tmp, rv->keys_tmp, n);
			} else {
				/* Zero pages need a buffer of zeros for put_pages. */
				n = MIN(left, (uint64_t)RF_BATCH_MAX_PAGES);
				memset(rv->kinds_tmp, k, n);
				if (k == WC_PAGE_ZERO)
					memset(rv->buf, 0, n * WC_PAGE_SIZE);
				r = rv->out->ops->put_pages(rv->out, k == WC_PAGE_ZERO ? rv->buf : NULL,
							    rv->kinds_tmp, n);
			}
			left -= n;
		}
	}
	return r;
}

/* Hand every complete item at the head of the queue to the sink. */
static int drain(struct rf_recv *rv)
{
	while (rv->head && rv->head->complete) {
		struct recv_item *it = rv->head;
		int r;

		if (it->runs)
			r = apply_runs(rv, it->runs, it->nr_runs);
		else if (!it->batch)
			r = rv->out->ops->begin_area(rv->out, &it->desc);
		else
			r = apply_batch(rv, it->batch, NULL);
		if (r < 0)
			return r;
		rv->head = it->next;
		if (!rv->head)
			rv->tail = NULL;
		rv->nr_queued--;
		item_free(it);
	}
	return 0;
}

static int enqueue(struct rf_recv *rv, struct recv_item *it)
{
	if (rv->nr_queued >= RF_RECV_MAX_QUEUED) {
		item_free(it);
		return err_set(EPROTO, "sender ran more than %u items ahead", RF_RECV_MAX_QUEUED);
	}
	if (rv->tail)
		rv->tail->next = it;
	else
		rv->head = it;
	rv->tail = it;
	rv->nr_queued++;
	return drain(rv);
}

static int on_area(struct rf_recv *rv, const struct rf_msg *m)
{
	struct recv_item *it;

	if (rv->in_area && rv->area_left)
		return err_set(EPROTO, "AREA before the previous area's %llu pages",
			       (unsigned long long)rv->area_left);
	if (rv->st.nr_areas >= RF_MAX_AREAS)
		return err_set(EPROTO, "more than %u areas", RF_MAX_AREAS);
	/* Lazy pages are numbered in address order: areas ascend. */
	if (rv->lazy && rv->st.nr_areas && m->area.start < rv->prev_end)
		return err_set(EPROTO, "AREA 0x%llx below the previous area's end",
			       (unsigned long long)m->area.start);
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->complete = true;
	it->desc = (struct wc_area_desc){
		.start = m->area.start,
		.nr_pages = m->area.nr_pages,
		.prot = m->area.prot,
		.flags = m->area.flags,
	};
	if (m->area.name) {
		memcpy(it->name, m->area.name, m->area.name_len);
		it->name[m->area.name_len] = 0;
		it->desc.name = it->name;
	}
	if (rv->lazy)
		rv->prev_end = m->area.start + m->area.nr_pages * WC_PAGE_SIZE;
	rv->area_start = m->area.start;
	rv->area_pos = 0;
	rv->area_lazy = rv->lazy && rf_area_is_lazy(m->area.flags);
	rv->in_area = true;
	rv->area_left = m->area.nr_pages;
	rv->st.nr_areas++;
	return enqueue(rv, it);
}

/* Index of an earlier lacking page of the batch with the same key, or -1.
 * A small open-addressing table over the batch (at most 1024 entries). */
#define DUP_SLOTS 2048u
static void dedup_lacking(struct recv_batch *b)
{
	int16_t slot[DUP_SLOTS];

	memset(slot, 0xff, sizeof(slot));
	for (uint32_t i = 0; i < b->nr_pages; i++) {
		unsigned h;

		if (b->kinds[i] != WC_PAGE_DATA || b->lack[i] != LACK_SENT)
			continue;
		h = (unsigned)(b->keys[i].lo ^ (b->keys[i].hi >> 7)) % DUP_SLOTS;
		while (slot[h] >= 0 && !wc_key_eq(&b->keys[slot[h]], &b->keys[i]))
			h = (h + 1) % DUP_SLOTS;
		if (slot[h] >= 0) {
			b->lack[i] = LACK_DUP;
			b->dup_of[i] = slot[h];
			b->nr_lacking--;
		} else {
			slot[h] = i;
		}
	}
}

void rf_lazy_table_fini(struct rf_lazy_table *t)
{
	free(t->addr);
	free(t->keys);
	free(t->area_starts);
	for (size_t i = 0; i < t->nr_blobs; i++)
		free(t->blobs[i]);
	free(t->blobs);
	memset(t, 0, sizeof(*t));
}

void rf_recv_set_lazy(struct rf_recv *rv)
{
	rv->lazy = true;
}

void rf_recv_set_unkeyed(struct rf_recv *rv)
{
	rv->lazy = rv->unkeyed = rv->lz.unkeyed = true;
}

void rf_recv_take_lazy(struct rf_recv *rv, struct rf_lazy_table *ret)
{
	*ret = rv->lz;
	memset(&rv->lz, 0, sizeof(rv->lz));
}

/* Room for @nr_new more lazy pages in the current area (keys only when
 * keyed: an unkeyed push's keys are computed on arrival). */
static int lazy_grow(struct rf_recv *rv, uint64_t nr_new)
{
	struct rf_lazy_table *t = &rv->lz;

	if (nr_new > RF_LAZY_MAX_ENTRIES - t->nr)
		return err_set(EPROTO, "more than %u lazy pages", RF_LAZY_MAX_ENTRIES);
	if (t->nr + nr_new > t->cap) {
		uint32_t cap = MAX(t->cap * 2, t->nr + (uint32_t)nr_new + 4096);
		uint64_t *a = realloc(t->addr, (size_t)cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		t->addr = a;
		if (!rv->unkeyed) {
			struct wc_key *k = realloc(t->keys, (size_t)cap * sizeof(*k));

			if (!k)
				return -ENOMEM;
			t->keys = k;
		}
		t->cap = cap;
	}
	if (!t->nr_areas || t->area_starts[t->nr_areas - 1] != rv->area_start) {
		if (t->nr_areas == t->areas_cap) {
			size_t cap = MAX(t->areas_cap * 2, (uint32_t)16);
			uint64_t *a = realloc(t->area_starts, cap * sizeof(*a));

			if (!a)
				return -ENOMEM;
			t->area_starts = a;
			t->areas_cap = cap;
		}
		t->area_starts[t->nr_areas++] = rv->area_start;
	}
	return 0;
}

/* A batch of a lazy area: its lacking pages (or, unkeyed, its
 * RF_KIND_LAZY pages: @nr_new in all) become lazy pages (numbered in
 * LACKS order, as the sender numbers them) and ABSENT in the snapshot; the
 * batch is complete at once. */
static int lazy_note(struct rf_recv *rv, struct recv_batch *b, uint32_t nr_new)
{
	struct rf_lazy_table *t = &rv->lz;
	int r;

	r = lazy_grow(rv, nr_new);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < b->nr_pages; i++) {
		if (b->kinds[i] == RF_KIND_LAZY) {
			/* Unkeyed: its key is known on arrival (rf_lazy_start()
			 * allocates the keys). */
			t->addr[t->nr++] = rv->area_start + (rv->area_pos + i) * WC_PAGE_SIZE;
			b->kinds[i] = WC_PAGE_ABSENT;
			continue;
		}
		if (b->kinds[i] != WC_PAGE_DATA || b->lack[i] != LACK_SENT)
			continue;
		t->addr[t->nr] = rv->area_start + (rv->area_pos + i) * WC_PAGE_SIZE;
		t->keys[t->nr++] = b->keys[i];
		b->kinds[i] = WC_PAGE_ABSENT;
		b->lack[i] = LACK_HAVE;
	}
	rv->st.pages_lazy += nr_new;
	b->nr_lacking = 0;
	return 0;
}

static int on_keys(struct rf_recv *rv, const struct rf_msg *m)
{
	struct recv_item *it;
	struct recv_batch *b;
	uint8_t *bits = rv->bits_tmp;
	uint32_t d = 0, nr_unkeyed = 0;
	int r;

	/* RF_KIND_LAZY only in a lazy area of an unkeyed push, where every
	 * present page is one (the numbering of lazy pages relies on it). */
	for (uint32_t i = 0; i < m->keys.nr_pages; i++) {
		bool unkeyed_area = rv->unkeyed && rv->area_lazy;

		if (m->keys.kinds[i] == RF_KIND_LAZY && !unkeyed_area)
			return err_set(EPROTO, "KEYS: page %u of batch %u is lazy outside an "
				       "unkeyed lazy area", i, m->keys.seq);
		if (m->keys.kinds[i] == WC_PAGE_DATA && unkeyed_area)
			return err_set(EPROTO, "KEYS: page %u of batch %u has a key in an "
				       "unkeyed lazy area", i, m->keys.seq);
		nr_unkeyed += m->keys.kinds[i] == RF_KIND_LAZY;
	}
	if (!rv->in_area || m->keys.nr_pages > rv->area_left)
		return err_set(EPROTO, "KEYS for %u pages outside any announced area", m->keys.nr_pages);
	if (m->keys.seq != rv->next_seq)
		return err_set(EPROTO, "KEYS batch %u, expected %u", m->keys.seq, rv->next_seq);
	if (rv->nr_waiting >= RF_MAX_INFLIGHT)
		return err_set(EPROTO, "more than %u batches awaiting their pages", RF_MAX_INFLIGHT);
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	b = it->batch = calloc(1, sizeof(*b));
	if (!b) {
		free(it);
		return -ENOMEM;
	}
	b->seq = m->keys.seq;
	b->nr_pages = m->keys.nr_pages;
	b->nr_data = m->keys.nr_data;
	memcpy(b->kinds, m->keys.kinds, b->nr_pages);
	for (uint32_t i = 0; i < b->nr_pages; i++)
		if (b->kinds[i] == WC_PAGE_DATA)
			rf_get_key(m->keys.keys + 16 * d++, &b->keys[i]);

	if (b->nr_data) {
		d = 0;
		for (uint32_t i = 0; i < b->nr_pages; i++)
			if (b->kinds[i] == WC_PAGE_DATA)
				rv->keys_tmp[d++] = b->keys[i];
		memset(bits, 0, RF_BATCH_MAX_PAGES / 8);
		r = rv->have->ops->lacks(rv->have, rv->keys_tmp, b->nr_data, bits);
		if (r < 0) {
			item_free(it);
			return err_wrap(r, "looking up announced keys");
		}
		d = 0;
		for (uint32_t i = 0; i < b->nr_pages; i++) {
			if (b->kinds[i] != WC_PAGE_DATA)
				continue;
			if ((bits[d / 8] >> (d % 8)) & 1) {
				b->lack[i] = LACK_SENT;
				b->nr_lacking++;
			}
			d++;
		}
		if (!rv->area_lazy)
			dedup_lacking(b);
	}

	if (rv->unkeyed && rv->area_lazy) {
		/* Nothing to look up: no LACKS (the sender does not wait). */
		r = 0;
	} else {
		uint8_t msg[8 + RF_BATCH_MAX_PAGES / 8] = {};
		size_t len = 8 + (b->nr_pages + 7) / 8;

		rf_put_u32(msg, b->seq);
		rf_put_u32(msg + 4, b->nr_pages);
		for (uint32_t i = 0; i < b->nr_pages; i++)
			if (b->kinds[i] == WC_PAGE_DATA && b->lack[i] == LACK_SENT)
				msg[8 + i / 8] |= 1u << (i % 8);
		r = rv->reply(rv->userdata, RF_MSG_LACKS, msg, len);
	}
	if (r >= 0 && rv->area_lazy && (b->nr_lacking || nr_unkeyed))
		r = lazy_note(rv, b, b->nr_lacking + nr_unkeyed);
	if (r < 0) {
		item_free(it);
		return r;
	}
	rv->area_pos += b->nr_pages;
	rv->next_seq++;
	rv->area_left -= b->nr_pages;
	rv->st.nr_batches++;
	rv->st.pages_total += b->nr_pages;
	rv->st.pages_data += b->nr_data;
	for (uint32_t i = 0; i < b->nr_pages; i++)
		rv->st.pages_dup += b->lack[i] == LACK_DUP;
	it->complete = b->nr_lacking == 0;
	if (!it->complete)
		rv->nr_waiting++;
	return enqueue(rv, it);
}

/* RUNS: a batch of an unkeyed lazy area by runs of kinds (no LACKS). Its
 * RF_KIND_LAZY pages become the next lazy pages, in address order. */
static int on_runs(struct rf_recv *rv, const struct rf_msg *m)
{
	struct rf_lazy_table *t = &rv->lz;
	uint64_t pos = rv->area_pos;
	struct recv_item *it;
	int r;

	if (!rv->unkeyed || !rv->area_lazy)
		return err_set(EPROTO, "RUNS outside an unkeyed lazy area");
	if (!rv->in_area || m->runs.nr_pages > rv->area_left)
		return err_set(EPROTO, "RUNS for %llu pages outside any announced area",
			       (unsigned long long)m->runs.nr_pages);
	if (m->runs.seq != rv->next_seq)
		return err_set(EPROTO, "RUNS batch %u, expected %u", m->runs.seq, rv->next_seq);
	if (m->runs.nr_lazy) {
		r = lazy_grow(rv, m->runs.nr_lazy);
		if (r < 0)
			return r;
	}
	for (uint32_t i = 0; i < m->runs.nr; i++) {
		uint32_t count = rf_get_u32(m->runs.runs + RF_RUN_BYTES * i);

		if (rf_get_u32(m->runs.runs + RF_RUN_BYTES * i + 4) == RF_KIND_LAZY) {
			uint64_t a = rv->area_start + pos * WC_PAGE_SIZE;

			for (uint32_t j = 0; j < count; j++, a += WC_PAGE_SIZE)
				t->addr[t->nr++] = a;
		}
		pos += count;
	}
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->complete = true;
	it->nr_runs = m->runs.nr;
	it->runs = malloc((size_t)m->runs.nr * RF_RUN_BYTES);
	if (!it->runs) {
		free(it);
		return -ENOMEM;
	}
	memcpy(it->runs, m->runs.runs, (size_t)m->runs.nr * RF_RUN_BYTES);
	rv->st.pages_lazy += m->runs.nr_lazy;
	rv->area_pos += m->runs.nr_pages;
	rv->area_left -= m->runs.nr_pages;
	rv->next_seq++;
	rv->st.nr_batches++;
	rv->st.pages_total += m->runs.nr_pages;
	return enqueue(rv, it);
}

static int on_pages(struct rf_recv *rv, const struct rf_msg *m)
{
	struct recv_item *it = rv->head;
	struct recv_batch *b;
	int r;

	/* drain() leaves an incomplete batch at the head, if any. */
	if (!it || it->complete)
		return err_set(EPROTO, "PAGES for batch %u that awaits none", m->pages.seq);
	b = it->batch;
	if (m->pages.seq != b->seq || m->pages.nr != b->nr_lacking)
		return err_set(EPROTO, "PAGES: batch %u with %u pages, expected batch %u with %u",
			       m->pages.seq, m->pages.nr, b->seq, b->nr_lacking);
	r = apply_batch(rv, b, m->pages.data);
	if (r < 0)
		return r;
	rv->st.pages_received += b->nr_lacking;
	rv->head = it->next;
	if (!rv->head)
		rv->tail = NULL;
	rv->nr_queued--;
	rv->nr_waiting--;
	item_free(it);
	return drain(rv);
}

static int on_blob(struct rf_recv *rv, const struct rf_msg *m)
{
	int r;

	if (m->blob.offset == 0 && !rv->blob_open) {
		if (rv->st.nr_blobs >= RF_MAX_BLOBS)
			return err_set(EPROTO, "more than %u blobs", RF_MAX_BLOBS);
		memcpy(rv->blob_name, m->blob.name, m->blob.name_len);
		rv->blob_name[m->blob.name_len] = 0;
		rv->blob_total = m->blob.total_len;
		rv->blob_off = 0;
		/* total_len <= RF_BLOB_MAX, checked by the parser. */
		rv->blob = malloc(rv->blob_total ? rv->blob_total : 1);
		if (!rv->blob)
			return -ENOMEM;
		rv->blob_open = true;
	} else if (!rv->blob_open || m->blob.offset != rv->blob_off ||
		   m->blob.total_len != rv->blob_total || m->blob.name_len != strlen(rv->blob_name) ||
		   memcmp(m->blob.name, rv->blob_name, m->blob.name_len) != 0) {
		return err_set(EPROTO, "BLOB chunk at %llu out of sequence",
			       (unsigned long long)m->blob.offset);
	}
	if (m->blob.len == 0 && rv->blob_total != 0)
		return err_set(EPROTO, "empty BLOB chunk");
	memcpy(rv->blob + rv->blob_off, m->blob.data, m->blob.len);
	rv->blob_off += m->blob.len;
	if (rv->blob_off < rv->blob_total)
		return 0;
	r = rv->out->ops->put_blob(rv->out, rv->blob_name, rv->blob, rv->blob_total);
	if (r >= 0 && rv->lazy) {
		/* RF_MAX_BLOBS bounds this list. */
		char **b = realloc(rv->lz.blobs, (rv->lz.nr_blobs + 1) * sizeof(*b));

		if (!b || !(b[rv->lz.nr_blobs] = strdup(rv->blob_name))) {
			if (b)
				rv->lz.blobs = b;
			r = -ENOMEM;
		} else {
			rv->lz.blobs = b;
			rv->lz.nr_blobs++;
		}
	}
	free(rv->blob);
	rv->blob = NULL;
	rv->blob_open = false;
	rv->st.nr_blobs++;
	return r;
}

static int on_label(struct rf_recv *rv, const struct rf_msg *m)
{
	_cleanup_free_ char *key = NULL, *value = NULL;

	if (rv->nr_labels >= RF_MAX_LABELS)
		return err_set(EPROTO, "more than %u labels", RF_MAX_LABELS);
	key = strndup(m->label.key, m->label.key_len);
	value = strndup(m->label.value, m->label.value_len);
	if (!key || !value)
		return -ENOMEM;
	rv->nr_labels++;
	return rv->out->ops->put_label(rv->out, key, value);
}

static int on_commit(struct rf_recv *rv, const struct rf_msg *m)
{
	struct timespec t0, t1;
	uint8_t msg[WC_ID_LEN];
	int r;

	if (rv->blob_open)
		return err_set(EPROTO, "COMMIT inside blob \"%s\"", rv->blob_name);
	if (rv->in_area && rv->area_left)
		return err_set(EPROTO, "COMMIT before the last area's %llu pages",
			       (unsigned long long)rv->area_left);
	if (rv->head)
		return err_set(EPROTO, "COMMIT while batch %u awaits its pages",
			       rv->head->batch ? rv->head->batch->seq : 0);
	if (m->commit.nr_areas != rv->st.nr_areas || m->commit.nr_batches != rv->st.nr_batches ||
	    m->commit.nr_pages != rv->st.pages_total)
		return err_set(EPROTO, "COMMIT totals (%llu areas, %llu batches, %llu pages) differ "
			       "from what arrived (%llu, %llu, %llu)",
			       (unsigned long long)m->commit.nr_areas,
			       (unsigned long long)m->commit.nr_batches,
			       (unsigned long long)m->commit.nr_pages,
			       (unsigned long long)rv->st.nr_areas,
			       (unsigned long long)rv->st.nr_batches,
			       (unsigned long long)rv->st.pages_total);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = rv->out->ops->commit(rv->out, rv->id);
	if (r < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	rv->st.commit_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + t1.tv_nsec - t0.tv_nsec;
	rv->committed = true;
	memcpy(msg, rv->id, WC_ID_LEN);
	r = rv->reply(rv->userdata, RF_MSG_COMMITTED, msg, sizeof(msg));
	return r < 0 ? r : 1;
}

int rf_recv_handle(struct rf_recv *rv, const struct rf_msg *m)
{
	if (rv->committed)
		return err_set(EPROTO, "%s after COMMIT", rf_msg_name(m->type));
	if (rv->blob_open && m->type != RF_MSG_BLOB)
		return err_set(EPROTO, "%s inside blob \"%s\"", rf_msg_name(m->type), rv->blob_name);
	switch (m->type) {
	case RF_MSG_AREA:
		return on_area(rv, m);
	case RF_MSG_KEYS:
		return on_keys(rv, m);
	case RF_MSG_RUNS:
		return on_runs(rv, m);
	case RF_MSG_PAGES:
		return on_pages(rv, m);
	case RF_MSG_BLOB:
		return on_blob(rv, m);
	case RF_MSG_LABEL:
		return on_label(rv, m);
	case RF_MSG_COMMIT:
		return on_commit(rv, m);
	default:
		return err_set(EPROTO, "unexpected %s during a push", rf_msg_name(m->type));
	}
}

/* ----------------------------------------------------------- over a session */

static int reply_session(void *userdata, uint16_t type, const void *payload, size_t len)
{
	struct rf_session *s = userdata;

	memcpy(rf_session_frame(s, type, len), payload, len);
	return rf_session_send(s, len);
}

static int serve_push(struct rf_session *s, struct wc_source *have, struct wc_sink *out,
		      char ret_id[WC_ID_LEN + 1], struct rf_recv_stats *ret_stats,
		      struct rf_lazy_table *ret_lazy)
{
	struct rf_recv *rv;
	int r;

	r = rf_recv_new(have, out, reply_session, s, &rv);
	if (r < 0)
		return r;
	if (ret_lazy && ret_lazy->unkeyed)
		rf_recv_set_unkeyed(rv);
	else if (ret_lazy)
		rf_recv_set_lazy(rv);
	for (;;) {
		struct rf_msg m;

		r = rf_session_recv(s, &m);
		if (r == -ENODATA)
			r = err_set(ECONNRESET, "sender closed the connection before COMMIT");
		if (r < 0)
			break;
		r = rf_recv_handle(rv, &m);
		if (r != 0)
			break;
	}
	if (ret_stats)
		rf_recv_stats(rv, ret_stats);
	if (r == 1) {
		memcpy(ret_id, rv->id, WC_ID_LEN + 1);
		r = 0;
	} else if (r != -ECONNRESET && r != -ECONNABORTED && r != -ETIMEDOUT && r != -EPIPE) {
		/* Tell the sender why, in one line (it may be what broke). */
		rf_session_send_error(s, r, err_str(r));
	}
	if (ret_lazy)
		rf_recv_take_lazy(rv, ret_lazy);
	rf_recv_free(rv);
	return r;
}

int rf_serve_push(struct rf_session *s, struct wc_source *have, struct wc_sink *out,
		  char ret_id[WC_ID_LEN + 1], struct rf_recv_stats *ret_stats)
{
	return serve_push(s, have, out, ret_id, ret_stats, NULL);
}

int rf_serve_push_lazy(struct rf_session *s, struct wc_source *have, struct wc_sink *out,
		       char ret_id[WC_ID_LEN + 1], struct rf_recv_stats *ret_stats,
		       struct rf_lazy_table *ret_lazy)
{
	return serve_push(s, have, out, ret_id, ret_stats, ret_lazy);
}
