/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WC_INTERNAL_H
#define WC_INTERNAL_H

/*
 * warmcache internals shared by the store's source files. Not installed.
 * The on-disk format is described in docs/store.md; the structures that
 * define it are here, next to the code that reads them.
 *
 *   DIR/format                     "warmcache 1\n"
 *   DIR/lock                       flock: ingests shared, gc exclusive
 *   DIR/packs/pack-XXXXXXXX.pack   4 KiB pages back to back, append-only
 *   DIR/packs/pack-XXXXXXXX.idx    idx header + 32-byte records, append-only
 *   DIR/snapshots/ID.snap          manifest header + wc_manifest_pb
 *   DIR/refs/NAME                  "ID\n"
 *
 * A wc_store handle (and the sinks and sources made from it) is used by one
 * thread at a time; several handles, in one or many processes, may share a
 * store directory.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "warmcache.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "warmcache's on-disk format is little-endian and so is this code"
#endif

#define WC_FORMAT_VERSION	1
#define WC_FORMAT_TEXT		"warmcache 1\n"

/* A pack holds at most this many pages (1 GiB); writers roll over. */
#define WC_PACK_MAX_PAGES	(1u << 18)
/* An idx may hold at most this many records (duplicate records are
 * possible after a rebuild; more than 2 per page is damage). */
#define WC_IDX_MAX_RECORDS	(2ull * WC_PACK_MAX_PAGES)

/*
 * .idx file
 *
 *   offset 0   +--------------------------------------------+
 *              | magic "WCIDX\0\0\0" | version | rec_size  |  header, 32 bytes
 *              | pack_id | reserved | XXH3-64 of bytes 0..23 |
 *   offset 32  +--------------------------------------------+
 *              | key.lo | key.hi | page | reserved | check    |  record, 32 bytes
 *              +--------------------------------------------+
 *              | ...                                        |
 *
 * check = XXH3-64(first 24 bytes of the record, seed = pack_id), so a
 * record copied into another pack's idx does not validate. Records are
 * appended after the page they describe was written: a record never points
 * at a page that was not completely written (kill -9 safety). A torn tail
 * (a partial record, or an invalid last record) is ignored; an invalid
 * record followed by valid ones marks the idx damaged (it is rebuilt from
 * the pack when the pack can be locked).
 */
#define WC_IDX_MAGIC		"WCIDX\0\0\0"
#define WC_IDX_VERSION		1
#define WC_IDX_HDR_SIZE		32u
#define WC_IDX_REC_SIZE		32u

struct wc_idx_hdr {
	char magic[8];
	uint32_t version;
	uint32_t rec_size;
	uint32_t pack_id;
	uint32_t reserved;
	uint64_t check;
};

struct wc_idx_rec {
	uint64_t key_lo;
	uint64_t key_hi;
	uint32_t page;
	uint32_t reserved;
	uint64_t check;
};

_Static_assert(sizeof(struct wc_idx_hdr) == WC_IDX_HDR_SIZE, "idx header layout");
_Static_assert(sizeof(struct wc_idx_rec) == WC_IDX_REC_SIZE, "idx record layout");

void wc_idx_hdr_init(struct wc_idx_hdr *hdr, uint32_t pack_id);
void wc_idx_rec_init(struct wc_idx_rec *rec, uint32_t pack_id, const struct wc_key *key,
		     uint32_t page);

/* Called for each valid record; return <0 to stop parsing with that error. */
typedef int (*wc_idx_rec_cb)(void *userdata, const struct wc_key *key, uint32_t page);

struct wc_idx_parse_result {
	uint64_t consumed;	/* bytes up to the end of the last valid record */
	uint64_t nr_valid;
	bool damaged;		/* an invalid record before valid ones, or bad header */
};

/*
 * Parse the bytes [off, off+len) of an idx file (off = 0: including the
 * header). @pack_id 0 accepts the id in the header (the fuzzer); otherwise
 * it must match. Records whose page is >= @max_page are invalid. Returns 0,
 * -EBADMSG if the header is invalid (nothing consumed), or the callback's
 * error.
 */
int wc_idx_parse(const uint8_t *buf, size_t len, uint64_t off, uint32_t pack_id,
		 uint64_t max_page, wc_idx_rec_cb cb, void *userdata,
		 struct wc_idx_parse_result *ret);

/* ------------------------------------------------------------ key index */

/* key -> (pack slot + 1, page). Open addressing, linear probing; slot 0
 * of .pack means empty. Entries are never removed: a full reload rebuilds
 * the table. */
struct wc_ient {
	struct wc_key key;
	uint32_t pack;		/* store->packs[pack - 1] */
	uint32_t page;
};

struct wc_index {
	struct wc_ient *ents;
	size_t cap;		/* power of two, or 0 */
	size_t nr;
};

void wc_index_fini(struct wc_index *idx);
void wc_index_reset(struct wc_index *idx);
/* Insert unless present. Returns 1 if inserted, 0 if present, -ENOMEM. */
int wc_index_put(struct wc_index *idx, const struct wc_key *key, uint32_t pack, uint32_t page);
const struct wc_ient *wc_index_get(const struct wc_index *idx, const struct wc_key *key);
struct wc_ient *wc_index_lookup(struct wc_index *idx, const struct wc_key *key);
/* Start loading @key's bucket into the cache (lookups of a batch miss the
 * cache one after the other otherwise). */
static inline void wc_index_prefetch(const struct wc_index *idx, const struct wc_key *key)
{
	if (idx->cap)
		__builtin_prefetch(&idx->ents[(size_t)(key->lo ^ (key->hi >> 7)) & (idx->cap - 1)]);
}

/* A set of keys (a wc_index with pack = 1). */
static inline int wc_keyset_add(struct wc_index *set, const struct wc_key *key)
{
	return wc_index_put(set, key, 1, 0);
}
static inline bool wc_keyset_has(const struct wc_index *set, const struct wc_key *key)
{
	return wc_index_get(set, key) != NULL;
}

/* --------------------------------------------------------------- store */

struct wc_pack {
	uint32_t id;
	dev_t dev;
	ino_t ino;		/* of the .pack file when first seen */
	uint64_t idx_off;	/* bytes of the .idx consumed (valid prefix) */
	ino_t idx_ino;		/* the .idx those bytes were read from, or 0 */
	uint64_t nr_records;
	int fd;			/* read-only fd, opened on first read, or -1 */
	bool have_idx;		/* idx loaded (else retried at next refresh) */
	bool damaged;		/* idx had invalid records; not reused by writers */
	bool seen;		/* scratch for refresh */
};

struct wc_store {
	char *dir;
	int dirfd, packs_fd, snaps_fd, refs_fd;
	unsigned flags;
	struct wc_store_opts opts;
	bool uring_ok;		/* io_uring usable (and not opts.no_uring) */
	bool stale;		/* in-memory index may name pages that do not exist */

	struct wc_pack *packs;
	size_t nr_packs, cap_packs;
	struct wc_index index;

	struct io_uring *rd_ring[2];	/* reads (caller, helper), made on first use */
	pid_t rd_ring_pid;		/* process that made them (not shared across fork) */
};

/* Bring the index up to date with the directory: new idx records, new
 * packs; a pack that vanished or was replaced forces a full reload, as
 * does @full or store->stale. */
int wc_store_refresh(struct wc_store *store, bool full);
/* Read fd of a pack slot (0-based). -ENOENT if the pack is gone (caller
 * refreshes fully and retries). */
int wc_store_pack_fd(struct wc_store *store, size_t slot);
/* Add or find the slot of a pack the caller just created / locked. */
int wc_store_pack_slot(struct wc_store *store, uint32_t id, dev_t dev, ino_t ino, size_t *ret);
void wc_pack_name(char *buf, size_t len, uint32_t id, const char *ext);
/* Rebuild the idx of a pack by rehashing it. The caller holds the pack's
 * flock on @pack_fd. Writes the idx atomically unless @in_memory_only;
 * calls @cb for every record. */
int wc_pack_rebuild_idx(struct wc_store *store, uint32_t id, int pack_fd, bool in_memory_only,
			wc_idx_rec_cb cb, void *userdata);
/* Read a whole idx file's valid records (for gc). */
int wc_pack_read_idx(struct wc_store *store, uint32_t id, uint64_t max_page, wc_idx_rec_cb cb,
		     void *userdata, struct wc_idx_parse_result *ret);

/* flock() on DIR/lock with a fresh open file description; returns the fd. */
int wc_store_lock(struct wc_store *store, bool exclusive);

/* ------------------------------------------------------------ pack writer */

struct wc_writer;
/* Open a pack for appending (reusing a non-full unlocked pack unless
 * @fresh), io_uring-backed when the store allows. */
int wc_writer_open(struct wc_store *store, bool fresh, struct wc_writer **ret);
/* Queue one page (copied) under @key; its index entry is added now. */
int wc_writer_append(struct wc_writer *w, const struct wc_key *key, const void *page);
/* Wait for every queued page and write their idx records. */
int wc_writer_flush(struct wc_writer *w);
int wc_writer_sync(struct wc_writer *w);
uint64_t wc_writer_pages(const struct wc_writer *w);
/* Close. After a failure (or if @abandon_on_error and the writer failed)
 * the pack and idx are cut back to their last complete record. */
void wc_writer_close(struct wc_writer *w);

/* ------------------------------------------------------------ read engine */

enum wc_read_problem {
	WC_READ_MISSING,	/* key not in the index */
	WC_READ_BAD,		/* content does not match the key */
	WC_READ_IO,		/* read error or short read (truncated pack) */
};

/* Called for a failed request; return 0 to go on (verify), <0 to stop. */
typedef int (*wc_read_problem_cb)(void *userdata, size_t req_idx, enum wc_read_problem what,
				  uint32_t pack_id, uint32_t page, int err);

/* Read and verify every request (distinct keys read once, then copied).
 * Without @cb the first problem fails with -EBADMSG (-EIO for I/O errors)
 * and an err_set() detail naming the key. */
int wc_store_read(struct wc_store *store, const struct wc_page_req *reqs, size_t nr,
		  wc_read_problem_cb cb, void *userdata);
/* Destinations placed through a userfaultfd (wc_snapshot_fill_uffd):
 * [start, end) ranges, sorted, each within one mapping registered with
 * @fd in missing mode and never touched. */
struct wc_uffd_dst {
	int fd;
	const uintptr_t (*ranges)[2];
	size_t nr;
};
/* wc_store_read, placing pages with UFFDIO_COPY from the packs mapped
 * read-only (destinations outside @u's ranges: memcpy). A destination in
 * @u's ranges is never written any other way. */
int wc_store_read_uffd(struct wc_store *store, const struct wc_page_req *reqs, size_t nr,
		       wc_read_problem_cb cb, void *userdata, const struct wc_uffd_dst *u);
void wc_store_rd_ring_free(struct wc_store *store);
bool wc_source_is_store(const struct wc_source *src);
struct wc_store *wc_source_store(struct wc_source *src);

/* ------------------------------------------------------------ manifests */

#define WC_MANIFEST_MAGIC	"WCSNAP\0\1"
#define WC_MANIFEST_HDR_SIZE	32u
/* Manifests bigger than this are refused before allocating. */
#define WC_MANIFEST_MAX		(1ull << 31)

struct wc_manifest_hdr {
	char magic[8];
	uint32_t version;
	uint32_t hdr_size;
	uint64_t payload_len;
	uint64_t payload_xxh3;
};
_Static_assert(sizeof(struct wc_manifest_hdr) == WC_MANIFEST_HDR_SIZE, "manifest header");

bool wc_id_valid(const char *id);
int wc_snapshot_load(struct wc_store *store, const char *full_id, struct wc_snapshot **ret);

/* Helpers for hashing with the store's key function. */
void wc_key_hex(const struct wc_key *key, char out[33]);

#endif
