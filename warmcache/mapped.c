// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Pages of the store mapped in place (wc_store_map_keys): the packs that
 * hold them are mapped read-only, every page is hashed where it lies and
 * must match its key, and the caller gets a pointer per key. Used by a
 * post-copy restore, which places each page with UFFDIO_COPY straight
 * from these pointers long after the check (engine/restore/postcopy.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "common/compiler.h"
#include "common/err.h"
#include "wc-internal.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif

#define POPULATE_CHUNK		256u	/* pages: 1 MiB */

struct wc_mapped {
	size_t nr;
	struct {
		const uint8_t *base;	/* NULL: not mapped */
		size_t len;
		uint64_t *populated;	/* bit per POPULATE_CHUNK pages */
	} *maps;			/* [nr] one per pack slot */
};

void wc_mapped_free(struct wc_mapped *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nr; i++)
		if (m->maps[i].base)
			munmap((void *)m->maps[i].base, m->maps[i].len);
	for (size_t i = 0; i < m->nr; i++)
		free(m->maps[i].populated);
	free(m->maps);
	free(m);
}

static int map_slot(struct wc_store *s, struct wc_mapped *m, size_t slot)
{
	struct stat st;
	size_t len;
	void *p;
	int r;

	if (m->maps[slot].base)
		return 0;
	r = wc_store_pack_fd(s, slot);
	if (r < 0)
		return err_set(r, "store \"%s\": cannot open pack-%08" PRIx32 ": %s", s->dir,
			       s->packs[slot].id, strerror(-r));
	if (fstat(s->packs[slot].fd, &st) < 0)
		return err_set(errno, "store \"%s\": pack-%08" PRIx32 ": %m", s->dir,
			       s->packs[slot].id);
	len = (size_t)st.st_size & ~(size_t)(WC_PAGE_SIZE - 1);
	if (len == 0)
		return err_set(EBADMSG, "store \"%s\": pack-%08" PRIx32 " is empty", s->dir,
			       s->packs[slot].id);
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, s->packs[slot].fd, 0);
	if (p == MAP_FAILED)
		return err_set(errno, "store \"%s\": cannot map pack-%08" PRIx32 ": %m", s->dir,
			       s->packs[slot].id);
	m->maps[slot].populated = calloc(len / WC_PAGE_SIZE / POPULATE_CHUNK / 64 + 1,
					 sizeof(uint64_t));
	if (!m->maps[slot].populated) {
		munmap(p, len);
		return -ENOMEM;
	}
	m->maps[slot].base = p;
	m->maps[slot].len = len;
	return 0;
}

int wc_store_map_keys(struct wc_store *s, const struct wc_key *keys, size_t nr,
		      const uint8_t **ret_pages, struct wc_mapped **ret)
{
	struct wc_mapped *m;
	bool refreshed = false;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < nr; i++) {
		const struct wc_ient *e;
		const uint8_t *page;
		struct wc_key got;
		size_t slot;

		if (i + 16 < nr)
			wc_index_prefetch(&s->index, &keys[i + 16]);
		e = wc_index_get(&s->index, &keys[i]);
		if (!e && !refreshed) {
			/* Written by another process since the index was loaded? */
			refreshed = true;
			r = wc_store_refresh(s, false);
			if (r < 0)
				goto fail;
			e = wc_index_get(&s->index, &keys[i]);
		}
		if (!e) {
			r = err_set(EBADMSG, "page %016" PRIx64 "%016" PRIx64 " is missing from the "
				    "store \"%s\"", keys[i].hi, keys[i].lo, s->dir);
			goto fail;
		}
		if (m->nr < s->nr_packs) {
			void *n = realloc(m->maps, s->nr_packs * sizeof(*m->maps));

			if (!n) {
				r = -ENOMEM;
				goto fail;
			}
			m->maps = n;
			memset(m->maps + m->nr, 0, (s->nr_packs - m->nr) * sizeof(*m->maps));
			m->nr = s->nr_packs;
		}
		slot = e->pack - 1;
		r = map_slot(s, m, slot);
		if (r < 0)
			goto fail;
		if ((uint64_t)e->page >= m->maps[slot].len / WC_PAGE_SIZE) {
			r = err_set(EBADMSG, "store \"%s\" is damaged: pack-%08" PRIx32 " ends before "
				    "its page %" PRIu32, s->dir, s->packs[slot].id, e->page);
			goto fail;
		}
		page = m->maps[slot].base + (size_t)e->page * WC_PAGE_SIZE;
		/* The page cache pages of its chunk mapped in one call, not a
		 * fault per 16; only the chunks this snapshot uses (a pack shared
		 * by many snapshots may be far bigger). */
		{
			size_t c = e->page / POPULATE_CHUNK;
			uint64_t *bits = m->maps[slot].populated;

			if (!(bits[c / 64] & (1ull << (c % 64)))) {
				size_t first = c * POPULATE_CHUNK;
				size_t n = MIN((size_t)POPULATE_CHUNK,
					       m->maps[slot].len / WC_PAGE_SIZE - first);

				(void)madvise((void *)(m->maps[slot].base + first * WC_PAGE_SIZE),
					      n * WC_PAGE_SIZE, MADV_POPULATE_READ);
				bits[c / 64] |= 1ull << (c % 64);
			}
		}
		wc_key_of(page, &got);
		if (!wc_key_eq(&got, &keys[i])) {
			r = err_set(EBADMSG, "store \"%s\" is damaged: page %" PRIu32 " of pack-%08"
				    PRIx32 " does not match its key %016" PRIx64 "%016" PRIx64, s->dir,
				    e->page, s->packs[slot].id, keys[i].hi, keys[i].lo);
			goto fail;
		}
		ret_pages[i] = page;
	}
	*ret = m;
	return 0;
fail:
	wc_mapped_free(m);
	return r;
}
