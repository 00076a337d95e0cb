// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Garbage collection.
 *
 * Under DIR/lock held exclusively (no ingest runs, so no ingest can have
 * deduplicated against a page about to go), the live key set is computed
 * from every manifest. A manifest that does not parse stops gc: its pages
 * cannot be told from garbage. Then, per pack:
 *   - no live page:            the pack and its idx are deleted;
 *   - a dead page, an unrecorded page (a killed writer's tail) or a live
 *     page that an earlier kept pack already holds (two writers raced on
 *     the same data): its live pages not held elsewhere are copied (and
 *     re-verified) into a new pack, then it is deleted;
 *   - otherwise (every page live and held nowhere else): kept as is.
 * So after gc every page on disk is live and stored once.
 * New packs are complete, recorded and fdatasync'ed before any old pack is
 * unlinked, so a reader always finds every live page somewhere: a reader
 * with an old pack open keeps reading it, one that cannot open it reloads
 * the index and finds the page in the new pack. gc always syncs (it
 * deletes data), whatever the store's sync option.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "wc-internal.h"

struct gc_rec {
	struct wc_key key;
	uint32_t page;
};

struct gc_pack {
	uint32_t id;
	int fd;			/* locked */
	uint64_t size;
	struct gc_rec *recs;
	size_t nr_recs, cap_recs;
	uint64_t live;
	enum { GC_KEEP, GC_REWRITE, GC_DELETE } fate;
	bool failed;		/* a live page did not verify: keep the pack */
};

static int collect_rec(void *userdata, const struct wc_key *key, uint32_t page)
{
	struct gc_pack *p = userdata;

	if (p->nr_recs == p->cap_recs) {
		size_t ncap = p->cap_recs ? p->cap_recs * 2 : 1024;
		struct gc_rec *n = realloc(p->recs, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->recs = n;
		p->cap_recs = ncap;
	}
	p->recs[p->nr_recs].key = *key;
	p->recs[p->nr_recs].page = page;
	p->nr_recs++;
	return 0;
}

static int gc_live_set(struct wc_store *s, struct wc_index *live)
{
	char **ids = NULL;
	size_t nr = 0;
	int r;

	r = wc_store_list(s, &ids, &nr);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nr && r >= 0; i++) {
		struct wc_snapshot *snap;

		r = wc_snapshot_load(s, ids[i], &snap);
		if (r == -ENOENT) {
			r = 0;		/* removed meanwhile */
			continue;
		}
		if (r < 0) {
			r = err_wrap(r, "gc refused (remove or repair the snapshot first)");
			break;
		}
		for (size_t a = 0; a < wc_snapshot_nr_areas(snap) && r >= 0; a++) {
			const struct wc_area *area = wc_snapshot_area(snap, a);

			for (uint64_t k = 0; k < area->nr_data; k++) {
				r = wc_keyset_add(live, &area->keys[k]);
				if (r < 0)
					break;
			}
		}
		wc_snapshot_close(snap);
	}
	wc_id_list_free(ids, nr);
	return r < 0 ? r : 0;
}

static int gc_load_pack(struct wc_store *s, struct gc_pack *p)
{
	struct wc_idx_parse_result res;
	char name[32];
	struct stat st;
	int r;

	wc_pack_name(name, sizeof(name), p->id, "pack");
	p->fd = openat(s->packs_fd, name, O_RDONLY | O_CLOEXEC);
	if (p->fd < 0)
		return -errno;
	while (flock(p->fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return -errno;
	if (fstat(p->fd, &st) < 0)
		return -errno;
	p->size = (uint64_t)st.st_size;
	r = wc_pack_read_idx(s, p->id, p->size / WC_PAGE_SIZE, collect_rec, p, &res);
	if (r == -ENOMEM)
		return r;
	if (r < 0 || res.damaged) {
		/* Missing or damaged idx: rehash the pack (we hold its lock). */
		p->nr_recs = 0;
		r = wc_pack_rebuild_idx(s, p->id, p->fd, false, collect_rec, p);
	}
	return r;
}

static void unlink_tmp_files(int dirfd)
{
	DIR *d = opendir_at(dirfd);
	struct dirent *de;

	if (!d)
		return;
	/* Leftovers of killed writers (".tmp-pack-*", ".ID.snap.tmp-*",
	 * ".pack-*.idx.rebuild"); under the exclusive lock no ingest runs. */
	while ((de = readdir(d)))
		if (de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd, de->d_name, 0);
	closedir(d);
}

/* idx files whose pack is gone (gc killed between the two unlinks). */
static void unlink_orphan_idx(struct wc_store *s)
{
	DIR *d = opendir_at(s->packs_fd);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char pack[64];

		if (len != 17 || strncmp(de->d_name, "pack-", 5) || strcmp(de->d_name + 13, ".idx"))
			continue;
		snprintf(pack, sizeof(pack), "%.13s.pack", de->d_name);
		if (faccessat(s->packs_fd, pack, F_OK, 0) < 0 && errno == ENOENT)
			unlinkat(s->packs_fd, de->d_name, 0);
	}
	closedir(d);
}

int wc_store_gc(struct wc_store *s, struct wc_gc_stats *ret_stats)
{
	struct wc_gc_stats st = {};
	struct wc_index live = {}, claimed = {};
	struct gc_pack *packs = NULL;
	struct wc_writer *w = NULL;
	_cleanup_free_ uint8_t *page = NULL;
	size_t nr = 0;
	uint64_t copied = 0;
	int lock_fd, r;

	if (s->flags & WC_OPEN_RDONLY)
		return err_set(EROFS, "store \"%s\" is open read-only", s->dir);
	lock_fd = wc_store_lock(s, true);
	if (lock_fd < 0)
		return lock_fd;
	page = aligned_alloc(WC_PAGE_SIZE, WC_PAGE_SIZE);
	if (!page) {
		r = -ENOMEM;
		goto out;
	}
	r = wc_store_refresh(s, true);
	if (r < 0)
		goto out;
	r = gc_live_set(s, &live);
	if (r < 0)
		goto out;

	nr = s->nr_packs;
	packs = calloc(nr ? nr : 1, sizeof(*packs));
	if (!packs) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nr; i++) {
		packs[i].id = s->packs[i].id;
		packs[i].fd = -1;
	}
	for (size_t i = 0; i < nr; i++) {
		r = gc_load_pack(s, &packs[i]);
		if (r < 0) {
			r = err_set(r, "gc: cannot read pack-%08" PRIx32 ": %s", packs[i].id, strerror(-r));
			goto out;
		}
		st.bytes_before += packs[i].size;
	}
	st.packs_before = nr;

	/* Which packs stay: those whose every page is live and held by no
	 * pack kept before. Their live keys are claimed. */
	for (size_t i = 0; i < nr; i++) {
		struct gc_pack *p = &packs[i];
		uint64_t pages = DIV_ROUND_UP(p->size, WC_PAGE_SIZE);
		bool dup = false;

		for (size_t k = 0; k < p->nr_recs; k++) {
			bool is_live = wc_keyset_has(&live, &p->recs[k].key);

			p->live += is_live;
			if (is_live && wc_keyset_has(&claimed, &p->recs[k].key))
				dup = true;
		}
		if (p->live == 0)
			p->fate = GC_DELETE;
		else if (p->live < pages || dup)
			p->fate = GC_REWRITE;
		else
			p->fate = GC_KEEP;
		if (p->fate != GC_KEEP)
			continue;
		for (size_t k = 0; k < p->nr_recs; k++) {
			if (!wc_keyset_has(&live, &p->recs[k].key))
				continue;
			r = wc_keyset_add(&claimed, &p->recs[k].key);
			if (r < 0)
				goto out;
		}
	}
	/* Packs with no live page go first: on a full disk that makes room
	 * for the copies below. Their pages are nobody's, and a reader never
	 * needs them. (The accounting below sees ENOENT and counts them.) */
	for (size_t i = 0; i < nr; i++) {
		char name[32];

		if (packs[i].fate != GC_DELETE)
			continue;
		wc_pack_name(name, sizeof(name), packs[i].id, "pack");
		unlinkat(s->packs_fd, name, 0);
		wc_pack_name(name, sizeof(name), packs[i].id, "idx");
		unlinkat(s->packs_fd, name, 0);
	}
	/* Copy the live pages of the other packs that no kept pack holds. */
	for (size_t i = 0; i < nr; i++) {
		struct gc_pack *p = &packs[i];

		if (p->fate != GC_REWRITE)
			continue;
		for (size_t k = 0; k < p->nr_recs; k++) {
			const struct gc_rec *rec = &p->recs[k];
			struct wc_key key;

			if (!wc_keyset_has(&live, &rec->key) || wc_keyset_has(&claimed, &rec->key))
				continue;
			r = pread_full(p->fd, page, WC_PAGE_SIZE, (off_t)rec->page * WC_PAGE_SIZE);
			if (r == 0)
				wc_key_of(page, &key);
			if (r < 0 || !wc_key_eq(&key, &rec->key)) {
				/* Damaged: keep the pack (verify reports it). */
				p->failed = true;
				continue;
			}
			if (!w) {
				r = wc_writer_open(s, true, &w);
				if (r < 0)
					goto out;
			}
			r = wc_writer_append(w, &key, page);
			if (r < 0)
				goto out;
			r = wc_keyset_add(&claimed, &key);
			if (r < 0)
				goto out;
			copied++;
		}
	}
	if (w) {
		r = wc_writer_sync(w);
		if (r < 0) {
			r = err_set(r, "gc: cannot write the compacted pack: %s", strerror(-r));
			goto out;
		}
		wc_writer_close(w);
		w = NULL;
		fsync(s->packs_fd);
	}
	/* Everything live is now recorded in a kept or new pack. */
	for (size_t i = 0; i < nr; i++) {
		struct gc_pack *p = &packs[i];
		char name[32];

		if (p->fate == GC_KEEP || p->failed) {
			st.packs_after++;
			st.bytes_after += p->size;
			continue;
		}
		wc_pack_name(name, sizeof(name), p->id, "pack");
		if (unlinkat(s->packs_fd, name, 0) < 0 && errno != ENOENT) {
			st.packs_after++;
			st.bytes_after += p->size;
			continue;
		}
		wc_pack_name(name, sizeof(name), p->id, "idx");
		unlinkat(s->packs_fd, name, 0);
		st.pages_freed += DIV_ROUND_UP(p->size, WC_PAGE_SIZE);
	}
	st.pages_freed = st.pages_freed > copied ? st.pages_freed - copied : 0;
	unlink_orphan_idx(s);
	unlink_tmp_files(s->packs_fd);
	unlink_tmp_files(s->snaps_fd);
	fsync(s->packs_fd);

	r = wc_store_refresh(s, true);
	if (r < 0)
		goto out;
	/* Count what exists now (the new pack included). */
	st.packs_after = s->nr_packs;
	st.bytes_after = 0;
	for (size_t i = 0; i < s->nr_packs; i++) {
		char name[32];
		struct stat sb;

		wc_pack_name(name, sizeof(name), s->packs[i].id, "pack");
		if (fstatat(s->packs_fd, name, &sb, 0) == 0)
			st.bytes_after += (uint64_t)sb.st_size;
	}
	st.pages_live = claimed.nr;
	if (ret_stats)
		*ret_stats = st;
	r = 0;
out:
	wc_writer_close(w);
	for (size_t i = 0; i < nr; i++) {
		if (packs[i].fd >= 0)
			close(packs[i].fd);
		free(packs[i].recs);
	}
	free(packs);
	wc_index_fini(&live);
	wc_index_fini(&claimed);
	close(lock_fd);
	return r;
}
