// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The store's page sink: one snapshot ingest.
 *
 * Each page is classified (absent / zero / data), data pages are hashed
 * (XXH3-128) and looked up in the key index; only pages the store lacks are
 * appended to the writer's pack. The manifest is written on commit with a
 * temporary name and renamed into snapshots/: only a renamed manifest is a
 * snapshot, and it is renamed only after every page it names is in a pack
 * and recorded in an idx. A process killed at any point therefore leaves
 * either no snapshot or a complete one; the pages of an unfinished ingest
 * are garbage that gc reclaims.
 *
 * The ingest holds DIR/lock shared from creation to free: gc (exclusive)
 * cannot delete a page this ingest deduplicated against.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "wc-internal.h"
#include "wc-manifest.h"

#define WC_MAX_NAME	4096u

struct sink_area {
	char *name;
	uint64_t start, nr_pages;
	uint32_t prot, flags;
	uint8_t *kinds;
	uint64_t put;		/* pages received so far */
	size_t kinds_cap;
	struct wc_key *keys;
	size_t nr_keys, keys_cap;
};

/* A blob, or a label (its value in @data, NUL-terminated). */
struct sink_named {
	char *name;
	uint8_t *data;		/* @len bytes and a NUL */
	size_t len;
};

struct store_sink {
	struct wc_sink base;
	struct wc_store *s;
	int lock_fd;
	struct wc_writer *w;
	struct sink_area *areas;
	size_t nr_areas, cap_areas;
	struct sink_named *blobs;
	size_t nr_blobs;
	struct sink_named *labels;
	size_t nr_labels;
	int err;
	bool committed;
};

static int sink_fail(struct store_sink *k, int err)
{
	if (!k->err)
		k->err = err < 0 ? err : -err;
	return k->err;
}

static int io_fail(struct store_sink *k, int err)
{
	if (err == -ENOSPC)
		err_set(ENOSPC, "store \"%s\": file system full, ingest abandoned", k->s->dir);
	else if (err != -ENOMEM)
		err_set_once(err, "store \"%s\": cannot write pages: %s", k->s->dir, strerror(-err));
	return sink_fail(k, err);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *n;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elem)
			return -ENOMEM;
		ncap *= 2;
	}
	n = realloc(*p, ncap * elem);
	if (!n)
		return -ENOMEM;
	*p = n;
	*cap = ncap;
	return 0;
}

static int sink_begin_area(struct wc_sink *sink, const struct wc_area_desc *desc)
{
	struct store_sink *k = (struct store_sink *)sink;
	struct sink_area *a;
	int r;

	if (k->err)
		return k->err;
	if (k->committed)
		return -EINVAL;
	if (k->nr_areas && k->areas[k->nr_areas - 1].put != k->areas[k->nr_areas - 1].nr_pages)
		return err_set(EINVAL, "area %zu got %llu of its %llu pages", k->nr_areas - 1,
			       (unsigned long long)k->areas[k->nr_areas - 1].put,
			       (unsigned long long)k->areas[k->nr_areas - 1].nr_pages);
	if (desc->start % WC_PAGE_SIZE || desc->nr_pages > (UINT64_MAX - desc->start) / WC_PAGE_SIZE ||
	    (desc->name && strlen(desc->name) > WC_MAX_NAME))
		return err_set(EINVAL, "invalid area at 0x%llx", (unsigned long long)desc->start);
	if (k->nr_areas == k->cap_areas) {
		size_t cap = k->cap_areas;

		r = grow((void **)&k->areas, &cap, k->nr_areas + 1, sizeof(*k->areas));
		if (r < 0)
			return sink_fail(k, r);
		k->cap_areas = cap;
	}
	a = &k->areas[k->nr_areas];
	memset(a, 0, sizeof(*a));
	a->start = desc->start;
	a->nr_pages = desc->nr_pages;
	a->prot = desc->prot;
	a->flags = desc->flags;
	if (desc->name) {
		a->name = strdup(desc->name);
		if (!a->name)
			return sink_fail(k, -ENOMEM);
	}
	k->nr_areas++;
	return 0;
}

/* Pages classified and hashed before their keys are looked up. */
#define PUT_BATCH	32u

static int sink_put_pages(struct wc_sink *sink, const void *buf, const uint8_t *kinds,
			  size_t nr_pages)
{
	struct store_sink *k = (struct store_sink *)sink;
	struct wc_store *s = k->s;
	struct sink_area *a;
	int r;

	if (k->err)
		return k->err;
	if (!k->nr_areas || k->committed)
		return err_set(EINVAL, "put_pages without begin_area");
	a = &k->areas[k->nr_areas - 1];
	if (nr_pages > a->nr_pages - a->put)
		return err_set(EINVAL, "area at 0x%llx: %zu pages more than its %llu",
			       (unsigned long long)a->start, nr_pages,
			       (unsigned long long)a->nr_pages);
	r = grow((void **)&a->kinds, &a->kinds_cap, a->put + nr_pages, 1);
	if (r < 0)
		return sink_fail(k, r);
	r = grow((void **)&a->keys, &a->keys_cap, a->nr_keys + nr_pages, sizeof(*a->keys));
	if (r < 0)
		return sink_fail(k, r);

	/* By batches: every page of a batch is classified and hashed first and
	 * its key's bucket prefetched, then looked up; the index outgrows the
	 * cache at a few hundred thousand keys, and a lookup that waits for
	 * memory cost more than the hashing (wl-mem's 1 GiB: ~18% of the
	 * checkpoint's thread before this). */
	for (size_t base = 0; base < nr_pages; base += PUT_BATCH) {
		size_t n = MIN((size_t)PUT_BATCH, nr_pages - base);
		struct wc_key keys[PUT_BATCH];
		uint8_t kind[PUT_BATCH];

		for (size_t i = 0; i < n; i++) {
			const uint8_t *page;

			if (kinds && kinds[base + i] == WC_PAGE_ABSENT) {
				kind[i] = WC_PAGE_ABSENT;
				continue;
			}
			if (!buf)
				return sink_fail(k, err_set(EINVAL, "put_pages: no buffer for present pages"));
			page = (const uint8_t *)buf + (base + i) * WC_PAGE_SIZE;
			if (wc_page_is_zero(page)) {
				kind[i] = WC_PAGE_ZERO;
				continue;
			}
			kind[i] = WC_PAGE_DATA;
			wc_key_of(page, &keys[i]);
			wc_index_prefetch(&s->index, &keys[i]);
		}
		for (size_t i = 0; i < n; i++) {
			a->kinds[a->put++] = kind[i];
			if (kind[i] != WC_PAGE_DATA)
				continue;
			if (!wc_index_get(&s->index, &keys[i])) {
				if (!k->w) {
					r = wc_writer_open(s, false, &k->w);
					if (r < 0)
						return io_fail(k, r);
				}
				r = wc_writer_append(k->w, &keys[i],
						     (const uint8_t *)buf + (base + i) * WC_PAGE_SIZE);
				if (r < 0)
					return io_fail(k, r);
			}
			a->keys[a->nr_keys++] = keys[i];
		}
	}
	return 0;
}

static int sink_put_keys(struct wc_sink *sink, const uint8_t *kinds, const struct wc_key *keys,
			 size_t nr_pages)
{
	struct store_sink *k = (struct store_sink *)sink;
	struct wc_store *s = k->s;
	struct sink_area *a;
	bool refreshed = false;
	size_t j = 0;
	int r;

	if (k->err)
		return k->err;
	if (!k->nr_areas || k->committed)
		return err_set(EINVAL, "put_keys without begin_area");
	a = &k->areas[k->nr_areas - 1];
	if (nr_pages > a->nr_pages - a->put)
		return err_set(EINVAL, "area at 0x%llx: %zu pages more than its %llu",
			       (unsigned long long)a->start, nr_pages,
			       (unsigned long long)a->nr_pages);
	if (nr_pages && !kinds)
		return err_set(EINVAL, "put_keys without kinds");
	/* Check everything before recording anything: a refused call leaves
	 * the area as it was. */
	for (size_t i = 0; i < nr_pages; i++) {
		char hex[33];

		if (kinds[i] > WC_PAGE_DATA)
			return err_set(EINVAL, "put_keys: page %zu has unknown kind %u", i, kinds[i]);
		if (kinds[i] != WC_PAGE_DATA)
			continue;
		if (!wc_index_get(&s->index, &keys[j]) && !refreshed) {
			/* Stored by another process since our last look? Only
			 * appends can have happened: we hold the ingest lock. */
			r = wc_store_refresh(s, false);
			if (r < 0)
				return r;
			refreshed = true;
		}
		if (!wc_index_get(&s->index, &keys[j])) {
			wc_key_hex(&keys[j], hex);
			return err_set(ENOENT, "put_keys: page %s is not in store \"%s\"", hex, s->dir);
		}
		j++;
	}
	r = grow((void **)&a->kinds, &a->kinds_cap, a->put + nr_pages, 1);
	if (r < 0)
		return sink_fail(k, r);
	r = grow((void **)&a->keys, &a->keys_cap, a->nr_keys + j, sizeof(*a->keys));
	if (r < 0)
		return sink_fail(k, r);
	memcpy(a->kinds + a->put, kinds, nr_pages);
	a->put += nr_pages;
	if (j)
		memcpy(a->keys + a->nr_keys, keys, j * sizeof(*keys));
	a->nr_keys += j;
	return 0;
}

/* Set @name to a copy of @len bytes at @data in *@vec (replacing a value
 * of the same name). 0 or -ENOMEM. */
static int named_set(struct sink_named **vec, size_t *nr, const char *name, const void *data,
		     size_t len)
{
	struct sink_named *e = NULL;
	uint8_t *copy = malloc(len + 1);

	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	copy[len] = 0;
	for (size_t i = 0; i < *nr && !e; i++)
		if (strcmp((*vec)[i].name, name) == 0)
			e = &(*vec)[i];
	if (!e) {
		struct sink_named *n = realloc(*vec, (*nr + 1) * sizeof(*n));
		char *nm = strdup(name);

		if (n)
			*vec = n;
		if (!n || !nm) {
			free(nm);
			free(copy);
			return -ENOMEM;
		}
		e = &(*vec)[(*nr)++];
		*e = (struct sink_named){ .name = nm };
	}
	free(e->data);
	e->data = copy;
	e->len = len;
	return 0;
}

static void named_free(struct sink_named *vec, size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		free(vec[i].name);
		free(vec[i].data);
	}
	free(vec);
}

static int sink_put_blob(struct wc_sink *sink, const char *name, const void *data, size_t len)
{
	struct store_sink *k = (struct store_sink *)sink;

	if (k->err)
		return k->err;
	if (!name || !*name || strlen(name) > WC_MAX_NAME || len > WC_MANIFEST_MAX / 2)
		return err_set(EINVAL, "invalid blob \"%s\"", name ? name : "");
	if (named_set(&k->blobs, &k->nr_blobs, name, data, len) < 0)
		return sink_fail(k, -ENOMEM);
	return 0;
}

static int sink_put_label(struct wc_sink *sink, const char *key, const char *value)
{
	struct store_sink *k = (struct store_sink *)sink;

	if (k->err)
		return k->err;
	if (!key || !*key || !value || strlen(key) > WC_MAX_NAME || strlen(value) > WC_MAX_NAME)
		return err_set(EINVAL, "invalid label \"%s\"", key ? key : "");
	if (named_set(&k->labels, &k->nr_labels, key, value, strlen(value)) < 0)
		return sink_fail(k, -ENOMEM);
	return 0;
}

/*
 * With opts.sync, a snapshot must not be published before every page it
 * names is on disk, including pages deduplicated against packs that other
 * (unsynced) ingests wrote: fdatasync each pack, and its idx, that holds a
 * page of this snapshot, and the packs directory (new pack names).
 */
static int sync_referenced_packs(struct store_sink *k)
{
	struct wc_store *s = k->s;
	_cleanup_free_ uint8_t *seen = NULL;
	int r = 0;

	seen = calloc(s->nr_packs + 1, 1);
	if (!seen)
		return -ENOMEM;
	for (size_t a = 0; a < k->nr_areas; a++) {
		for (size_t i = 0; i < k->areas[a].nr_keys; i++) {
			const struct wc_ient *e = wc_index_get(&s->index, &k->areas[a].keys[i]);

			if (e && e->pack <= s->nr_packs)
				seen[e->pack - 1] = 1;
		}
	}
	for (size_t slot = 0; slot < s->nr_packs && r == 0; slot++) {
		static const char *const exts[] = { "pack", "idx" };

		if (!seen[slot])
			continue;
		for (size_t x = 0; x < 2 && r == 0; x++) {
			char name[32];
			int fd;

			wc_pack_name(name, sizeof(name), s->packs[slot].id, exts[x]);
			fd = openat(s->packs_fd, name, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return -errno;
			if (fdatasync(fd) < 0)
				r = -errno;
			close(fd);
		}
	}
	if (r == 0 && fsync(s->packs_fd) < 0)
		r = -errno;
	return r;
}

static int new_id(struct wc_store *s, char id[WC_ID_LEN + 1])
{
	for (int attempt = 0; attempt < 16; attempt++) {
		char name[WC_ID_LEN + 8];
		uint64_t rnd;

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			return -errno;
		snprintf(id, WC_ID_LEN + 1, "%016" PRIx64, rnd);
		snprintf(name, sizeof(name), "%s.snap", id);
		if (faccessat(s->snaps_fd, name, F_OK, 0) < 0 && errno == ENOENT)
			return 0;
	}
	return -EEXIST;
}

static int sink_commit(struct wc_sink *sink, char ret_id[WC_ID_LEN + 1])
{
	struct store_sink *k = (struct store_sink *)sink;
	struct wc_store *s = k->s;
	WcManifestPb pb = WC_MANIFEST_PB__INIT;
	_cleanup_free_ WcAreaPb *apb = NULL;
	_cleanup_free_ WcAreaPb **aptr = NULL;
	_cleanup_free_ WcBlobPb *bpb = NULL;
	_cleanup_free_ WcBlobPb **bptr = NULL;
	_cleanup_free_ WcLabelPb *lpb = NULL;
	_cleanup_free_ WcLabelPb **lptr = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	char id[WC_ID_LEN + 1], name[WC_ID_LEN + 8];
	size_t len;
	int r;

	if (k->err)
		return k->err;
	if (k->committed)
		return -EINVAL;
	if (k->nr_areas && k->areas[k->nr_areas - 1].put != k->areas[k->nr_areas - 1].nr_pages)
		return err_set(EINVAL, "area %zu got %llu of its %llu pages", k->nr_areas - 1,
			       (unsigned long long)k->areas[k->nr_areas - 1].put,
			       (unsigned long long)k->areas[k->nr_areas - 1].nr_pages);
	/* Every page must be in a pack, and recorded, before the rename. */
	if (k->w) {
		r = s->opts.sync ? wc_writer_sync(k->w) : wc_writer_flush(k->w);
		if (r < 0)
			return io_fail(k, r);
	}
	if (s->opts.sync) {
		r = sync_referenced_packs(k);
		if (r < 0)
			return io_fail(k, r);
	}

	apb = calloc(k->nr_areas + 1, sizeof(*apb));
	aptr = calloc(k->nr_areas + 1, sizeof(*aptr));
	bpb = calloc(k->nr_blobs + 1, sizeof(*bpb));
	bptr = calloc(k->nr_blobs + 1, sizeof(*bptr));
	lpb = calloc(k->nr_labels + 1, sizeof(*lpb));
	lptr = calloc(k->nr_labels + 1, sizeof(*lptr));
	if (!apb || !aptr || !bpb || !bptr || !lpb || !lptr)
		return sink_fail(k, -ENOMEM);
	for (size_t i = 0; i < k->nr_areas; i++) {
		const struct sink_area *a = &k->areas[i];

		wc_area_pb__init(&apb[i]);
		apb[i].start = a->start;
		apb[i].nr_pages = a->nr_pages;
		apb[i].has_prot = true;
		apb[i].prot = a->prot;
		apb[i].has_flags = true;
		apb[i].flags = a->flags;
		apb[i].name = a->name;
		apb[i].kinds.data = a->kinds;
		apb[i].kinds.len = a->nr_pages;
		apb[i].keys.data = (uint8_t *)a->keys;
		apb[i].keys.len = a->nr_keys * sizeof(struct wc_key);
		aptr[i] = &apb[i];
	}
	for (size_t i = 0; i < k->nr_blobs; i++) {
		wc_blob_pb__init(&bpb[i]);
		bpb[i].name = k->blobs[i].name;
		bpb[i].data.data = k->blobs[i].data;
		bpb[i].data.len = k->blobs[i].len;
		bptr[i] = &bpb[i];
	}
	for (size_t i = 0; i < k->nr_labels; i++) {
		wc_label_pb__init(&lpb[i]);
		lpb[i].key = k->labels[i].name;
		lpb[i].value = (char *)k->labels[i].data;
		lptr[i] = &lpb[i];
	}
	r = new_id(s, id);
	if (r < 0)
		return sink_fail(k, r);
	pb.version = WC_FORMAT_VERSION;
	pb.id = id;
	pb.created_ns = realtime_ns();
	pb.n_areas = k->nr_areas;
	pb.areas = aptr;
	pb.n_blobs = k->nr_blobs;
	pb.blobs = bptr;
	pb.n_labels = k->nr_labels;
	pb.labels = lptr;
	r = wc_manifest_encode(&pb, &buf, &len);
	if (r < 0)
		return sink_fail(k, r);
	snprintf(name, sizeof(name), "%s.snap", id);
	r = write_file_atomic(s->snaps_fd, name, buf, len, s->opts.sync);
	if (r < 0)
		return io_fail(k, r);
	k->committed = true;
	memcpy(ret_id, id, WC_ID_LEN + 1);
	return 0;
}

static void sink_free(struct wc_sink *sink)
{
	struct store_sink *k = (struct store_sink *)sink;

	if (!k)
		return;
	wc_writer_close(k->w);
	for (size_t i = 0; i < k->nr_areas; i++) {
		free(k->areas[i].name);
		free(k->areas[i].kinds);
		free(k->areas[i].keys);
	}
	free(k->areas);
	named_free(k->blobs, k->nr_blobs);
	named_free(k->labels, k->nr_labels);
	if (k->lock_fd >= 0)
		close(k->lock_fd);
	free(k);
}

static const struct wc_sink_ops store_sink_ops = {
	.begin_area = sink_begin_area,
	.put_pages = sink_put_pages,
	.put_blob = sink_put_blob,
	.put_label = sink_put_label,
	.commit = sink_commit,
	.free = sink_free,
	.put_keys = sink_put_keys,
};

int wc_store_sink_new(struct wc_store *s, struct wc_sink **ret)
{
	struct store_sink *k;
	int r;

	if (s->flags & WC_OPEN_RDONLY)
		return err_set(EROFS, "store \"%s\" is open read-only", s->dir);
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->base.ops = &store_sink_ops;
	k->s = s;
	k->lock_fd = wc_store_lock(s, false);
	if (k->lock_fd < 0) {
		r = k->lock_fd;
		free(k);
		return r;
	}
	/* Under the lock no gc runs: bring the index up to date (a gc that
	 * ran since we loaded it forces a full reload) before deduplicating
	 * against it. */
	r = wc_store_refresh(s, false);
	if (r < 0) {
		sink_free(&k->base);
		return r;
	}
	*ret = &k->base;
	return 0;
}
