/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WARMCACHE_H
#define WARMCACHE_H

/*
 * warmcache: a content-addressed store of 4 KiB pages keyed by XXH3-128,
 * holding snapshots whose memory is listed page by page.
 *
 * Conventions (as in liburing / systemd):
 *  - every call returns 0 (or a count) on success and -errno on failure;
 *    where the errno alone would lose the object, a one-line detail is
 *    recorded with err_set() (common/err.h) for the front end to print;
 *  - ret_* out-parameters are written only on success;
 *  - the _free() and _close() functions accept NULL;
 *  - the library never prints.
 *
 * Specific errors:
 *  -EBADMSG   corrupt manifest, index record or page (hash mismatch)
 *  -ENOENT    no such snapshot
 *  -EEXIST    ambiguous snapshot id prefix (detail names the candidates)
 *  -ENOSPC    the store's file system is full (the ingest is abandoned cleanly)
 *  -EOPNOTSUPP io_uring unavailable where it was required
 *
 * Page sources and sinks are small ops structs (cf. CRIU's page transfer):
 * the engine's dump writes to a wc_sink and the restore reads from a
 * wc_source; the local store, the network peer (remote-fork/) and test
 * doubles all implement them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WC_PAGE_SIZE	4096u
#define WC_PAGE_SHIFT	12
#define WC_ID_LEN	16		/* hex chars of a snapshot id */

/* XXH3-128 of the page content; same layout as XXH128_hash_t. */
struct wc_key {
	uint64_t lo;
	uint64_t hi;
};

enum wc_page_kind {
	WC_PAGE_ABSENT	= 0,	/* not populated in the source: leave unmapped/zero */
	WC_PAGE_ZERO	= 1,	/* all zero bytes: never stored */
	WC_PAGE_DATA	= 2,	/* stored under its key */
};

void wc_key_of(const void *page, struct wc_key *ret);
bool wc_page_is_zero(const void *page);
static inline bool wc_key_eq(const struct wc_key *a, const struct wc_key *b)
{
	return a->lo == b->lo && a->hi == b->hi;
}

/* ------------------------------------------------------------------ store */

struct wc_store;

enum {
	WC_OPEN_CREATE	= 1 << 0,	/* create the store if missing */
	WC_OPEN_RDONLY	= 1 << 1,	/* no ingest, no gc */
};

struct wc_store_opts {
	size_t sz;			/* sizeof(struct wc_store_opts) */
	bool no_uring;			/* use the pread/pwrite path (baseline) */
	bool sync;			/* fdatasync packs before publishing a manifest */
	unsigned queue_depth;		/* io_uring depth; 0 = default */
	/* Large io_uring reads use a helper thread (joined before the call
	 * returns). Set this where no other thread may ever exist, e.g. in a
	 * process about to hand its address space to a restorer. */
	bool no_threads;
};

/*
 * A wc_store keeps descriptors open (the store directory, packs it read
 * from, io_uring rings) until wc_store_close(): close it before running
 * code that must not inherit them.
 */

/* The store directory: --store, else $WARMFORK_STORE, else /var/lib/warmfork
 * (root) or ~/.cache/warmfork. @explicit_dir may be NULL. */
int wc_store_default_dir(const char *explicit_dir, char *buf, size_t len);

int wc_store_open(const char *dir, unsigned flags, const struct wc_store_opts *opts,
		  struct wc_store **ret);
void wc_store_close(struct wc_store *store);
const char *wc_store_dir(const struct wc_store *store);
bool wc_store_uses_uring(const struct wc_store *store);

/* Does the store hold these keys? Sets bit i of @ret_lacking (LSB first,
 * (nr+7)/8 bytes) when keys[i] is absent. Returns the number lacking. */
int wc_store_lacks(struct wc_store *store, const struct wc_key *keys, size_t nr,
		   uint8_t *ret_lacking);

/* Snapshot ids in the store, newest first. Free with wc_id_list_free(). */
int wc_store_list(struct wc_store *store, char ***ret_ids, size_t *ret_nr);
void wc_id_list_free(char **ids, size_t nr);

/* Resolve a unique prefix to a full id. */
int wc_store_resolve(struct wc_store *store, const char *prefix, char ret_id[WC_ID_LEN + 1]);

/* Delete a snapshot (full id or unique prefix) and the refs naming it. Its
 * pages stay until wc_store_gc(). */
int wc_store_remove(struct wc_store *store, const char *id);

struct wc_gc_stats {
	uint64_t packs_before, packs_after;
	uint64_t bytes_before, bytes_after;	/* pack bytes on disk */
	uint64_t pages_live, pages_freed;
};
/* Reclaim pages no snapshot lists. Excludes concurrent ingests (they wait),
 * never readers: snapshots stay readable during gc. */
int wc_store_gc(struct wc_store *store, struct wc_gc_stats *ret_stats);

struct wc_store_stats {
	uint64_t nr_snapshots;
	uint64_t nr_packs;
	uint64_t nr_pages;		/* distinct stored pages */
	uint64_t pack_bytes;		/* on disk */
};
int wc_store_stats(struct wc_store *store, struct wc_store_stats *ret);

/* Named references (e.g. warm-exec's cache keys → snapshot id). Names:
 * [A-Za-z0-9._:@+=-], 1..200 chars, not starting with '.'. A ref does not
 * keep its snapshot from wc_store_remove(), which deletes it. */
int wc_ref_set(struct wc_store *store, const char *name, const char *id);
int wc_ref_get(struct wc_store *store, const char *name, char ret_id[WC_ID_LEN + 1]);
int wc_ref_del(struct wc_store *store, const char *name);

/* --------------------------------------------------------------- page sink */

struct wc_area_desc {
	uint64_t start;			/* page aligned */
	uint64_t nr_pages;
	uint32_t prot;
	uint32_t flags;
	const char *name;		/* may be NULL */
};

struct wc_sink;
struct wc_sink_ops {
	/* Start the next area; its pages follow in order via put_pages. */
	int (*begin_area)(struct wc_sink *sink, const struct wc_area_desc *desc);
	/* @nr_pages pages of the current area, @buf holds them back to back.
	 * @kinds (may be NULL: all present) marks WC_PAGE_ABSENT pages, whose
	 * bytes in @buf are ignored (@buf may be NULL if all are absent).
	 * Zero pages are detected by the sink. @buf may be reused once this
	 * returns. An area must receive exactly its nr_pages pages. */
	int (*put_pages)(struct wc_sink *sink, const void *buf, const uint8_t *kinds,
			 size_t nr_pages);
	/* Attach a named blob (engine metadata). Replaces one of the same name. */
	int (*put_blob)(struct wc_sink *sink, const char *name, const void *data, size_t len);
	int (*put_label)(struct wc_sink *sink, const char *key, const char *value);
	/* Make the snapshot visible. Before this returns 0 it does not exist. */
	int (*commit)(struct wc_sink *sink, char ret_id[WC_ID_LEN + 1]);
	/* Abandon (if not committed) and free. */
	void (*free)(struct wc_sink *sink);
	/* Optional (NULL if unsupported): @nr_pages pages of the current area
	 * by kind alone, with @keys holding one key per WC_PAGE_DATA page, for
	 * pages whose content the sink already holds (ask a source's lacks()
	 * first), so that they need not be read or sent again. Fails with
	 * -ENOENT (detail naming the key) if a key is not held. */
	int (*put_keys)(struct wc_sink *sink, const uint8_t *kinds, const struct wc_key *keys,
			size_t nr_pages);
};

struct wc_sink {
	const struct wc_sink_ops *ops;
};

/* The store's sink: a snapshot ingest. Holds the ingest lock until freed.
 * After a failure (-ENOSPC...) every later call fails; free it. */
int wc_store_sink_new(struct wc_store *store, struct wc_sink **ret);

static inline void wc_sink_free(struct wc_sink *sink)
{
	if (sink)
		sink->ops->free(sink);
}

/* ------------------------------------------------------------- page source */

struct wc_page_req {
	struct wc_key key;
	void *dst;			/* WC_PAGE_SIZE bytes */
};

struct wc_source;
struct wc_source_ops {
	/* Bit i of @ret_lacking set when keys[i] cannot be read from here. */
	int (*lacks)(struct wc_source *src, const struct wc_key *keys, size_t nr,
		     uint8_t *ret_lacking);
	/* Fill every req->dst with the page of req->key, verified against the
	 * key. Batched: implementations issue many reads at once. */
	int (*read_pages)(struct wc_source *src, const struct wc_page_req *reqs, size_t nr);
	void (*free)(struct wc_source *src);
};

struct wc_source {
	const struct wc_source_ops *ops;
};

int wc_store_source_new(struct wc_store *store, struct wc_source **ret);

static inline void wc_source_free(struct wc_source *src)
{
	if (src)
		src->ops->free(src);
}

/* -------------------------------------------------------------- snapshots */

struct wc_snapshot;

struct wc_area {
	uint64_t start;
	uint64_t nr_pages;
	uint32_t prot;
	uint32_t flags;
	const char *name;		/* "" if none */
	const uint8_t *kinds;		/* nr_pages entries */
	const struct wc_key *keys;	/* one per WC_PAGE_DATA page, in order */
	uint64_t nr_data;
};

/* Open by full id or unique prefix; the manifest is checked (framing,
 * checksum, bounds) before anything is returned. */
int wc_snapshot_open(struct wc_store *store, const char *id, struct wc_snapshot **ret);
/* Parse a manifest from memory (used by the fuzzer and the network). */
int wc_snapshot_parse(const void *buf, size_t len, struct wc_snapshot **ret);
void wc_snapshot_close(struct wc_snapshot *snap);

const char *wc_snapshot_id(const struct wc_snapshot *snap);
uint64_t wc_snapshot_created_ns(const struct wc_snapshot *snap);
size_t wc_snapshot_nr_areas(const struct wc_snapshot *snap);
const struct wc_area *wc_snapshot_area(const struct wc_snapshot *snap, size_t idx);
/* -ENOENT if there is no such blob. The data lives as long as @snap. */
int wc_snapshot_blob(const struct wc_snapshot *snap, const char *name,
		     const void **ret_data, size_t *ret_len);
const char *wc_snapshot_label(const struct wc_snapshot *snap, const char *key);
size_t wc_snapshot_nr_labels(const struct wc_snapshot *snap);
/* -ENOENT past the end. The strings live as long as @snap. */
int wc_snapshot_label_at(const struct wc_snapshot *snap, size_t idx, const char **ret_key,
			 const char **ret_value);

struct wc_snapshot_usage {
	uint64_t pages_total, pages_absent, pages_zero, pages_data;
	uint64_t distinct_data;		/* distinct keys among the data pages */
	uint64_t unique_pages;		/* distinct keys no other snapshot lists */
	uint64_t shared_pages;		/* distinct keys another snapshot lists too */
};
/* Page counts of @snap; unique/shared against every other snapshot of
 * @store (@store may be NULL: everything counts as unique). */
int wc_store_snapshot_usage(struct wc_store *store, const struct wc_snapshot *snap,
			    struct wc_snapshot_usage *ret);

/* Fill area @idx of @snap into @dst (nr_pages * WC_PAGE_SIZE bytes), which
 * must already read as zero: zero and absent pages are not touched. Each
 * distinct key is read once (per batch of 2^20 pages) and copied to its
 * other places. A page whose content does not match its key fails with
 * -EBADMSG and a detail naming the snapshot, area, page and address; the
 * contents of @dst are then unspecified. */
int wc_snapshot_fill_area(struct wc_snapshot *snap, struct wc_source *src, size_t idx,
			  void *dst);

struct wc_fill_target {
	size_t area_idx;
	void *dst;
	bool uffd;	/* wc_snapshot_fill_uffd only (ignored otherwise): see there */
};
/* Fill several areas in one batch (one pass over the source). */
int wc_snapshot_fill(struct wc_snapshot *snap, struct wc_source *src,
		     const struct wc_fill_target *targets, size_t nr);
/* The same, for memory that nothing touched yet: the targets with .uffd
 * set lie each in one private anonymous mapping (or several adjacent ones),
 * registered with the userfaultfd @uffd in missing mode. Their pages are placed with UFFDIO_COPY straight from the
 * store's packs (mapped read-only, each page verified there): allocated
 * and written in one step, without a page fault or a zeroed page first.
 * Their zero and absent pages stay missing (they read as zero once @uffd
 * is closed). Other targets are written with memcpy. @src must be a store
 * source (-EOPNOTSUPP otherwise). */
int wc_snapshot_fill_uffd(struct wc_snapshot *snap, struct wc_source *src,
			  const struct wc_fill_target *targets, size_t nr, int uffd);

/*
 * The pages of @nr keys, in place: the packs holding them are mapped
 * read-only and each page is hashed there; ret_pages[i] points at the page
 * of keys[i] until wc_mapped_free(*ret). -EBADMSG (detail: the page, its
 * pack) if a key is missing or a page does not match its key. Uses @store
 * alone: no other call on it may run meanwhile.
 */
struct wc_mapped;
int wc_store_map_keys(struct wc_store *store, const struct wc_key *keys, size_t nr,
		      const uint8_t **ret_pages, struct wc_mapped **ret);
void wc_mapped_free(struct wc_mapped *m);

/* --------------------------------------------------------------- verify */

struct wc_verify_report {
	uint64_t pages_checked;
	uint64_t pages_bad;		/* hash mismatch or unreadable */
	uint64_t pages_missing;		/* key not in the index */
	uint64_t manifests_bad;		/* manifests that do not parse */
};
/* Rehash every page of @id (or of every snapshot if NULL). Returns 0 if all
 * is well, -EBADMSG if damage was found; @cb (may be NULL) is called once
 * per problem with a one-line description. */
int wc_store_verify(struct wc_store *store, const char *id,
		    void (*cb)(void *userdata, const char *line), void *userdata,
		    struct wc_verify_report *ret_report);

#endif
